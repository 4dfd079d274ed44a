"""The executive pool allocator (ExAllocatePoolWithTag / ExFreePoolWithTag), Windows 7 model.

All allocator state lives in simulated memory, where Windows keeps it: `_POOL_HEADER`s inside
pool pages, free chunks linked through their LIST_ENTRY into the descriptors' ListHeads,
lookaside SLISTs in GENERAL_LOOKASIDE_POOL structures, the pending-free chain, the tag tracker
and the big-page table.  Each operation reads what it needs back from memory, so a corrupted
header or link changes what the allocator does and is caught by the same checks the real
kernel makes (internals.md sections 5-10; section 20 is the model).  The only Python-side
state is derivable acceleration: a per-descriptor bitmap of ListHeads that may be non-empty
and the tracker's tag-to-slot cache, both re-verified against memory on every use.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .arch import Arch
from .bigpages import BigPageTable
from .bugcheck import BAD_POOL_CALLER, BAD_POOL_HEADER, BugCheck
from .layouts import (
    IN_USE, NONPAGED, PAGE_MASK, PAGE_SIZE, PAGED, POOL_SMALL_LISTS, PROTECTED_POOL, QUOTA,
    TYPE_BITS, field_run, profile_for, tag_to_ulong,
)
from .memory import AddressSpace
from .mm import MemoryManager
from .ntdata import KernelGlobals
from .stop import raised_in
from .tracker import TagTracker

if TYPE_CHECKING:  # pragma: no cover
    from .verifier import Verifier

LOOKASIDE_MAX_DEPTH = 256
LOOKASIDE_START_DEPTH = 2
LOOKASIDE_MIN_DEPTH = 4
PENDING_FREE_LIMIT = 32        # EXP_MAXIMUM_POOL_FREES_PENDING


@dataclass
class PoolSettings:
    """Switches where sources disagree (DESIGN.md: make the alternative a setting)."""

    scan_exact_list: bool = True       # Win7 starts the ListHeads scan at BlockSize-1
    deferred_frees: bool = True        # enabled on machines with >= 508 MB and no verifier
    lookasides: bool = True
    paged_pools: int = 4               # 4 on MP (PagedPool 1..4), 2 on UP


class Descriptor:
    """A _POOL_DESCRIPTOR in memory plus the non-empty-list bitmap that accelerates scans."""

    __slots__ = ("addr", "index", "paged", "lists", "bitmap")

    def __init__(self, addr: int, index: int, paged: bool, lists_off: int):
        self.addr = addr
        self.index = index
        self.paged = paged
        self.lists = addr + lists_off
        self.bitmap = 0


class PoolManager:
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
        self.hit_site: tuple[str, int, tuple[int, ...]] | None = None   # where PoolHitTag hit
        L = self.layouts = profile_for(arch)
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
        self.o_running_allocs = d("descriptor", "RunningAllocs")
        self.o_running_deallocs = d("descriptor", "RunningDeAllocs")
        self.o_total_pages = d("descriptor", "TotalPages")
        self.o_total_big = d("descriptor", "TotalBigPages")
        self.o_total_bytes = d("descriptor", "TotalBytes")
        self.o_pending = d("descriptor", "PendingFrees")
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
        # structure in both layouts); la_idx / la_idx_free index the unpacked fields.
        self.la_head, idx = field_run(L.lookaside, (
            "Next", "ListDepth", "Sequence", "Depth", "MaximumDepth", "TotalAllocates",
            "AllocateHits", "TotalFrees", "FreeHits"))
        self.la_idx = (idx["Next"], idx["ListDepth"], idx["TotalAllocates"], idx["AllocateHits"])
        self.la_idx_free = (idx["Depth"], idx["TotalFrees"], idx["FreeHits"])
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
        pd_base = self.mm.allocate_pool_pages(
            False, -(-(skew + stride * (npaged + 1)) // PAGE_SIZE)) + skew
        self.descriptors = [Descriptor(np_desc, 0, False, lists_off)]
        self.paged_desc = []
        for i in range(npaged + 1):
            addr = pd_base + i * stride
            g.write_ptr(paged_array + i * P, addr)
            self.paged_desc.append(Descriptor(addr, i, True, lists_off))
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

        block = g.var("KiProcessorBlock", P * 32)
        np_off = L.offset("kprcb", "PPNPagedLookasideList")
        p_off = L.offset("kprcb", "PPPagedLookasideList")
        shared = [[place(la_size) for _ in range(POOL_SMALL_LISTS)] for _paged in (0, 1)]
        prcbs = []
        for cpu in range(self.processors):
            prcbs.append(place(prcb_size))
            g.write_ptr(block + cpu * P, prcbs[cpu])
        self.la = []   # la[cpu][paged] -> list of (P addr, L addr) per block size index
        for cpu in range(self.processors):
            per_cpu = []
            for paged in (0, 1):
                lists = []
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
    def _page(self, addr: int) -> bytearray:
        page = self.pages.get(addr >> 12)
        if page is None:
            raise self._fault(addr)
        return page

    def _fault(self, addr: int) -> BugCheck:
        # The kernel touched memory it may not while holding the pool lock: Windows reports a
        # small-pool corruption this way (0xC5 for nonpaged; 0x50 when the lock is a mutex).
        return BugCheck(0xC5, addr & self.arch.ptr_mask, 2, 0, 0)

    def _r32(self, a: int) -> int:
        return self.u32.unpack_from(self._page(a), a & PAGE_MASK)[0]

    def _w32(self, a: int, v: int) -> None:
        self.u32.pack_into(self._page(a), a & PAGE_MASK, v & 0xFFFFFFFF)

    def _w16(self, a: int, v: int) -> None:
        self.u16.pack_into(self._page(a), a & PAGE_MASK, v & 0xFFFF)

    def _r16(self, a: int) -> int:
        return self.u16.unpack_from(self._page(a), a & PAGE_MASK)[0]

    def _rptr(self, a: int) -> int:
        return self.ptr.unpack_from(self._page(a), a & PAGE_MASK)[0]

    def _wptr(self, a: int, v: int) -> None:
        self.ptr.pack_into(self._page(a), a & PAGE_MASK, v & self.pmask)

    def _add32(self, a: int, delta: int) -> None:
        page = self.pages[a >> 12]
        off = a & PAGE_MASK
        self.u32.pack_into(page, off, (self.u32.unpack_from(page, off)[0] + delta) & 0xFFFFFFFF)

    def _addsz(self, a: int, delta: int) -> None:
        page = self.pages[a >> 12]
        off = a & PAGE_MASK
        self.ptr.pack_into(page, off,
                           (self.ptr.unpack_from(page, off)[0] + delta) & self.pmask)

    def header(self, e: int) -> tuple[int, int, int, int, int]:
        """(PreviousSize, PoolIndex, BlockSize, PoolType, PoolTag) of the chunk at e."""
        ulong1, tag = self.hdr.unpack_from(self._page(e), e & PAGE_MASK)
        return (*self.codec.unpack(ulong1), tag)

    def _set_header(self, e: int, prev: int, index: int, bs: int, ptype: int, tag: int) -> None:
        c = self.codec
        self.hdr.pack_into(self.pages[e >> 12], e & PAGE_MASK,
                           prev | index << c.idx_shift | bs << 16 | ptype << c.type_shift, tag)

    def _set_prev(self, e: int, prev: int) -> None:
        page = self._page(e)
        off = e & PAGE_MASK
        c = self.codec
        ulong1 = self.u32.unpack_from(page, off)[0]
        self.u32.pack_into(page, off, (ulong1 & ~c.size_mask) | prev)

    # ======================================================================================
    # ListHeads: circular doubly linked lists in memory, with Windows 7's safe unlinking
    # ======================================================================================
    def _links(self, entry: int) -> tuple[bytearray, int, int]:
        """(page, Flink, Blink) of a list entry; a wild pointer is a fault, as it would be."""
        page = self.pages.get(entry >> 12)
        if page is None:
            raise self._fault(entry)
        flink, blink = self.pair.unpack_from(page, entry & PAGE_MASK)
        return page, flink, blink

    def _read_back(self, ptr_addr: int) -> tuple[bytearray | None, int | None]:
        page = self.pages.get(ptr_addr >> 12)
        if page is None:
            return None, None
        return page, self.ptr.unpack_from(page, ptr_addr & PAGE_MASK)[0]

    def _unlink(self, entry: int) -> None:
        """RemoveEntryList with the Flink->Blink / Blink->Flink check (BAD_POOL_HEADER 3)."""
        _, flink, blink = self._links(entry)
        fpage, back = self._read_back(flink + self.P)
        bpage, fwd = self._read_back(blink)
        if back != entry or fwd != entry:
            raise BugCheck(BAD_POOL_HEADER, 3, entry, back or 0, fwd or 0)
        assert bpage is not None and fpage is not None     # the links were read from them
        self.ptr.pack_into(bpage, blink & PAGE_MASK, flink)
        self.ptr.pack_into(fpage, (flink + self.P) & PAGE_MASK, blink)

    def _insert(self, desc: Descriptor, e: int, bs: int, at_head: bool) -> None:
        """Insert a free chunk into ListHeads[bs-1]: freed chunks at the head, split
        remainders at the tail; the neighbour the head points at is checked first."""
        P, ptr, pages = self.P, self.ptr, self.pages
        head = desc.lists + (bs - 1) * 2 * P
        hpage = pages[head >> 12]
        hoff = head & PAGE_MASK
        hflink, hblink = self.pair.unpack_from(hpage, hoff)
        entry = e + self.G
        if at_head:
            npage = pages.get(hflink >> 12)
            back = ptr.unpack_from(npage, (hflink + P) & PAGE_MASK)[0] if npage else None
            if back != head:
                raise BugCheck(BAD_POOL_HEADER, 3, head, back or 0, hblink)
            assert npage is not None                       # `back` was read from it
            self.pair.pack_into(pages[entry >> 12], entry & PAGE_MASK, hflink, head)
            ptr.pack_into(npage, (hflink + P) & PAGE_MASK, entry)
            ptr.pack_into(hpage, hoff, entry)
        else:
            npage = pages.get(hblink >> 12)
            fwd = ptr.unpack_from(npage, hblink & PAGE_MASK)[0] if npage else None
            if fwd != head:
                raise BugCheck(BAD_POOL_HEADER, 3, head, hflink, fwd or 0)
            assert npage is not None                       # `fwd` was read from it
            self.pair.pack_into(pages[entry >> 12], entry & PAGE_MASK, head, hblink)
            ptr.pack_into(npage, hblink & PAGE_MASK, entry)
            ptr.pack_into(hpage, hoff + P, entry)
        desc.bitmap |= 1 << (bs - 1)

    def _pop(self, desc: Descriptor, k: int) -> int:
        """RemoveHeadList on ListHeads[k]; returns the chunk address or 0 if the list is empty."""
        P, ptr, pages = self.P, self.ptr, self.pages
        head = desc.lists + k * 2 * P
        hpage = pages[head >> 12]
        hoff = head & PAGE_MASK
        entry = ptr.unpack_from(hpage, hoff)[0]
        if entry == head:
            desc.bitmap &= ~(1 << k)
            return 0
        epage = pages.get(entry >> 12)
        if epage is None:
            raise self._fault(entry)
        eflink, eblink = self.pair.unpack_from(epage, entry & PAGE_MASK)
        fpage = pages.get(eflink >> 12)
        back = ptr.unpack_from(fpage, (eflink + P) & PAGE_MASK)[0] if fpage else None
        if eblink != head or back != entry:
            _, fwd = self._read_back(eblink)
            raise BugCheck(BAD_POOL_HEADER, 3, entry, back or 0, fwd or 0)
        assert fpage is not None                           # `back` was read from it
        ptr.pack_into(hpage, hoff, eflink)
        ptr.pack_into(fpage, (eflink + P) & PAGE_MASK, head)
        if eflink == head:
            desc.bitmap &= ~(1 << k)
        return entry - self.G

    # ======================================================================================
    # allocation
    # ======================================================================================
    def allocate(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0,
                 stack: tuple[int, ...] = (), process: int = 0) -> int:
        """ExAllocatePoolWithTag: the block's address, or 0 when the pool is exhausted."""
        try:
            if self.hook is not None:
                address = self.hook.allocate(pool_type, nbytes, tag, cpu, stack, process)
            else:
                address = self.allocate_normal(pool_type, nbytes, tag, cpu, process)
        except BugCheck as bc:
            raise raised_in(bc, "ExAllocatePoolWithTag", stack)
        if self.tracker.hit is not None and self.hit_site is None:
            self.hit_site = ("ExAllocatePoolWithTag", cpu, stack)
        return address

    def allocate_normal(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0,
                        process: int = 0) -> int:
        if nbytes > self.max_small:
            return self._allocate_big(pool_type, nbytes, tag)
        paged = pool_type & PAGED
        shift = self.shift
        need = (max(nbytes, 1) + (self.G << 1) - 1) >> shift
        ptype = (pool_type & TYPE_BITS) | IN_USE
        if need <= POOL_SMALL_LISTS:
            e = self._lookaside_pop(cpu, paged, need)
            if e:
                page = self.pages[e >> 12]
                off = e & PAGE_MASK
                c = self.codec
                ulong1 = self.u32.unpack_from(page, off)[0]
                self.hdr.pack_into(page, off, (ulong1 & c.keep_type) | ptype << c.type_shift, tag)
                self.tracker.update(tag, need << shift, paged, 1)
                self.ptr.pack_into(page, off + self.G, 0)
                return self._finish(e, need, pool_type, process) if process else e + self.G
        if paged:
            self.rr = self.rr % self.settings.paged_pools + 1
            desc = self.paged_desc[self.rr]
        else:
            desc = self.descriptors[0]
        e = self._from_lists(desc, need, ptype) or self._new_page(desc, need, ptype)
        if not e:
            if not self._read_pending_depth(desc):
                return self._failure()
            self.flush_pending(desc)
            e = self._from_lists(desc, need, ptype) or self._new_page(desc, need, ptype)
            if not e:
                return self._failure()
        self._add32(desc.addr + self.o_running_allocs, 1)
        self._addsz(desc.addr + self.o_total_bytes, need << shift)
        page = self.pages[e >> 12]
        off = e & PAGE_MASK
        self.u32.pack_into(page, off + 4, tag)
        self.tracker.update(tag, need << shift, paged, 1)
        self.ptr.pack_into(page, off + self.G, 0)                  # the stale Flink
        return self._finish(e, need, pool_type, process) if process else e + self.G

    def _finish(self, e: int, bs: int, pool_type: int, process: int) -> int:
        if pool_type & QUOTA and process:
            if self.P == 8:
                self._wptr(e + 8, process)
            else:
                self._wptr(e + (bs << self.shift) - 4, process)
        return e + self.G

    def _failure(self) -> int:
        self._add32(self.mm.addr["ExPoolFailures"], 1)
        return 0

    def _from_lists(self, desc: Descriptor, need: int, ptype: int) -> int:
        """Take the first free chunk from ListHeads[need-1] upward and split it if larger:
        from the front when it starts the page, else from its back (internals.md 7)."""
        start = need - 1 if self.settings.scan_exact_list else need
        while True:
            candidates = desc.bitmap >> start
            if not candidates:
                return 0
            k = start + ((candidates & -candidates).bit_length() - 1)
            e = self._pop(desc, k)
            if e:
                break
        c = self.codec
        shift, pages, u32, hdr = self.shift, self.pages, self.u32, self.hdr
        page = pages[e >> 12]
        off = e & PAGE_MASK
        ulong1, tag = hdr.unpack_from(page, off)
        prev = ulong1 & c.size_mask
        bs = (ulong1 >> 16) & c.size_mask
        index = desc.index << c.idx_shift
        tshift = c.type_shift
        if bs != need:
            fbs = bs - need
            if prev == 0:                                      # chunk starts the page: front
                foff = off + (need << shift)
                # the new header lands inside old data: its tag field keeps whatever was there
                hdr.pack_into(page, foff, need | index | fbs << 16,
                              u32.unpack_from(page, foff + 4)[0])
                frag = e + (need << shift)
                noff = foff + (fbs << shift)
                if noff < PAGE_SIZE:
                    n1 = u32.unpack_from(page, noff)[0]
                    u32.pack_into(page, noff, (n1 & ~c.size_mask) | fbs)
            else:                                              # otherwise: back of the chunk
                frag = e
                hdr.pack_into(page, off, prev | index | fbs << 16, tag)
                off += fbs << shift
                e += fbs << shift
                noff = off + (need << shift)
                if noff < PAGE_SIZE:
                    n1 = u32.unpack_from(page, noff)[0]
                    u32.pack_into(page, noff, (n1 & ~c.size_mask) | need)
                prev = fbs
            if fbs != 1:
                self._insert(desc, frag, fbs, at_head=False)
        u32.pack_into(page, off, prev | index | need << 16 | ptype << tshift)
        return e

    def _new_page(self, desc: Descriptor, need: int, ptype: int) -> int:
        page = self.mm.allocate_pool_pages(desc.paged, 1)
        if not page:
            return 0
        self._add32(desc.addr + self.o_total_pages, 1)
        blocks = PAGE_SIZE >> self.shift
        self._set_header(page, 0, desc.index, need, ptype, 0)
        frag_bs = blocks - need
        if frag_bs:
            frag = page + (need << self.shift)
            self._set_header(frag, need, desc.index, frag_bs, 0, 0)
            if frag_bs != 1:
                self._insert(desc, frag, frag_bs, at_head=False)
        return page

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
        self._add32(desc.addr + self.o_total_big, pages)
        self._addsz(desc.addr + self.o_total_bytes, pages * PAGE_SIZE)
        self._add32(desc.addr + self.o_running_allocs, 1)
        if not self.big.insert(va, tag, pool_type & TYPE_BITS, nbytes):
            tag = tag_to_ulong("BIG ")
        self.tracker.update(tag, pages * PAGE_SIZE, paged, 1)
        return va

    # ======================================================================================
    # lookaside lists (SLISTs in memory)
    # ======================================================================================
    def _lookaside_pop(self, cpu: int, paged: int, bs: int) -> int:
        pages, head, (NEXT, DEPTH, TOTAL_ALLOC, HITS) = self.pages, self.la_head, self.la_idx
        for la in self.la[cpu][paged][bs - 1]:
            page = pages[la >> 12]
            off = la & PAGE_MASK
            f = list(head.unpack_from(page, off))
            f[TOTAL_ALLOC] = (f[TOTAL_ALLOC] + 1) & 0xFFFFFFFF
            top = f[NEXT]
            if top:
                tpage = pages.get(top >> 12)
                if tpage is None:
                    raise self._fault(top)
                f[NEXT] = self.ptr.unpack_from(tpage, top & PAGE_MASK)[0]
                f[DEPTH] = (f[DEPTH] - 1) & 0xFFFF
                f[HITS] = (f[HITS] + 1) & 0xFFFFFFFF
                head.pack_into(page, off, *f)
                return top - self.G
            head.pack_into(page, off, *f)
        return 0

    def _lookaside_push(self, cpu: int, paged: int, bs: int, e: int) -> bool:
        pages, head, (NEXT, DEPTH, _, _) = self.pages, self.la_head, self.la_idx
        MAX, TOTAL_FREE, FREE_HITS = self.la_idx_free
        for la in self.la[cpu][paged][bs - 1]:
            page = pages[la >> 12]
            off = la & PAGE_MASK
            f = list(head.unpack_from(page, off))
            f[TOTAL_FREE] = (f[TOTAL_FREE] + 1) & 0xFFFFFFFF
            if f[DEPTH] < f[MAX]:
                data = e + self.G
                self.ptr.pack_into(pages[data >> 12], data & PAGE_MASK, f[NEXT])
                f[NEXT] = data
                f[DEPTH] = (f[DEPTH] + 1) & 0xFFFF
                f[FREE_HITS] = (f[FREE_HITS] + 1) & 0xFFFFFFFF
                head.pack_into(page, off, *f)
                return True
            head.pack_into(page, off, *f)
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

    def disable_lookasides(self) -> None:
        """Driver Verifier sets every lookaside depth to 0 (ExMinimumLookasideDepth = 0)."""
        self.settings.lookasides = False
        for cpu in self.la:
            for paged in cpu:
                for pair in paged:
                    for la in pair:
                        self._w16(la + self.o_la_depth, 0)

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
            raise raised_in(bc, "ExFreePoolWithTag", stack)
        if self.tracker.hit is not None and self.hit_site is None:
            self.hit_site = ("ExFreePoolWithTag", cpu, stack)

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
        np_pool, p_pool = self.mm.nonpaged, self.mm.paged
        in_paged = p_pool.start <= P < p_pool.end
        if not in_paged and not np_pool.start <= P < np_pool.end:
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
        ulong1, ptag = self.hdr.unpack_from(page, off)
        prev = ulong1 & sm
        bs = (ulong1 >> 16) & sm
        ptype = (ulong1 >> c.type_shift) & c.field_mask
        if not ptype & IN_USE:
            raise BugCheck(BAD_POOL_CALLER, 7, 0x1297, ulong1, P)
        noff = off + (bs << self.shift)
        if bs == 0 or noff > PAGE_SIZE or (
                noff < PAGE_SIZE and self.u32.unpack_from(page, noff)[0] & sm != bs):
            raise BugCheck(BAD_POOL_HEADER, 0x20, e, e + (bs << self.shift), ulong1)
        if prev:
            poff = off - (prev << self.shift)
            if poff < 0:
                raise BugCheck(BAD_POOL_HEADER, 6, e - (prev << self.shift), 0x4D2, e)
            if (self.u32.unpack_from(page, poff)[0] >> 16) & sm != prev:
                raise BugCheck(BAD_POOL_HEADER, 5, e - (prev << self.shift), 0x4D2, e)
        elif off:
            raise BugCheck(BAD_POOL_HEADER, 7, 0, 0x4D2, e)
        index = (ulong1 >> c.idx_shift) & c.field_mask
        if tag and ptag & PROTECTED_POOL and (tag | PROTECTED_POOL) != ptag:
            raise BugCheck(BAD_POOL_CALLER, 0xA, P, ptag, tag)
        paged = ptype & PAGED
        if paged and index >= len(self.paged_desc):
            # Windows 7 does not bounds-check PoolIndex: it follows a wild descriptor pointer.
            raise self._fault(self.paged_desc[0].addr + index * self.layouts.descriptor.sizeof())
        self.tracker.update(ptag, bs << self.shift, paged, -1)
        if bs <= POOL_SMALL_LISTS and not (paged and index == 0):
            if self._lookaside_push(cpu, paged, bs, e):
                return
        desc = self.paged_desc[index] if paged else self.descriptors[0]
        if self.settings.deferred_frees:
            depth = self._read_pending_depth(desc)
            if depth >= PENDING_FREE_LIMIT:
                self.flush_pending(desc)
            self._wptr(P, self._rptr(desc.addr + self.o_pending))
            self._wptr(desc.addr + self.o_pending, P)
            self._add32(desc.addr + self.o_pending_depth, 1)
            return
        self._release(desc, e)

    def _read_pending_depth(self, desc: Descriptor) -> int:
        return self._r32(desc.addr + self.o_pending_depth)

    def flush_pending(self, desc: Descriptor | None = None) -> None:
        """ExDeferredFreePool: release the pending chain, newest first."""
        for d in [desc] if desc else [self.descriptors[0], *self.paged_desc]:
            chain = self._rptr(d.addr + self.o_pending)
            self._wptr(d.addr + self.o_pending, 0)
            self._w32(d.addr + self.o_pending_depth, 0)
            while chain:
                if (chain >> 12) not in self.pages:
                    raise self._fault(chain)
                nxt = self._rptr(chain)
                self._release(d, chain - self.G)
                chain = nxt

    def _release(self, desc: Descriptor, e: int) -> None:
        """Return a chunk to ListHeads: coalesce with free neighbours, release empty pages."""
        shift = self.shift
        prev, _, bs, _, tag = self.header(e)
        self._add32(desc.addr + self.o_running_deallocs, 1)
        self._addsz(desc.addr + self.o_total_bytes, -(bs << shift))
        combined = False
        nxt = e + (bs << shift)
        if nxt & PAGE_MASK:
            _, _, nbs, ntype, _ = self.header(nxt)
            if ntype == 0:
                if nbs != 1:
                    self._unlink(nxt + self.G)
                    self._drop_bit(desc, nbs)
                bs += nbs
                combined = True
        if prev:
            prv = e - (prev << shift)
            pprev, _, pbs, ptype, ptag = self.header(prv)
            if ptype == 0:
                if pbs != 1:
                    self._unlink(prv + self.G)
                    self._drop_bit(desc, pbs)
                bs += pbs
                e, prev, tag = prv, pprev, ptag
                combined = True
        if not e & PAGE_MASK and bs << shift == PAGE_SIZE:
            self._add32(desc.addr + self.o_total_pages, -1)
            self.mm.free_pool_pages(e)
            return
        self._set_header(e, prev, desc.index, bs, 0, tag)
        end = e + (bs << shift)
        if combined and end & PAGE_MASK:
            self._set_prev(end, bs)
        if bs != 1:
            self._insert(desc, e, bs, at_head=True)

    def _drop_bit(self, desc: Descriptor, bs: int) -> None:
        head = desc.lists + (bs - 1) * 2 * self.P
        if self._rptr(head) == head:
            desc.bitmap &= ~(1 << (bs - 1))

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
        self._add32(desc.addr + self.o_running_deallocs, 1)
        self._addsz(desc.addr + self.o_total_bytes, -pages * PAGE_SIZE)
        self._add32(desc.addr + self.o_total_big, -pages)
        self.mm.free_pool_pages(va)
