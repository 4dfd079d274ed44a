"""Drivers that misbehave, as workload activities (kdsim/workload.py).

`Overrun` is driver A of the fourth seed case: it allocates a buffer and copies more into it
than it asked for, with an ordinary store (`Machine.driver_write`), so what the extra bytes
hit is whatever the allocator put behind the buffer: the next block's header in normal pool
(found corrupt later, by whoever touches it), or the guard page in special pool (a bug check
at the store, naming the driver).  The others are the habits and bugs a lab file gives its
drivers (kdsim/labfile.py): each does something a driver does (allocate, store, free) and
leaves the consequences to the allocator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .layouts import NONPAGED, PROTECTED_POOL, QUOTA, tag_to_ulong
from .modules import frames as resolve_frames
from .workload import Pattern

if TYPE_CHECKING:  # pragma: no cover
    from .workload import Host, Workload


class _Stores:
    """A driver that stores into its blocks with an instruction of its own: its allocation
    stack and the store's address, resolved once from the machine's symbols."""

    tag: str
    pool_type: int
    size: int
    frames: tuple[str, ...]
    store: str
    runs: int
    _stack: tuple[int, ...]
    _ip: int

    def _resolve(self, machine: "Host") -> None:
        if not self._ip:
            self._stack = resolve_frames(machine.symbols, self.frames)
            self._ip = resolve_frames(machine.symbols, (self.store,))[0]

    def _next_block(self, engine: "Workload") -> int:
        """Allocate the driver's next block (0: the pool refused it), counting the runs."""
        self._resolve(engine.machine)
        address = engine.allocate(self.pool_type, self.size, tag_to_ulong(self.tag),
                                  self._stack)
        if address:
            self.runs += 1
        return address


def _free_in_time(engine: "Workload", address: int, lifetime: float | None, key: int,
                  stack: tuple[int, ...]) -> None:
    """Free the block after a drawn lifetime (mean `lifetime` ticks); None keeps it."""
    if lifetime is not None:
        engine.free_later(address, engine.rng.expovariate(1.0 / lifetime), key, stack)


@dataclass
class Overrun(_Stores):
    """Allocates `size` bytes of `tag` and writes `written` bytes of `fill` into the block
    (every `every`-th time; the other times it writes `size` bytes).

    frames: the allocation's return addresses, first frame = the driver's caller of
    ExAllocatePoolWithTag (`'DrvA+0x1a2b'`); store: the instruction that copies
    (`'DrvA+0x1c00'`); lifetime: mean ticks until the block is freed, None to keep it."""

    driver: str
    tag: str
    size: int
    written: int
    weight: float
    frames: tuple[str, ...]
    store: str
    pool_type: int = NONPAGED
    lifetime: float | None = None
    every: int = 1
    fill: int = 0x46                          # 'F': the copied data
    runs: int = field(init=False, default=0)
    _stack: tuple[int, ...] = field(init=False, default=())
    _ip: int = field(init=False, default=0)

    def run(self, engine: "Workload") -> None:
        machine, key = engine.machine, tag_to_ulong(self.tag)
        address = self._next_block(engine)
        if not address:
            return
        count = self.written if self.runs % self.every == 0 else self.size
        machine.driver_write(address, bytes([self.fill]) * count, self._ip, self._stack)
        _free_in_time(engine, address, self.lifetime, key, self._stack)


