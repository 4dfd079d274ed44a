"""The executive pool allocator (ExAllocatePoolWithTag / ExFreePoolWithTag), Windows 7 model.

All allocator state lives in simulated memory, where Windows keeps it: `_POOL_HEADER`s inside
pool pages, free chunks linked through their LIST_ENTRY into the descriptors' ListHeads,
lookaside SLISTs in GENERAL_LOOKASIDE_POOL structures, the pending-free chain, the tag tracker
and the big-page table.  Each operation reads what it needs back from memory, so a corrupted
header or link changes what the allocator does and is caught by the same checks the real
kernel makes (internals.md sections 5-10; section 20 is the model).  The only Python-side
state is derivable acceleration: a per-descriptor bitmap of ListHeads that may be non-empty
and the tracker's tag-to-slot cache, both re-verified against memory on every use.

Whatever a corrupted header, link, size or pointer says, the allocator follows it as Windows 7
does, reading and writing across page ends and with its bit-field arithmetic, and stops where
Windows stops: its own checks (BAD_POOL_HEADER, BAD_POOL_CALLER with their subcodes) or a fault
on memory that is not there (`PoolFault`, placed by the routine that took it as 0xC5, 0x50 or
0x1E).  The two places where Windows would go round for ever or where the simulator cannot
follow it (a cyclic pending list, a free of the allocator's own tables) stop too, as said
where they are.  The hot paths read and write in place; what does not fit the page, or the
rules a healthy pool keeps, goes to the general paths.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .arch import Arch
from .bigpages import BigPageTable
from .bugcheck import (
    BAD_POOL_CALLER, BAD_POOL_HEADER, DRIVER_CORRUPTED_EXPOOL, KMODE_EXCEPTION_NOT_HANDLED,
    PAGE_FAULT_IN_NONPAGED_AREA, BugCheck,
)
from .layouts import (
    IN_USE, NONPAGED, PAGE_MASK, PAGE_SIZE, PAGED, POOL_SMALL_LISTS, PROTECTED_POOL, QUOTA,
    SESSION, TYPE_BITS, Profile, field_run, profile_for, tag_to_ulong,
)
from .layouts.constants import MAXIMUM_PROCESSORS
from .memory import AddressSpace, MemoryFault
from .mm import MemoryManager
from .ntdata import KernelGlobals
from .stop import raised_in
from .tracker import TagTracker

if TYPE_CHECKING:  # pragma: no cover
    from .sessionpool import SessionPools
    from .verifier import Verifier

LOOKASIDE_MAX_DEPTH = 256
LOOKASIDE_START_DEPTH = 2
LOOKASIDE_MIN_DEPTH = 4
PENDING_FREE_LIMIT = 32        # EXP_MAXIMUM_POOL_FREES_PENDING
DISPATCH_LEVEL = 2             # the IRQL the nonpaged pool's spin lock raises to
DOUBLE_FREE_LINE = 0x1297      # BAD_POOL_CALLER 7's P2, a source line in the real kernel
PROCESS_OBJECT = 3             # DISPATCHER_HEADER.Type of a KPROCESS (ProcessObject)
STATUS_ACCESS_VIOLATION = 0xC0000005
X64_CANONICAL_GAP = (0x0000800000000000, 0xFFFF800000000000)   # addresses no x64 CPU takes
SESSION_PAGED = SESSION | PAGED   # PagedPoolSession: the current session's paged pool
# POOL_MM_ALLOCATION: the memory manager's own paged requests (a section's prototype PTEs,
# `MmSt`) go to paged descriptor 0, with the paged big allocations; this is why `!vm` shows
# PagedPool 0 as the largest (internals.md 3, 4.2).  Not a PoolType bit: not in the header.
MM_ALLOCATION = 0x80000000


@dataclass
class PoolSettings:
    """Switches where sources disagree (DESIGN.md: make the alternative a setting)."""

    scan_exact_list: bool = True       # Win7 starts the ListHeads scan at BlockSize-1
    deferred_frees: bool = True        # enabled on machines with >= 508 MB and no verifier
    lookasides: bool = True
    paged_pools: int = 4               # 4 on MP (PagedPool 1..4), 2 on UP


class PoolFault(BugCheck):
    """A page fault the allocator took where its own (corrupted) bookkeeping led it.  Which
    bug check Windows makes of it depends on the lock held and the faulting instruction, which
    the routine that catches it supplies (`PoolManager._placed`); until then it reads as the
    nonpaged pool's 0xC5."""

    def __init__(self, address: int, write: bool):
        super().__init__(DRIVER_CORRUPTED_EXPOOL, address, DISPATCH_LEVEL, int(write), 0)
        self.address = address
        self.write = write


class Descriptor:
    """A _POOL_DESCRIPTOR in memory plus the non-empty-list bitmap that accelerates scans."""

    __slots__ = ("addr", "index", "paged", "lists", "bitmap", "allocs", "deallocs", "pending")

    def __init__(self, addr: int, index: int, paged: bool, offsets: dict[str, int]):
        self.addr = addr
        self.index = index
        self.paged = paged
        self.lists = addr + offsets["ListHeads"]
        self.bitmap = 0
        self.allocs = addr + offsets["RunningAllocs"]          # where the hot path's runs start
        self.deallocs = addr + offsets["RunningDeAllocs"]
        self.pending = addr + offsets["PendingFrees"]


def _gapped(layouts: Profile, name: str, *fields: str) -> struct.Struct:
    """Fields of structure `name` (in memory order) with the bytes between each two as one
    opaque field: one unpack and one pack update them all and write the bytes between back
    unchanged."""
    con = getattr(layouts, name)
    fmt, end = "<", layouts.offset(name, fields[0])
    for i, field in enumerate(fields):
        run = field_run(con, (field,))[0]
        if i:
            fmt += f"{layouts.offset(name, field) - end}s"
        fmt += run.format[1:]
        end = layouts.offset(name, field) + run.size
    return struct.Struct(fmt)


