"""The yardstick for the allocator's speed: Windows 7's small-pool algorithm doing only the
memory traffic it needs, in pure Python over the same memory as kdsim.

`ReferencePool` keeps every byte of bookkeeping where kdsim/pool.py keeps it and in the same
layouts (kdsim/layouts.py): `_POOL_HEADER`s inside 4 KiB pages of an `AddressSpace` page dict,
free chunks on the descriptors' ListHeads (LIST_ENTRYs with Windows 7's safe-unlink checks),
per-CPU and shared lookaside SLISTs with their counters, the descriptors' pending-free chain and
counters, and the tag tracker's counters.  It makes the same decisions as kdsim (ListHeads scan
from BlockSize-1, front/back splitting, remainders at the tail, freed chunks at the head,
coalescing, page release, round-robin paged descriptors), so fed the same operations it hands
out the same addresses and leaves the same headers; tests/bench/test_harness.py checks that.

What makes it the yardstick is what it leaves out: no bug-check records, special pool,
verifier, big pages, quota or PoolHitTag break sites, no Python object per operation, the hot
paths written out in `allocate`, `free` and `_release` rather than spread over helpers, and
each step's fields read and written with as few struct calls as the Windows layout allows.
The rule for pages: an access resolves its page through the page dict once; accesses to the
same page share it.  New pool pages come first-fit, lowest free page, as kdsim's page layer
hands out single pages.

`python -m bench.bench_allocator` measures both on the same workload in the same run.
"""
from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass
from typing import Iterator

from kdsim.arch import Arch
from kdsim.layouts import (
    IN_USE, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PAGED, POOL_SMALL_LISTS, TYPE_BITS, Profile,
    field_offsets, field_run, profile_for,
)
from kdsim.memory import AddressSpace
from kdsim.pool import LOOKASIDE_MAX_DEPTH, LOOKASIDE_START_DEPTH, PENDING_FREE_LIMIT
from kdsim.tracker import POOL_HIT_TAG_NONE

CONTROL_PAGES = 64             # room for descriptors, lookasides, tracker below nonpaged pool
TRACKER_SLOTS = 64             # tags the reference can count
U32 = 0xFFFFFFFF


class Corrupt(Exception):
    """The reference found its own bookkeeping inconsistent (a bug, never a workload)."""


class _Descriptor:
    __slots__ = ("addr", "index", "paged", "lists", "bitmap")

    def __init__(self, addr: int, index: int, paged: int, lists: int):
        self.addr = addr
        self.index = index
        self.paged = paged
        self.lists = lists
        self.bitmap = 0                     # ListHeads that may be non-empty, as kdsim keeps


@dataclass(frozen=True)
class Census:
    """What `ReferencePool.verify` found walking memory."""

    pages: int                 # small-pool pages
    in_use: int                # chunks whose header says in use (live, lookaside, pending)
    free: int                  # free chunks (PoolType 0)
    tracked_live: int          # allocations minus frees over the tracker's entries


def _span(L: Profile, name: str, fields: tuple[str, ...]
          ) -> tuple[struct.Struct, int, tuple[int, ...]]:
    """One struct over every field of structure `name` from the first to the last of `fields`
    in memory (those in between are written back unchanged, padding is skipped), the offset
    it starts at, and where each of `fields` lands in what it unpacks."""
    offsets = field_offsets(getattr(L, name))
    low, high = min(offsets[f] for f in fields), max(offsets[f] for f in fields)
    s, idx = field_run(getattr(L, name), tuple(n for n, o in offsets.items() if low <= o <= high))
    return s, low, tuple(idx[f] for f in fields)


def _expect(found: tuple[int, ...], *layouts: tuple[int, ...]) -> int:
    """Which of the field orders the hot path is written for `found` is (the layouts differ
    by arch only in the order of a few fields)."""
    if found not in layouts:
        raise ValueError(f"unexpected field order {found}")
    return layouts.index(found)


