"""`!poolused [/t N] [Flags [TagString]]`: per-tag pool usage from nt!PoolTrackTable.

The counters are the kernel's own, read from the tracker table in memory: outstanding
allocations are Allocs - Frees, Used is Bytes.  Two layouts (session setting poolused_layout):

* classic, the Win7-era debugger of the seed cases.  Where the seeds kept their blanks they
  show `   Sorting by  Paged Pool Consumed` (two blanks after `by`, as in the docs'
  `Sorting by  Tag` and a public Vista `!poolused 3`) and one blank between the last number and
  the description (seeds 000 and 001; the XP-era docs sample has none).  Verbose output sorted by
  one pool shows that pool's columns only, and puts two blanks before the description (public
  Vista `!poolused 3`).  TOTAL's numbers sit four columns right of the rows' (docs sample).
* new, the Win8+ debugger: ` %-4s %9d %12d %10d %12d<TAB><desc>` (formats.md 6.3).

Tags with nothing outstanding in any shown pool are left out (every real sample row has a
non-zero count); TOTAL sums every matching tag, printed or not (seed 000's `/t5` TOTAL).
Flag 8 asks for session pool: the tags of the current session's tracker table (the session
nt!MmSessionSpace points at, commands/sessions.py), under the session headings; a target
without sessions prints them over an empty table.  `/t N` (seed 000, undocumented) keeps the
first N rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pooltag import display_tag, poolused_description, tag_matches

from .. import hints
from ..errors import numeric_missing, syntax_error_at
from ..expr import evaluate
from ..poolread import tracker_rows, tracker_rows_at
from ..registry import command
from ..sessions import current_session
from ..tagdb import tag_database

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

VERBOSE, SORT_NONPAGED, SORT_PAGED, SESSION_POOL = 1, 2, 4, 8
SORT_TITLES = {"tag": "Tag", "nonpaged": "NonPaged Pool Consumed",
               "paged": "Paged Pool Consumed"}


@dataclass(frozen=True)
class PoolCount:
    """One pool's counters for one tag (or their sum)."""

    allocs: int
    frees: int
    outstanding: int          # Allocs - Frees, the `Allocs` column of the summary
    used: int                 # bytes

    @property
    def empty(self) -> bool:
        return not self.outstanding and not self.used


@dataclass(frozen=True)
class TagUsage:
    tag: str                  # the tag column: four characters, unprintable bytes as `.`
    nonpaged: PoolCount
    paged: PoolCount
    description: str          # `<desc> , Binary: <bin>`, `<desc> ` or the UNKNOWN message


@dataclass(frozen=True)
class PoolUsed:
    verbose: bool
    sort: str                 # "tag", "nonpaged" or "paged"
    session_pool: bool
    rows: list[TagUsage]      # filtered, sorted and cut to /t N
    nonpaged_total: PoolCount
    paged_total: PoolCount


# -- reading the tracker ----------------------------------------------------------------------
def _pool_count(allocs: int, frees: int, used: int) -> PoolCount:
    diff = (allocs - frees) & 0xFFFFFFFF
    return PoolCount(allocs, frees, diff - (1 << 32) if diff >> 31 else diff, used)


def tracker_entries(target: "Target", table_name: str = "PoolTrackTable"
                    ) -> list[tuple[int, PoolCount, PoolCount]]:
    """(tag ULONG, nonpaged, paged) for every used slot of nt!PoolTrackTable (or another
    tracker table: `tracker_rows`)."""
    return _entries(tracker_rows(target, table_name))


def session_entries(target: "Target") -> list[tuple[int, PoolCount, PoolCount]]:
    """`tracker_entries` of the current session's table (none without sessions)."""
    session = current_session(target)
    if session is None:
        return []
    return _entries(tracker_rows_at(target, session.tracker, session.tracker_size))


def _entries(rows: list[tuple[int, ...]]) -> list[tuple[int, PoolCount, PoolCount]]:
    return [(key, _pool_count(npa, npf, npb), _pool_count(pa, pf, pb))
            for key, npa, npf, npb, pa, pf, pb in rows]


def _sum(counts: list[PoolCount]) -> PoolCount:
    return PoolCount(sum(c.allocs for c in counts), sum(c.frees for c in counts),
                     sum(c.outstanding for c in counts), sum(c.used for c in counts))


# -- the command --------------------------------------------------------------------------------
def _number(session: "Session", text: str, offset: int) -> int:
    return evaluate(text, session.target, session.settings["radix"], offset=offset)


def parse_args(session: "Session", args: str) -> tuple[int, str | None, int | None]:
    """(flags, tag pattern, /t limit) from the argument text."""
    words, pos = [], 0
    for word in args.split():
        pos = args.index(word, pos)
        words.append((pos, word))
        pos += len(word)
    limit = None
    plain: list[tuple[int, str]] = []
    i = 0
    while i < len(words):
        at, word = words[i]
        if word.startswith("/"):
            if word[1:2].lower() != "t":
                raise syntax_error_at(args[at:])
            count, count_at = word[2:], at + 2
            if not count:
                i += 1
                if i == len(words):
                    raise numeric_missing("")
                count_at, count = words[i]
            limit = _number(session, count, count_at)
        else:
            plain.append((at, word))
        i += 1
    flags = _number(session, plain[0][1], plain[0][0]) if plain else 0
    pattern = plain[1][1] if len(plain) > 1 else None
    return flags, pattern, limit


