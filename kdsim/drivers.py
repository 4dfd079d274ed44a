"""Drivers that misbehave, as workload activities (kdsim/workload.py).

`Overrun` is driver A of the fourth seed case: it allocates a buffer and copies more into it
than it asked for, with an ordinary store (`Machine.driver_write`), so what the extra bytes
hit is whatever the allocator put behind the buffer: the next block's header in normal pool
(found corrupt later, by whoever touches it), or the guard page in special pool (a bug check
at the store, naming the driver).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .layouts import NONPAGED, tag_to_ulong
from .modules import frames as resolve_frames

if TYPE_CHECKING:  # pragma: no cover
    from .workload import Workload


@dataclass
class Overrun:
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
        machine = engine.machine
        if not self._ip:
            self._stack = resolve_frames(machine.symbols, self.frames)
            self._ip = resolve_frames(machine.symbols, (self.store,))[0]
        key = tag_to_ulong(self.tag)
        address = engine.allocate(self.pool_type, self.size, key, self._stack)
        if not address:
            return
        self.runs += 1
        count = self.written if self.runs % self.every == 0 else self.size
        machine.driver_write(address, bytes([self.fill]) * count, self._ip, self._stack)
        if self.lifetime is not None:
            engine.free_later(address, engine.rng.expovariate(1.0 / self.lifetime), key,
                              self._stack)
