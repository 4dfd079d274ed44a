"""`!poolfind`: every block of a tag, from the big-page table and then the pool pages.

Both syntaxes: `!poolfind TagString|TagValue [PoolType]` (PoolType 0 nonpaged, the default,
1 paged, 2 special pool, 4 session pool; a TagValue starts with `0x`) and the newer options
`-tag "AB C"`, `-nonpaged`, `-paged`, `-session`, `-small`, `-large` and `-x "command"`,
which runs a command for each block found with `@$extret` standing for the block's address.  `?` matches
one character of the tag, `*` any run.

Layout: the Win7-era extension of the seed cases (seeds/001, formats.md 7.2/7.3):

```

Scanning large pool allocation table for Tag: Leak (<table> : <table end>)

*fffff8a006a00000 :large page allocation, Tag  is Leak, size  is 0xfa000 bytes

Searching NonPaged pool (<start> : <end>) for Tag: Leak

*<header> size:   c0 previous size:   40  (Allocated) SeSd
```

Large allocations are listed whatever their pool (the seed's paged `Leak` blocks are found by a
nonpaged search); small blocks are those of the searched pool's pages.  Session pool (4) is
the current session's (commands/sessions.py): its own big-page table, then its pages.  Rows
carry the leading star and the ` (Protected)` suffix of the Win7 x64 transcript.  ^C stops the scan with
`...terminating - searched pool to <page>`.

A pool's blocks are found while they are printed: the pool is scanned SCAN_PAGES readable
pages at a time and each slice's rows are printed before the next is scanned, so a search of a
whole pool holds one slice's rows, not the pool's.  Each slice runs one regex over each
readable page for the tag's bytes, then checks the header around each match with integer
operations on the page (TagScan, PoolReader.find_headers); a tag whose first three characters
are wildcards walks every page instead.  A slice's blocks are kept as parallel arrays
(poolread.HeaderRows) that the renderer formats directly; the PoolHeader objects JSON prints
are built only when JSON asks for them.
"""
from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from kdsim.layouts import PAGE_SIZE, PROTECTED_POOL
from pooltag import display_tag, tag_from_ulong, tag_matches
from pooltag.tags import normalize_pattern, simplify_pattern

from .. import hints
from ..dispatch import execute
from ..errors import DebuggerError
from ..expr import MASK64, decimal, parse_number
from ..poolread import (BigPage, HeaderRows, PoolHeader, PoolReader, SpecialBlock,
                        special_line)
from ..registry import command
from ..sessions import current_session
from ..render import Rows

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch

    from ..session import Session

POOL_TYPES = {0: "NonPaged", 1: "Paged", 2: "Special", 4: "Session"}
SESSION_POOL = 4
# Longer argument text is refused before it is split (shlex costs microseconds a character):
# a search needs a tag, a pool and perhaps a `-x` command, far below this.
MAX_ARGUMENTS = 4096
SCAN_PAGES = 8192                             # pages scanned before their rows are printed
USAGE = """\
!poolfind TagString|TagValue [PoolType]
!poolfind TagString|TagValue [-nonpaged|-paged|-session] [-small|-large] [-x "command"]
  PoolType: 0 nonpaged (default), 1 paged, 2 special pool, 4 session pool
  !poolfind Mm*               - Find all Mm allocations in nonpaged pool.
  !poolfind MmSt -paged       - Find MmSt allocations in paged pool.
  !poolfind Gla1 -session     - Find Gla1 allocations in session pool.
  !poolfind -tag "AB C"       - Find pool tag which contains a space.
  !poolfind -x "dt nt!_MDL @$extret" Mdl  - Find and print MDL allocations."""


