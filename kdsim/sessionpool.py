"""Session space and session pool: each session's paged pool, kept as Windows 7 keeps it.

A session (0: services, 1: the interactive logon) has its own `_MM_SESSION_SPACE`
(kdsim/layouts/session.py) holding its paged pool descriptor (PoolIndex 0, PoolType
PagedPoolSession), and its own tag tracker and big-page table, whose addresses the structure
keeps; the sessions are on `nt!MiSessionWsList` and `nt!MmSessionSpace` points at the current
process's session (the interactive one: the debugger looks at it, as at a dump taken there).
The processes of a session are joined to it when it is created (EPROCESS.Session, the
session's ProcessList: kdsim/processes.py), those started later when they start.

The allocator is the executive's own (`PoolManager`, kdsim/pool.py) over the session's memory:
a request with the session bit and the paged bit is served by the session's descriptor, and a
block keeps `PagedPoolSession | in use` (0x23) in its header.  A free finds its session by the
address (`PoolManager.free_normal` hands it over).  Small blocks go back to the session's own
lookaside lists (`_MM_SESSION_SPACE.Lookaside`: one list per BlockSize up to 25 on x86, 21 on
x64, shared by the processors; internals.md 6), which the balance-set manager tunes as it tunes
the processors' (assumed: the same rule).  Simplifications, as assumptions: the sessions'
pools lie side by side in session space, where Windows maps
each session's pool at the same addresses in the processes of that session; Driver Verifier
does not track session allocations.  nt!PoolHitTag does break on a session tag: the
session's tracker reports the hit to the kernel's (`TagTracker.hits`).

Session VA, session s at `Arch.session_start + s * Arch.session_stride`: the structure, the
session's tables (tracker, big-page table) from TABLES, its paged pool from POOL to the next
session.  What the pool keeps outside memory (each page run's length, the descriptor's
non-empty-list bitmap) is derived again from memory after a snapshot is loaded (`reload`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .bigpages import BigPageTable
from .layouts import (
    BIG_PAGE_FREE, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, POOL_SMALL_LISTS, field_path_offset,
    profile_for, tag_to_ulong,
)
from .layouts.session import LOOKASIDE_SIZE, SESSION_LOOKASIDES, mm_session_space
from .memory import AddressSpace
from .mm import MemoryManager, PoolPages
from .pool import (
    LOOKASIDE_MAX_DEPTH, LOOKASIDE_START_DEPTH, SESSION_PAGED, Descriptor, PoolManager,
    PoolSettings,
)
from .tracker import TagTracker

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

SESSIONS = 2                     # session 0 (services) and session 1 (the interactive user)
INTERACTIVE = 1
TABLES = 0x10000                 # the session's tracker and big-page table, after its structure
POOL = 0x100000                  # its paged pool, to the next session
SESSION_BIG_ENTRIES = 512        # the session's big-page table at boot (it grows as the kernel's)


class SessionMemory(MemoryManager):
    """The page layer of one session: its pool's VA and its tables' VA.  Pages it maps are
    session commit (nt!MmSessionCommit, the session's CommittedPages), not the system pools'."""

    def __init__(self, system: MemoryManager, memory: AddressSpace, base: int, stride: int,
                 committed: int, failures: int):
        # the counters are the system's: nothing of MemoryManager's boot is done again
        self.arch, self.config, self.g = system.arch, system.config, system.g
        self.system = system
        self.memory = memory
        self.committed = committed
        self.addr = {"ExPoolFailures": failures}      # the session's allocation failures
        self.nonpaged = PoolPages(memory, base + TABLES, (POOL - TABLES) // PAGE_SIZE)
        self.paged = PoolPages(memory, base + POOL, (stride - POOL) // PAGE_SIZE)

    def allocate_pool_pages(self, paged: bool, pages: int) -> int:
        va = (self.paged if paged else self.nonpaged).allocate(pages)
        if va:
            self._commit(pages)
        return va

    def free_pool_pages(self, va: int) -> int:
        pages = (self.paged if self.paged.contains(va) else self.nonpaged).free(va)
        if pages:
            self._commit(-pages)
        return pages

    def _commit(self, pages: int) -> None:
        system = self.system
        system.add("MmSessionCommit", pages)
        system.add("MmTotalCommittedPages", pages)
        system.add("MmAvailablePages", -pages)
        g = self.g
        g.write_ptr(self.committed, g.read_ptr(self.committed) + pages)


class SessionPool(PoolManager):
    """One session's paged pool: the executive's allocator over the session's descriptor,
    tables and pages."""

    prototype_index = -1                       # no prototype pool: index 0 is the session's

    def __init__(self, machine: "Machine", session_id: int, space: int, memory: SessionMemory):
        self.session_id = session_id
        self.space = space                     # its _MM_SESSION_SPACE
        self.kernel_tracker = machine.pool.tracker     # nt!PoolHitTag's hits are the kernel's
        settings = PoolSettings(scan_exact_list=machine.settings.scan_exact_list,
                                deferred_frees=machine.settings.deferred_frees,
                                lookasides=machine.settings.lookasides, paged_pools=1)
        super().__init__(machine.arch, machine.memory, machine.g, memory, machine.processors,
                         settings)

    def _boot(self, lists_off: int) -> None:
        """The session's descriptor inside its structure (PoolIndex 0 on its blocks, which
        every index of the paged descriptors names), its tracker and big-page table."""
        layout = mm_session_space(self.layouts)

        def field(name: str) -> int:
            return self.space + field_path_offset(layout, name)

        desc = Descriptor(field("PagedPool"), 0, True, self.d_offsets)
        self.descriptors = [desc]
        self.paged_desc = [desc, desc]
        self._w32(desc.addr + self.o_dtype, SESSION_PAGED)
        self._w32(desc.addr + self.o_dindex, 0)
        for k in range(self.nlists):
            head = desc.lists + k * 2 * self.P
            self.pair.pack_into(self.pages[head >> PAGE_SHIFT], head & PAGE_MASK, head, head)
        self.rr = 0
        self.np_range = (0, 0)                 # no nonpaged pool of its own
        self.tracker = TagTracker(self.arch, self.memory, self.g, self.mm,
                                  where=(field("PoolTrackTableExpansion"),
                                         field("PoolTrackTableExpansionSize")))
        self.tracker.hits = self.kernel_tracker
        self.big = BigPageTable(self.arch, self.memory, self.g, self.mm, SESSION_BIG_ENTRIES,
                                where=(field("PoolTrackBigPages"),
                                       field("PoolTrackBigPagesSize"),
                                       field("PoolBigEntriesInUse")))
        self.la = self._boot_session_lookasides(field("Lookaside"))
        self.paged_run = self.lookaside_base = 0

    def _boot_session_lookasides(self, first: int) -> list[list[list[tuple[int, ...]]]]:
        """The session's lookaside lists, from `first` (`Lookaside[0]`), each a
        PagedPoolSession list of 'Pool' blocks of its size; a pop or push on any processor
        tries the one list of the block's size (none for nonpaged or larger blocks)."""
        count = SESSION_LOOKASIDES[self.P]
        depth = LOOKASIDE_START_DEPTH if self.settings.lookasides else 0
        paged: list[tuple[int, ...]] = []
        for i in range(POOL_SMALL_LISTS):
            if i >= count:
                paged.append(())
                continue
            la = first + i * LOOKASIDE_SIZE
            self._w16(la + self.o_la_depth, depth)
            self._w16(la + self.o_la_maxdepth, LOOKASIDE_MAX_DEPTH)
            self._w32(la + self.o_la_type, SESSION_PAGED)
            self._w32(la + self.o_la_tag, tag_to_ulong("Pool"))
            self._w32(la + self.o_la_size, (i + 1) * self.G)
            paged.append((la,))
        nonpaged: list[tuple[int, ...]] = [()] * POOL_SMALL_LISTS
        return [[nonpaged, paged] for _cpu in range(self.processors)]

    def reload(self) -> None:
        """Derive again what the pool keeps outside memory, from memory: its big-page table's
        place, size and use, its pages in use (each small-pool page a run of one, each large
        allocation a run of its size from the big-page table, the tables from their pointers)
        and its lists' bitmap."""
        big, g = self.big, self.g
        big.table, big.entries = g.read_ptr(big.sym_table), g.read_ptr(big.sym_size)
        big.in_use = g.read_ptr(big.sym_in_use)
        big_pages = {}
        table, entries = big.table, big.entries
        for i in range(entries):
            e = table + i * self.big.esize
            va = self._rptr(e)
            if not va & BIG_PAGE_FREE:
                big_pages[va] = -(-self._rptr(e + self.big.o_bytes) // PAGE_SIZE)
        for pages in (self.mm.paged, self.mm.nonpaged):
            pages.used[:] = bytes(len(pages.used))
            pages.runs = {}
            pages.in_use = 0
        own = {self.tracker.table: -(-self.tracker.size * self.tracker.entry_size // PAGE_SIZE),
               table: -(-entries * self.big.esize // PAGE_SIZE)}
        for pages, runs in ((self.mm.nonpaged, own), (self.mm.paged, big_pages)):
            mapped = {vpn for vpn in self.memory.pages
                      if pages.start >> PAGE_SHIFT <= vpn < pages.end >> PAGE_SHIFT}
            for va, count in runs.items():
                mapped -= set(range(va >> PAGE_SHIFT, (va >> PAGE_SHIFT) + count))
                self._mark(pages, va, count)
            for vpn in mapped:                 # the small-pool pages
                self._mark(pages, vpn << PAGE_SHIFT, 1)
        self.rescan_lists()

    @staticmethod
    def _mark(pages: PoolPages, va: int, count: int) -> None:
        pos = (va - pages.start) >> PAGE_SHIFT
        pages.used[pos:pos + count] = b"\x01" * count
        pages.runs[pos] = count
        pages.in_use += count


class SessionPools:
    """The machine's sessions: their structures on nt!MiSessionWsList and their pools."""

    def __init__(self, machine: "Machine"):
        arch, g = machine.arch, machine.g
        self.arch = arch
        layout = mm_session_space(profile_for(arch))
        P = arch.ptr_size
        head = g.var("MiSessionWsList", 2 * P)
        current = g.var("MmSessionSpace")
        self.start = arch.session_start
        self.end = arch.session_start + SESSIONS * arch.session_stride
        self.pools: list[SessionPool] = []
        self.current = INTERACTIVE
        entries = []

        def at(space: int, name: str) -> int:
            return space + field_path_offset(layout, name)

        for sid in range(SESSIONS):
            space = arch.session_start + sid * arch.session_stride
            machine.memory.map(space, -(-layout.sizeof() // PAGE_SIZE) * PAGE_SIZE)
            g.write_u32(at(space, "SessionId"), sid)
            memory = SessionMemory(machine.mm, machine.memory, space, arch.session_stride,
                                   at(space, "CommittedPages"),
                                   at(space, "SessionPoolAllocationFailures"))
            g.write_ptr(at(space, "PagedPoolStart"), memory.paged.start)
            g.write_ptr(at(space, "PagedPoolEnd"), memory.paged.end - 1)
            for name in ("ProcessList.Flink", "ProcessList.Blink"):
                g.write_ptr(at(space, name), at(space, "ProcessList"))
            self.pools.append(SessionPool(machine, sid, space, memory))
            entries.append(at(space, "WsListEntry"))
        # nt!MiSessionWsList -> session 0 -> session 1 -> back (Flink, Blink)
        ring = [head, *entries]
        for i, entry in enumerate(ring):
            g.write_ptr(entry, ring[(i + 1) % len(ring)])
            g.write_ptr(entry + P, ring[i - 1])
        g.write_ptr(current, self.pools[INTERACTIVE].space)
        for pool in self.pools:
            machine.objects.processes.set_session(pool.session_id, pool.space)

    def owns(self, address: int) -> bool:
        return self.start <= address < self.end

    def pool_at(self, address: int) -> SessionPool:
        return self.pools[(address - self.start) // self.arch.session_stride]

    def allocate(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0,
                 stack: tuple[int, ...] = (), process: int = 0) -> int:
        """ExAllocatePoolWithTag(PagedPoolSession ...): in the current process's session."""
        return self.pools[self.current].allocate(pool_type, nbytes, tag, cpu, stack, process)

    def free(self, address: int, tag: int = 0, cpu: int = 0) -> None:
        """The session part of ExFreePoolWithTag (the caller places a stop)."""
        self.pool_at(address).free_normal(address, tag, cpu)

    def rescan_lists(self) -> None:
        for pool in self.pools:
            pool.rescan_lists()

    def adjust_lookaside_depth(self) -> None:
        for pool in self.pools:
            pool.adjust_lookaside_depth()

    def disable_lookasides(self) -> None:
        for pool in self.pools:
            pool.disable_lookasides()

    def reload(self) -> None:
        for pool in self.pools:
            pool.reload()
