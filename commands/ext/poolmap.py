"""`!poolmap [NonPaged|Paged|Session] [Tag]` and `!poolmap Address`: the pool drawn in the
terminal, for learners (kdsim's own command: no debugger extension has it).

* A pool: one cell per page in use, in address order (pages not in use are left out), or one
  cell per N pages when the pool would take more than MAP_ROWS rows; each cell shows how much
  of its page is in use by quarters (`.` `:` `+` `#`), or that the page is pinned (`p`), part of
  a large allocation (`L`) or has headers that do not chain (`!`); with a tag, the pages holding
  a block of it show `@`.  Above the map: pages in use (what `!vm` counts), bytes in use (what
  `!poolused` sums), bytes free inside the pool's pages, and pinned pages.  A page is
  *pinned* when it is mostly free but cannot be given back: at most 1/8 of it (0x200 bytes) in
  use, by at most four blocks (freed blocks still on a lookaside or deferred-free list count,
  as they too keep the page; commands/poolcensus.py).  Below: the legend and the tags whose
  blocks hold the pinned pages.
* An address: the page holding it drawn to scale, one cell per pool block (8 bytes on x86, 16
  on x64): headers, data, free chunks, freed blocks kept on lookaside lists, the tags under
  their headers, the block holding the address starred; on a corrupted page, the header where
  the walk broke (`!`) and the bytes it cannot follow (`?`).  In special pool, the page pair:
  special pool's header, the fill pattern, the data against the end of the page and the first
  bytes of the guard page after it (or before it, when special pool catches underruns); an
  address in a guard page draws the pair it guards.  A large allocation is drawn a cell per
  page.

The map fits the terminal's width (`shutil.get_terminal_size`, 80 columns when unknown); below
16 cells a row it drops the addresses before the rows.  Colour comes from the terminal
renderer (commands/glyphs.py); `NO_COLOR` and logs get the same characters without it.  With
`.settings set explain=on` both forms add lines saying why things are where they are
(commands/explain.py).  Session pool is not modelled: `!poolmap Session` says so.
"""
from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_MASK, PAGE_SIZE
from pooltag import display_tag, printable, tag_matches
from pooltag.tags import simplify_pattern

from .. import glyphs
from ..errors import DebuggerError
from ..explain import (BLOCK, Note, counted, explain_large, explain_small, explain_special,
                       note_lines)
from ..expr import evaluate
from ..freelists import cached_blocks
from ..glyphs import Glyph
from ..poolcensus import (CORRUPT, LARGE, NONPAGED_POOL, PAGED_POOL, PINNED_RULE, POOL_NAMES,
                          SESSION_POOL, SMALL, PageSummary, PoolCensus, small_page, take_census)
from ..poolread import (PREVIOUS, SPECIAL_REGION, TOO_LARGE, UNKNOWN_REGION, BigPage, PageCheck,
                        PoolHeader, PoolReader, SpecialBlock)
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable

    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

MAP_ROWS = 32                  # a pool map takes at most this many rows: N pages a cell beyond
MAX_CELLS = 128                # cells in a pool map row, on the widest terminal
PAGE_CELLS = 64                # cells in a page diagram row (a power of two: rows align)
MIN_CELLS = 8
FALLBACK_SIZE = (80, 24)       # when the width of the terminal cannot be learnt
TOP_HOLDERS = 6                # tags named as holding the pinned pages
NO_SESSION_POOL = ("Session pool: this machine models no session space, so there is no "
                   "session pool to map")

# what the page diagram draws, by the state of a stretch of bytes
ALLOCATED, CACHED_STATE, FREE_STATE, BAD_STATE, UNWALKED = (
    "allocated", "cached", "free", "bad", "unwalked")
SPECIAL_HEADER, SPECIAL_DATA, FILL, GUARD, LARGE_PAGE = (
    "special header", "special data", "fill", "guard", "large")


def terminal_width() -> int:
    return shutil.get_terminal_size(FALLBACK_SIZE).columns


# -- results ------------------------------------------------------------------------------------
@dataclass
class PoolMap:
    census: PoolCensus
    tag: str | None            # the tag pattern highlighted
    tag_pages: int             # pages holding a block of the tag
    tag_bytes: int             # bytes in use by the tag in the pool
    holders: dict[str, int]    # pinned pages each tag has a block on, most first
    notes: list[Note] = field(default_factory=list)    # explain mode


