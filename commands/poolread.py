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

import re
import struct
from bisect import bisect_right
from array import array
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Iterable, Iterator

from kdsim.layouts import (
    BIG_PAGE_FREE, PAGE_MASK, PAGE_SIZE, PROTECTED_POOL, QUOTA, SPECIAL_PAGED, SPECIAL_SIZE_MASK,
    Profile, struct_of,
)
from kdsim.target import MemoryFault
from pooltag import display_tag, printable, tag_from_ulong
from pooltag.tags import printable_bytes

from .errors import nt_global
from .sessions import session_pool_at

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

NONPAGED_REGION = "Nonpaged pool"
PAGED_REGION = "Paged pool"
SPECIAL_REGION = "Special pool"
SESSION_REGION = "Paged session pool"
UNKNOWN_REGION = "Unknown"

# Ways a small-pool walk stops (the three checks the extension makes, in its order).
TOO_LARGE = "too large"
ZERO = "zero"
PREVIOUS = "previous"


# A page's contents as the scans read them: the target's own buffer (Target.mapped_pages) or a copy.
Buffer = bytes | bytearray


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


@dataclass
class HeaderRows:
    """Headers as a scan of a whole pool keeps them, without an object per block: parallel
    arrays of their addresses and of their first eight bytes as a little-endian QWORD
    (Ulong1, then PoolTag above bit 32), and the ProcessBilled of the quota blocks among
    them, by index; `reached`, the last page the scan took up (where an interrupted scan
    stopped).  PoolReader.headers_of makes PoolHeaders of them."""

    addresses: array[int] = field(default_factory=lambda: array("Q"))
    words: array[int] = field(default_factory=lambda: array("Q"))
    processes: dict[int, int] = field(default_factory=dict)
    reached: int | None = None

    def __len__(self) -> int:
        return len(self.addresses)

    def append(self, address: int, word: int, process: int | None) -> None:
        if process is not None:
            self.processes[len(self.addresses)] = process
        self.addresses.append(address)
        self.words.append(word)


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

    @property
    def span(self) -> int:
        """The bytes of the pages it takes."""
        return max(-(-self.nbytes // PAGE_SIZE), 1) * PAGE_SIZE

    def contains(self, address: int) -> bool:
        return self.va <= address < self.va + self.span


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
    """Decodes the pool of one target for one command; cheap to build, holds no copy of memory
    (only the big-page table's index, once asked for)."""

    def __init__(self, target: "Target"):
        arch = target.arch
        self.target = target
        self.arch = arch
        self.unit = arch.block
        self.align = arch.block - 1
        self.layouts = target.profile
        self.codec = codec = self.layouts.codec
        self.size_mask, self.field_mask = codec.size_mask, codec.field_mask
        self.idx_shift, self.type_shift = codec.idx_shift, codec.type_shift
        self.shift = arch.block_shift
        self.hdr = struct.Struct("<II")
        self.qword = struct.Struct("<Q")
        self.ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")
        self.u32 = struct.Struct("<I")
        self._big_rows_read: list[tuple[int, int, int, int]] | None = None
        self._big_index: tuple[list[int], list[tuple[int, BigPage]], int] | None = None

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

    def word_of(self, h: PoolHeader) -> int:
        """The header's first eight bytes as HeaderRows keeps them."""
        return h.tag << 32 | self.codec.pack(h.previous_size, h.pool_index, h.block_size,
                                             h.pool_type)

    def headers_of(self, rows: HeaderRows) -> list[PoolHeader]:
        """The rows as PoolHeader objects, for those who need them (JSON)."""
        unpack, unit, process = self.codec.unpack, self.unit, rows.processes.get
        return [PoolHeader(address, *unpack(word & 0xFFFFFFFF), word >> 32, unit, process(i))
                for i, (address, word) in enumerate(zip(rows.addresses, rows.words))]

    def find_headers(self, pages: Iterable[tuple[int, Buffer]], finder: re.Pattern[bytes],
                     offset: int, rows: HeaderRows) -> None:
        """Add to `rows` the headers of `pages` ((address, contents) pairs) where `finder`
        matches `offset` bytes into the header (4 to 7: in its PoolTag) and which agree with
        their neighbours, as the kernel checks a block it frees: a size that stays in the
        page, a PreviousSize that is 0 at the page start and otherwise the size of the header
        it points back to, and a next header whose PreviousSize is this size.  Matches may
        overlap (the finder's own business: a tag may start one byte into another).

        One regex scan per page, and for each match a few integer operations on the page
        already read: no object per header, so a pool of a dense tag scans near the speed of
        a plain byte search.  Rows are added as they are found, so an interrupted scan keeps
        them."""
        add_address, add_word, processes = rows.addresses.append, rows.words.append, rows.processes
        qword, u32, ptr = self.qword.unpack_from, self.u32.unpack_from, self.ptr.unpack_from
        mask, shift, align = self.size_mask, self.shift, self.align
        quota = QUOTA << self.type_shift
        in_header = self.arch.ptr_size == 8           # where ProcessBilled is (_billed)
        page_size = PAGE_SIZE
        page: int | None = None
        try:
            for page, data in pages:
                for match in finder.finditer(data):
                    start = match.start() - offset
                    if start & align:         # also any start before the page: offset < unit
                        continue
                    word = qword(data, start)[0]
                    bs = (word >> 16) & mask
                    end = start + (bs << shift)
                    if not bs or end > page_size:
                        continue
                    prev = word & mask
                    if prev:
                        back = start - (prev << shift)
                        if back < 0 or (u32(data, back)[0] >> 16) & mask != prev:
                            continue
                    elif start:
                        continue
                    if end < page_size and u32(data, end)[0] & mask != bs:
                        continue
                    if word & quota:
                        processes[len(rows)] = (ptr(data, start + 8) if in_header
                                                else u32(data, end - 4))[0]
                    add_address(page + start)
                    add_word(word)
        finally:
            rows.reached = page

    def rows_text(self, rows: HeaderRows, marker: str = " ", tag_marker: str = " ") -> list[str]:
        """row_text of each row, one format per row: the size columns come from a table, the
        label of each PoolType and tag is made once, a quota block's process is added."""
        mask, shift, type_shift = self.size_mask, self.shift, self.type_shift
        line = _row_line(self.arch, marker)
        sizes = [f"{bs << shift:4x}" for bs in range(mask + 1)]
        labels = _Labels(type_shift, self.field_mask, tag_marker)
        text = [line % (address, sizes[(word >> 16) & mask], sizes[word & mask],
                        labels[word >> type_shift])
                for address, word in zip(rows.addresses, rows.words)]
        for i, process in rows.processes.items():
            text[i] += _process(self.arch, process)
        return text

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
        """The region `!pool` names: special pool by its reserved range; nonpaged, paged or
        a session's paged pool for a page that is in use in that pool's range; anything else
        is Unknown (a freed pool page, like any unused system VA, belongs to no pool)."""
        r = self.ranges()
        if r.special[0] <= address < r.special[1]:
            return SPECIAL_REGION
        if not self.target.is_valid(address):
            return UNKNOWN_REGION
        if r.nonpaged[0] <= address < r.nonpaged[1]:
            return NONPAGED_REGION
        if r.paged[0] <= address < r.paged[1]:
            return PAGED_REGION
        if session_pool_at(self.target, address) is not None:
            return SESSION_REGION
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

    def big_pages(self, where: tuple[int, int] | None = None) -> list[BigPage]:
        """The live entries, in table order, of nt!PoolBigPageTable or of the table of
        `where` (address, entries: a session's)."""
        return [BigPage(*row) for row in self._big_rows(where)]

    def _big_rows(self, where: tuple[int, int] | None = None) -> list[tuple[int, int, int, int]]:
        """(Va, Key, PoolType, NumberOfBytes) of the live entries, in table order."""
        table, entries = where or self.big_table()
        layout = struct_of(self.layouts.big_page)
        try:
            raw = self.target.read(table, entries * layout.size)
        except MemoryFault:
            return []
        return [row for row in layout.iter_unpack(raw) if not row[0] & BIG_PAGE_FREE]

    def big_page_at(self, address: int) -> BigPage | None:
        """The large allocation that holds `address`, if any (the first in table order, should
        a damaged table have two).  The table is read once per reader, and indexed the second
        time it is asked: one `!pool` scans it, a command that asks for every page of a pool
        (`.report`) must not."""
        if self._big_index is None:
            if self._big_rows_read is None:
                self._big_rows_read = self._big_rows()
                pages = (BigPage(*row) for row in self._big_rows_read)
                return next((b for b in pages if b.contains(address)), None)
            rows = sorted((row[0], i, BigPage(*row)) for i, row in enumerate(self._big_rows_read))
            self._big_index = ([va for va, _, _ in rows], [(i, b) for _, i, b in rows],
                               max((b.span for _, _, b in rows), default=0))
        starts, found, widest = self._big_index
        hits = [(i, b) for i, b in found[bisect_right(starts, address - widest):
                                         bisect_right(starts, address)] if b.contains(address)]
        return min(hits, key=lambda hit: hit[0])[1] if hits else None


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
    return tracker_rows_at(target, nt_global(target, table_name),
                           nt_global(target, f"{table_name}Size"))


def tracker_rows_at(target: "Target", table: int, size: int) -> list[tuple[int, ...]]:
    """`tracker_rows` of the table of `size` entries at `table` (a session's)."""
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


def row_text(arch: "Arch", h: PoolHeader, marker: str = " ", tag_marker: str = " ") -> str:
    """`"%c%p size: %4x previous size: %4x  %-11s %c%-4s"` plus the Win7-era suffixes."""
    label = _label(h.pool_type, h.tag, tag_marker)
    if h.pool_type & QUOTA and h.process is not None:
        label += _process(arch, h.process)
    return _row_line(arch, marker) % (h.address, f"{h.size:4x}",
                                      f"{h.previous_size * h.unit:4x}", label)


def _row_line(arch: "Arch", marker: str) -> str:
    """A row's format; its arguments: the address, the size and the previous size as `%4x`
    prints them, and the label."""
    return f"{marker}%0{arch.hex_digits}x size: %s previous size: %s  %s"


class _Labels(dict[int, str]):
    """Row labels by a header QWORD shifted down to its PoolType (the tag above it), each
    made on first use."""

    def __init__(self, type_shift: int, field_mask: int, tag_marker: str):
        super().__init__()
        self.tag_shift, self.field_mask, self.tag_marker = 32 - type_shift, field_mask, tag_marker

    def __missing__(self, key: int) -> str:
        label = self[key] = _label(key & self.field_mask, key >> self.tag_shift, self.tag_marker)
        return label


def _label(pool_type: int, tag: int, tag_marker: str) -> str:
    """`(Allocated) Tag (Protected)` or `(Free)      Tag`, the `%-11s %c%-4s` of a row: a
    free block's tag is shown as stored, an allocated one's without the protected bit."""
    if not pool_type:
        return f"(Free)      {tag_marker}{printable_bytes(tag.to_bytes(4, 'little'))}"
    shown = printable_bytes((tag & ~PROTECTED_POOL).to_bytes(4, "little"))
    return f"(Allocated) {tag_marker}{shown}{' (Protected)' if tag & PROTECTED_POOL else ''}"


def _process(arch: "Arch", process: int) -> str:
    """What follows the label of a quota block."""
    return f" Process: {arch.fmt_ptr(process)}"


def special_line(arch: "Arch", block: SpecialBlock, tag_marker: str = "*") -> str:
    """`*<page> size: %4x data: <data> (NonPaged) *<tag>` (formats.md 4.4)."""
    kind = "Paged" if block.paged else "NonPaged"
    return (f"*{arch.fmt_ptr(block.page)} size: {block.size:4x} data: {arch.fmt_ptr(block.data)}"
            f" ({kind}) {tag_marker}{display_tag(block.tag)}")