@dataclass
class Habit(Pattern):
    """A lab driver's allocation habit for one tag (kdsim/labfile.py), with the mistakes a
    lab file can give it: every `leak_every`-th block never freed, every `double_free_every`-th
    freed twice, frees under `free_tag` instead of its own tag, and blocks charged to a
    process's pool quota (`quota_process`, the process object's address)."""

    leak_every: int = 0
    double_free_every: int = 0
    free_tag: str = ""
    quota: bool = False
    quota_process: int = 0
    made: int = 0
    _free_key: int = field(init=False, default=0)

    def bind(self, machine: "Host") -> None:
        super().bind(machine)
        self._free_key = self.key
        if self.free_tag:
            self._free_key = tag_to_ulong(self.free_tag) | (self.key & PROTECTED_POOL)

    def run(self, engine: "Workload") -> None:
        rng = engine.rng
        if self.size_range:
            size = rng.randrange(self.sizes[0], self.sizes[1] + 1)
        else:
            size = self.sizes[rng.randrange(len(self.sizes))]
        quota = QUOTA if self.quota else 0
        address = engine.pool.allocate(self.pool_type | quota, size, self.key,
                                       engine.t % engine.processors, self.stack,
                                       self.quota_process or engine.machine.current_process())
        if not address:
            return
        self.made += 1
        if self.lifetime is None or (self.leak_every and self.made % self.leak_every == 0):
            return
        after = rng.expovariate(1.0 / self.lifetime)
        engine.free_later(address, after, self._free_key, self.stack)
        if self.double_free_every and self.made % self.double_free_every == 0:
            engine.free_later(address, after, self._free_key, self.stack)


@dataclass
class Underrun(_Stores):
    """Allocates `size` bytes of `tag` and fills them; every `every`-th time it writes
    `before` bytes in front of the block first (a negative index): over its own pool header
    in normal pool, into the guard page in special pool's verify-start mode."""

    driver: str
    tag: str
    pool_type: int
    size: int
    before: int
    weight: float
    frames: tuple[str, ...]
    store: str
    lifetime: float | None = None
    every: int = 1
    fill: int = 0x55                          # 'U'
    runs: int = 0
    _stack: tuple[int, ...] = field(init=False, default=())
    _ip: int = field(init=False, default=0)

    def run(self, engine: "Workload") -> None:
        machine, key = engine.machine, tag_to_ulong(self.tag)
        address = self._next_block(engine)
        if not address:
            return
        if self.runs % self.every == 0:
            machine.driver_write(address - self.before, bytes([self.fill]) * self.before,
                                 self._ip, self._stack)
        machine.driver_write(address, bytes([self.fill]) * self.size, self._ip, self._stack)
        _free_in_time(engine, address, self.lifetime, key, self._stack)


@dataclass
class UseAfterFree(_Stores):
    """Keeps one block of `tag` at a time: each turn frees the block it holds and allocates
    the next; every `every`-th turn it writes to the block after freeing it.  In normal pool
    the write lands on a free block (found by the allocator later, or never); in special pool
    the freed page is no-access and the store stops the machine at once."""

    driver: str
    tag: str
    pool_type: int
    size: int
    weight: float
    frames: tuple[str, ...]
    store: str
    every: int = 1
    fill: int = 0x46
    runs: int = 0
    held: int = 0                             # the block it holds (0: none yet)
    _stack: tuple[int, ...] = field(init=False, default=())
    _ip: int = field(init=False, default=0)

    def run(self, engine: "Workload") -> None:
        machine = engine.machine
        self._resolve(machine)
        key = tag_to_ulong(self.tag)
        if self.held:
            freed, self.held = self.held, 0
            engine.free(freed, key, self._stack)
            self.runs += 1
            if self.runs % self.every == 0:
                machine.driver_write(freed, bytes([self.fill]) * min(self.size, 16),
                                     self._ip, self._stack)
        self.held = engine.allocate(self.pool_type, self.size, key, self._stack)


@dataclass
class Burst:
    """Once the clock reaches `at`, allocates up to `count` blocks of `tag` in one go and
    keeps them, stopping at the first request the pool refuses: a pool exhausted by one
    driver."""

    driver: str
    tag: str
    pool_type: int
    size: int
    count: int
    at: int
    weight: float
    frames: tuple[str, ...]
    fired: int = 0
    _stack: tuple[int, ...] = field(init=False, default=())

    def run(self, engine: "Workload") -> None:
        if self.fired or engine.t < self.at:
            return
        self.fired = 1
        self._stack = resolve_frames(engine.machine.symbols, self.frames)
        key = tag_to_ulong(self.tag)
        for _ in range(self.count):
            if not engine.allocate(self.pool_type, self.size, key, self._stack):
                return
