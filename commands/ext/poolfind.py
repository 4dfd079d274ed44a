"""`!poolfind`: every block of a tag, from the big-page table and then the pool pages.

Both syntaxes: `!poolfind TagString|TagValue [PoolType]` (PoolType 0 nonpaged, the default,
1 paged, 2 special pool, 4 session pool; a TagValue starts with `0x`) and the newer options
`-tag "AB C"`, `-nonpaged`, `-paged`, `-small`, `-large` and `-x "command"`, which runs a
command for each block found with `@$extret` standing for the block's address.  `?` matches
one character of the tag, `*` any run.

Layout: the Win7-era extension of the seed cases (seeds/001, formats.md 7.2/7.3):

```

Scanning large pool allocation table for Tag: Leak (<table> : <table end>)

*fffff8a006a00000 :large page allocation, Tag  is Leak, size  is 0xfa000 bytes

Searching NonPaged pool (<start> : <end>) for Tag: Leak

*<header> size:   c0 previous size:   40  (Allocated) SeSd
```

Large allocations are listed whatever their pool (the seed's paged `Leak` blocks are found by a
nonpaged search); small blocks are those of the searched pool's pages.  Rows carry the leading
star and the ` (Protected)` suffix of the Win7 x64 transcript.  ^C stops the scan with
`...terminating - searched pool to <page>`.

The scan looks for the tag's literal bytes in each readable page of the pool with `find`, then
checks the header around each match (TagScan); a tag whose first three characters are
wildcards walks every page instead.
"""
from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from kdsim.layouts import PAGE_SIZE, PROTECTED_POOL
from pooltag import display_tag, normalize_tag, tag_from_ulong, tag_matches, tag_to_ulong
from pooltag.tags import normalize_pattern

from ..dispatch import execute
from ..errors import DebuggerError
from ..poolread import BigPage, PoolHeader, PoolReader, SpecialBlock, row_text, special_line
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch

    from ..session import Session

POOL_TYPES = {0: "NonPaged", 1: "Paged", 2: "Special", 4: "Session"}
USAGE = """\
!poolfind TagString|TagValue [PoolType]
!poolfind TagString|TagValue [-nonpaged|-paged] [-small|-large] [-x "command"]
  PoolType: 0 nonpaged (default), 1 paged, 2 special pool, 4 session pool
  !poolfind Mm*               - Find all Mm allocations in nonpaged pool.
  !poolfind MmSt -paged       - Find MmSt allocations in paged pool.
  !poolfind -tag "AB C"       - Find pool tag which contains a space.
  !poolfind -x "dt nt!_MDL @$extret" Mdl  - Find and print MDL allocations."""


@dataclass
class PoolSearch:
    pool: str                                 # "NonPaged", "Paged", "Special", "Session"
    start: int
    end: int
    headers: list[PoolHeader] = field(default_factory=list)
    special: list[SpecialBlock] = field(default_factory=list)


@dataclass
class PoolFind:
    tag: str                                  # as the search lines print it
    table: tuple[int, int] | None             # the big-page table's span, if it was scanned
    large: list[BigPage] = field(default_factory=list)
    searches: list[PoolSearch] = field(default_factory=list)
    stopped_at: int | None = None             # ^C: the page the scan had reached
    output: dict[int, str] = field(default_factory=dict)   # -x: printed, by block address


@dataclass(frozen=True)
class Query:
    pattern: str                              # a tag pattern as pooltag.tag_matches takes it
    pool_type: int = 0
    small: bool = True
    large: bool = True
    command: str | None = None


# -- arguments ----------------------------------------------------------------------------------
def parse_query(args: str) -> Query:
    try:
        words = shlex.split(args, posix=True)
    except ValueError:
        raise usage() from None
    tag: str | None = None
    pool_type: int | None = None
    small = large = True
    command_text = None
    rest = iter(words)
    for word in rest:
        low = word.lower()
        if low in ("-nonpaged", "-paged"):
            pool_type = 1 if low == "-paged" else 0
        elif low in ("-small", "-large"):
            small, large = low == "-small", low == "-large"
        elif low in ("-tag", "-x"):
            value = next(rest, None)
            if value is None:
                raise usage()
            if low == "-tag":
                tag = value
            else:
                command_text = value
        elif word.startswith("-") and len(word) > 1:
            raise usage()
        elif tag is None:
            tag = word
        elif pool_type is None and word.isdigit() and int(word) in POOL_TYPES:
            pool_type = int(word)
        else:
            raise usage()
    if tag is None:
        raise usage()
    return Query(_pattern(tag), pool_type or 0, small, large, command_text)