class PoolManager:
    # the paged PoolIndex whose frees skip the lookasides: prototype pool (a session's pool has
    # none: its one descriptor is index 0)
    prototype_index = 0

    def __init__(self, arch: Arch, memory: AddressSpace, g: KernelGlobals, mm: MemoryManager,
                 processors: int, settings: PoolSettings | None = None):
        self.arch = arch
        self.memory = memory
        self.pages = memory.pages
        self.g = g
        self.mm = mm
        self.processors = processors
        self.settings = settings or PoolSettings()
        self.hook: Verifier | None = None   # Driver Verifier / special pool, when enabled
        self.sessions: SessionPools | None = None   # session space, once the sessions exist
        self.hit_site: tuple[str, int, tuple[int, ...]] | None = None   # where PoolHitTag hit
        L = self.layouts = profile_for(arch)
        self._quota_usage = L.offset("eprocess", "ProcessQuotaUsage")
        self._quota_peak = L.offset("eprocess", "ProcessQuotaPeak")
        self.codec = L.codec
        self.G = arch.block
        self.shift = arch.block_shift
        self.P = arch.ptr_size
        self.ptr = struct.Struct("<I" if self.P == 4 else "<Q")
        self.pair = struct.Struct("<II" if self.P == 4 else "<QQ")
        self.size_t = self.ptr
        self.u32 = struct.Struct("<I")
        self.u16 = struct.Struct("<H")
        self.hdr = struct.Struct("<II")               # Ulong1, PoolTag
        self.pmask = arch.ptr_mask
        self.max_small = arch.max_small
        self.nlists = L.list_heads
        d = L.offset
        self.o_total_pages = d("descriptor", "TotalPages")
        self.o_total_big = d("descriptor", "TotalBigPages")
        self.o_pending_depth = d("descriptor", "PendingFreeDepth")
        self.o_dtype = d("descriptor", "PoolType")
        self.o_dindex = d("descriptor", "PoolIndex")
        lists_off = d("descriptor", "ListHeads")
        self.o_la_next = d("lookaside", "Next")
        self.o_la_listdepth = d("lookaside", "ListDepth")
        self.o_la_depth = d("lookaside", "Depth")
        self.o_la_maxdepth = d("lookaside", "MaximumDepth")
        self.o_la_total_alloc = d("lookaside", "TotalAllocates")
        self.o_la_alloc_hits = d("lookaside", "AllocateHits")
        self.o_la_total_free = d("lookaside", "TotalFrees")
        self.o_la_free_hits = d("lookaside", "FreeHits")
        self.o_la_last_total = d("lookaside", "LastTotalAllocates")
        self.o_la_last_hits = d("lookaside", "LastAllocateHits")
        self.o_la_type = d("lookaside", "Type")
        self.o_la_tag = d("lookaside", "Tag")
        self.o_la_size = d("lookaside", "Size")
        # The SLIST head and the hit counters, read and written in one call (they open the
        # structure in both layouts, the SLIST header first: Next before ListDepth and
        # Sequence, or after them; la_next_first says which).
        self.la_head, idx = field_run(L.lookaside, (
            "Next", "ListDepth", "Sequence", "Depth", "MaximumDepth", "TotalAllocates",
            "AllocateHits", "TotalFrees", "FreeHits"))
        self.la_next_first = idx["Next"] == 0
        assert [idx["ListDepth"], idx["Sequence"], idx["Next"]] in ([1, 2, 0], [0, 1, 2])
        assert min(d("lookaside", n) for n in idx) == 0       # the run opens the structure
        # A chunk as the hot path reads and writes it in one call: Ulong1, PoolTag, the rest of
        # the header ("0s" where there is none) and the LIST_ENTRY (or the SLIST/pending Next)
        # that follows the header.
        h = L.pool_header
        tag_end = d("pool_header", "PoolTag") + 4
        rest = tuple(s.name for s in h.subcons if s.name and d("pool_header", s.name) >= tag_end)
        fill = field_run(h, rest)[0].format[1:] if rest else "0s"
        p = self.ptr.format[1:]
        self.head = struct.Struct(f"<II{fill}")                   # the whole _POOL_HEADER
        self.chunk_next = struct.Struct(f"<II{fill}{p}")          # ... and Flink / Next
        self.chunk = struct.Struct(f"<II{fill}{p}{p}")            # ... and Flink, Blink
        assert self.head.size == self.G
        self.chunk_last = PAGE_SIZE - self.chunk.size      # last page offset a chunk read fits
        # The rest of a header as a fresh page and every allocated block without quota has it
        # (x64: ProcessBilled NULL)
        self.zero_fill = self.head.unpack(bytes(self.head.size))[2]
        # PreviousSize is the low size_bits of Ulong1: its bits in Ulong1's second byte
        self.prev_hi = self.codec.size_mask >> 8
        self.pair_last = PAGE_SIZE - self.pair.size
        # Last page offsets where one read of a pointer, a header, a header and Next fits.
        self.ptr_last = PAGE_SIZE - self.P
        self.hdr_last = PAGE_SIZE - self.hdr.size
        self.chunk_next_last = PAGE_SIZE - self.chunk_next.size
        # page offsets of a chunk's header whose links are read with it (block-aligned)
        self.chunk_offsets = frozenset(range(0, self.chunk_last + 1, self.G))
        self.in_use = IN_USE << self.codec.type_shift          # PoolType's in-use bit in Ulong1
        # Descriptor counters updated together, each pair in one unpack and one pack.
        self.d_alloc = _gapped(L, "descriptor", "RunningAllocs", "TotalBytes")
        self.d_free = _gapped(L, "descriptor", "RunningDeAllocs", "TotalBytes")
        self.d_pending = _gapped(L, "descriptor", "PendingFrees", "PendingFreeDepth")
        self.d_big_alloc = _gapped(L, "descriptor", "RunningAllocs", "TotalBigPages", "TotalBytes")
        self.d_big_free = _gapped(L, "descriptor", "RunningDeAllocs", "TotalBigPages",
                                  "TotalBytes")
        self.d_offsets = {n: d("descriptor", n) for n in (
            "ListHeads", "RunningAllocs", "RunningDeAllocs", "PendingFrees")}
        self.np_range = (mm.nonpaged.start, mm.nonpaged.end)
        self.p_range = (mm.paged.start, mm.paged.end)
        self._boot(lists_off)

    # ======================================================================================
    # boot: descriptors, tracker, big-page table, lookaside lists
    # ======================================================================================
    def _boot(self, lists_off: int) -> None:
        g, P = self.g, self.P
        dsize = self.layouts.descriptor.sizeof()
        npaged = self.settings.paged_pools
        self.sym_flags = g.var("ExpPoolFlags", 4)
        self.sym_npaged = g.var("ExpNumberOfPagedPools", 4)
        g.write_u32(self.sym_npaged, npaged)
        # LIST_ENTRYs must not straddle a page: align the ListHeads array to its entry size.
        entry = 2 * P
        np_desc = g.var("NonPagedPoolDescriptor", dsize, entry, align_at=lists_off)
        paged_array = g.var("ExpPagedPoolDescriptor", P * (npaged + 1))
        vector = g.var("PoolVector", 2 * P)
        # The paged descriptors live in nonpaged pool pages, as Windows allocates them.
        stride = -(-dsize // entry) * entry
        skew = -lists_off % entry
        self.paged_run = self.mm.allocate_pool_pages(
            False, -(-(skew + stride * (npaged + 1)) // PAGE_SIZE))
        pd_base = self.paged_run + skew
        self.descriptors = [Descriptor(np_desc, 0, False, self.d_offsets)]
        self.paged_desc = []
        for i in range(npaged + 1):
            addr = pd_base + i * stride
            g.write_ptr(paged_array + i * P, addr)
            self.paged_desc.append(Descriptor(addr, i, True, self.d_offsets))
        g.write_ptr(vector, np_desc)
        g.write_ptr(vector + P, pd_base)
        for desc in [self.descriptors[0], *self.paged_desc]:
            self._w32(desc.addr + self.o_dtype, PAGED if desc.paged else NONPAGED)
            self._w32(desc.addr + self.o_dindex, desc.index)
            for k in range(self.nlists):              # empty circular lists point to themselves
                head = desc.lists + k * 2 * P
                self.pair.pack_into(self.pages[head >> 12], head & PAGE_MASK, head, head)
        self.rr = 0                                    # ExpPoolIndex round robin
        self.tracker = TagTracker(self.arch, self.memory, g, self.mm)
        self.big = BigPageTable(self.arch, self.memory, g, self.mm)
        self._boot_lookasides()
        flags = 0x200 if self.settings.deferred_frees else 0
        g.write_u32(self.sym_flags, flags)
        # The allocator's own tables are page-granular nonpaged allocations tagged 'Pool',
        # recorded in the big-page table like any other, so !pool and !poolfind know them.
        for pos, pages in sorted(self.mm.nonpaged.runs.items()):
            self.big.insert(self.mm.nonpaged.start + pos * PAGE_SIZE, tag_to_ulong("Pool"),
                            NONPAGED, pages * PAGE_SIZE)
        self.tracker.charge_boot("Pool", self.mm.nonpaged.in_use * PAGE_SIZE, paged=False)

    def _boot_lookasides(self) -> None:
        g, P, L = self.g, self.P, self.layouts
        la_size = L.lookaside.sizeof()
        sets = 2 * (self.processors + 1)       # NP and paged, a P set per CPU plus the L set
        prcb_size = L.kprcb.sizeof()
        total = sets * (POOL_SMALL_LISTS * la_size + PAGE_SIZE) + self.processors * prcb_size
        cursor = self.mm.allocate_pool_pages(False, -(-total // PAGE_SIZE))
        self.lookaside_base = cursor

        def place(size: int) -> int:
            """Next free spot for a structure that must not straddle a page."""
            nonlocal cursor
            if size <= PAGE_SIZE and (cursor & PAGE_MASK) + size > PAGE_SIZE:
                cursor = (cursor | PAGE_MASK) + 1
            addr, cursor = cursor, cursor + size
            return addr

        block = g.var("KiProcessorBlock", P * MAXIMUM_PROCESSORS)
        np_off = L.offset("kprcb", "PPNPagedLookasideList")
        p_off = L.offset("kprcb", "PPPagedLookasideList")
        shared = [[place(la_size) for _ in range(POOL_SMALL_LISTS)] for _paged in (0, 1)]
        prcbs = []
        for cpu in range(self.processors):
            prcbs.append(place(prcb_size))
            g.write_ptr(block + cpu * P, prcbs[cpu])
        # la[cpu][paged] -> the lists a pop or push tries, per block size index: (P, L) here
        self.la: list[list[list[tuple[int, ...]]]] = []
        for cpu in range(self.processors):
            per_cpu = []
            for paged in (0, 1):
                lists: list[tuple[int, ...]] = []
                arr = prcbs[cpu] + (p_off if paged else np_off)
                for i in range(POOL_SMALL_LISTS):
                    p_addr = place(la_size)
                    l_addr = shared[paged][i]
                    slot = arr + i * 2 * P
                    self.pair.pack_into(self.pages[slot >> 12], slot & PAGE_MASK, p_addr, l_addr)
                    lists.append((p_addr, l_addr))
                per_cpu.append(lists)
            self.la.append(per_cpu)
        depth = LOOKASIDE_START_DEPTH if self.settings.lookasides else 0
        for paged in (0, 1):
            for i in range(POOL_SMALL_LISTS):
                addrs = {shared[paged][i], *(self.la[c][paged][i][0] for c in range(self.processors))}
                for a in addrs:
                    self._w16(a + self.o_la_depth, depth)
                    self._w16(a + self.o_la_maxdepth, LOOKASIDE_MAX_DEPTH)
                    self._w32(a + self.o_la_type, paged)
                    self._w32(a + self.o_la_tag, tag_to_ulong("Pool"))
                    self._w32(a + self.o_la_size, (i + 1) * self.G)

    # ======================================================================================
    # small memory helpers (hot path: direct page access)
    # ======================================================================================
    def _page(self, addr: int, write: bool = False) -> bytearray:
        page = self.pages.get(addr >> 12)
        if page is None:
            raise self._fault(addr, write)
        return page

    def _fault(self, addr: int, write: bool = False) -> PoolFault:
        """The page fault of a reference to `addr` that found no page."""
        return PoolFault(addr & self.pmask, write)

    def _placed(self, bc: BugCheck, paged: int, routine: str) -> BugCheck:
        """A fault inside `routine` (a key of the profile's routines) as the bug check Windows 7
        stops with.  Under the nonpaged pool's spin lock the code runs at DISPATCH_LEVEL, where
        a bad reference is IRQL_NOT_LESS_OR_EQUAL, which KeBugCheck2 names
        DRIVER_CORRUPTED_EXPOOL (0xC5: address, IRQL, read/write, instruction) because the
        instruction is in the pool's code; under the paged pool's guarded mutex (APC_LEVEL) it
        is PAGE_FAULT_IN_NONPAGED_AREA (0x50: address, read/write, instruction, 0).  On x64 a
        non-canonical address is a general protection fault: KMODE_EXCEPTION_NOT_HANDLED
        (0x1E: STATUS_ACCESS_VIOLATION, instruction, 0, an unknown address).
        Assumed: lookaside pops and pushes (which take no lock) fault as under the pool's lock,
        and a user-range address at APC_LEVEL as 0x50 (Windows would raise an access violation
        there)."""
        if not isinstance(bc, PoolFault):
            return bc
        name, _, offset = self.layouts.routines[routine].partition("+")
        ip = self.g.nt.symbols[name] + int(offset or "0", 16)
        a, w = bc.address, int(bc.write)
        low, high = X64_CANONICAL_GAP
        if self.P == 8 and low <= a < high:
            return BugCheck(KMODE_EXCEPTION_NOT_HANDLED, STATUS_ACCESS_VIOLATION, ip, 0, self.pmask)
        if paged:
            return BugCheck(PAGE_FAULT_IN_NONPAGED_AREA, a, w, ip, 0)
        return BugCheck(DRIVER_CORRUPTED_EXPOOL, a, DISPATCH_LEVEL, w, ip)

    def _read(self, a: int, n: int) -> bytes:
        """n bytes at any address, across a page end as the processor reads them; a fault
        where a page is missing.  (For what a corrupted size or pointer leads to.)"""
        try:
            return self.memory.read(a & self.pmask, n)
        except MemoryFault as fault:
            raise self._fault(fault.address) from None

    def _write(self, a: int, data: bytes) -> None:
        """Write at any address (the bytes before a missing page land, as a store's would)."""
        try:
            self.memory.write(a & self.pmask, data)
        except MemoryFault as fault:
            raise self._fault(fault.address, True) from None

    def _peek_ptr(self, a: int) -> int | None:
        """The pointer at `a` for a safe-unlinking check, None where it cannot be read.  (The
        check then fails: BAD_POOL_HEADER 3 with 0 for the value, where Windows would fault
        reading it; the simulator has always reported the list's corruption there.)"""
        page = self.pages.get(a >> 12)
        off = a & PAGE_MASK
        if page is not None and off <= self.ptr_last:
            return self.ptr.unpack_from(page, off)[0]
        try:
            return self.ptr.unpack(self.memory.read(a & self.pmask, self.P))[0]
        except MemoryFault:
            return None

    def _r32(self, a: int) -> int:
        return self.u32.unpack_from(self._page(a), a & PAGE_MASK)[0]

    def _w32(self, a: int, v: int) -> None:
        self.u32.pack_into(self._page(a, True), a & PAGE_MASK, v & 0xFFFFFFFF)

    def _w16(self, a: int, v: int) -> None:
        self.u16.pack_into(self._page(a, True), a & PAGE_MASK, v & 0xFFFF)

    def _r16(self, a: int) -> int:
        return self.u16.unpack_from(self._page(a), a & PAGE_MASK)[0]

    def _rptr(self, a: int) -> int:
        if a & PAGE_MASK <= self.ptr_last:
            return self.ptr.unpack_from(self._page(a), a & PAGE_MASK)[0]
        return self.ptr.unpack(self._read(a, self.P))[0]

    def _wptr(self, a: int, v: int) -> None:
        if a & PAGE_MASK <= self.ptr_last:
            self.ptr.pack_into(self._page(a, True), a & PAGE_MASK, v & self.pmask)
        else:
            self._write(a, self.ptr.pack(v & self.pmask))

    def _add32(self, a: int, delta: int) -> None:
        page = self.pages[a >> 12]
        off = a & PAGE_MASK
        self.u32.pack_into(page, off, (self.u32.unpack_from(page, off)[0] + delta) & 0xFFFFFFFF)

    def _rhdr(self, e: int) -> tuple[int, int]:
        """(Ulong1, PoolTag) of the header at e, wherever it lies."""
        if e & PAGE_MASK <= self.hdr_last:
            ulong1, tag = self.hdr.unpack_from(self._page(e), e & PAGE_MASK)
        else:
            ulong1, tag = self.hdr.unpack(self._read(e, self.hdr.size))
        return ulong1, tag

    def _whdr(self, page: bytearray, e: int, ulong1: int, tag: int) -> None:
        """Write Ulong1 and PoolTag of the header at e (on `page` when it fits there)."""
        off = e & PAGE_MASK
        if off <= self.hdr_last:
            self.hdr.pack_into(page, off, ulong1, tag)
        else:
            self._write(e, self.hdr.pack(ulong1, tag))

    def header(self, e: int) -> tuple[int, int, int, int, int]:
        """(PreviousSize, PoolIndex, BlockSize, PoolType, PoolTag) of the chunk at e."""
        ulong1, tag = self._rhdr(e)
        return (*self.codec.unpack(ulong1), tag)

    def _prev_size(self, e: int) -> int:
        """PreviousSize of the header at e, read from the bytes its bit field lies in."""
        width = 2 if self.prev_hi else 1
        return int.from_bytes(self._read(e, width), "little") & self.codec.size_mask

    def _set_prev(self, e: int, prev: int) -> None:
        """PreviousSize of the header at e: the bytes its bit field lies in, read and written
        back (the fields around it unchanged)."""
        c = self.codec
        width = 2 if self.prev_hi else 1
        field = int.from_bytes(self._read(e, width), "little")
        self._write(e, ((field & ~c.size_mask) | (prev & c.size_mask)).to_bytes(width, "little"))

    # ======================================================================================
    # ListHeads: circular doubly linked lists in memory, with Windows 7's safe unlinking
    # ======================================================================================
    def _links(self, entry: int) -> tuple[int, int]:
        """(Flink, Blink) of a list entry, wherever it lies; a wild pointer is a fault, as it
        would be."""
        off = entry & PAGE_MASK
        if off <= self.pair_last:
            flink, blink = self.pair.unpack_from(self._page(entry), off)
        else:
            flink, blink = self.pair.unpack(self._read(entry, self.pair.size))
        return flink, blink

    def _unlink(self, desc: Descriptor, entry: int, flink: int, blink: int, bs: int) -> None:
        """RemoveEntryList of a free chunk's entry in ListHeads[bs-1], whose links the caller
        read, with the Flink->Blink / Blink->Flink check (BAD_POOL_HEADER 3).  When the
        chunk was the list's only one, the list's bit in the bitmap is cleared (a bit left
        set for a list that corruption emptied is cleared by the next scan)."""
        pages, P = self.pages, self.P
        off = flink & PAGE_MASK
        if flink == blink and off <= self.pair_last:
            # a single neighbour on both sides (the list head): one LIST_ENTRY
            page = pages.get(flink >> 12)
            if page is not None:
                fwd, back = self.pair.unpack_from(page, off)
                if back != entry or fwd != entry:
                    raise BugCheck(BAD_POOL_HEADER, 3, entry, back, fwd)
                self.pair.pack_into(page, off, flink, blink)
                if flink == desc.lists + (bs - 1) * 2 * P:
                    desc.bitmap &= ~((1 << bs) >> 1)
                return
        ptr, last = self.ptr, self.ptr_last
        at = flink + P
        fpage = pages.get(at >> 12)
        foff = at & PAGE_MASK
        if fpage is None or foff > last:               # across a page end, or wild
            fpage, back = None, self._peek_ptr(at)
        else:
            back = ptr.unpack_from(fpage, foff)[0]
        bpage = pages.get(blink >> 12)
        boff = blink & PAGE_MASK
        if bpage is None or boff > last:
            bpage, fwd = None, self._peek_ptr(blink)
        else:
            fwd = ptr.unpack_from(bpage, boff)[0]
        if back != entry or fwd != entry:
            raise BugCheck(BAD_POOL_HEADER, 3, entry, back or 0, fwd or 0)
        if bpage is not None:
            ptr.pack_into(bpage, boff, flink)
        else:
            self._wptr(blink, flink)
        if fpage is not None:
            ptr.pack_into(fpage, foff, blink)
        else:
            self._wptr(at, blink)

    def _link(self, desc: Descriptor, page: bytearray, e: int, ulong1: int, tag: int,
              fill: int | bytes, bs: int, at_head: bool) -> None:
        """Write the header of the free chunk at e (on `page`: Ulong1, PoolTag, the rest as it
        was, `fill`) and, unless it is a single block, insert it into ListHeads[bs-1]: freed
        chunks at the head, split remainders at the tail; the neighbour the head points at is
        checked first.  Header and LIST_ENTRY go in one write where both lie in the page (else
        Ulong1 and PoolTag, then the links); when the check fails the header alone was
        written, as in Windows.  (BlockSize 0, which only a corrupted size leaves, names the
        LIST_ENTRY before ListHeads[0], as the kernel's index arithmetic does.)"""
        off = e & PAGE_MASK
        if bs == 1:
            if off <= self.hdr_last:
                self.hdr.pack_into(page, off, ulong1, tag)
            else:
                self._whdr(page, e, ulong1, tag)
            return
        P, ptr, pages, last = self.P, self.ptr, self.pages, self.ptr_last
        head = desc.lists + (bs - 1) * 2 * P
        hpage = pages[head >> 12]
        hoff = head & PAGE_MASK
        hflink, hblink = self.pair.unpack_from(hpage, hoff)
        entry = e + self.G
        npage: bytearray | None
        if at_head:
            alone = hflink == head                 # empty list: the head is the neighbour
            if alone:
                npage, back = hpage, hblink
            else:
                at = hflink + P
                npage = pages.get(at >> 12)
                noff = at & PAGE_MASK
                if npage is None or noff > last:   # across a page end, or wild
                    npage, back = None, self._peek_ptr(at)
                else:
                    back = ptr.unpack_from(npage, noff)[0]
            if back != head:
                self._whdr(page, e, ulong1, tag)
                raise BugCheck(BAD_POOL_HEADER, 3, head, back or 0, hblink)
            flink, blink = hflink, head
        else:
            alone = hblink == head
            if alone:
                npage, fwd = hpage, hflink
            else:
                at = hblink
                npage = pages.get(at >> 12)
                noff = at & PAGE_MASK
                if npage is None or noff > last:
                    npage, fwd = None, self._peek_ptr(at)
                else:
                    fwd = ptr.unpack_from(npage, noff)[0]
            if fwd != head:
                self._whdr(page, e, ulong1, tag)
                raise BugCheck(BAD_POOL_HEADER, 3, head, hflink, fwd or 0)
            flink, blink = head, hblink
        if off <= self.chunk_last:
            self.chunk.pack_into(page, off, ulong1, tag, fill, flink, blink)
        else:                                      # a header at the page's end: links beyond
            self._whdr(page, e, ulong1, tag)
            self._write(entry, self.pair.pack(flink, blink))
        if alone:
            self.pair.pack_into(hpage, hoff, entry, entry)
            desc.bitmap |= (1 << bs) >> 1
            return
        if npage is not None:
            ptr.pack_into(npage, noff, entry)
        else:
            self._wptr(at, entry)
        ptr.pack_into(hpage, hoff if at_head else hoff + P, entry)
        desc.bitmap |= (1 << bs) >> 1

    # ======================================================================================
    # allocation
    # ======================================================================================
    def allocate(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0,
                 stack: tuple[int, ...] = (), process: int = 0) -> int:
        """ExAllocatePoolWithTag: the block's address, or 0 when the pool is exhausted."""
        sessions = self.sessions if pool_type & SESSION_PAGED == SESSION_PAGED else None
        if pool_type & QUOTA and self.P == 4 and sessions is None:
            pool_type, nbytes = self._quota_request(pool_type, nbytes, process)
        try:
            if sessions is not None:        # the session's own allocator; the same hit check
                address = sessions.allocate(pool_type, nbytes, tag, cpu, stack, process)
            elif self.hook is not None:
                address = self.hook.allocate(pool_type, nbytes, tag, cpu, stack, process)
            else:
                address = self.allocate_normal(pool_type, nbytes, tag, cpu, process)
        except BugCheck as bc:
            raise raised_in(self._placed(bc, pool_type & PAGED, "ExAllocatePoolWithTag"),
                            "ExAllocatePoolWithTag", stack) from None
        except MemoryFault as fault:        # the verifier's bookkeeping on a page now gone
            stop = self._placed(self._fault(fault.address, fault.write), pool_type & PAGED,
                                "ExAllocatePoolWithTag")
            raise raised_in(stop, "ExAllocatePoolWithTag", stack) from None
        if self.tracker.hit is not None and self.hit_site is None:
            self.hit_site = ("ExAllocatePoolWithTag", cpu, stack)
        return address

    def allocate_normal(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0,
                        process: int = 0) -> int:
        if nbytes > self.max_small:
            return self._allocate_big(pool_type, nbytes, tag)
        paged = pool_type & PAGED
        shift = self.shift
        need = ((nbytes if nbytes > 1 else 1) + (self.G << 1) - 1) >> shift
        ptype = (pool_type & TYPE_BITS) | IN_USE
        if need <= POOL_SMALL_LISTS and not pool_type & MM_ALLOCATION:
            e = self._lookaside_pop(cpu, paged, need, ptype, tag)
            if e:
                self.tracker.update(tag, need << shift, paged, 1)
                return self._finish(e, need, pool_type, process) if process else e + self.G
        if paged:
            if pool_type & MM_ALLOCATION:         # prototype pool: paged descriptor 0
                desc = self.paged_desc[0]
            else:
                self.rr = self.rr % self.settings.paged_pools + 1
                desc = self.paged_desc[self.rr]
        else:
            desc = self.descriptors[0]
        e = self._from_lists(desc, need, ptype, tag) or self._new_page(desc, need, ptype, tag)
        if not e:
            if not self._read_pending_depth(desc):
                return self._failure()
            self.flush_pending(desc)
            e = self._from_lists(desc, need, ptype, tag) or self._new_page(desc, need, ptype, tag)
            if not e:
                return self._failure()
        a = desc.allocs
        page = self.pages[a >> 12]
        off = a & PAGE_MASK
        allocs, between, total = self.d_alloc.unpack_from(page, off)
        self.d_alloc.pack_into(page, off, (allocs + 1) & 0xFFFFFFFF, between,
                               (total + (need << shift)) & self.pmask)
        self.tracker.update(tag, need << shift, paged, 1)
        return self._finish(e, need, pool_type, process) if process else e + self.G

    def _quota_request(self, pool_type: int, nbytes: int, process: int) -> tuple[int, int]:
        """x86 ExAllocatePoolWithQuotaTag: room for the billed EPROCESS in the block's last
        ULONG (the request grows by a pointer, so the tracker counts the grown block), or no
        quota at all when the request would not fit a page with it or no process is charged
        (System's requests; internals.md 14)."""
        if process and nbytes <= PAGE_SIZE - self.G - 4:
            return pool_type, nbytes + 4
        return pool_type & ~QUOTA, nbytes

    def _finish(self, e: int, bs: int, pool_type: int, process: int) -> int:
        """The billed process: charged the block's bytes (PsChargeProcessPoolQuota; the model
        sets no limit, so the charge always succeeds) and its pointer stored, x64 in the
        header's ProcessBilled, x86 in the block's last ULONG."""
        if pool_type & QUOTA and process:
            self._charge_quota(process, pool_type & PAGED, bs << self.shift)
            if self.P == 8:
                self._wptr(e + 8, process)
            else:
                self._wptr(e + (bs << self.shift) - 4, process)
        return e + self.G

    def _charge_quota(self, process: int, paged: int, nbytes: int) -> None:
        """EPROCESS.ProcessQuotaUsage[PsNonPagedPool 0 / PsPagedPool 1] += nbytes (negative:
        PsReturnPoolQuota), and its peak."""
        usage = process + self._quota_usage + paged * self.P
        value = (self._rptr(usage) + nbytes) & self.pmask
        self._wptr(usage, value)
        peak = process + self._quota_peak + paged * self.P
        if nbytes > 0 and value > self._rptr(peak):
            self._wptr(peak, value)

    def _return_quota(self, e: int, bs: int, address: int, tag: int, paged: int) -> None:
        """The free of a quota block returns its bytes to the billed process (x64 header,
        x86 last ULONG).  Windows 7 keeps that pointer unencoded and only checks that it
        points at a process object: anything else stops the machine with BAD_POOL_CALLER 0xD
        (the block, its tag, the pointer; internals.md 14) -- the quota process pointer
        overwrite of the pool exploitation literature."""
        nbytes = bs << self.shift
        process = self._rptr(e + 8 if self.P == 8 else e + nbytes - 4)
        if not process:
            return                                  # x64: nobody was billed
        if self._page(process)[process & PAGE_MASK] != PROCESS_OBJECT:
            raise BugCheck(BAD_POOL_CALLER, 0xD, address, tag, process)
        self._charge_quota(process, paged, -nbytes)

    def _failure(self) -> int:
        self._add32(self.mm.addr["ExPoolFailures"], 1)
        return 0

    def _from_lists(self, desc: Descriptor, need: int, ptype: int, tag: int) -> int:
        """Take the first free chunk from ListHeads[need-1] upward (RemoveHeadList, checked)
        and split it if larger: from the front when it starts the page, else from its back
        (internals.md 7).  Writes the allocated header, tag and the stale Flink."""
        start = need - 1 if self.settings.scan_exact_list else need
        P, G, ptr, pages = self.P, self.G, self.ptr, self.pages
        while True:
            candidates = desc.bitmap >> start
            if not candidates:
                return 0
            k = start + ((candidates & -candidates).bit_length() - 1)
            head = desc.lists + k * 2 * P
            hpage = pages[head >> 12]
            hoff = head & PAGE_MASK
            entry, hblink = self.pair.unpack_from(hpage, hoff)
            if entry != head:
                break
            desc.bitmap &= ~(1 << k)
        epage = pages.get(entry >> 12)
        if epage is None:
            raise self._fault(entry)
        off = (entry & PAGE_MASK) - G
        if off in self.chunk_offsets:              # header and links in one read
            page: bytearray | None = epage
            ulong1, ctag, fill, eflink, eblink = self.chunk.unpack_from(epage, off)
        else:                                      # a wild Flink: the header is read later
            page = None
            eflink, eblink = self._links(entry)
        fpage: bytearray | None
        if eflink == head:
            fpage, back = hpage, hblink
        else:                                      # Flink->Blink
            fpage = pages.get((eflink + P) >> 12)
            foff = (eflink + P) & PAGE_MASK
            if fpage is None or foff > self.ptr_last:      # across a page end, or wild
                fpage, back = None, self._peek_ptr(eflink + P)
            else:
                back = ptr.unpack_from(fpage, foff)[0]
        if eblink != head or back != entry:
            raise BugCheck(BAD_POOL_HEADER, 3, entry, back or 0, self._peek_ptr(eblink) or 0)
        if eflink == head:
            self.pair.pack_into(hpage, hoff, head, head)
            desc.bitmap &= ~(1 << k)
        else:
            ptr.pack_into(hpage, hoff, eflink)
            if fpage is not None:
                ptr.pack_into(fpage, foff, head)
            else:
                self._wptr(eflink + P, head)
        e = entry - G
        if page is None:
            return self._carve_any(desc, e, need, ptype, tag)
        c = self.codec
        shift, prev_hi = self.shift, self.prev_hi
        sm = c.size_mask
        prev = ulong1 & sm
        bs = (ulong1 >> 16) & sm
        index = desc.index << c.idx_shift
        if bs != need:
            fbs = bs - need
            noff = off + (bs << shift)                         # where the chunk ends
            if fbs < 0 or noff > PAGE_SIZE:                    # a corrupted BlockSize
                return self._carve_any(desc, e, need, ptype, tag)
            if prev == 0:                                      # chunk starts the page: front
                frag = e + (need << shift)
                foff = off + (need << shift)
                # the new header lands inside old data: its tag field keeps whatever was there
                _, ftag, ffill = self.head.unpack_from(page, foff)
                fulong1 = need | index | fbs << 16
                if noff < PAGE_SIZE:                           # its PreviousSize
                    page[noff] = fbs & 0xFF
                    if prev_hi:
                        page[noff + 1] = page[noff + 1] & ~prev_hi | fbs >> 8
            else:                                              # otherwise: back of the chunk
                frag, ftag, ffill = e, ctag, fill
                fulong1 = prev | index | fbs << 16
                off += fbs << shift
                e += fbs << shift
                if noff < PAGE_SIZE:
                    page[noff] = need & 0xFF
                    if prev_hi:
                        page[noff + 1] = page[noff + 1] & ~prev_hi | need >> 8
                prev = fbs
            self._link(desc, page, frag, fulong1, ftag, ffill, fbs, False)
        # the header written whole: a quota block's ProcessBilled comes after (`_finish`), a
        # block without quota carries none; then the stale Flink
        self.chunk_next.pack_into(page, off, prev | index | need << 16 | ptype << c.type_shift,
                                  tag, self.zero_fill, 0)
        return e

    def rescan_lists(self) -> None:
        """Rebuild each descriptor's bitmap from its ListHeads in memory, so that a list head
        written from outside the allocator (the debugger's `ed`) is scanned as Windows scans
        the lists: a head that does not point at itself holds chunks."""
        size = 2 * self.P
        for desc in (*self.descriptors, *self.paged_desc):
            raw = self.memory.read(desc.lists, self.nlists * size)
            desc.bitmap = sum(1 << k for k, (flink, _) in enumerate(self.pair.iter_unpack(raw))
                              if flink != desc.lists + k * size)
        if self.sessions is not None:
            self.sessions.rescan_lists()

    def _carve_any(self, desc: Descriptor, e: int, need: int, ptype: int, tag: int) -> int:
        """`_from_lists` for a chunk whose header is not where a chunk's can be (a wild Flink)
        or whose BlockSize does not fit its page or the request (a corrupted header): the same
        steps in the kernel's order, trusting the header as Windows 7 does, with its bit-field
        arithmetic (the remainder's size is taken modulo the field), each access reaching
        whatever memory the sizes point at (a missing page faults at the first one)."""
        G, shift, c, u32 = self.G, self.shift, self.codec, self.u32
        sm = c.size_mask
        ulong1 = self._rhdr(e)[0]
        prev = ulong1 & sm
        bs = (ulong1 >> 16) & sm
        index = desc.index << c.idx_shift
        if bs != need:
            fbs = (bs - need) & sm
            if prev == 0:                                      # front: the remainder after
                frag = e + (need << shift)
                fulong1 = need | index | fbs << 16
                self._read(frag, 4)                            # its bit fields, set in place
                self._write(frag, u32.pack(fulong1))
                after, size = frag + (fbs << shift), fbs
            else:                                              # back: the allocation after
                frag = e
                fulong1 = prev | index | fbs << 16
                self._write(frag, u32.pack(fulong1))
                e += fbs << shift
                self._set_prev(e, fbs)
                after, size, prev = e + (need << shift), need, fbs
            if after & PAGE_MASK:                              # not the page end
                self._set_prev(after, size)
            fpage, foff = self._page(frag, True), frag & PAGE_MASK
            if foff <= self.chunk_last:                        # the rest of its header, kept
                _, ftag, ffill = self.head.unpack_from(fpage, foff)
            else:                                              # (not written: links apart)
                ftag, ffill = self._rhdr(frag)[1], self.zero_fill
            self._link(desc, fpage, frag, fulong1, ftag, ffill, fbs, False)
        self._write(e, self.head.pack(prev | index | need << 16 | ptype << c.type_shift, tag,
                                      self.zero_fill))
        self._wptr(e + G, 0)                                   # the stale Flink
        return e

    def _new_page(self, desc: Descriptor, need: int, ptype: int, tag: int) -> int:
        """A fresh page: the allocation at its front (with its stale Flink), the rest a free
        chunk at the tail of its list."""
        va = self.mm.allocate_pool_pages(desc.paged, 1)
        if not va:
            return 0
        self._add32(desc.addr + self.o_total_pages, 1)
        page = self.pages[va >> 12]
        c = self.codec
        index = desc.index << c.idx_shift
        self.chunk_next.pack_into(page, 0, index | need << 16 | ptype << c.type_shift, tag,
                                  self.zero_fill, 0)
        frag_bs = (PAGE_SIZE >> self.shift) - need
        if frag_bs:
            self._link(desc, page, va + (need << self.shift), need | index | frag_bs << 16, 0,
                       self.zero_fill, frag_bs, False)
        return va

    def _allocate_big(self, pool_type: int, nbytes: int, tag: int) -> int:
        paged = bool(pool_type & PAGED)
        pages = -(-nbytes // PAGE_SIZE)
        desc = self.paged_desc[0] if paged else self.descriptors[0]
        va = self.mm.allocate_pool_pages(paged, pages)
        if not va and self._read_pending_depth(desc):
            self.flush_pending(desc)
            va = self.mm.allocate_pool_pages(paged, pages)
        if not va:
            return self._failure()
        a = desc.allocs
        dpage = self.pages[a >> 12]
        doff = a & PAGE_MASK
        allocs, gap1, big, gap2, total = self.d_big_alloc.unpack_from(dpage, doff)
        self.d_big_alloc.pack_into(dpage, doff, (allocs + 1) & 0xFFFFFFFF, gap1,
                                   (big + pages) & 0xFFFFFFFF, gap2,
                                   (total + pages * PAGE_SIZE) & self.pmask)
        big, entries = self.big, self.big.entries
        if not big.insert(va, tag, pool_type & TYPE_BITS, nbytes):
            tag = tag_to_ulong("BIG ")
        if big.entries != entries:       # the table grew: the new one is charged, the old freed
            self.tracker.update(tag_to_ulong("Pool"), entries * big.esize, 0, -1)
            self.tracker.update(tag_to_ulong("Pool"), big.entries * big.esize, 0, 1)
        self.tracker.update(tag, pages * PAGE_SIZE, paged, 1)
        return va

    # ======================================================================================
    # lookaside lists (SLISTs in memory)
    # ======================================================================================
    def _lookaside_pop(self, cpu: int, paged: int, bs: int, ptype: int, tag: int) -> int:
        """Pop a chunk from the CPU's lookaside for bs, else the shared one, and write its
        allocated header and tag (the SLIST Next it held becomes the stale Flink, zeroed)."""
        pages, head, G, next_first = self.pages, self.la_head, self.G, self.la_next_first
        for la in self.la[cpu][paged][bs - 1]:
            page = pages[la >> 12]
            off = la & PAGE_MASK
            # (a, b, c): (Next, ListDepth, Sequence) or (ListDepth, Sequence, Next)
            a, b, c, depth, maximum, allocs, hits, frees, fhits = head.unpack_from(page, off)
            allocs = (allocs + 1) & 0xFFFFFFFF
            top = a if next_first else c
            if top:
                tpage = pages.get(top >> 12)
                if tpage is None:
                    raise self._fault(top)
                boff = (top & PAGE_MASK) - G
                if 0 <= boff <= self.chunk_next_last:      # header and Next in one read
                    ulong1, _, fill, nxt = self.chunk_next.unpack_from(tpage, boff)
                else:                                      # a wild Next: across a page end
                    boff = -1
                    nxt = self._rptr(top)
                hits = (hits + 1) & 0xFFFFFFFF
                if next_first:
                    head.pack_into(page, off, nxt, (b - 1) & 0xFFFF, c, depth, maximum, allocs,
                                   hits, frees, fhits)
                else:
                    head.pack_into(page, off, (a - 1) & 0xFFFF, b, nxt, depth, maximum, allocs,
                                   hits, frees, fhits)
                codec = self.codec
                if boff >= 0:
                    self.chunk_next.pack_into(tpage, boff, (ulong1 & codec.keep_type)
                                              | ptype << codec.type_shift, tag, self.zero_fill, 0)
                else:
                    ulong1 = self._rhdr(top - G)[0]
                    self._write(top - G, self.head.pack((ulong1 & codec.keep_type)
                                                        | ptype << codec.type_shift, tag,
                                                        self.zero_fill))
                    self._wptr(top, 0)
                return top - G
            self.u32.pack_into(page, off + self.o_la_total_alloc, allocs)     # a miss
        return 0

    def _lookaside_push(self, cpu: int, paged: int, bs: int, data: int,
                        page: bytearray) -> bool:
        """Push the chunk whose data starts at `data` (on `page`) onto the CPU's lookaside for
        bs, else the shared one, unless both are at their depth."""
        pages, head, next_first = self.pages, self.la_head, self.la_next_first
        for la in self.la[cpu][paged][bs - 1]:
            lpage = pages[la >> 12]
            off = la & PAGE_MASK
            a, b, c, depth, maximum, allocs, hits, frees, fhits = head.unpack_from(lpage, off)
            frees = (frees + 1) & 0xFFFFFFFF
            if (b if next_first else a) < depth:              # ListDepth < Depth
                fhits = (fhits + 1) & 0xFFFFFFFF
                if next_first:
                    try:
                        self.ptr.pack_into(page, data & PAGE_MASK, a)
                    except struct.error:            # P is not a block's address
                        self._wptr(data, a)
                    head.pack_into(lpage, off, data, (b + 1) & 0xFFFF, c, depth, maximum,
                                   allocs, hits, frees, fhits)
                else:
                    try:
                        self.ptr.pack_into(page, data & PAGE_MASK, c)
                    except struct.error:            # P is not a block's address
                        self._wptr(data, c)
                    head.pack_into(lpage, off, (a + 1) & 0xFFFF, b, data, depth, maximum,
                                   allocs, hits, frees, fhits)
                return True
            self.u32.pack_into(lpage, off + self.o_la_total_free, frees)      # full
        return False

    def adjust_lookaside_depth(self) -> None:
        """ExAdjustLookasideDepth for every pool lookaside (the balance-set manager's tick)."""
        if not self.settings.lookasides:
            return
        scan_period = 3 * self.processors
        lists = {a for cpu in self.la for paged in cpu for pair in paged for a in pair}
        for la in sorted(lists):
            total = self._r32(la + self.o_la_total_alloc)
            hits = self._r32(la + self.o_la_alloc_hits)
            allocates = (total - self._r32(la + self.o_la_last_total)) & 0xFFFFFFFF
            misses = allocates - ((hits - self._r32(la + self.o_la_last_hits)) & 0xFFFFFFFF)
            self._w32(la + self.o_la_last_total, total)
            self._w32(la + self.o_la_last_hits, hits)
            depth = self._r16(la + self.o_la_depth)
            maximum = self._r16(la + self.o_la_maxdepth)
            if allocates < 25 * scan_period:
                depth = max(LOOKASIDE_MIN_DEPTH, depth - 10)
            else:
                ratio = misses * 1000 // allocates
                if ratio < 5:
                    depth = max(LOOKASIDE_MIN_DEPTH, depth - 1)
                else:
                    depth = min(maximum, depth + min(30, ratio * (maximum - depth) // 2000 + 5))
            self._w16(la + self.o_la_depth, depth)
        if self.sessions is not None:
            self.sessions.adjust_lookaside_depth()

    def disable_lookasides(self) -> None:
        """Driver Verifier sets every lookaside depth to 0 (ExMinimumLookasideDepth = 0)."""
        self.settings.lookasides = False
        for cpu in self.la:
            for paged in cpu:
                for pair in paged:
                    for la in pair:
                        self._w16(la + self.o_la_depth, 0)
        if self.sessions is not None:
            self.sessions.disable_lookasides()

    # ======================================================================================
    # free
    # ======================================================================================
    def free(self, address: int, tag: int = 0, cpu: int = 0, stack: tuple[int, ...] = ()) -> None:
        """ExFreePoolWithTag; raises BugCheck where the real kernel would stop."""
        try:
            if self.hook is not None:
                self.hook.free(address, tag, cpu, stack)
            else:
                self.free_normal(address, tag, cpu)
        except BugCheck as bc:
            raise raised_in(self._placed(bc, self._in_paged(address), "ExFreePoolWithTag"),
                            "ExFreePoolWithTag", stack) from None
        except MemoryFault as fault:        # the verifier's bookkeeping on a page now gone
            stop = self._placed(self._fault(fault.address, fault.write),
                                self._in_paged(address), "ExFreePoolWithTag")
            raise raised_in(stop, "ExFreePoolWithTag", stack) from None
        if self.tracker.hit is not None and self.hit_site is None:
            self.hit_site = ("ExFreePoolWithTag", cpu, stack)

    def _in_paged(self, address: int) -> bool:
        lo, hi = self.p_range
        a = address & self.pmask
        return lo <= a < hi or self.sessions is not None and self.sessions.owns(a)

    def take_hit(self) -> tuple[int, int, str, int, tuple[int, ...]] | None:
        """The PoolHitTag hit the last operation made, as (tag, sign, routine, cpu, caller
        stack), clearing it; None if there was none."""
        if self.tracker.hit is None:
            return None
        (key, sign), (routine, cpu, stack) = self.tracker.hit, self.hit_site or ("", 0, ())
        self.tracker.hit = self.hit_site = None
        return key, sign, routine, cpu, stack

    def block_info(self, address: int) -> tuple[int, int, bool]:
        """(tag, charged bytes, paged) of a live block, read from memory (for the verifier)."""
        if not address & PAGE_MASK:
            entry = self.big.find(address)
            pages = self.mm.paged.run_pages(address) or self.mm.nonpaged.run_pages(address)
            return (entry[0] if entry else tag_to_ulong("BIG "), pages * PAGE_SIZE,
                    self.mm.paged.contains(address))
        _, _, bs, ptype, ptag = self.header(address - self.G)
        return ptag, bs << self.shift, bool(ptype & PAGED)

    def free_normal(self, address: int, tag: int = 0, cpu: int = 0) -> None:
        P = address & self.pmask
        lo, hi = self.p_range
        in_paged = lo <= P < hi
        if not in_paged:
            lo, hi = self.np_range
            if not lo <= P < hi:
                if self.sessions is not None and self.sessions.owns(P):
                    return self.sessions.free(P, tag, cpu)        # session pool's own free
                raise BugCheck(BAD_POOL_CALLER, 0x42, P, 0, 0)
        if not P & PAGE_MASK:
            return self._free_big(P, in_paged, tag)
        e = P - self.G
        page = self.pages.get(e >> 12)
        if page is None:
            raise BugCheck(BAD_POOL_CALLER, 0x50 if in_paged else 0x41, P, 0, 0)
        off = e & PAGE_MASK
        c = self.codec
        sm = c.size_mask
        shift = self.shift
        # Reads that do not fit the page (P is not a block's address) go across its end.
        try:
            ulong1, ptag = self.hdr.unpack_from(page, off)
        except struct.error:
            ulong1, ptag = self._rhdr(e)
        prev = ulong1 & sm
        bs = (ulong1 >> 16) & sm
        ptype = (ulong1 >> c.type_shift) & c.field_mask
        if not ptype & IN_USE:
            raise BugCheck(BAD_POOL_CALLER, 7, DOUBLE_FREE_LINE, ulong1, P)
        noff = off + (bs << shift)
        if bs == 0 or noff > PAGE_SIZE:
            raise BugCheck(BAD_POOL_HEADER, 0x20, e, e + (bs << shift), ulong1)
        if noff < PAGE_SIZE:
            try:
                nprev = (page[noff] | page[noff + 1] << 8) & sm
            except IndexError:
                nprev = self._prev_size(e + (bs << shift))
            if nprev != bs:
                raise BugCheck(BAD_POOL_HEADER, 0x20, e, e + (bs << shift), ulong1)
        if prev:
            poff = off - (prev << shift)
            if poff < 0:
                raise BugCheck(BAD_POOL_HEADER, 6, e - (prev << shift), 0x4D2, e)
            if (page[poff + 2] | page[poff + 3] << 8) & sm != prev:     # its BlockSize
                raise BugCheck(BAD_POOL_HEADER, 5, e - (prev << shift), 0x4D2, e)
        elif off:
            raise BugCheck(BAD_POOL_HEADER, 7, 0, 0x4D2, e)
        index = (ulong1 >> c.idx_shift) & c.field_mask
        if tag and ptag & PROTECTED_POOL and (tag | PROTECTED_POOL) != ptag:
            raise BugCheck(BAD_POOL_CALLER, 0xA, P, ptag, tag)
        paged = ptype & PAGED
        if paged and index >= len(self.paged_desc):
            # Windows 7 does not bounds-check PoolIndex: it follows a wild descriptor pointer.
            raise self._fault(self.paged_desc[0].addr + index * self.layouts.descriptor.sizeof())
        self.tracker.update(ptag, bs << shift, paged, -1)
        if ptype & QUOTA:
            self._return_quota(e, bs, P, ptag, paged)
        # the header checks above put the data (P) on the header's page
        if bs <= POOL_SMALL_LISTS and not (paged and index == self.prototype_index):
            if self._lookaside_push(cpu, paged, bs, P, page):
                return
        desc = self.paged_desc[index] if paged else self.descriptors[0]
        if self.settings.deferred_frees:
            a = desc.pending
            dpage = self.pages[a >> 12]
            doff = a & PAGE_MASK
            pending, between, depth = self.d_pending.unpack_from(dpage, doff)
            if depth >= PENDING_FREE_LIMIT:
                self.flush_pending(desc)
                pending, between, depth = self.d_pending.unpack_from(dpage, doff)
                page = self._page(P)               # the flush may have released its page
            try:
                self.ptr.pack_into(page, P & PAGE_MASK, pending)
            except struct.error:                   # P is not a block's address
                self._wptr(P, pending)
            self.d_pending.pack_into(dpage, doff, P, between, (depth + 1) & 0xFFFFFFFF)
            return
        self._release(desc, e)

    def _read_pending_depth(self, desc: Descriptor) -> int:
        return self._r32(desc.addr + self.o_pending_depth)

    def flush_pending(self, desc: Descriptor | None = None) -> None:
        """ExDeferredFreePool: release the pending chain, newest first.  A chain that comes
        back to a chunk it released (a block pushed twice, or a corrupted link) is a double
        free (BAD_POOL_CALLER 7), where Windows would go round for ever: chains longer than
        the pool ever lets grow are watched for it."""
        pages, pending = self.pages, self.d_pending
        for d in [desc] if desc else [self.descriptors[0], *self.paged_desc]:
            dpage = pages[d.pending >> 12]
            doff = d.pending & PAGE_MASK
            chain, between, _ = pending.unpack_from(dpage, doff)
            pending.pack_into(dpage, doff, 0, between, 0)
            for _ in range(PENDING_FREE_LIMIT):
                if not chain:
                    break
                chain = self._release(d, chain - self.G)
            seen: set[int] = set()
            while chain:                   # longer than the pool lets it grow: watch it
                if chain in seen:
                    raise BugCheck(BAD_POOL_CALLER, 7, DOUBLE_FREE_LINE,
                                   self._rhdr(chain - self.G)[0], chain)
                seen.add(chain)
                chain = self._release(d, chain - self.G)

    def _release(self, desc: Descriptor, e: int) -> int:
        """Return a chunk to ListHeads: coalesce with free neighbours, release empty pages.
        Returns the pointer the chunk's data started with (the pending chain's Next).  Sizes
        add up as the BlockSize bit field does (modulo its width: a whole page is 0); a chunk
        that is already free (from a corrupted pending chain) is a double free."""
        shift, G, pages = self.shift, self.G, self.pages
        page = pages.get(e >> 12)
        if page is None:
            raise self._fault(e)
        off = e & PAGE_MASK
        if off <= self.chunk_last:
            ulong1, tag, fill, nxt_pending, _ = self.chunk.unpack_from(page, off)
        else:                                 # the header at the page's end: its data beyond
            (ulong1, tag), fill = self._rhdr(e), self.zero_fill      # (fill not written)
            nxt_pending = self._rptr(e + G)
        c = self.codec
        sm, fm, tshift = c.size_mask, c.field_mask, c.type_shift
        if not ulong1 & self.in_use:
            raise BugCheck(BAD_POOL_CALLER, 7, DOUBLE_FREE_LINE, ulong1, e + G)
        prev = ulong1 & sm
        bs = (ulong1 >> 16) & sm
        a = desc.deallocs
        dpage = pages[a >> 12]
        doff = a & PAGE_MASK
        frees, between, total = self.d_free.unpack_from(dpage, doff)
        self.d_free.pack_into(dpage, doff, (frees + 1) & 0xFFFFFFFF, between,
                              (total - (bs << shift)) & self.pmask)
        combined = False
        nxt = e + (bs << shift)
        noff = nxt & PAGE_MASK
        if noff:
            npage = page if noff >= off else self._page(nxt)
            if noff <= self.chunk_last:
                n1, _, _, nfl, nbl = self.chunk.unpack_from(npage, noff)
            else:
                n1, nfl, nbl = self.u32.unpack(self._read(nxt, 4))[0], -1, -1
            if not (n1 >> tshift) & fm:                       # a free neighbour: coalesce
                nbs = (n1 >> 16) & sm
                if nbs != 1:
                    if nfl < 0:
                        nfl, nbl = self._links(nxt + G)
                    self._unlink(desc, nxt + G, nfl, nbl, nbs)
                bs += nbs
                combined = True
        if prev:
            prv = e - (prev << shift)
            poff = prv & PAGE_MASK
            ppage = page if poff <= off else self._page(prv)
            if poff <= self.chunk_last:
                p1, ptag, pfill, pfl, pbl = self.chunk.unpack_from(ppage, poff)
            else:
                (p1, ptag), pfill, pfl, pbl = self._rhdr(prv), self.zero_fill, -1, -1
            if not (p1 >> tshift) & fm:
                pbs = (p1 >> 16) & sm
                if pbs != 1:
                    if pfl < 0:
                        pfl, pbl = self._links(prv + G)
                    self._unlink(desc, prv + G, pfl, pbl, pbs)
                bs += pbs
                e, off, page, prev, tag, fill = prv, poff, ppage, p1 & sm, ptag, pfill
                combined = True
        bs &= sm
        if not off and not bs:                             # the whole page is free
            self._add32(desc.addr + self.o_total_pages, -1)
            self._free_pages(e, desc.paged)
            return nxt_pending
        ulong1 = prev | desc.index << c.idx_shift | bs << 16
        end = off + (bs << shift)
        if combined and end & PAGE_MASK:
            if end < PAGE_MASK:                            # the next chunk's PreviousSize
                page[end] = bs & 0xFF
                if self.prev_hi:
                    page[end + 1] = page[end + 1] & ~self.prev_hi | bs >> 8
            else:                      # a corrupt size: past the page
                self._whdr(page, e, ulong1, tag)
                self._set_prev(e + (bs << shift), bs)
        self._link(desc, page, e, ulong1, tag, fill, bs, True)
        return nxt_pending

    def _own_runs(self) -> tuple[int, ...]:
        """Where the allocator's own tables start: the paged descriptors, the lookaside lists
        and processor blocks, the tag tracker, the big-page table."""
        return self.paged_run, self.lookaside_base, self.tracker.table, self.big.table

    def _free_pages(self, va: int, paged: bool) -> None:
        """MiFreePoolPages: a VA that starts no allocation of its pool is a bad caller
        (BAD_POOL_CALLER 0x41 nonpaged, 0x50 paged).  One that starts the allocator's own
        tables (a corrupted free reached them) is released too, and the pool's next use of
        the table would fault: the simulator stops there at once (assumed: its cached views
        of those pages cannot outlive them), with the fault that use takes."""
        if va in self._own_runs():
            raise self._fault(va, True)
        if not self.mm.free_pool_pages(va):
            raise BugCheck(BAD_POOL_CALLER, 0x50 if paged else 0x41, va, 0, 0)

    def _free_big(self, va: int, paged: bool, tag: int) -> None:
        found = self.big.remove(va)
        pages = (self.mm.paged if paged else self.mm.nonpaged).run_pages(va)
        if not pages:
            raise BugCheck(BAD_POOL_CALLER, 0x50 if paged else 0x41, va, 0, 0)
        key = found[0] if found else tag_to_ulong("BIG ")
        if tag and key & PROTECTED_POOL and (tag | PROTECTED_POOL) != key:
            raise BugCheck(BAD_POOL_CALLER, 0xA, va, key, tag)
        desc = self.paged_desc[0] if paged else self.descriptors[0]
        self.tracker.update(key, pages * PAGE_SIZE, paged, -1)
        a = desc.deallocs
        dpage = self.pages[a >> 12]
        doff = a & PAGE_MASK
        frees, gap1, big, gap2, total = self.d_big_free.unpack_from(dpage, doff)
        self.d_big_free.pack_into(dpage, doff, (frees + 1) & 0xFFFFFFFF, gap1,
                                  (big - pages) & 0xFFFFFFFF, gap2,
                                  (total - pages * PAGE_SIZE) & self.pmask)
        self._free_pages(va, paged)
