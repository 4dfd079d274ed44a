"""Reading the pool through the target, as the debugger extensions do.

Everything here works from memory and symbols only, through `Target`'s read interface
(DESIGN.md's one rule): `_POOL_HEADER`s decoded with the kernel's own layouts, the small-pool
page walk `!pool` does, the page validation behind `!poolval` and the corruption diagnosis,
the `nt!PoolBigPageTable` scan, the tag tracker's table (`!poolused`, tag completion), which
pool an address belongs to (from `nt!MmNonPagedPoolStart` and friends), and the one line a
header prints as in `!pool`, `!poolfind` and `!poolval`.  The commands build their results
from these readers.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Iterator

from kdsim.layouts import (
    BIG_PAGE_FREE, PAGE_MASK, PAGE_SIZE, PROTECTED_POOL, QUOTA, SPECIAL_PAGED, SPECIAL_SIZE_MASK,
    Profile, struct_of,
)
from kdsim.target import MemoryFault
from pooltag import display_tag, printable, tag_from_ulong
from pooltag.tags import printable_bytes

from .errors import nt_global

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

NONPAGED_REGION = "Nonpaged pool"
PAGED_REGION = "Paged pool"
SPECIAL_REGION = "Special pool"
UNKNOWN_REGION = "Unknown"

# Ways a small-pool walk stops (the three checks the extension makes, in its order).
TOO_LARGE = "too large"
ZERO = "zero"
PREVIOUS = "previous"


# -- results ------------------------------------------------------------------------------------
@dataclass(slots=True)
class PoolHeader:
    """One `_POOL_HEADER` as found in memory; sizes are the raw fields, in blocks of `unit`."""

    address: int
    previous_size: int
    pool_index: int
    block_size: int
    pool_type: int
    tag: int                      # as stored: bit 31 is the protected bit
    unit: int                     # bytes per block (8 on x86, 16 on x64)
    process: int | None = None    # the billed process of a quota block

    @property
    def size(self) -> int:
        return self.block_size * self.unit

    def contains(self, address: int) -> bool:
        return self.address <= address < self.address + max(self.size, 1)


@dataclass(frozen=True)
class WalkError:
    """Where a walk of a page had to stop, and the size it expected there (in blocks)."""

    kind: str                     # TOO_LARGE, ZERO or PREVIOUS
    address: int
    last_size: int


@dataclass
class PageWalk:
    page: int
    headers: list[PoolHeader]
    error: WalkError | None = None


@dataclass(frozen=True)
class Problem:
    """One finding of the page validation.

    `previous`: the header's PreviousSize (`found`) is not the BlockSize of the header before
    it (`expected`); `region`: the walk cannot go on from `address` and the next header from
    which a consistent chain leads to the end of the page is at `end`."""

    kind: str                     # "previous" or "region"
    address: int
    found: int = 0
    expected: int = 0
    end: int = 0

    @property
    def single_bit(self) -> bool:
        diff = self.found ^ self.expected
        return self.kind == "previous" and diff != 0 and diff & (diff - 1) == 0


@dataclass
class PageCheck:
    page: int
    readable: bool
    headers: list[PoolHeader] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.readable and not self.problems


@dataclass(frozen=True)
class BigPage:
    """A live `_POOL_TRACKER_BIG_PAGES` entry."""

    va: int
    tag: int
    pool_type: int
    nbytes: int

    def contains(self, address: int) -> bool:
        span = max(-(-self.nbytes // PAGE_SIZE), 1) * PAGE_SIZE
        return self.va <= address < self.va + span


@dataclass
class SpecialBlock:
    """A special-pool allocation: its page, the bytes requested, where the caller's data
    starts, the pool and the tag, read from the header special pool keeps on the page."""

    page: int
    size: int
    data: int
    paged: bool
    tag: int


@dataclass(frozen=True)
class PoolRanges:
    nonpaged: tuple[int, int]
    paged: tuple[int, int]
    special: tuple[int, int]


# -- the reader ---------------------------------------------------------------------------------
class PoolReader:
    """Decodes the pool of one target; cheap to build, holds no copy of memory."""

    def __init__(self, target: "Target"):
        arch = target.arch
        self.target = target
        self.arch = arch
        self.unit = arch.block
        self.align = arch.block - 1
        self.layouts = target.profile
        codec = self.layouts.codec
        self.size_mask, self.field_mask = codec.size_mask, codec.field_mask
        self.idx_shift, self.type_shift = codec.idx_shift, codec.type_shift
        self.shift = arch.block_shift
        self.hdr = struct.Struct("<II")
        self.ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")
        self.u32 = struct.Struct("<I")

    # -- headers --------------------------------------------------------------------------------
    def decode(self, data: bytes | bytearray, offset: int, address: int) -> PoolHeader:
        """The header at `data[offset:]`, which is at `address` in the target."""
        ulong1, tag = self.hdr.unpack_from(data, offset)
        return self._header(data, offset, address, ulong1, tag)

    def _header(self, data: bytes | bytearray, offset: int, address: int, ulong1: int,
                tag: int) -> PoolHeader:
        bs = (ulong1 >> 16) & self.size_mask
        ptype = (ulong1 >> self.type_shift) & self.field_mask
        return PoolHeader(address, ulong1 & self.size_mask,
                          (ulong1 >> self.idx_shift) & self.field_mask, bs, ptype, tag,
                          self.unit, self._billed(data, offset, bs) if ptype & QUOTA else None)

    def _billed(self, data: bytes | bytearray, offset: int, bs: int) -> int | None:
        """x64 keeps ProcessBilled in the header; x86 in the last ULONG of the block."""
        if self.arch.ptr_size == 8:
            return self.ptr.unpack_from(data, offset + 8)[0]
        where = offset + bs * self.unit - 4
        if bs == 0 or where + 4 > len(data):
            return None
        return self.u32.unpack_from(data, where)[0]

    def headers_with(self, page: int, data: bytes | bytearray, needle: bytes,
                     position: int) -> list[PoolHeader]:
        """The headers of the page at `page` (its bytes: `data`) whose tag holds `needle` at
        `position` and which agree with their neighbours, as the kernel checks a block it
        frees: a size that stays in the page, a PreviousSize that is 0 at the page start and
        otherwise the size of the header it points back to, and a next header whose
        PreviousSize is this size.  Overlapping matches count (a tag may start one byte
        into another)."""
        found: list[PoolHeader] = []
        find, unpack, u32 = data.find, self.hdr.unpack_from, self.u32.unpack_from
        mask, shift, align = self.size_mask, self.shift, self.align
        fmask, idx_shift, type_shift = self.field_mask, self.idx_shift, self.type_shift
        unit, billed = self.unit, self._billed
        offset = 4 + position
        at = find(needle)
        while at >= 0:
            start = at - offset
            at = find(needle, at + 1)
            if start < 0 or start & align:
                continue
            ulong1, tag = unpack(data, start)
            prev, bs = ulong1 & mask, (ulong1 >> 16) & mask
            size = bs << shift
            if not bs or start + size > PAGE_SIZE:
                continue
            if prev:
                back = prev << shift
                if back > start or (u32(data, start - back)[0] >> 16) & mask != prev:
                    continue
            elif start:
                continue
            if start + size < PAGE_SIZE and u32(data, start + size)[0] & mask != bs:
                continue
            ptype = (ulong1 >> type_shift) & fmask
            found.append(PoolHeader(page + start, prev, (ulong1 >> idx_shift) & fmask, bs, ptype,
                                    tag, unit, billed(data, start, bs) if ptype & QUOTA else None))
        return found

    def header_fields(self, header: PoolHeader) -> dict[str, int]:
        """Every field of the header as the `_POOL_HEADER` layout declares it (`dt`'s view)."""
        raw = self.target.read(header.address, self.layouts.pool_header.sizeof())
        parsed = self.layouts.pool_header.parse(raw)
        fields = {**parsed.get("Ulong1", {}), **parsed}
        order = ("PreviousSize", "PoolIndex", "BlockSize", "PoolType")
        names = [*order, *(k for k in fields if k not in order)]
        return {k: fields[k] for k in names
                if not k.startswith("_") and isinstance(fields.get(k), int)}

    def read_page(self, address: int) -> bytes | None:
        try:
            return self.target.read(address & ~PAGE_MASK, PAGE_SIZE)
        except MemoryFault:
            return None

    # -- the small-pool walk ----------------------------------------------------------------------
    def walk(self, page: int, data: bytes | bytearray) -> PageWalk:
        """Follow the headers of the page at `page` (its bytes: `data`) from offset 0
        until the end of the page, stopping at the first header that cannot be right: a block
        that is empty or reaches past the page, or a PreviousSize that is not the size of the
        block before it."""
        headers: list[PoolHeader] = []
        decode = self.decode
        off = 0
        last = 0
        shift = self.shift
        while off < PAGE_SIZE:
            h = decode(data, off, page + off)
            size = h.block_size << shift
            if off + size > PAGE_SIZE:
                return PageWalk(page, headers, WalkError(TOO_LARGE, h.address, last))
            if not size:
                return PageWalk(page, headers, WalkError(ZERO, h.address, last))
            if h.previous_size != last:
                return PageWalk(page, headers, WalkError(PREVIOUS, h.address, last))
            headers.append(h)
            last = h.block_size
            off += size
        return PageWalk(page, headers)

    def check_page(self, address: int) -> PageCheck:
        """Validate every header of the page holding `address` (`!poolval`).

        The walk goes on past a wrong PreviousSize when the next header confirms the block's
        size.  Where it cannot go on (a size of zero or past the page, or a header wrong at
        both ends), it resumes at the next header from which a consistent chain reaches the end
        of the page, and the bytes in between are a corrupt region."""
        page = address & ~PAGE_MASK
        data = self.read_page(page)
        if data is None:
            return PageCheck(page, readable=False)
        unit = self.unit
        slots = [self.decode(data, off, page + off) for off in range(0, PAGE_SIZE, unit)]
        chains = _chains_to_end(slots, PAGE_SIZE // unit)
        check = PageCheck(page, readable=True)
        i = 0
        last: int | None = 0              # None past a corrupt region: nothing to expect
        count = len(slots)
        while i < count:
            h = slots[i]
            nxt = i + h.block_size
            broken = h.block_size == 0 or nxt > count
            if last is not None and h.previous_size != last:
                check.problems.append(Problem("previous", h.address, h.previous_size, last))
                # a header wrong at both ends is not followed: its size is not trusted either
                broken = broken or (nxt < count and slots[nxt].previous_size != h.block_size)
            if broken:
                resume = next((j for j in range(i + 1, count) if chains[j]), count)
                check.problems.append(Problem("region", h.address, end=page + resume * unit))
                i, last = resume, None
                continue
            check.headers.append(h)
            last = h.block_size
            i += h.block_size
        return check

    # -- special pool -----------------------------------------------------------------------------
    def special_block(self, address: int) -> SpecialBlock | None:
        """The special-pool allocation on the page of `address`, None if the page cannot be
        read (a freed or guard page) or holds no special header.

        Special pool keeps its header (kdsim/special.py, internals.md 12.2) at the start of
        the page when it catches overruns (nt!MmSpecialPoolCatchOverruns = 1: the data ends
        at the page end, aligned down to the block size) and in the last bytes of the page
        when it catches underruns (the data starts the page).  Its Ulong1 holds the bytes
        requested, 0x8000 for paged pool and the fill byte above them."""
        page = address & ~PAGE_MASK
        data = self.read_page(page)
        if data is None:
            return None
        layout = self.layouts.special_header
        overruns = self.target.resolve("nt!MmSpecialPoolCatchOverruns")
        at_start = overruns is None or self.target.read_u32(overruns) != 0
        at = 0 if at_start else PAGE_SIZE - layout.sizeof()
        header = layout.parse(data[at:at + layout.sizeof()])
        size = header.Ulong1 & SPECIAL_SIZE_MASK
        if not 0 < size <= PAGE_SIZE - layout.sizeof():
            return None
        start = (page + PAGE_SIZE - size) & ~self.align if at_start else page
        return SpecialBlock(page, size, start, bool(header.Ulong1 & SPECIAL_PAGED),
                            header.PoolTag)

    # -- where an address is ----------------------------------------------------------------------
    def _global(self, name: str) -> int:
        """A pointer-sized nt global; 0 when the target has no such symbol or cannot read it
        (then no address is in that range and no table is found)."""
        return self.target.global_ptr(name, default=0)

    def ranges(self) -> PoolRanges:
        g = self._global
        return PoolRanges((g("MmNonPagedPoolStart"), g("MmNonPagedPoolEnd")),
                          (g("MmPagedPoolStart"), g("MmPagedPoolEnd")),
                          (g("MmSpecialPoolStart"), g("MmSpecialPoolEnd")))

    def region(self, address: int) -> str:
        """The region `!pool` names: special pool by its reserved range; nonpaged or paged
        pool for a page that is in use in that pool's range; anything else is Unknown (a
        freed pool page, like any unused system VA, belongs to no pool)."""
        r = self.ranges()
        if r.special[0] <= address < r.special[1]:
            return SPECIAL_REGION
        if not self.target.is_valid(address):
            return UNKNOWN_REGION
        if r.nonpaged[0] <= address < r.nonpaged[1]:
            return NONPAGED_REGION
        if r.paged[0] <= address < r.paged[1]:
            return PAGED_REGION
        return UNKNOWN_REGION

    def valid_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """(address, bytes) of the runs of readable pages inside [start, end)."""
        return self.target.mapped_runs(start, end)

    def pages(self, start: int, end: int) -> Iterator[tuple[int, bytes | bytearray]]:
        """(address, contents) of every readable page in [start, end), for scans of a whole
        pool (the target's own page buffers: callers only read them)."""
        return self.target.mapped_pages(start, end)

    # -- the big-page table -----------------------------------------------------------------------
    def big_table(self) -> tuple[int, int]:
        """(address, entries) of nt!PoolBigPageTable."""
        return self._global("PoolBigPageTable"), self._global("PoolBigPageTableSize")

    def big_table_span(self) -> tuple[int, int]:
        table, entries = self.big_table()
        return table, table + entries * self.layouts.big_page.sizeof()

    def big_pages(self) -> list[BigPage]:
        """The live entries, in table order."""
        table, entries = self.big_table()
        layout = struct_of(self.layouts.big_page)
        try:
            raw = self.target.read(table, entries * layout.size)
        except MemoryFault:
            return []
        return [BigPage(va, key, ptype, nbytes)
                for va, key, ptype, nbytes in layout.iter_unpack(raw) if not va & BIG_PAGE_FREE]

    def big_page_at(self, address: int) -> BigPage | None:
        """The large allocation that holds `address`, if any."""
        return next((b for b in self.big_pages() if b.contains(address)), None)


# -- the tag tracker ----------------------------------------------------------------------------
TRACKER_COUNTERS = ("Key", "NonPagedAllocs", "NonPagedFrees", "NonPagedBytes", "PagedAllocs",
                    "PagedFrees", "PagedBytes")


@cache
def _tracker_format(profile: Profile) -> tuple[struct.Struct, tuple[int, ...]]:
    """A struct for one _POOL_TRACKER_TABLE entry and where TRACKER_COUNTERS sit in its
    unpacked tuple."""
    tracker = profile.tracker
    names = [sub.name for sub in tracker.subcons if sub.name]
    return struct_of(tracker), tuple(names.index(f) for f in TRACKER_COUNTERS)


def tracker_rows(target: "Target", table_name: str = "PoolTrackTable") -> list[tuple[int, ...]]:
    """TRACKER_COUNTERS of every used slot of nt!PoolTrackTable (or of another tracker table
    of the same layout, whose size is at nt!<table_name>Size), the tag ULONG first."""
    table = nt_global(target, table_name)
    size = nt_global(target, f"{table_name}Size")
    entry, fields = _tracker_format(target.profile)
    raw = target.read(table, size * entry.size)
    key = fields[0]
    return [tuple(e[i] for i in fields) for e in entry.iter_unpack(raw) if e[key]]


def live_tags(target: "Target") -> list[str]:
    """Tags with something outstanding in either pool, for completion (printable ones only,
    trailing blanks dropped: `Irp` completes `Irp `)."""
    tags = {tag_from_ulong(key).rstrip()
            for key, npa, npf, npb, pa, pf, pb in tracker_rows(target)
            if npa != npf or npb or pa != pf or pb}
    return sorted(t for t in tags if t and printable(t) == t)


def _chains_to_end(slots: list[PoolHeader], count: int) -> list[bool]:
    """For each block slot: does a consistent chain of headers lead from it to the page end?"""
    good = [False] * (count + 1)
    good[count] = True
    for i in range(count - 1, -1, -1):
        bs = slots[i].block_size
        nxt = i + bs
        if bs and nxt <= count and good[nxt] and (nxt == count or slots[nxt].previous_size == bs):
            good[i] = True
    return good


# -- how a header prints ------------------------------------------------------------------------


def row_suffix(arch: "Arch", h: PoolHeader) -> str:
    """` (Protected)` and ` Process: <p>` after an allocated block's tag."""
    text = " (Protected)" if h.tag & PROTECTED_POOL else ""
    if h.pool_type & QUOTA and h.process is not None:
        text += f" Process: {arch.fmt_ptr(h.process)}"
    return text


def row_text(arch: "Arch", h: PoolHeader, marker: str = " ", tag_marker: str = " ") -> str:
    """`"%c%p size: %4x previous size: %4x  %-11s %c%-4s"` plus the Win7-era suffixes."""
    if h.pool_type:
        tag, status = h.tag & ~PROTECTED_POOL, "(Allocated)"
        suffix = row_suffix(arch, h) if h.tag & PROTECTED_POOL or h.pool_type & QUOTA else ""
    else:
        tag, status, suffix = h.tag, "(Free)     ", ""
    return "%s%0*x size: %4x previous size: %4x  %s %s%s%s" % (
        marker, arch.hex_digits, h.address, h.block_size * h.unit, h.previous_size * h.unit,
        status, tag_marker, printable_bytes(tag.to_bytes(4, "little")), suffix)


def special_line(arch: "Arch", block: SpecialBlock, tag_marker: str = "*") -> str:
    """`*<page> size: %4x data: <data> (NonPaged) *<tag>` (formats.md 4.4)."""
    kind = "Paged" if block.paged else "NonPaged"
    return (f"*{arch.fmt_ptr(block.page)} size: {block.size:4x} data: {arch.fmt_ptr(block.data)}"
            f" ({kind}) {tag_marker}{display_tag(block.tag)}")