def _pattern(tag: str) -> str:
    """A TagValue (`0x...`) as its four characters; a TagString as typed, at most four
    characters unless it holds a `*`."""
    if tag.startswith("0x"):
        try:
            return tag_from_ulong(int(tag[2:], 16))
        except ValueError:
            raise usage() from None
    if (len(normalize_pattern(tag)) > 4 and "*" not in tag) or not tag.isascii():
        raise usage()
    return tag


def usage() -> DebuggerError:
    return DebuggerError(USAGE)


# -- matching -----------------------------------------------------------------------------------
def needle_of(pattern: str) -> tuple[int, bytes]:
    """What to search the pages for: the longest run of literal characters among the tag's
    first three (before any `*`), as (position in the tag, bytes).  The fourth byte is left
    to the check of each match, since it may carry the protected bit.  Empty when those
    three are all wildcards."""
    chars = normalize_pattern(pattern)
    star = chars.find("*")
    chars = chars[:3] if star < 0 else chars[:min(star, 3)]
    best, start = (0, ""), None
    for pos in range(len(chars) + 1):
        literal = pos < len(chars) and chars[pos] != "?"
        if literal and start is None:
            start = pos
        elif not literal and start is not None:
            if pos - start > len(best[1]):
                best = (start, chars[start:pos])
            start = None
    return best[0], best[1].encode("latin-1")


# -- scanning -----------------------------------------------------------------------------------
class TagScan:
    """Collects the headers in [start, end) whose tag matches, in address order; `position`
    is the page the scan has reached, for `...terminating - searched pool to` on ^C (what was
    found before it stays in `found`).

    Pages are searched for the tag's literal bytes; a match counts where a header sits that
    its neighbours agree with (PoolReader.headers_with) and whose tag matches, either value of
    the protected bit.  A tag whose first three characters are wildcards walks every page."""

    def __init__(self, reader: PoolReader, start: int, end: int, pattern: str):
        self.reader = reader
        self.start = self.position = start
        self.end = end
        self.pattern = pattern
        self.found: list[PoolHeader] = []

    def run(self) -> None:
        reader, pattern, found = self.reader, self.pattern, self.found
        position, needle = needle_of(pattern)
        wild = "?" in pattern or "*" in pattern
        key = tag_to_ulong(normalize_tag(pattern)) if not wild else None
        for page, data in reader.pages(self.start, self.end):
            self.position = page
            if needle:
                headers = reader.headers_with(page, data, needle, position)
            else:                                 # nothing literal to look for: walk the page
                headers = reader.walk(page, data).headers
            if not headers:
                continue
            if key is not None:
                found.extend([h for h in headers if h.tag & ~PROTECTED_POOL == key])
            else:
                found.extend([h for h in headers
                              if tag_matches(pattern, h.tag & ~PROTECTED_POOL)])


def find(session: "Session", query: Query) -> PoolFind:
    reader = PoolReader(session.target)
    result = PoolFind(query.pattern, None)
    if query.large:
        result.table = reader.big_table_span()
        result.large = [b for b in reader.big_pages()
                        if tag_matches(query.pattern, b.tag & ~PROTECTED_POOL)]
    if query.small:
        result.searches.append(_search_small(reader, query, result))
    if query.command is not None:
        for address in block_addresses(result):
            result.output[address] = _run_for(session, query.command, address)
    return result


def block_addresses(result: PoolFind) -> list[int]:
    """The caller's address of every block found (what `@$extret` stands for)."""
    return ([b.va for b in result.large]
            + [h.address + h.unit for s in result.searches for h in s.headers]
            + [b.data for s in result.searches for b in s.special])