class ReferencePool:
    """Windows 7 small-pool allocate/free with minimal memory traffic (see the module doc)."""

    def __init__(self, arch: Arch, processors: int, paged_pools: int,
                 nonpaged_start: int | None = None, paged_start: int | None = None):
        """`nonpaged_start` / `paged_start`: each pool's first page (by default the arch's pool
        bases); the descriptors, lookasides and tracker sit in pages just below nonpaged."""
        L = profile_for(arch)
        c = L.codec
        self.memory = AddressSpace()
        self.pages = self.memory.pages
        self.G = arch.block
        self.P = arch.ptr_size
        self.shift = arch.block_shift
        self.max_small = arch.max_small
        self.round_up = 2 * arch.block - 1
        self.size_mask = c.size_mask
        self.field_mask = c.field_mask
        self.idx_shift = c.idx_shift
        self.type_shift = c.type_shift
        self.keep_type = c.keep_type
        self.szmask = arch.ptr_mask
        self.paged_pools = paged_pools
        self.ptr = struct.Struct("<I" if self.P == 4 else "<Q")
        self.pair = struct.Struct("<II" if self.P == 4 else "<QQ")
        self.hdr = struct.Struct("<II")
        self.u32 = struct.Struct("<I")
        # the header and the data's first pointer (the stale link zeroed on allocation)
        self.hdr_link = struct.Struct("<II" + "x" * (self.G - 8) + self.ptr.format[1:])
        # the descriptor's counters, each a read and a write (they are not adjacent)
        self.o_d_allocs = L.offset("descriptor", "RunningAllocs")
        self.o_d_frees = L.offset("descriptor", "RunningDeAllocs")
        self.o_d_bytes = L.offset("descriptor", "TotalBytes")
        self.o_d_pages = L.offset("descriptor", "TotalPages")
        # Runs of fields read and written in one call each.  x86 and x64 differ in order only:
        # x64's SLIST header has Depth/Sequence before Next, and a field between PendingFrees
        # and PendingFreeDepth; each hot path is written for both orders.
        self.d_pending, self.o_d_pending, where = _span(L, "descriptor",
                                                        ("PendingFrees", "PendingFreeDepth"))
        self.pending_gap = _expect(where, (0, 1), (0, 2))
        self.la_pop, o_pop, where = _span(
            L, "lookaside", ("Next", "ListDepth", "TotalAllocates", "AllocateHits"))
        self.next_last = _expect(where, (0, 1, 5, 6), (2, 0, 5, 6))
        self.la_push, o_push, where = _span(
            L, "lookaside", ("Next", "ListDepth", "Depth", "TotalFrees", "FreeHits"))
        if (_expect(where, (0, 1, 3, 7, 8), (2, 0, 3, 7, 8)) != self.next_last
                or o_pop != o_push):
            raise ValueError("the lookaside runs disagree")
        self.o_la = o_pop
        self.track: list[struct.Struct] = []     # per pool: the entry's Key to its counters
        for p, order in (("NonPaged", (0, 1, 2, 3)), ("Paged", (0, 4, 5, 6))):
            s, _, where = _span(L, "tracker", ("Key", f"{p}Allocs", f"{p}Frees", f"{p}Bytes"))
            _expect(where, order)
            self.track.append(s)
        self.hit: int | None = None         # the last tag nt!PoolHitTag matched
        # pool pages: first fit over single pages (freed page numbers in a heap)
        np_base = arch.nonpaged_start if nonpaged_start is None else nonpaged_start
        p_base = arch.paged_start if paged_start is None else paged_start
        self.pool_base = (np_base, p_base)
        self.fresh = [0, 0]
        self.freed: tuple[list[int], list[int]] = ([], [])
        self._boot(L, processors, np_base - CONTROL_PAGES * PAGE_SIZE)

    # -- boot ------------------------------------------------------------------------------
    def _boot(self, L: Profile, processors: int, base: int) -> None:
        end = base + CONTROL_PAGES * PAGE_SIZE
        cursor = base

        def place(size: int, align: int) -> int:
            """Room for a structure that must not straddle a page, mapped on first use."""
            nonlocal cursor
            cursor = -(-cursor // align) * align
            if (cursor & PAGE_MASK) + size > PAGE_SIZE:
                cursor = (cursor | PAGE_MASK) + 1
            addr, cursor = cursor, cursor + size
            if cursor > end:
                raise ValueError("the reference's control area is too small")
            for vpn in range(addr >> PAGE_SHIFT, ((cursor - 1) >> PAGE_SHIFT) + 1):
                if vpn not in self.pages:
                    self.memory.map(vpn << PAGE_SHIFT, PAGE_SIZE)
            return addr

        self.sym_hit = place(4, 4)
        self.u32.pack_into(self.pages[self.sym_hit >> PAGE_SHIFT], self.sym_hit & PAGE_MASK,
                           POOL_HIT_TAG_NONE)
        # A descriptor's fields end one page; its ListHeads (512 x 8 or 256 x 16 bytes) fill
        # the next.
        lists_off = L.offset("descriptor", "ListHeads")
        heads = PAGE_SIZE // (2 * self.P)
        descs = []
        for paged, index in [(0, 0), *((1, i) for i in range(self.paged_pools + 1))]:
            cursor = -(-cursor // PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE - lists_off
            addr = place(lists_off, 1)
            lists = place(2 * self.P * heads, PAGE_SIZE)
            descs.append(_Descriptor(addr, index, paged, lists))
            page = self.pages[lists >> PAGE_SHIFT]
            for k in range(heads):                 # empty circular lists point to themselves
                self.pair.pack_into(page, k * 2 * self.P, lists + k * 2 * self.P,
                                    lists + k * 2 * self.P)
        self.nonpaged, *self.paged_desc = descs
        self.rr = 0                                # the paged descriptors' round robin
        la_size = L.lookaside.sizeof()
        o_depth = L.offset("lookaside", "Depth")

        def lookaside() -> int:
            la = place(la_size, 8)
            struct.pack_into("<HH", self.pages[la >> PAGE_SHIFT], (la & PAGE_MASK) + o_depth,
                             LOOKASIDE_START_DEPTH, LOOKASIDE_MAX_DEPTH)
            return la + self.o_la

        shared = [[lookaside() for _ in range(POOL_SMALL_LISTS)] for _paged in (0, 1)]
        # la[cpu][paged][BlockSize-1] = (the CPU's P list, the shared L list), each the
        # address of the lookaside runs
        self.la = [[[(lookaside(), shared[paged][i]) for i in range(POOL_SMALL_LISTS)]
                    for paged in (0, 1)] for _cpu in range(processors)]
        self.tracker = [place(L.tracker.sizeof(), 8) for _ in range(TRACKER_SLOTS)]
        self.spots: dict[int, int] = {}

    def _slot(self, key: int) -> int:
        """The tracker entry counting `key`, claimed on first use."""
        if len(self.spots) == TRACKER_SLOTS:
            raise ValueError(f"the reference counts at most {TRACKER_SLOTS} tags")
        addr = self.spots[key] = self.tracker[len(self.spots)]
        self.u32.pack_into(self.pages[addr >> PAGE_SHIFT], addr & PAGE_MASK, key)
        return addr

    # -- allocate --------------------------------------------------------------------------
    def allocate(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0) -> int:
        """ExAllocatePoolWithTag for a small block: the address of its data."""
        if nbytes > self.max_small:
            raise ValueError("the reference models the small pool only")
        pages, ptr, u32 = self.pages, self.ptr, self.u32
        shift = self.shift
        need = ((nbytes or 1) + self.round_up) >> shift
        paged = pool_type & PAGED
        ptype = ((pool_type & TYPE_BITS) | IN_USE) << self.type_shift
        e = 0
        if need <= POOL_SMALL_LISTS:               # pop the CPU's P list, then the shared L
            s, next_last = self.la_pop, self.next_last
            for la in self.la[cpu][paged][need - 1]:
                lpage = pages[la >> PAGE_SHIFT]
                loff = la & PAGE_MASK
                if next_last:
                    depth, seq, top, limit, most, total, hits = s.unpack_from(lpage, loff)
                else:
                    top, depth, seq, limit, most, total, hits = s.unpack_from(lpage, loff)
                total = (total + 1) & U32
                if top:
                    page = pages[top >> PAGE_SHIFT]
                    nxt = ptr.unpack_from(page, top & PAGE_MASK)[0]
                    depth -= 1
                    hits = (hits + 1) & U32
                else:
                    nxt = 0
                if next_last:
                    s.pack_into(lpage, loff, depth, seq, nxt, limit, most, total, hits)
                else:
                    s.pack_into(lpage, loff, nxt, depth, seq, limit, most, total, hits)
                if top:
                    e = top - self.G
                    off = e & PAGE_MASK
                    ulong1 = u32.unpack_from(page, off)[0]
                    self.hdr_link.pack_into(page, off, (ulong1 & self.keep_type) | ptype, tag, 0)
                    break
        if not e:
            e = self._from_lists(need, ptype, paged, tag)
        # the tracker: nt!PoolHitTag compared, the entry's key checked, its counters updated
        key = tag & 0x7FFFFFFF
        hit = self.sym_hit
        if key == u32.unpack_from(pages[hit >> PAGE_SHIFT], hit & PAGE_MASK)[0]:
            self.hit = key
        addr = self.spots.get(key) or self._slot(key)
        page = pages[addr >> PAGE_SHIFT]
        off = addr & PAGE_MASK
        s = self.track[paged]
        if paged:
            found, a, f, b, allocs, frees, used = s.unpack_from(page, off)
            if found != key:
                raise Corrupt(f"tracker entry {addr:#x}")
            s.pack_into(page, off, key, a, f, b, (allocs + 1) & U32, frees,
                        (used + (need << shift)) & self.szmask)
        else:
            found, allocs, frees, used = s.unpack_from(page, off)
            if found != key:
                raise Corrupt(f"tracker entry {addr:#x}")
            s.pack_into(page, off, key, (allocs + 1) & U32, frees,
                        (used + (need << shift)) & self.szmask)
        return e + self.G

    def _from_lists(self, need: int, ptype: int, paged: int, tag: int) -> int:
        """The ListHeads path: take the first free chunk from ListHeads[need-1] up (or a new
        page), split it, count the allocation in the descriptor and write the header."""
        pages, ptr, u32 = self.pages, self.ptr, self.u32
        shift, sm, G, P, pair = self.shift, self.size_mask, self.G, self.P, self.pair
        if paged:
            self.rr = self.rr % self.paged_pools + 1
            desc = self.paged_desc[self.rr]
        else:
            desc = self.nonpaged
        index = desc.index << self.idx_shift
        start = need - 1
        while True:
            candidates = desc.bitmap >> start
            if not candidates:
                e = self._carve_page(desc, need, index)
                page = pages[e >> PAGE_SHIFT]
                off = prev = 0
                break
            k = start + ((candidates & -candidates).bit_length() - 1)
            head = desc.lists + k * 2 * P
            hpage = pages[head >> PAGE_SHIFT]
            hoff = head & PAGE_MASK
            entry = ptr.unpack_from(hpage, hoff)[0]
            if entry == head:
                desc.bitmap &= ~(1 << k)
                continue
            page = pages[entry >> PAGE_SHIFT]     # RemoveHeadList, safely
            flink, blink = pair.unpack_from(page, entry & PAGE_MASK)
            fpage = pages[flink >> PAGE_SHIFT]
            foff = (flink + P) & PAGE_MASK
            if blink != head or ptr.unpack_from(fpage, foff)[0] != entry:
                raise Corrupt(f"ListHeads[{k}] entry {entry:#x}")
            ptr.pack_into(hpage, hoff, flink)
            ptr.pack_into(fpage, foff, head)
            if flink == head:
                desc.bitmap &= ~(1 << k)
            e = entry - G
            off = e & PAGE_MASK
            ulong1 = u32.unpack_from(page, off)[0]
            prev = ulong1 & sm
            bs = (ulong1 >> 16) & sm
            if bs != need:
                fbs = bs - need
                if prev == 0:                     # the chunk starts the page: take its front
                    frag = e + (need << shift)
                    foff = off + (need << shift)
                    u32.pack_into(page, foff, need | index | fbs << 16)   # the tag stays
                    noff = foff + (fbs << shift)
                    if noff < PAGE_SIZE:
                        u32.pack_into(page, noff, (u32.unpack_from(page, noff)[0] & ~sm) | fbs)
                else:                             # otherwise: its back
                    frag = e
                    u32.pack_into(page, off, prev | index | fbs << 16)
                    off += fbs << shift
                    e += fbs << shift
                    noff = off + (need << shift)
                    if noff < PAGE_SIZE:
                        u32.pack_into(page, noff, (u32.unpack_from(page, noff)[0] & ~sm) | need)
                    prev = fbs
                if fbs != 1:
                    self._insert_tail(desc, frag, fbs)
            break
        dpage = pages[desc.addr >> PAGE_SHIFT]    # RunningAllocs += 1, TotalBytes += size
        doff = desc.addr & PAGE_MASK
        o = doff + self.o_d_allocs
        u32.pack_into(dpage, o, (u32.unpack_from(dpage, o)[0] + 1) & U32)
        o = doff + self.o_d_bytes
        ptr.pack_into(dpage, o, (ptr.unpack_from(dpage, o)[0] + (need << shift)) & self.szmask)
        self.hdr_link.pack_into(page, off, prev | index | need << 16 | ptype, tag, 0)
        return e

    def _carve_page(self, desc: _Descriptor, need: int, index: int) -> int:
        """A new page: the allocation at its front, the rest a free chunk at the tail of its
        list."""
        freed = self.freed[desc.paged]
        if freed:
            n = heapq.heappop(freed)
        else:
            n = self.fresh[desc.paged]
            self.fresh[desc.paged] = n + 1
        va = self.pool_base[desc.paged] + (n << PAGE_SHIFT)
        self.memory.map(va, PAGE_SIZE)
        self._add_pages(desc, 1)
        fbs = (PAGE_SIZE >> self.shift) - need
        self.hdr.pack_into(self.pages[va >> PAGE_SHIFT], need << self.shift,
                           need | index | fbs << 16, 0)
        if fbs != 1:
            self._insert_tail(desc, va + (need << self.shift), fbs)
        return va

    def _drop_page(self, desc: _Descriptor, va: int) -> None:
        """A page that came wholly free goes back to the page layer."""
        self._add_pages(desc, -1)
        self.memory.unmap(va, PAGE_SIZE)
        heapq.heappush(self.freed[desc.paged], (va - self.pool_base[desc.paged]) >> PAGE_SHIFT)

    def _add_pages(self, desc: _Descriptor, delta: int) -> None:
        spot = desc.addr + self.o_d_pages
        page, off = self.pages[spot >> PAGE_SHIFT], spot & PAGE_MASK
        self.u32.pack_into(page, off, (self.u32.unpack_from(page, off)[0] + delta) & U32)

    def _insert_tail(self, desc: _Descriptor, e: int, bs: int) -> None:
        """InsertTailList on ListHeads[bs-1], checking the tail's Flink first."""
        P, ptr, pages = self.P, self.ptr, self.pages
        head = desc.lists + (bs - 1) * 2 * P
        hpage = pages[head >> PAGE_SHIFT]
        hoff = head & PAGE_MASK
        blink = ptr.unpack_from(hpage, hoff + P)[0]
        bpage = pages[blink >> PAGE_SHIFT]
        if ptr.unpack_from(bpage, blink & PAGE_MASK)[0] != head:
            raise Corrupt(f"ListHeads[{bs - 1}] tail {blink:#x}")
        entry = e + self.G
        self.pair.pack_into(pages[entry >> PAGE_SHIFT], entry & PAGE_MASK, head, blink)
        ptr.pack_into(bpage, blink & PAGE_MASK, entry)
        ptr.pack_into(hpage, hoff + P, entry)
        desc.bitmap |= 1 << (bs - 1)

    # -- free ------------------------------------------------------------------------------
    def free(self, address: int, tag: int = 0, cpu: int = 0) -> None:
        """ExFreePoolWithTag for a small block (`tag` is accepted as kdsim's is)."""
        pages, ptr, u32 = self.pages, self.ptr, self.u32
        shift, sm, fm = self.shift, self.size_mask, self.field_mask
        e = address - self.G
        page = pages[e >> PAGE_SHIFT]
        off = e & PAGE_MASK
        ulong1, ptag = self.hdr.unpack_from(page, off)
        bs = (ulong1 >> 16) & sm
        ptype = (ulong1 >> self.type_shift) & fm
        if not ptype & IN_USE:
            raise Corrupt(f"double free of {address:#x}")
        noff = off + (bs << shift)
        if noff < PAGE_SIZE and u32.unpack_from(page, noff)[0] & sm != bs:
            raise Corrupt(f"the header after {e:#x} does not follow it")
        paged = ptype & PAGED
        index = (ulong1 >> self.idx_shift) & fm
        # the tracker, as in allocate
        key = ptag & 0x7FFFFFFF
        hit = self.sym_hit
        if key == u32.unpack_from(pages[hit >> PAGE_SHIFT], hit & PAGE_MASK)[0]:
            self.hit = key
        addr = self.spots.get(key) or self._slot(key)
        tpage = pages[addr >> PAGE_SHIFT]
        toff = addr & PAGE_MASK
        s = self.track[paged]
        if paged:
            found, a, f, b, allocs, frees, used = s.unpack_from(tpage, toff)
            if found != key:
                raise Corrupt(f"tracker entry {addr:#x}")
            s.pack_into(tpage, toff, key, a, f, b, allocs, (frees + 1) & U32,
                        (used - (bs << shift)) & self.szmask)
        else:
            found, allocs, frees, used = s.unpack_from(tpage, toff)
            if found != key:
                raise Corrupt(f"tracker entry {addr:#x}")
            s.pack_into(tpage, toff, key, allocs, (frees + 1) & U32,
                        (used - (bs << shift)) & self.szmask)
        if bs <= POOL_SMALL_LISTS and not (paged and index == 0):   # push P, then L
            s, next_last = self.la_push, self.next_last
            for la in self.la[cpu][paged][bs - 1]:
                lpage = pages[la >> PAGE_SHIFT]
                loff = la & PAGE_MASK
                if next_last:
                    (depth, seq, top, limit, most, t_alloc, a_hits, total,
                     hits) = s.unpack_from(lpage, loff)
                else:
                    (top, depth, seq, limit, most, t_alloc, a_hits, total,
                     hits) = s.unpack_from(lpage, loff)
                total = (total + 1) & U32
                pushed = depth < limit
                if pushed:
                    ptr.pack_into(page, off + self.G, top)
                    top = address
                    depth += 1
                    hits = (hits + 1) & U32
                if next_last:
                    s.pack_into(lpage, loff, depth, seq, top, limit, most, t_alloc, a_hits,
                                total, hits)
                else:
                    s.pack_into(lpage, loff, top, depth, seq, limit, most, t_alloc, a_hits,
                                total, hits)
                if pushed:
                    return
        desc = self.paged_desc[index] if paged else self.nonpaged
        spot = desc.addr + self.o_d_pending       # push on the pending-free chain
        dpage = pages[spot >> PAGE_SHIFT]
        doff = spot & PAGE_MASK
        s = self.d_pending
        if self.pending_gap:
            chain, between, depth = s.unpack_from(dpage, doff)
        else:
            chain, depth = s.unpack_from(dpage, doff)
        if depth >= PENDING_FREE_LIMIT:           # ExDeferredFreePool: newest first
            while chain:
                nxt = ptr.unpack_from(pages[chain >> PAGE_SHIFT], chain & PAGE_MASK)[0]
                self._release(desc, chain - self.G)
                chain = nxt
            depth = 0
        ptr.pack_into(page, off + self.G, chain)
        if self.pending_gap:
            s.pack_into(dpage, doff, address, between, depth + 1)
        else:
            s.pack_into(dpage, doff, address, depth + 1)

    def _release(self, desc: _Descriptor, e: int) -> None:
        """Return a chunk to ListHeads: coalesce with free neighbours, release empty pages."""
        pages, ptr, u32, pair = self.pages, self.ptr, self.u32, self.pair
        shift, sm, ts, fm, P = self.shift, self.size_mask, self.type_shift, self.field_mask, self.P
        page = pages[e >> PAGE_SHIFT]
        off = e & PAGE_MASK
        ulong1, tag = self.hdr.unpack_from(page, off)
        prev = ulong1 & sm
        bs = (ulong1 >> 16) & sm
        dpage = pages[desc.addr >> PAGE_SHIFT]    # RunningDeAllocs += 1, TotalBytes -= size
        doff = desc.addr & PAGE_MASK
        o = doff + self.o_d_frees
        u32.pack_into(dpage, o, (u32.unpack_from(dpage, o)[0] + 1) & U32)
        o = doff + self.o_d_bytes
        ptr.pack_into(dpage, o, (ptr.unpack_from(dpage, o)[0] - (bs << shift)) & self.szmask)
        base = e - off
        combined = False
        for noff in (off + (bs << shift), off - (prev << shift) if prev else -1):
            if not 0 <= noff < PAGE_SIZE:         # the next chunk, then the previous one
                continue
            n1, ntag = self.hdr.unpack_from(page, noff)
            if (n1 >> ts) & fm:
                continue
            nbs = (n1 >> 16) & sm
            if nbs != 1:                          # RemoveEntryList, safely
                entry = base + noff + self.G
                flink, blink = pair.unpack_from(page, noff + self.G)
                fpage = pages[flink >> PAGE_SHIFT]
                bpage = pages[blink >> PAGE_SHIFT]
                foff = (flink + P) & PAGE_MASK
                boff = blink & PAGE_MASK
                if ptr.unpack_from(fpage, foff)[0] != entry or \
                        ptr.unpack_from(bpage, boff)[0] != entry:
                    raise Corrupt(f"list entry {entry:#x}")
                ptr.pack_into(bpage, boff, flink)
                ptr.pack_into(fpage, foff, blink)
                if flink == blink:                # it was the list's only entry
                    desc.bitmap &= ~(1 << (nbs - 1))
            bs += nbs
            combined = True
            if noff < off:
                off, prev, tag = noff, n1 & sm, ntag
        if off == 0 and bs << shift == PAGE_SIZE:
            self._drop_page(desc, base)
            return
        self.hdr.pack_into(page, off, prev | desc.index << self.idx_shift | bs << 16, tag)
        end = off + (bs << shift)
        if combined and end < PAGE_SIZE:
            u32.pack_into(page, end, (u32.unpack_from(page, end)[0] & ~sm) | bs)
        if bs != 1:                               # InsertHeadList, checking the head's Flink
            head = desc.lists + (bs - 1) * 2 * P
            hpage = pages[head >> PAGE_SHIFT]
            hoff = head & PAGE_MASK
            flink = ptr.unpack_from(hpage, hoff)[0]
            fpage = pages[flink >> PAGE_SHIFT]
            foff = (flink + P) & PAGE_MASK
            if ptr.unpack_from(fpage, foff)[0] != head:
                raise Corrupt(f"ListHeads[{bs - 1}] head {flink:#x}")
            entry = base + off + self.G
            pair.pack_into(page, off + self.G, flink, head)
            ptr.pack_into(fpage, foff, entry)
            ptr.pack_into(hpage, hoff, entry)
            desc.bitmap |= 1 << (bs - 1)

    # -- self-check ------------------------------------------------------------------------
    def verify(self) -> Census:
        """Walk every small-pool page and list: each page's headers tile it exactly (each
        PreviousSize the BlockSize before it), every free chunk longer than one block is on
        its ListHeads list and nothing else is; raises Corrupt otherwise."""
        pages = in_use = free = 0
        listed: set[int] = set()
        for desc in (self.nonpaged, *self.paged_desc):
            for k in range(PAGE_SIZE // (2 * self.P)):
                head = desc.lists + k * 2 * self.P
                entry = self._read_ptr(head)
                while entry != head:
                    ulong1, _ = self.header(entry - self.G)
                    if (ulong1 >> 16) & self.size_mask != k + 1 or self._type(ulong1):
                        raise Corrupt(f"ListHeads[{k}] holds {entry - self.G:#x}")
                    listed.add(entry - self.G)
                    entry = self._read_ptr(entry)
        for va, page in self.pool_pages():
            pages += 1
            for off, ulong1, _tag in walk_page(page, self.shift, self.size_mask):
                if self._type(ulong1) & IN_USE:
                    in_use += 1
                else:
                    free += 1
                    if (ulong1 >> 16) & self.size_mask != 1 and va + off not in listed:
                        raise Corrupt(f"free chunk {va + off:#x} is on no list")
                    listed.discard(va + off)
        if listed:
            raise Corrupt(f"{len(listed)} listed chunks are not free chunks in pool pages")
        live = 0
        for addr in self.spots.values():
            page, off = self.pages[addr >> PAGE_SHIFT], addr & PAGE_MASK
            _, np_allocs, np_frees, _ = self.track[0].unpack_from(page, off)
            *_, p_allocs, p_frees, _ = self.track[1].unpack_from(page, off)
            live += np_allocs - np_frees + p_allocs - p_frees
        return Census(pages, in_use, free, live)

    def pool_pages(self) -> Iterator[tuple[int, bytearray]]:
        """(address, bytes) of each small-pool page, nonpaged then paged, in address order."""
        for paged, base in enumerate(self.pool_base):
            for n in range(self.fresh[paged]):
                page = self.pages.get((base >> PAGE_SHIFT) + n)
                if page is not None:
                    yield base + (n << PAGE_SHIFT), page

    def header(self, e: int) -> tuple[int, int]:
        """(Ulong1, PoolTag) of the chunk at e."""
        return self.hdr.unpack_from(self.pages[e >> PAGE_SHIFT], e & PAGE_MASK)

    def _read_ptr(self, a: int) -> int:
        return self.ptr.unpack_from(self.pages[a >> PAGE_SHIFT], a & PAGE_MASK)[0]

    def _type(self, ulong1: int) -> int:
        return (ulong1 >> self.type_shift) & self.field_mask


def walk_page(page: bytes | bytearray, shift: int, size_mask: int) -> list[tuple[int, int, int]]:
    """(offset, Ulong1, PoolTag) of each header of a small-pool page, checking that each
    PreviousSize is the BlockSize before it and that the blocks sum to the page."""
    found, off, last = [], 0, 0
    while off < PAGE_SIZE:
        ulong1, tag = struct.unpack_from("<II", page, off)
        bs = (ulong1 >> 16) & size_mask
        if ulong1 & size_mask != last or bs == 0:
            raise Corrupt(f"header at page offset {off:#x}: {ulong1:#010x}")
        found.append((off, ulong1, tag))
        off += bs << shift
        last = bs
    if off != PAGE_SIZE:
        raise Corrupt(f"headers sum to {off:#x}, not the page")
    return found