# One pool's search.  The scan yields its blocks a slice at a time as `slices`
# (poolread.HeaderRows), which the text renderer formats directly; `headers`, the same blocks
# as the PoolHeader objects JSON prints, is drawn from the same slices, so whichever renderer
# prints the result scans the pool once, as it prints.  (A comment, not a docstring:
# docs/json.md shows a result's docstring, and JSON has no slices.)
@dataclass
class PoolSearch:
    pool: str                                 # "NonPaged", "Paged", "Special", "Session"
    start: int
    end: int
    headers: Rows[PoolHeader] = field(default_factory=Rows)
    special: list[SpecialBlock] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slices: Iterable[HeaderRows] = ()
        self._headers_of: Callable[[HeaderRows], list[PoolHeader]] | None = None

    def found(self, reader: PoolReader, slices: Iterable[HeaderRows]) -> None:
        """The scan's slices, read when the result is printed."""
        self.slices, self._headers_of = slices, reader.headers_of
        self.headers = Rows(self._each_header())

    def keep_all(self) -> None:
        """Scan the whole pool now (`-x` runs its command for each block before any row)."""
        self.slices = list(self.slices)
        self.headers = Rows(self._each_header())

    def _each_header(self) -> Iterator[PoolHeader]:
        headers_of = self._headers_of
        if headers_of is not None:
            for rows in self.slices:
                yield from headers_of(rows)


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
    if len(args) > MAX_ARGUMENTS:
        raise usage()
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
        if low in ("-nonpaged", "-paged", "-session"):
            pool_type = {"-nonpaged": 0, "-paged": 1, "-session": SESSION_POOL}[low]
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
        elif pool_type is None and decimal(word) in POOL_TYPES:
            pool_type = decimal(word)
        else:
            raise usage()
    if tag is None:
        raise usage()
    return Query(_pattern(tag), pool_type or 0, small, large, command_text)


def _pattern(tag: str) -> str:
    """A TagValue (`0x...`, ASCII hex digits) as its four characters; a TagString as typed,
    at most four characters besides `*`s: a longer one is no tag."""
    if tag.startswith("0x"):
        number = parse_number(tag, 16) if len(tag) > 2 else None
        if number is None or number[0] > MASK64:
            raise usage()
        return tag_from_ulong(number[0])
    if not tag.isascii() or simplify_pattern(tag) is None:
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

    def __init__(self, reader: PoolReader, start: int, end: int, pattern: str,
                 before: int | None = None):
        self.reader = reader
        self.start = start
        self.end = end
        self.pattern = pattern
        self.before = start if before is None else before   # reached before its first page
        self.rows = HeaderRows()

    @property
    def position(self) -> int:
        return self.before if self.rows.reached is None else self.rows.reached

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
        table = _session_table(session) if query.pool_type == SESSION_POOL else None
        if table is None:
            result.table = reader.big_table_span()
        else:
            start, entries = table
            result.table = (start, start + entries * reader.layouts.big_page.sizeof())
        result.large = [b for b in reader.big_pages(table)
                        if tag_matches(query.pattern, b.tag & ~PROTECTED_POOL)]
    if query.small:
        result.searches.append(_search_small(reader, query, result))
    if query.command is not None:
        for search in result.searches:           # -x: every block is known before the rows
            search.keep_all()
        for address in block_addresses(result, reader.unit):
            result.output[address] = _run_for(session, query.command, address)
    return result


def _session_table(session: "Session") -> tuple[int, int] | None:
    """The current session's big-page table (address, entries), if there are sessions."""
    current = current_session(session.target)
    return None if current is None else (current.big_table, current.big_entries)


def block_addresses(result: PoolFind, unit: int) -> list[int]:
    """The caller's address of every block found (what `@$extret` stands for): a small
    block's data follows its header of one `unit`."""
    return ([b.va for b in result.large]
            + [address + unit for s in result.searches for rows in s.slices
               for address in rows.addresses]
            + [b.data for s in result.searches for b in s.special])


