"""The workload engine: drivers as deterministic, seeded generators of pool traffic.

Each `Activity` performs one operation when picked (by weight) at a tick of the clock: the
common case, `Pattern`, allocates a block of a tag with a size drawn from its distribution and
schedules its free after a drawn lifetime (never, for a leak).  Fragmentation, leaks and
corruption come out of what these operations do to the allocator, never out of a script.
Scenarios add their own activities (kdsim/scenarios/).
"""
from __future__ import annotations

import bisect
import heapq
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .layouts import PROTECTED_POOL, QUOTA, tag_to_ulong

if TYPE_CHECKING:  # pragma: no cover
    from .images import DriverImages
    from .objects import ObjectManager
    from .pool import PoolManager
    from .symbols import SymbolTable

FOREVER = None


class Host(Protocol):
    """What the workload and its drivers use of the machine they run on."""

    pool: "PoolManager"
    processors: int
    symbols: "SymbolTable"
    images: "DriverImages"
    objects: "ObjectManager"

    def current_process(self) -> int: ...

    def driver_write(self, address: int, data: bytes, ip: int = 0,
                     stack: tuple[int, ...] = ()) -> None: ...


class Activity(Protocol):
    weight: float

    def run(self, engine: "Workload") -> None: ...


@dataclass
class Pattern:
    """A driver's allocation habit for one tag.

    sizes: request sizes in bytes, drawn uniformly (a (lo, hi) range when `size_range`);
    lifetime: mean ticks until freed (exponential), or None for blocks that stay (boot-time
    objects; a leak when the driver forgets them); frames: the allocation's stack, innermost
    first; free_frames: the stack of the free its owner makes (the allocation's when none).
    """

    driver: str
    tag: str
    pool_type: int
    sizes: tuple[int, ...]
    lifetime: float | None
    weight: float
    frames: tuple[str, ...] = ()
    free_frames: tuple[str, ...] = ()
    size_range: bool = False
    protected: bool = False
    object_type: str = ""          # the object manager type the block holds ("" = not an object)
    key: int = field(init=False, default=0)
    stack: tuple[int, ...] = field(init=False, default=())
    free_stack: tuple[int, ...] = field(init=False, default=())

    def bind(self, machine: Host) -> None:
        from .modules import frames
        self.key = tag_to_ulong(self.tag) | (PROTECTED_POOL if self.protected else 0)
        self.stack = frames(machine.symbols, self.frames)
        self.free_stack = (frames(machine.symbols, self.free_frames) if self.free_frames
                           else self.stack)
        machine.images.hold_tag(self.tag, self.stack)

    def run(self, engine: "Workload") -> None:
        rng = engine.rng
        if self.size_range:
            lo, hi = self.sizes
            size = rng.randrange(lo, hi + 1)                  # randint(lo, hi), one call less
        else:
            sizes = self.sizes
            size = sizes[0] if len(sizes) == 1 else sizes[rng.randrange(len(sizes))]
        cpu = engine.t % engine.processors
        addr = engine.pool.allocate(self.pool_type, size, self.key, cpu, self.stack,
                                    engine.machine.current_process()
                                    if self.pool_type & QUOTA else 0)
        if not addr:
            return
        with_it = (engine.machine.objects.create(addr, size, self.object_type, cpu, self.stack)
                   if self.object_type else ())
        if self.lifetime is not None:
            due = engine.t + rng.expovariate(1.0 / self.lifetime)
            for block, key in ((addr, self.key), *with_it):
                engine.seq += 1
                heapq.heappush(engine.due, (due, engine.seq, block, key, self.free_stack))


class Workload:
    """The clock, the seeded RNG, and the queue of scheduled frees."""

    def __init__(self, machine: Host, seed: int):
        self.machine = machine
        self.pool = machine.pool
        self.rng = random.Random(seed)
        self.t = 0
        self.activities: list[Activity] = []
        self._cumulative: list[float] = []
        # scheduled frees: (time, seq, address, tag, the freeing driver's stack)
        self.due: list[tuple[float, int, int, int, tuple[int, ...]]] = []
        self.seq = 0
        self.processors = machine.processors
        self.tick_period = 20000                              # ops per balance-set tick

    def add(self, *activities: Activity) -> None:
        for act in activities:
            if isinstance(act, Pattern):
                act.bind(self.machine)
            self.activities.append(act)
        total = 0.0
        self._cumulative = []
        for act in self.activities:
            total += act.weight
            self._cumulative.append(total)

    def remove(self, activity: Activity) -> None:
        self.activities.remove(activity)
        self.add()

    # -- operations available to activities ------------------------------------------------
    @property
    def cpu(self) -> int:
        return self.t % self.machine.processors

    def allocate(self, pool_type: int, nbytes: int, key: int, stack: tuple[int, ...] = ()) -> int:
        return self.pool.allocate(pool_type, nbytes, key, self.cpu, stack,
                                  self.machine.current_process())

    def free(self, address: int, key: int = 0, stack: tuple[int, ...] = ()) -> None:
        self.pool.free(address, key, self.cpu, stack)

    def free_later(self, address: int, after: float, key: int = 0,
                   stack: tuple[int, ...] = ()) -> None:
        self.seq += 1
        heapq.heappush(self.due, (self.t + after, self.seq, address, key, stack))

    # -- the clock ---------------------------------------------------------------------------
    def step(self, n: int) -> None:
        """Advance n ticks: frees that fall due, then one picked activity per tick."""
        rng, cum, acts, due = self.rng, self._cumulative, self.activities, self.due
        total = cum[-1] if cum else 0.0
        pool_free = self.pool.free
        processors = self.machine.processors
        tracker = self.pool.tracker
        random, heappop, bisect_right = rng.random, heapq.heappop, bisect.bisect_right
        for _ in range(n):
            if tracker.hit is not None:        # nt!PoolHitTag: the machine breaks in
                return
            t = self.t = self.t + 1
            while due and due[0][0] <= t and tracker.hit is None:
                _, _, addr, key, stack = heappop(due)
                pool_free(addr, key, t % processors, stack)
            if total and tracker.hit is None:
                i = bisect_right(cum, random() * total)
                acts[i if i < len(acts) else -1].run(self)
            if t % self.tick_period == 0:
                self.pool.adjust_lookaside_depth()