def _sort_of(flags: int) -> str:
    if flags & SORT_NONPAGED:
        return "nonpaged"
    if flags & SORT_PAGED:
        return "paged"
    return "tag"


# -- rendering ----------------------------------------------------------------------------------
def _classic(result: PoolUsed) -> list[str]:
    lines = [f"   Sorting by {'Session' if result.session_pool else ''} "
             f"{SORT_TITLES[result.sort]}", "", "  Pool Used:"]
    if not result.verbose:
        lines += ["            NonPaged            Paged",
                  " Tag    Allocs     Used    Allocs     Used"]
        for r in result.rows:
            np, p = r.nonpaged, r.paged
            lines.append(f" {r.tag:<4} {np.outstanding:8d} {np.used:8d}  "
                         f"{p.outstanding:8d} {p.used:8d} {r.description}")
        np, p = result.nonpaged_total, result.paged_total
        lines.append(f" TOTAL    {np.outstanding:8d} {np.used:8d}  {p.outstanding:8d} {p.used:8d}")
        return lines

    def group(c: PoolCount) -> str:
        return f" {c.allocs:8d} {c.frees:8d} {c.outstanding:8d} {c.used:8d}"

    # verbose output sorted by one pool shows that pool only (public Vista `!poolused 3`)
    pools = ("nonpaged", "paged") if result.sort == "tag" else (result.sort,)
    columns = " Tag    Allocs    Frees     Diff     Used"
    if len(pools) == 2:
        lines += ["            NonPaged" + " " * 31 + "Paged",
                  columns + "    Allocs    Frees     Diff     Used"]
    else:
        lines += ["            " + ("NonPaged" if pools == ("nonpaged",) else "Paged"), columns]
    for r in result.rows:
        counts = [getattr(r, pool) for pool in pools]
        if all(c.empty for c in counts):
            continue
        lines.append(f" {r.tag:<4}" + " ".join(group(c) for c in counts) + f"  {r.description}")
    totals = [getattr(result, f"{pool}_total") for pool in pools]
    lines.append(" TOTAL   " + " ".join(group(c) for c in totals))
    return lines


def _new(result: PoolUsed) -> list[str]:
    lines = [f" Sorting by {'Session ' if result.session_pool else ''}"
             f"{SORT_TITLES[result.sort]}", ""]
    if result.verbose:
        lines += ["                            NonPaged"
                  "                                         Paged",
                  " Tag       Allocs       Frees      Diff         Used"
                  "       Allocs       Frees      Diff         Used", ""]

        def numbers(np: PoolCount, p: PoolCount) -> str:
            return (f" {np.allocs:11d} {np.frees:11d} {np.outstanding:9d} {np.used:12d}"
                    f" {p.allocs:12d} {p.frees:11d} {p.outstanding:9d} {p.used:12d}")
    else:
        lines += ["               NonPaged                  Paged",
                  " Tag     Allocs         Used     Allocs         Used", ""]

        def numbers(np: PoolCount, p: PoolCount) -> str:
            return f" {np.outstanding:9d} {np.used:12d} {p.outstanding:10d} {p.used:12d}"
    for r in result.rows:
        lines.append(f" {r.tag:<4}{numbers(r.nonpaged, r.paged)}\t{r.description}")
    lines += ["", "TOTAL" + numbers(result.nonpaged_total, result.paged_total)]
    return lines


def render_poolused(result: PoolUsed, session: "Session") -> str:
    new = session.settings.get("poolused_layout") == "new"
    return "\n".join(_new(result) if new else _classic(result))


@command("!poolused", syntax="!poolused [/t N] [Flags [TagString]]", render=render_poolused,
         help="Pool usage per tag, from the kernel's tag tracker (nt!PoolTrackTable).\n"
              "Flags: 1 verbose (Allocs, Frees, Diff, Used), 2 sort by nonpaged bytes, "
              "4 sort by paged bytes, 8 session pool.\n"
              "TagString is case-sensitive; * matches any run and ? one character "
              "(Mm*, CM??, Irp).\n"
              "/t N lists only the first N tags of the sorted list.\n"
              "The layout follows the poolused_layout setting (classic or new).")
def poolused(session: "Session", args: str) -> PoolUsed:
    flags, pattern, limit = parse_args(session, args)
    hints.say(session, hints.tag_case(session, pattern or ""))
    sort = _sort_of(flags)
    session_pool = bool(flags & SESSION_POOL)
    entries = session_entries(session.target) if session_pool else tracker_entries(session.target)
    if pattern is not None:
        entries = [e for e in entries if tag_matches(pattern, e[0])]
    shown = sorted((e for e in entries if not (e[1].empty and e[2].empty)),
                   key=lambda e: e[0].to_bytes(4, "little"))
    if sort == "nonpaged":
        shown.sort(key=lambda e: -e[1].used)
    elif sort == "paged":
        shown.sort(key=lambda e: -e[2].used)
    if limit is not None:
        shown = shown[:limit]
    db = tag_database(session)
    rows = [TagUsage(display_tag(key), np, p, poolused_description(db, key))
            for key, np, p in shown]
    return PoolUsed(bool(flags & VERBOSE), sort, session_pool, rows,
                    _sum([e[1] for e in entries]), _sum([e[2] for e in entries]))
