"""System threads: where their ETHREADs are and which one runs on a processor at a tick.

Each thread is a real `Thre` object in nonpaged pool, as on Windows, so `!pool` on a thread
address shows its block: the ETHREAD body follows the pool header, the object header's quota
information and the OBJECT_HEADER (0x30 bytes after the pool header on x86, 0x60 on x64: the
...060 thread addresses of the second seed case).  A processor runs its threads in turn, a
fixed quantum of ticks each, so the thread of any operation is a function of the clock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .layouts import NONPAGED, PROTECTED_POOL, profile_for, tag_to_ulong

if TYPE_CHECKING:  # pragma: no cover
    from .pool import PoolManager

THREADS_PER_CPU = 4
QUANTUM = 64                                   # ticks a thread runs before the next one


class Threads:
    def __init__(self, pool: "PoolManager", processors: int):
        profile = profile_for(pool.arch)
        tag = tag_to_ulong("Thre") | PROTECTED_POOL
        self.processors = processors
        self.ethreads: list[int] = []
        for n in range(processors * THREADS_PER_CPU):
            block = pool.allocate_normal(NONPAGED, profile.thread_object_size, tag,
                                         n % processors)
            self.ethreads.append(block - pool.arch.header + profile.thread_body_offset)

    def current(self, cpu: int, tick: int) -> int:
        """The ETHREAD running on `cpu` at `tick`."""
        return self.ethreads[cpu * THREADS_PER_CPU + (tick // QUANTUM) % THREADS_PER_CPU]
