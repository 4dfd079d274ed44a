"""`s`: search memory for bytes, words, double or quad words, or a string.

    s [-b|-w|-d|-q] Range Value [Value ...]      (-b is the default)
    s -a Range "text"                            ASCII
    s -u Range "text"                            Unicode (UTF-16LE)

Each hit prints as a display command's first line at the hit (`db` for bytes and strings,
`dw`, `dc` for double words as the documentation's sample shows, `dq`), so a search over a
driver's image shows the tag in context.  Words, double and quad words are matched at their
natural alignment (dbgeng's search granularity is the pattern's element size).  The range takes kd's
forms and limit (`L?` lifts the 256 MB limit, as for the display commands: core/memory.py);
unreadable pages are passed over, as a real search passes over pages that are not present.
The hits are found while they are printed, so Ctrl+C stops a long search at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from kdsim.target import MemoryFault

from ..errors import DebuggerError, ParseError, numeric_missing, syntax_error
from ..expr import parse_leading
from ..registry import command
from ..render import Rows
from .memory import FORMATS, RANGE_LIMIT, dump, render_dump

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

# -type: (element size, display command)
TYPES = {"b": (1, "db"), "w": (2, "dw"), "d": (4, "dc"), "q": (8, "dq"),
         "a": (1, "db"), "u": (2, "db")}
CHUNK = 0x100000                    # bytes read from the target at a time


@dataclass
class SearchHits:
    display: str                     # the display command each hit is shown with
    hits: Rows[int]                  # addresses, found as they are printed


def _range(session: "Session", text: str, unit: int, base: int) -> tuple[int, int, str, int]:
    """(start, size in bytes, the text after the range, its offset) of `Address L[?]Count`
    or `Address EndAddress`; `text` starts `base` characters into the arguments."""
    target, radix = session.target, session.settings["radix"]
    lead = parse_leading(text, target, radix)
    rest, at = lead.rest, lead.end
    if not rest:
        raise numeric_missing("")
    limited = True
    if rest[0] in "lL":
        offset = at + 1
        if rest[1:2] == "?":
            limited, offset = False, offset + 1
        count = parse_leading(text[offset:], target, radix)
        size, after, end = count.value * unit, count.rest, offset + count.end
    else:
        last = parse_leading(rest, target, radix)
        if last.value < lead.value:
            raise ParseError("Range", base + at)
        size, after, end = last.value - lead.value + 1, last.rest, at + last.end
    if limited and size > RANGE_LIMIT:
        raise ParseError("Range", base + at)
    return lead.value, size, after, end


def _pattern(session: "Session", kind: str, text: str, offset: int) -> bytes:
    if kind in "au":
        body = text.strip()
        if len(body) >= 2 and body[0] == body[-1] == '"':
            body = body[1:-1]
        if not body:
            raise syntax_error(offset)
        return body.encode("utf-16-le" if kind == "u" else "latin-1", "replace")
    unit = TYPES[kind][0]
    values = bytearray()
    rest = text
    while rest.strip():
        item = parse_leading(rest, session.target, session.settings["radix"])
        values += (item.value64 & ((1 << 8 * unit) - 1)).to_bytes(unit, "little")
        rest = item.rest
    if not values:
        raise numeric_missing("")
    return bytes(values)


def search(target: "Target", start: int, size: int, pattern: bytes,
           align: int) -> Iterator[int]:
    """Addresses in [start, start + size) where `pattern` begins, at multiples of `align`,
    on readable pages, in order."""
    end = start + size
    for run, run_size in target.mapped_runs(start, end):
        lo, hi = max(run, start), min(run + run_size, end)
        at = lo
        while at < hi:
            stop = min(at + CHUNK, hi)
            try:
                data = target.read(at, min(stop + len(pattern) - 1, hi) - at)
            except MemoryFault:
                break
            found = data.find(pattern)
            while 0 <= found < stop - at:
                if (at + found) % align == 0:
                    yield at + found
                found = data.find(pattern, found + 1)
            at = stop


def render_hits(result: SearchHits, session: "Session") -> Iterator[str]:
    target = session.target
    fmt = FORMATS[result.display]
    count = fmt.per_line(target.arch)
    for hit in result.hits:
        yield from render_dump(dump(target, fmt, hit, count), session)


@command("s", syntax="s [-a|-u|-b|-w|-d|-q] Range Pattern", render=render_hits,
         help="Search memory for a pattern: -b bytes (default), -w words, -d double words, "
              "-q quad words, -a \"ASCII\", -u \"Unicode\".  Each hit shows as a display "
              "line.  Range: Address L[?]Count or Address EndAddress.")
def search_memory(session: "Session", args: str) -> SearchHits:
    kind, text, offset = "b", args, 0
    stripped = args.lstrip()
    if stripped.startswith("-"):
        flag = stripped[1:].split(None, 1)[0] if len(stripped) > 1 else ""
        if flag.lower() not in TYPES:
            raise syntax_error(len(args) - len(stripped) + 1)
        kind = flag.lower()
        offset = len(args) - len(stripped) + 1 + len(flag)
        text = args[offset:]
    lead_blanks = len(text) - len(text.lstrip())
    start, size, rest, end = _range(session, text.lstrip(), TYPES[kind][0],
                                    offset + lead_blanks)
    pattern = _pattern(session, kind, rest, offset + lead_blanks + end)
    if kind in "au" and size < len(pattern):
        raise DebuggerError("Search pattern is longer than the range")
    unit, display = TYPES[kind]
    align = 1 if kind in "abu" else unit
    return SearchHits(display, Rows(search(session.target, start, size, pattern, align)))
