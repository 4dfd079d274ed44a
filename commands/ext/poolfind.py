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

The scan runs one regex over each readable page of the pool for the tag's bytes, then checks
the header around each match with integer operations on the page (TagScan,
PoolReader.find_headers); a tag whose first three characters are wildcards walks every page
instead.  Blocks are kept as parallel arrays (poolread.HeaderRows) that the renderer formats
directly; the PoolHeader objects JSON prints are built only when asked for.
"""
from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from kdsim.layouts import PAGE_SIZE, PROTECTED_POOL
from pooltag import display_tag, tag_from_ulong, tag_matches
from pooltag.tags import normalize_pattern

from ..dispatch import execute
from ..errors import DebuggerError
from ..poolread import BigPage, HeaderRows, PoolHeader, PoolReader, SpecialBlock, special_line
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


# One pool's search.  The scan keeps its blocks as `rows` (poolread.HeaderRows), which the text
# renderer formats directly; `headers`, the same blocks as the PoolHeader objects JSON prints,
# is built from the rows on first use by `headers_of`, the scanning reader's.  (A comment, not
# a docstring: docs/json.md shows a result's docstring, and JSON has no rows.)
@dataclass
class PoolSearch:
    pool: str                                 # "NonPaged", "Paged", "Special", "Session"
    start: int
    end: int
    headers: list[PoolHeader] = field(init=False, repr=False, compare=False)
    special: list[SpecialBlock] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows = HeaderRows()
        self.headers_of: Callable[[HeaderRows], list[PoolHeader]] | None = None

    def __getattr__(self, name: str) -> Any:
        """Only reached for `headers` before it is built (no other attribute is missing)."""
        if name != "headers":
            raise AttributeError(name)
        headers_of = self.headers_of              # None: no scan, so no rows
        self.headers = headers_of(self.rows) if headers_of else []
        return self.headers


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
    """The longest run of literal characters among the tag's first three (before any `*`),
    as (position in the tag, bytes).  The fourth byte is left to the check of each match,
    since it may carry the protected bit.  Empty when those three are all wildcards."""
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


@dataclass(frozen=True)
class Finder:
    """What a scan searches the pages for: `regex` matches `offset` bytes into a header (in
    its PoolTag); `exact` when every match is a tag of the pattern, else each found tag is
    checked against it.  The regex is a literal byte and a lookahead for the rest: the
    engine's fast search for a literal does the scan, and matches may overlap (a tag may
    start one byte into another)."""

    regex: re.Pattern[bytes]
    offset: int
    exact: bool


def finder_of(pattern: str) -> Finder | None:
    """A pattern without `*` is its four bytes from its first literal one, `?` any byte and
    the fourth either value of the protected bit: exact.  With `*`, the needle_of bytes.
    None when the tag's first three characters are wildcards (the scan walks the pages)."""
    chars = normalize_pattern(pattern)
    if "*" in chars:
        position, needle = needle_of(pattern)
        parts = [re.escape(needle[i:i + 1]) for i in range(len(needle))]
        return _finder(parts, 4 + position, False) if parts else None
    lead = len(chars) - len(chars.lstrip("?"))
    if lead >= 3:
        return None
    parts = [b"." if c == "?" else re.escape(c.encode("latin-1")) for c in chars[lead:3]]
    last = ord(chars[3])                      # below 0x80: a TagValue's bit 31 is stripped
    parts.append(b"." if chars[3] == "?" else
                 b"[" + re.escape(bytes([last])) + re.escape(bytes([last | 0x80])) + b"]")
    return _finder(parts, 4 + lead, True)


def _finder(parts: list[bytes], offset: int, exact: bool) -> Finder:
    rest = b"(?=" + b"".join(parts[1:]) + b")" if len(parts) > 1 else b""
    return Finder(re.compile(parts[0] + rest, re.DOTALL), offset, exact)


# -- scanning -----------------------------------------------------------------------------------
class TagScan:
    """Collects the headers in [start, end) whose tag matches, in address order, as rows;
    `position` is the page the scan has reached, for `...terminating - searched pool to` on
    ^C (what was found before it stays in `rows`).

    Pages are searched with the pattern's Finder; a match counts where a header sits that its
    neighbours agree with (PoolReader.find_headers) and whose tag matches, either value of
    the protected bit.  A tag whose first three characters are wildcards walks every page."""

    def __init__(self, reader: PoolReader, start: int, end: int, pattern: str):
        self.reader = reader
        self.start = start
        self.end = end
        self.pattern = pattern
        self.rows = HeaderRows()

    @property
    def position(self) -> int:
        return self.start if self.rows.reached is None else self.rows.reached

    def run(self) -> None:
        reader, rows = self.reader, self.rows
        finder = finder_of(self.pattern)
        pages = reader.pages(self.start, self.end)
        try:
            if finder is not None:
                reader.find_headers(pages, finder.regex, finder.offset, rows)
            else:                             # nothing literal to look for: walk the pages
                for page, data in pages:
                    rows.reached = page
                    for h in reader.walk(page, data).headers:
                        rows.append(h.address, reader.word_of(h), h.process)
        finally:
            if finder is None or not finder.exact:
                self.rows = self._matching(rows)

    def _matching(self, rows: HeaderRows) -> HeaderRows:
        """The rows whose tag, protected bit stripped, matches the pattern (once per tag)."""
        verdicts: dict[int, bool] = {}
        kept = HeaderRows(reached=rows.reached)
        for i, (address, word) in enumerate(zip(rows.addresses, rows.words)):
            tag = (word >> 32) & ~PROTECTED_POOL
            ok = verdicts.get(tag)
            if ok is None:
                ok = verdicts[tag] = tag_matches(self.pattern, tag)
            if ok:
                kept.append(address, word, rows.processes.get(i))
        return kept


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
        for address in block_addresses(result, reader.unit):
            result.output[address] = _run_for(session, query.command, address)
    return result


def block_addresses(result: PoolFind, unit: int) -> list[int]:
    """The caller's address of every block found (what `@$extret` stands for): a small
    block's data follows its header of one `unit`."""
    return ([b.va for b in result.large]
            + [address + unit for s in result.searches for address in s.rows.addresses]
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
    try:
        scan.run()
    except KeyboardInterrupt:
        result.stopped_at = scan.position
    search.rows, search.headers_of = scan.rows, reader.headers_of
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
    saved = session.stdout, session.log
    session.stdout, session.log = io.StringIO(), None
    try:
        execute(session, line)
        return session.stdout.getvalue()
    finally:
        session.stdout, session.log = saved


# -- rendering ----------------------------------------------------------------------------------
def large_row(arch: "Arch", big: BigPage) -> str:
    """The seed's line for a large allocation (formats.md 7.2, seeds/001)."""
    return (f"*{arch.fmt_ptr(big.va)} :large page allocation, Tag  is {display_tag(big.tag)}, "
            f"size  is 0x{big.nbytes:x} bytes")


def render_poolfind(result: PoolFind, session: "Session") -> str:
    reader = PoolReader(session.target)
    arch = reader.arch
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
        rows = reader.rows_text(search.rows, "*", "")
        if result.output:
            for address, text in zip(search.rows.addresses, rows):
                add(text, address + arch.block)
        else:
            lines += rows
        for block in search.special:
            add(special_line(arch, block, tag_marker=""), block.data)
        if rows or search.special:
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