@dataclass
class Stretch:
    """Bytes of a page diagram and what holds them: a block (header included), a free chunk,
    special pool's header or fill, a guard page, a page of a large allocation."""

    address: int
    size: int
    state: str                 # allocated, cached, free, bad, unwalked, special header,
                               # special data, fill, guard, large
    tag: str                   # as the tag columns print it ("" where there is none)
    marked: bool               # holds the address


@dataclass
class PageDiagram:
    address: int               # the argument
    region: str                # as !pool names it
    form: str                  # "small", "special" or "large"
    start: int                 # the first byte drawn: the page, the special data page, the
                               # large allocation
    size: int                  # bytes drawn from start (a guard page is drawn beside them)
    cell: int                  # bytes a cell stands for: the pool block, or a page
    stretches: list[Stretch]
    summary: PageSummary | None    # a small page's figures
    broken: str | None         # where the walk stopped, as !pool says it
    special: SpecialBlock | None
    large: BigPage | None
    notes: list[Note] = field(default_factory=list)    # explain mode


# -- arguments ----------------------------------------------------------------------------------
def _pool_name(word: str) -> str | None:
    return next((name for name in POOL_NAMES if name.lower() == word.lower()), None)


def check_tag(text: str) -> str:
    """A tag pattern as typed (quotes removed), or the error saying what a tag is."""
    pattern = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    if (not pattern or not pattern.isascii() or printable(pattern) != pattern
            or simplify_pattern(pattern) is None):
        raise DebuggerError(f"'{text}' is not a pool tag: up to four characters, "
                            f"* and ? as wildcards")
    return pattern


# -- the pool map -------------------------------------------------------------------------------
def _holds(page: PageSummary, pattern: str) -> int:
    """Bytes the page has in use in blocks whose tag matches."""
    return sum(n for tag, n in page.tags.items() if _matches(pattern, tag))


@lru_cache(maxsize=4096)
def _matches(pattern: str, tag: str) -> bool:
    return tag_matches(pattern, tag)


def pool_map(session: "Session", pool: str, pattern: str | None) -> PoolMap:
    target = session.target
    cached = cached_blocks(target)
    census = take_census(PoolReader(target), pool, cached)
    holders: dict[str, int] = {}
    for page in census.pages:
        if page.pinned:
            for tag in page.tags:
                holders[tag] = holders.get(tag, 0) + 1
    top = dict(sorted(holders.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_HOLDERS])
    tag_pages = tag_bytes = 0
    if pattern is not None:
        for page in census.pages:
            held = _holds(page, pattern)
            tag_pages += bool(held)
            tag_bytes += held
    result = PoolMap(census, pattern, tag_pages, tag_bytes, top)
    if session.settings.get("explain"):
        result.notes = map_notes(census, cached_count=len(cached))
    return result


def map_notes(census: PoolCensus, cached_count: int) -> list[Note]:
    """Explain mode for a pool map: where the gap between `!vm` and `!poolused` lives."""
    pinned_free = sum(PAGE_SIZE - p.held for p in census.pages if p.pinned)
    notes = [Note("page", census.start,
                  f"!vm counts the pool's pages ({census.in_use} pages = "
                  f"{census.in_use * PAGE_SIZE} bytes) and !poolused the bytes in use "
                  f"({census.allocated}): the difference, {census.free} bytes, is free "
                  f"space inside pages the pool keeps")]
    if census.pinned:
        notes.append(Note("page", census.start,
                          f"a page goes back to the memory manager only when its last block "
                          f"is freed: the {counted(census.pinned, 'pinned page')} keep "
                          f"{pinned_free} "
                          f"bytes free that only small requests can use"))
    if census.cached:
        notes.append(Note("page", census.start,
                          f"freed blocks on lookaside and deferred-free lists: "
                          f"{census.cached} bytes (of {cached_count} such blocks in all pools);"
                          f" their headers still say Allocated, and !poolused does not count "
                          f"them"))
    return notes