def _search_small(reader: PoolReader, query: Query, result: PoolFind) -> PoolSearch:
    ranges = reader.ranges()
    pool = POOL_TYPES[query.pool_type]
    span = {0: ranges.nonpaged, 1: ranges.paged, 2: ranges.special}.get(query.pool_type)
    if span is None:                          # no session space on this machine
        return PoolSearch(pool, 0, 0)
    search = PoolSearch(pool, *span)
    if query.pool_type == 2:
        search.special = [b for b in _special_blocks(reader, *span)
                          if tag_matches(query.pattern, b.tag & ~PROTECTED_POOL)]
        return search
    scan = TagScan(reader, span[0], span[1], query.pattern)
    search.headers = scan.found
    try:
        scan.run()
    except KeyboardInterrupt:
        result.stopped_at = scan.position
    return search


def _special_blocks(reader: PoolReader, start: int, end: int) -> Iterator[SpecialBlock]:
    """Special pool keeps one block per page (PoolReader.special_block)."""
    for run, size in reader.valid_runs(start, end):
        for page in range(run, run + size, PAGE_SIZE):
            block = reader.special_block(page)
            if block is not None:
                yield block


def _run_for(session: "Session", text: str, address: int) -> str:
    """Run `-x`'s command for one block and keep what it printed, for the rows."""
    line = re.sub(r"@\$extret", session.target.arch.fmt_ptr(address), text, flags=re.IGNORECASE)
    saved = session.stdout, session.log, session.settings["color"]
    # plain text: the rows are printed (sanitised, then coloured) by the session afterwards
    session.stdout, session.log, session.settings["color"] = io.StringIO(), None, "off"
    try:
        execute(session, line)
        return session.stdout.getvalue()
    finally:
        session.stdout, session.log, session.settings["color"] = saved


# -- rendering ----------------------------------------------------------------------------------
def large_row(arch: "Arch", big: BigPage) -> str:
    """The seed's line for a large allocation (formats.md 7.2, seeds/001)."""
    return (f"*{arch.fmt_ptr(big.va)} :large page allocation, Tag  is {display_tag(big.tag)}, "
            f"size  is 0x{big.nbytes:x} bytes")


def render_poolfind(result: PoolFind, session: "Session") -> str:
    arch = session.target.arch
    lines = [""]

    def add(row: str, address: int) -> None:
        lines.append(row)
        if result.output.get(address):
            lines.extend(result.output[address].rstrip("\n").split("\n"))

    if result.table is not None:
        start, end = (arch.fmt_ptr(a) for a in result.table)
        lines += [f"Scanning large pool allocation table for Tag: {result.tag} "
                  f"({start} : {end})", ""]
        for big in result.large:
            add(large_row(arch, big), big.va)
        if result.large:
            lines.append("")
    for search in result.searches:
        if search.start == search.end:
            continue
        lines += [f"Searching {search.pool} pool ({arch.fmt_ptr(search.start)} : "
                  f"{arch.fmt_ptr(search.end)}) for Tag: {result.tag}", ""]
        if result.output:
            for h in search.headers:
                add(row_text(arch, h, "*", ""), h.address + h.unit)
        else:
            lines.extend([row_text(arch, h, "*", "") for h in search.headers])
        for block in search.special:
            add(special_line(arch, block, tag_marker=""), block.data)
        if search.headers or search.special:
            lines.append("")
    if result.stopped_at is not None:
        lines.append(f"...terminating - searched pool to {arch.fmt_ptr(result.stopped_at)}")
    return "\n".join(lines) + "\n"


@command("!poolfind", syntax='!poolfind TagString|TagValue [PoolType] | [-tag "Tag"] '
                               '[-nonpaged|-paged] [-small|-large] [-x "command"]',
         render=render_poolfind,
         help="Find every pool block of a tag: first in the large-allocation table, then in "
              "the pages of nonpaged pool (PoolType 0, -nonpaged), paged pool (1, -paged) or "
              "special pool (2).  ? and * are wildcards; a TagValue starts with 0x.  "
              "-x runs a command for each block, @$extret being its address.")
def poolfind(session: "Session", args: str) -> PoolFind:
    return find(session, parse_query(args))