def _search_small(reader: PoolReader, query: Query, result: PoolFind) -> PoolSearch:
    ranges = reader.ranges()
    pool = POOL_TYPES[query.pool_type]
    spans = {0: ranges.nonpaged, 1: ranges.paged, 2: ranges.special}
    current = current_session(reader.target) if query.pool_type == SESSION_POOL else None
    if current is not None:
        spans[SESSION_POOL] = (current.pool_start, current.pool_end)
    span = spans.get(query.pool_type)
    if span is None:                          # no session space on this machine
        return PoolSearch(pool, 0, 0)
    search = PoolSearch(pool, *span)
    if query.pool_type == 2:
        search.special = [b for b in _special_blocks(reader, *span)
                          if tag_matches(query.pattern, b.tag & ~PROTECTED_POOL)]
        return search
    search.found(reader, _scan(reader, span, query.pattern, result))
    return search


def _scan(reader: PoolReader, span: tuple[int, int], pattern: str,
          result: PoolFind) -> Iterator[HeaderRows]:
    """The matching blocks of the pool's pages, scanned a slice of SCAN_PAGES readable pages
    at a time; ^C ends the slices with what its slice had found and records the page it
    reached."""
    reached = span[0]
    for start, end in _slices(reader, *span):
        scan = TagScan(reader, start, end, pattern, before=reached)
        try:
            scan.run()
        except KeyboardInterrupt:
            result.stopped_at = scan.position
            yield scan.rows
            return
        yield scan.rows
        reached = scan.position


def _slices(reader: PoolReader, start: int, end: int) -> Iterator[tuple[int, int]]:
    """[start, end) cut after each SCAN_PAGES readable pages, at a run's end or inside it."""
    limit = SCAN_PAGES * PAGE_SIZE
    begin, size = start, 0
    for run, length in list(reader.valid_runs(start, end)):
        while size + length >= limit:
            cut = run + limit - size
            yield begin, cut
            begin, size, run, length = cut, 0, cut, length - (limit - size)
        size += length
    if size:
        yield begin, end


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


def render_poolfind(result: PoolFind, session: "Session") -> Iterator[str]:
    reader = PoolReader(session.target)
    arch = reader.arch

    def rows(row: str, address: int) -> Iterator[str]:
        yield row
        if result.output.get(address):
            yield from result.output[address].rstrip("\n").split("\n")

    yield ""
    if result.table is not None:
        start, end = (arch.fmt_ptr(a) for a in result.table)
        yield from (f"Scanning large pool allocation table for Tag: {result.tag} "
                    f"({start} : {end})", "")
        for big in result.large:
            yield from rows(large_row(arch, big), big.va)
        if result.large:
            yield ""
    for search in result.searches:
        if search.start == search.end:
            continue
        yield from (f"Searching {search.pool} pool ({arch.fmt_ptr(search.start)} : "
                    f"{arch.fmt_ptr(search.end)}) for Tag: {result.tag}", "")
        found = False
        for slice_rows in search.slices:
            texts = reader.rows_text(slice_rows, "*", "")
            found = found or bool(texts)
            if result.output:
                for address, text in zip(slice_rows.addresses, texts):
                    yield from rows(text, address + arch.block)
            else:
                yield from texts
        for block in search.special:
            found = True
            yield from rows(special_line(arch, block, tag_marker=""), block.data)
        if found:
            yield ""
    if result.stopped_at is not None:
        yield f"...terminating - searched pool to {arch.fmt_ptr(result.stopped_at)}"


@command("!poolfind", syntax='!poolfind TagString|TagValue [PoolType] | [-tag "Tag"] '
                               '[-nonpaged|-paged|-session] [-small|-large] [-x "command"]',
         render=render_poolfind,
         help="Find every pool block of a tag: first in the large-allocation table, then in "
              "the pages of nonpaged pool (PoolType 0, -nonpaged), paged pool (1, -paged), "
              "special pool (2) or the current session's pool (4).  ? and * are wildcards; "
              "a TagValue starts with 0x.  "
              "-x runs a command for each block, @$extret being its address.")
def poolfind(session: "Session", args: str) -> PoolFind:
    query = parse_query(args)
    hints.say(session, hints.tag_case(session, query.pattern))
    return find(session, query)