def _cell_glyph(pages: list[PageSummary], pattern: str | None) -> Glyph:
    """One cell of the map: what its pages (one, or N) show most urgently."""
    if pattern is not None and any(_holds(p, pattern) for p in pages):
        return glyphs.TAGGED
    if any(p.kind == CORRUPT for p in pages):
        return glyphs.CORRUPT
    if 2 * sum(p.pinned for p in pages) >= len(pages):
        return glyphs.PINNED
    if all(p.kind == LARGE for p in pages):
        return glyphs.LARGE
    used = sum(p.used for p in pages)
    return glyphs.FULLNESS[min(4 * used // (len(pages) * PAGE_SIZE), 3)]


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, max(width, 20), subsequent_indent=indent) or [""]


def _legend(items: list[Glyph], width: int, first: str = "Legend: ") -> list[str]:
    """The glyphs and their meanings, wrapped between items (an item wider than the
    terminal is wrapped itself)."""
    if width < 2 * len(first) + 24:            # narrow: one glyph a line
        return [first.rstrip(), *(piece for g in items
                                  for piece in _wrap(f"  {g.char} {g.meaning}", width, "    "))]
    indent = " " * len(first)
    lines: list[str] = []
    line = first
    for g in items:
        item = f"{g.char} {g.meaning}"
        if line.strip() and len(line) + 2 + len(item) > width:
            lines.append(line)
            line = indent
        line += ("  " if line.strip() and line != first else "") + item
    lines.append(line)
    return [piece for text in lines for piece in _wrap(text, width, indent + "  ")]


def render_pool_map(result: PoolMap, session: "Session") -> str:
    arch = session.target.arch
    width = terminal_width()
    census = result.census
    lead = arch.hex_digits + 2
    cells = min(MAX_CELLS, (width - lead) // MIN_CELLS * MIN_CELLS)
    if cells < 2 * MIN_CELLS:                   # too narrow for addresses: cells only
        lead, cells = 0, max(MIN_CELLS, width // MIN_CELLS * MIN_CELLS)
    per_cell = max(1, -(-census.in_use // (cells * MAP_ROWS)))
    scale = "1 cell = 1 page" if per_cell == 1 else (
        f"1 cell = {per_cell} pages (the last may hold fewer)")
    name = f"{census.pool} pool"
    lines = _wrap(f"{name}: {census.in_use} pages in use ({census.in_use * PAGE_SIZE // 1024} "
                  f"Kb), in address order; {scale}", width, "  ")
    share = f"{census.pinned * 100 / census.in_use:.1f} %" if census.in_use else "0 %"
    facts = [f"in use: {census.allocated} bytes (what !poolused counts)",
             f"free: {census.free} bytes inside these pages"
             + (f", {census.cached} of them in freed blocks on lookaside and deferred-free "
                f"lists" if census.cached else ""),
             f"pinned: {counted(census.pinned, 'page')} ({share})"]
    if result.tag is not None:
        pages = counted(result.tag_pages, "page")
        facts.append(f"tag {result.tag}: {result.tag_bytes} bytes in use on {pages}, shown "
                     f"{glyphs.TAGGED.char}")
    for fact in facts:
        lines += _wrap("  " + fact, width, "    ")
    lines.append("")
    if not census.pages:
        lines.append(f"No page of {name} is in use.")
        return "\n".join(lines)
    groups = [census.pages[i:i + per_cell] for i in range(0, census.in_use, per_cell)]
    for row in range(0, len(groups), cells):
        chunk = groups[row:row + cells]
        text = "".join(_cell_glyph(pages, result.tag).char for pages in chunk)
        lines.append((f"{arch.fmt_ptr(chunk[0][0].address)}  " if lead else "") + text)
    lines.append("")
    shown = [*glyphs.FULLNESS, glyphs.PINNED, glyphs.LARGE, glyphs.CORRUPT]
    if result.tag is not None:
        shown.append(glyphs.TAGGED)
    lines += _legend(shown, width)
    if result.holders:
        held = ", ".join(f"{display_tag(tag).rstrip()} {n}"
                         for tag, n in result.holders.items())
        lines += _wrap(f"Pinned pages hold blocks of: {held} (pages each)", width, "  ")
    lines += note_lines(result.notes)
    return "\n".join(lines)


# -- the page diagram ---------------------------------------------------------------------------
def _stretch(h: PoolHeader, cached: set[int], address: int) -> Stretch:
    if not h.pool_type:
        state = FREE_STATE
    elif h.address + h.unit in cached:
        state = CACHED_STATE
    else:
        state = ALLOCATED
    return Stretch(h.address, h.size, state, display_tag(h.tag), h.contains(address))


def _broken(arch: "Arch", kind: str, at: int, last: int) -> str:
    """Where a walk stopped, in !pool's words."""
    where = arch.fmt_ptr(at)
    if kind == PREVIOUS:
        return f"Bad previous allocation size @{where}, last size was {last:x}"
    if kind == TOO_LARGE:
        return f"Bad allocation size @{where}, too large"
    return f"Bad allocation size @{where}, zero is invalid"


def small_diagram(target: "Target", reader: PoolReader, address: int, region: str,
                  data: bytes) -> PageDiagram:
    page = address & ~PAGE_MASK
    cached = cached_blocks(target)
    walk = reader.walk(page, data)
    check: PageCheck | None = None
    broken = None
    if walk.error is None:
        headers = walk.headers
        stretches = [_stretch(h, set(cached), address) for h in headers]
    else:
        check = reader.check_page(page)
        headers = check.headers
        broken = _broken(target.arch, walk.error.kind, walk.error.address, walk.error.last_size)
        stretches = [_stretch(h, set(cached), address) for h in headers]
        bad = {p.address for p in check.problems if p.kind == "previous"}
        for s in stretches:
            if s.address in bad:
                s.state = BAD_STATE
        for p in check.problems:
            if p.kind == "region":
                unit = reader.unit
                stretches.append(Stretch(p.address, unit, BAD_STATE, "",
                                         p.address <= address < p.address + unit))
                if p.end - p.address > unit:
                    stretches.append(Stretch(p.address + unit, p.end - p.address - unit,
                                             UNWALKED, "", p.address + unit <= address < p.end))
        stretches.sort(key=lambda s: s.address)
    kind = SMALL if check is None else CORRUPT
    summary = small_page(page, headers, cached, kind)
    return PageDiagram(address, region, "small", page, PAGE_SIZE, reader.unit, stretches,
                       summary, broken, None, None)


def special_diagram(target: "Target", address: int, region: str,
                    block: SpecialBlock) -> PageDiagram:
    unit = target.arch.block
    header = target.profile.special_header.sizeof()
    page, end = block.page, block.data + block.size
    marked = block.data <= address < end
    tag = display_tag(block.tag)
    if block.data == page:                 # catches underruns: its header ends the page
        stretches = [Stretch(page, block.size, SPECIAL_DATA, tag, marked),
                     Stretch(end, page + PAGE_SIZE - header - end, FILL, "", False),
                     Stretch(page + PAGE_SIZE - header, header, SPECIAL_HEADER, "", False)]
    else:
        stretches = [Stretch(page, header, SPECIAL_HEADER, "", False),
                     Stretch(page + header, block.data - page - header, FILL, "", False),
                     Stretch(block.data, block.size, SPECIAL_DATA, tag, marked)]
        if end < page + PAGE_SIZE:
            stretches.append(Stretch(end, page + PAGE_SIZE - end, FILL, "", False))
    guard = page - PAGE_SIZE if block.data == page else page + PAGE_SIZE
    stretches.append(Stretch(guard, PAGE_SIZE, GUARD, "", guard <= address < guard + PAGE_SIZE))
    stretches.sort(key=lambda s: s.address)
    return PageDiagram(address, region, "special", page, PAGE_SIZE, unit,
                       [s for s in stretches if s.size > 0], None, None, block, None)


def large_diagram(address: int, region: str, big: BigPage) -> PageDiagram:
    pages = max(-(-big.nbytes // PAGE_SIZE), 1)
    tag = display_tag(big.tag)
    stretches = [Stretch(big.va + i * PAGE_SIZE, PAGE_SIZE, LARGE_PAGE, tag if not i else "",
                         big.va + i * PAGE_SIZE <= address < big.va + (i + 1) * PAGE_SIZE)
                 for i in range(pages)]
    return PageDiagram(address, region, "large", big.va, pages * PAGE_SIZE, PAGE_SIZE, stretches,
                       None, None, None, big)


def _special_beside(reader: PoolReader, address: int) -> SpecialBlock | None:
    """The special block whose guard page holds `address`: the page before it (special pool
    catching overruns) or after it (catching underruns)."""
    for neighbour, at_start in ((address - PAGE_SIZE, False), (address + PAGE_SIZE, True)):
        block = reader.special_block(neighbour)
        if block is not None and (block.data == block.page) == at_start:
            return block
    return None


def page_diagram(session: "Session", address: int) -> PageDiagram:
    target = session.target
    reader = PoolReader(target)
    fmt = target.arch.fmt_ptr
    region = reader.region(address)
    page = address & ~PAGE_MASK
    if region == SPECIAL_REGION:
        block = reader.special_block(address) or _special_beside(reader, address)
        if block is None:
            raise DebuggerError(f"Special pool page {fmt(page)} could not be read: no special "
                                f"allocation is on it or beside it (a freed pair)")
        result = special_diagram(target, address, region, block)
        if session.settings.get("explain"):
            result.notes = explain_special(target, block)
        return result
    if region == UNKNOWN_REGION:
        ranges = reader.ranges()
        inside = any(lo <= address < hi for lo, hi in (ranges.nonpaged, ranges.paged))
        if inside:
            raise DebuggerError(f"Pool page {fmt(page)} could not be read: no pool uses it now "
                                f"(a freed page)")
        raise DebuggerError(f"{fmt(address)} is not a pool address: not in nonpaged, paged or "
                            f"special pool")
    big = reader.big_page_at(address)
    if big is not None:
        result = large_diagram(address, region, big)
        if session.settings.get("explain"):
            result.notes = explain_large(target, big)
        return result
    data = reader.read_page(page)
    if data is None:
        raise DebuggerError(f"Pool page {fmt(page)} could not be read")
    result = small_diagram(target, reader, address, region, data)
    if session.settings.get("explain"):
        walk = reader.walk(page, data)
        check = reader.check_page(page) if walk.error is not None else None
        marked = {s.address for s in result.stretches if s.marked}
        result.notes = explain_small(target, page, walk.headers, check, cached_blocks(target),
                                     marked | {s.address for s in result.stretches
                                               if s.state in (FREE_STATE, CACHED_STATE)})
    return result


# -- drawing a page -------------------------------------------------------------------------------
def _cell_glyphs(s: Stretch, cells: int, unit: int) -> str:
    """The cells of one stretch, its first cell the header where it has one."""
    if s.state == ALLOCATED:
        body = glyphs.MARKED if s.marked else glyphs.DATA
        return (glyphs.HEADER.char + body.char * (cells - 1)) if unit != PAGE_SIZE else (
            body.char * cells)
    if s.state == CACHED_STATE:
        body = glyphs.MARKED if s.marked else glyphs.CACHED
        return glyphs.HEADER.char + body.char * (cells - 1)
    if s.state == FREE_STATE:
        body = glyphs.MARKED if s.marked else glyphs.FREE
        return glyphs.FREE_HEADER.char + body.char * (cells - 1)
    if s.state == BAD_STATE:           # a rejected header, and the block it claims
        body = glyphs.MARKED if s.marked else glyphs.DATA
        return glyphs.BAD.char + body.char * (cells - 1)
    if s.state in (LARGE_PAGE, SPECIAL_DATA):
        return (glyphs.MARKED if s.marked else glyphs.DATA).char * cells
    single = {UNWALKED: glyphs.UNWALKED, SPECIAL_HEADER:
              glyphs.SPECIAL_HEADER, FILL: glyphs.FILL, GUARD: glyphs.GUARD}[s.state]
    return single.char * cells


def _label(s: Stretch) -> str:
    if s.state in (ALLOCATED, CACHED_STATE, LARGE_PAGE, SPECIAL_DATA):
        text = s.tag.rstrip() or s.tag
    elif s.state == FREE_STATE:
        text = "free"
    elif s.state == BAD_STATE:
        text = "bad header"
    elif s.state == GUARD:
        text = "guard page"
    else:
        return ""
    return ("*" if s.marked else "") + text


def _draw(stretches: list[Stretch], start: int, end: int, cell: int, per_row: int,
          origin: int, lead: int, address: int, room: int) -> list[str]:
    """Rows of cells for [start, end) (offsets from `origin` before each) and, under each, the
    labels of the stretches that begin in it (which may run `room` columns)."""
    count = (end - start) // cell
    text = [" "] * count
    labels: list[tuple[int, int, str]] = []
    for s in stretches:
        lo, hi = max(s.address, start), min(s.address + s.size, end)
        if lo >= hi:
            continue
        # a cell shows what holds its first byte
        first, last = -(-(lo - start) // cell), -(-(hi - start) // cell)
        if first >= last:
            continue
        drawn = _cell_glyphs(s, last - first, cell)
        if s.address < start:                  # a stretch that began before: no header here
            drawn = drawn[-1] * (last - first)
        text[first:last] = drawn
        if s.address >= start and _label(s):
            rank = 0 if s.marked else 1 if s.state in (ALLOCATED, CACHED_STATE, BAD_STATE) else 2
            labels.append((first, rank, _label(s)))
        if s.state == GUARD and s.marked and start <= address < end:
            text[(address - start) // cell] = glyphs.MARKED.char
    lines = []
    for row in range(0, count, per_row):
        offset = start - origin + row * cell
        prefix = (("-" if offset < 0 else "") + f"{abs(offset):x}").rjust(lead - 2) + "  " \
            if lead else ""
        lines.append(prefix + "".join(text[row:row + per_row]))
        mine = [(col - row, rank, t) for col, rank, t in labels if row <= col < row + per_row]
        if mine:
            lines.append(" " * len(prefix) + _place(mine, max(room, per_row)).rstrip())
    return lines


def _place(labels: list[tuple[int, int, str]], width: int) -> str:
    """Labels (column, priority, text) on one line: the most telling first (the starred block,
    then blocks in use, then the rest), each at its column when that is free, cut short
    before the next one placed; a label with no room for two characters is left out."""
    taken: list[tuple[int, int]] = []               # [start, end) of the labels placed
    line = [" "] * width
    for col, _, text in sorted(labels, key=lambda label: (label[1], label[0])):
        if col >= width or any(lo - 1 <= col < hi + 1 for lo, hi in taken):
            continue
        end = min([lo - 1 for lo, _ in taken if lo > col] + [width])
        shown = text[:end - col]
        if len(shown) < min(2, len(text)):
            continue
        line[col:col + len(shown)] = shown
        taken.append((col, col + len(shown)))
    return "".join(line)


def render_page_diagram(result: PageDiagram, session: "Session") -> str:
    arch = session.target.arch
    fmt = arch.fmt_ptr
    width = terminal_width()
    cell = result.cell
    if result.form == "large":
        lead = len(f"{result.size:x}") + 2
    else:                          # offsets from the page: "e00"; "1000" and "-200" beside it
        lead = (4 if result.form == "special" else 3) + 2
    room = width - lead
    if room < 2 * MIN_CELLS:
        lead, room = 0, width
    per_row = MIN_CELLS
    while per_row * 2 <= min(room, PAGE_CELLS):
        per_row *= 2
    lines: list[str] = []
    if result.form == "large":
        big = result.large
        assert big is not None
        lines += _wrap(f"Large allocation {fmt(big.va)} ({result.region}): tag "
                       f"{display_tag(big.tag)}, 0x{big.nbytes:x} bytes on "
                       f"{result.size // PAGE_SIZE} pages; 1 cell = 1 page", width, "  ")
    elif result.form == "special":
        block = result.special
        assert block is not None
        lines += _wrap(f"Special pool page {fmt(block.page)} and its guard page: 0x"
                       f"{block.size:x} bytes of {display_tag(block.tag)} data at "
                       f"{fmt(block.data)}; 1 cell = {cell} bytes, offsets from the page",
                       width, "  ")
    else:
        lines += _wrap(f"Pool page {fmt(result.start)} ({result.region}), block by block: "
                       f"1 cell = {cell} bytes, 0x{per_row * cell:x} bytes a row", width, "  ")
    lines.append("")
    body = [s for s in result.stretches if s.state != GUARD]
    guard = next((s for s in result.stretches if s.state == GUARD), None)
    if guard is not None and guard.address < result.start:
        lines += _draw([guard], result.start - per_row * cell, result.start, cell, per_row,
                       result.start, lead, result.address, room)
    lines += _draw(body, result.start, result.start + result.size, cell, per_row, result.start,
                   lead, result.address, room)
    if guard is not None and guard.address > result.start:
        lines += _draw([guard], guard.address, guard.address + per_row * cell, cell, per_row,
                       result.start, lead, result.address, room)
        lines += _wrap(f"(the guard page goes on to {fmt(guard.address + PAGE_SIZE - 1)})",
                       width)
    lines.append("")
    lines += _facts(result, width, fmt)
    lines += _legend(_diagram_glyphs(result), width)
    lines += note_lines([n for n in result.notes if n.about != BLOCK])
    lines += note_lines([n for n in result.notes if n.about == BLOCK])
    return "\n".join(lines)


def _facts(result: PageDiagram, width: int, fmt: "Callable[[int], str]") -> list[str]:
    lines: list[str] = []
    if result.broken is not None:
        lines += _wrap(f"The walk of the page stops: {result.broken}", width, "  ")
    marked = next((s for s in result.stretches if s.marked), None)
    if marked is not None and marked.state != GUARD:
        lines += _wrap(f"{fmt(result.address)} is {_where(result, marked, fmt)}"
                       + (f" ({marked.tag.rstrip()})" if marked.tag.strip() else ""),
                       width, "  ")
    elif marked is not None and result.special is not None:
        block = result.special
        end = block.data + block.size
        if result.address >= end:
            where = f"0x{result.address - end:x} bytes past the end of the data"
        else:
            where = f"0x{block.data - result.address:x} bytes before the start of the data"
        lines += _wrap(f"{fmt(result.address)} is in the guard page, {where} "
                       f"({display_tag(block.tag).rstrip()} at {fmt(block.data)})", width, "  ")
    if result.summary is not None:
        s = result.summary
        text = (f"In use 0x{s.used:x} bytes, free 0x{s.free:x}"
                + (f", freed blocks on lookaside/deferred lists 0x{s.cached:x}" if s.cached
                   else "") + (f"; pinned ({PINNED_RULE})" if s.pinned else ""))
        lines += _wrap(text, width, "  ")
    return lines


def _where(result: PageDiagram, marked: Stretch, fmt: "Callable[[int], str]") -> str:
    """Where in the marked stretch the address is, in words."""
    into = result.address - marked.address
    at = f"at {fmt(marked.address)}"
    if marked.state == BAD_STATE:
        return f"in the header that cannot be right, {at}"
    if marked.state == UNWALKED:
        return f"0x{into:x} bytes into the bytes the walk cannot follow, {at}"
    if marked.state in (LARGE_PAGE, SPECIAL_DATA):
        return f"0x{result.address - result.start:x} bytes into the allocation at " \
               f"{fmt(result.start)}"
    what = {FREE_STATE: "free chunk", CACHED_STATE: "freed block"}.get(marked.state, "block")
    if into < result.cell:
        return f"in the header of the {what} {at}"
    return f"0x{into - result.cell:x} bytes into the data of the {what} {at}"


def _diagram_glyphs(result: PageDiagram) -> list[Glyph]:
    """The legend's glyphs: those the diagram draws."""
    used = {c for s in result.stretches for c in _cell_glyphs(s, 2, result.cell)}
    if any(s.marked for s in result.stretches):
        used.add(glyphs.MARKED.char)
    order = [glyphs.HEADER, glyphs.DATA, glyphs.MARKED, glyphs.CACHED, glyphs.FREE_HEADER,
             glyphs.FREE, glyphs.BAD, glyphs.UNWALKED, glyphs.SPECIAL_HEADER, glyphs.FILL,
             glyphs.GUARD]
    return [g for g in order if g.char in used]


# -- the command ----------------------------------------------------------------------------------
def render_poolmap(result: PoolMap | PageDiagram, session: "Session") -> str:
    if isinstance(result, PoolMap):
        return render_pool_map(result, session)
    return render_page_diagram(result, session)


@command("!poolmap", syntax="!poolmap [NonPaged|Paged|Session] [Tag] | Address",
         render=render_poolmap,
         help="Draw a pool in the terminal: one cell per page, how full it is and what holds "
              "it, with the pool's pages, bytes in use, free bytes and pinned pages; or draw the "
              "page holding Address block by block.\n"
              "A pinned page is mostly free but kept: at most 1/8 of it in use, in at most 4 "
              "blocks. Tag (wildcards * and ?) marks the pages holding its blocks.\n"
              "With .settings set explain=on, lines say why each thing is where it is.")
def poolmap(session: "Session", args: str) -> PoolMap | PageDiagram | str:
    words = args.split()
    pool = _pool_name(words[0]) if words else NONPAGED_POOL
    if pool is None:
        try:
            address = evaluate(args, session.target, session.settings["radix"])
        except DebuggerError:
            if len(words) == 1:
                raise DebuggerError(f"'{words[0]}' is neither a pool (NonPaged, Paged, Session) "
                                    f"nor an address; to mark a tag: !poolmap NonPaged "
                                    f"{words[0]}") from None
            raise
        return page_diagram(session, address)
    if len(words) > 2:
        raise DebuggerError("Usage: !poolmap [NonPaged|Paged|Session] [Tag] | Address")
    pattern = check_tag(words[1]) if len(words) == 2 else None
    if pool == SESSION_POOL:
        return NO_SESSION_POOL
    return pool_map(session, pool if pool == PAGED_POOL else NONPAGED_POOL, pattern)
