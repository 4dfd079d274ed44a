"""`!pooldiff`: the kernel-mode UMDH.  What grew in pool between two break-ins, and which call
stacks hold it.

Pool hunters compare `!poolused` (or poolmon) output taken at two times by hand; this does it
from the snapshots the session keeps (commands/poolsnapshots.py: one when the session opens,
one at every break-in, and those `-save` takes), all read from memory:

* `!pooldiff [A [B]]`: the tags whose outstanding allocations or bytes changed from snapshot A
  to B (default: the last two), biggest growth in bytes first (`-a`: in allocations), both
  pools or one (`-p` paged, `-n` nonpaged; session pool counts as paged), a tag or wildcard
  filter (`-tag Mm*`, as `!poolused` takes it).  Tags that grew by the same number of new
  blocks (and were allocated as often) are marked with one letter: probably one leak.  The
  large allocations that came and went (nt!PoolBigPageTable) follow the table.
* `!pooldiff -dump OTHER.dmp`, in place of A and B: this target and another dump of the same
  machine (same profile, scenario and seed), the earlier (by nt!KeTickCount) first.
* `!pooldiff -stacks [TagString [A [B]]]`: with Driver Verifier pool tracking, the verified
  drivers' outstanding allocations at each snapshot matched with their allocation records in
  the verifier's log (nt!VfPoolTraces, read from the newer target), grouped by stack, in
  UMDH's shape, biggest change first; and what could not be seen: new blocks whose record
  fell off the ring, and the allocations of drivers that are not verified (never logged).
* `!pooldiff -history TagString`: a tag's outstanding allocations and bytes in every snapshot
  of the session, and a one-line sparkline of its bytes: block characters (U+2581..U+2588),
  or an ASCII ramp when the output's encoding cannot write them.  NO_COLOR is about colour,
  not characters, and does not change it.
* `!pooldiff -save [Name]`, `!pooldiff -list`.

Every form returns a result object (`.output json`).  Ticks are the target's clock
(nt!KeTickCount); a target without one shows `tick ?`.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.control import DumpError, open_dump
from kdsim.layouts import PAGED
from kdsim.target import MemoryFault
from pooltag import display_tag, poolused_description, tag_matches
from pooltag.tags import simplify_pattern

from ..core.stack import symbol_of
from ..errors import DebuggerError
from ..poolsnapshots import (
    MAX_SNAPSHOTS, SAVED, SESSION_TRACKER, ZERO, Snapshot, read_snapshot,
)
from ..registry import command
from ..tagdb import tag_database
from .poolused import PoolCount, _sum
from .verifier import read_drivers, read_log

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..poolsnapshots import PoolSnapshots
    from ..session import Session

BOTH, NONPAGED_ONLY, PAGED_ONLY = "both", "nonpaged", "paged"
BY_BYTES, BY_ALLOCS = "bytes", "allocs"
LOCKSTEP_MIN = 2                  # new blocks a tag needs before lockstep means anything
ALLOCATE_ROUTINE = "nt!VeAllocatePoolWithTagPriority"   # an allocation record's first frame
SPARK = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
SPARK_ASCII = "_.-=+*#@"
TOKEN = re.compile(r'"([^"]*)"|(\S+)')
FORMS = ("-save", "-list", "-stacks", "-history")
USAGE = """\
!pooldiff [-a] [-p|-n] [-tag TagString] [A [B]]
!pooldiff -dump FileName [-a] [-p|-n] [-tag TagString]
!pooldiff -stacks [TagString [A [B]]]
!pooldiff -stacks [TagString] -dump FileName
!pooldiff -history TagString
!pooldiff -save [Name]
!pooldiff -list

A and B name snapshots (their name, or their number as -list shows it); the default is the
last two.  -dump compares this target with another dump of the same machine instead.  -a
sorts by allocations, -p and -n show paged or nonpaged pool only."""
NO_TRACKING = ("!pooldiff -stacks needs Driver Verifier pool tracking on the drivers to watch "
               "when both snapshots were taken (.verifier /flags 0x9 /driver NAME.sys, then "
               ".reboot)")
NO_SNAPSHOT = ("No pool snapshot: this target has no readable pool tag tracker "
               "(nt!PoolTrackTable)")
ONE_SNAPSHOT = ("Only one pool snapshot so far: g takes one at every break-in, !pooldiff -save "
                "one now")
ONE_DUMP = ("A dump is one pool snapshot: !pooldiff -dump OTHER.dmp compares it with another "
            "dump of the same machine")


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot as the headers name it and -list shows it."""

    number: int | None        # in the session; null for a dump or this target's state now
    name: str | None          # the -save name, or the dump file
    kind: str                 # what took it: session open, break-in, Ctrl+C, saved, dump ...
    tick: int | None          # nt!KeTickCount
    nonpaged: PoolCount       # every tag's counters summed
    paged: PoolCount
    large: int                # large allocations in nt!PoolBigPageTable


@dataclass(frozen=True)
class SnapshotList:
    snapshots: list[SnapshotInfo]
    session_pool: bool        # the target has a session pool tracker
    kept: int                 # the most snapshots the session keeps


@dataclass(frozen=True)
class TagChange:
    tag: str
    old: PoolCount            # in the pools shown
    new: PoolCount
    outstanding_diff: int     # new - old outstanding allocations
    used_diff: int            # new - old bytes
    lockstep: str             # a letter shared by tags that grew in lockstep, or ''
    description: str


@dataclass(frozen=True)
class LargeChange:
    """Entries of nt!PoolBigPageTable that came and went, for one tag."""

    tag: str
    new_blocks: int
    new_bytes: int
    freed_blocks: int
    freed_bytes: int


@dataclass(frozen=True)
class PoolDiff:
    old: SnapshotInfo
    new: SnapshotInfo
    sort: str                 # "bytes" or "allocs"
    pool: str                 # "both", "nonpaged" or "paged"
    pattern: str | None       # the tag filter
    rows: list[TagChange]     # the tags whose usage changed, sorted
    old_total: PoolCount      # every matching tag
    new_total: PoolCount
    large: list[LargeChange]


@dataclass(frozen=True)
class StackGroup:
    """UMDH's record: the blocks one allocation stack holds at each snapshot."""

    backtrace: int            # BackTraceN, numbered in the order shown
    tags: list[str]
    new_bytes: int
    old_bytes: int
    new_count: int
    old_count: int
    frames: list[tuple[int, str]]     # (return address, symbol), newest first


@dataclass(frozen=True)
class StackDiff:
    old: SnapshotInfo
    new: SnapshotInfo
    pattern: str | None
    groups: list[StackGroup]  # biggest change in bytes first
    unseen_blocks: int        # new blocks whose allocation record fell off the log
    unseen_bytes: int
    lost_records: int         # records logged between the snapshots that fell off the ring
    log_length: int           # nt!VfPoolTracesLength
    verified: list[str]       # the drivers the verifier verifies: only theirs are logged
    tracker_blocks: int | None    # with a tag: the tracker's new outstanding blocks of it


@dataclass(frozen=True)
class HistoryPoint:
    snapshot: SnapshotInfo    # its totals are the tag's
    used: int                 # nonpaged + paged bytes


@dataclass(frozen=True)
class TagHistory:
    pattern: str
    description: str          # the tag's, or which tags a wildcard matched
    points: list[HistoryPoint]


# -- the arguments ------------------------------------------------------------------------------
@dataclass
class Query:
    form: str = "diff"                   # diff, save, list, stacks or history
    words: list[str] = field(default_factory=list)      # positional: snapshots, a name
    pattern: str | None = None
    sort: str = BY_BYTES
    pool: str = BOTH
    path: str | None = None              # -dump
    options: list[str] = field(default_factory=list)    # -a, -p, -n, -tag as typed


def _tokens(args: str) -> list[tuple[str, bool]]:
    """Words and "quoted strings" (quoted: True)."""
    if args.count('"') % 2:
        raise DebuggerError(f"Missing closing quote in '{args}'")
    return [(plain, False) if plain else (quoted, True) for quoted, plain in TOKEN.findall(args)]


def tag_pattern(text: str) -> str:
    """A TagString as !poolused takes it (case-sensitive; * any run, ? one character)."""
    if not text or not text.isascii() or simplify_pattern(text) is None:
        raise DebuggerError(f"'{text}' is not a pool tag: four characters at most, "
                            "* matching any run and ? one character")
    return text


def parse(args: str) -> Query:
    q = Query()
    tokens = _tokens(args)
    i = 0
    while i < len(tokens):
        word, quoted = tokens[i]
        low = word.lower()
        i += 1
        if quoted or not word.startswith("-") or word == "-":
            q.words.append(word)
        elif low in ("-?", "-help"):
            raise DebuggerError(USAGE)
        elif low in FORMS:
            if q.form != "diff":
                raise DebuggerError(f"-{q.form} and {low} do not go together")
            q.form = low[1:]
        elif low in ("-dump", "-tag"):
            if i == len(tokens):
                raise DebuggerError("-dump needs the file name of the other dump"
                                    if low == "-dump" else "-tag needs a TagString")
            if low == "-dump":
                q.path = tokens[i][0]
            else:
                q.options.append(low)
                q.pattern = tag_pattern(tokens[i][0])
            i += 1
        elif low in ("-a", "-p", "-n"):
            q.options.append(low)
            if low == "-a":
                q.sort = BY_ALLOCS
            elif q.pool != BOTH and q.pool != (PAGED_ONLY if low == "-p" else NONPAGED_ONLY):
                raise DebuggerError("-p and -n do not go together: leave both out for both "
                                    "pools")
            else:
                q.pool = PAGED_ONLY if low == "-p" else NONPAGED_ONLY
        else:
            raise DebuggerError(f"Unknown option '{word}' (!pooldiff -? shows the syntax)")
    _check_form(q)
    return q


def _check_form(q: Query) -> None:
    """Which options and how many positional words each form takes; -stacks and -history take
    their TagString first."""
    if q.path is not None and q.form not in ("diff", "stacks"):
        raise DebuggerError(f"-dump goes with the table of changes or -stacks, not with "
                            f"-{q.form}")
    allowed = ["-tag"] if q.form in ("stacks", "history") else [] if q.form != "diff" else None
    if allowed is not None and any(o not in allowed for o in q.options):
        bad = next(o for o in q.options if o not in allowed)
        raise DebuggerError(f"{bad} applies to the table of changes, not to -{q.form}")
    if q.form in ("stacks", "history") and q.words and q.pattern is None:
        q.pattern = tag_pattern(q.words.pop(0))
    if q.form == "history" and q.pattern is None:
        raise DebuggerError("-history needs a TagString: !pooldiff -history Leak")
    most = {"diff": 2, "stacks": 2, "save": 1, "list": 0, "history": 0}[q.form]
    if q.path is not None:
        most = 0
    if len(q.words) > most:
        raise DebuggerError(f"Too many arguments: '{q.words[most]}' (!pooldiff -? shows the "
                            "syntax)")


# -- snapshots ----------------------------------------------------------------------------------
def info(snapshot: Snapshot, number: int | None = None, name: str | None = None
         ) -> SnapshotInfo:
    """A snapshot's header, its totals over every tag; a session's snapshot has its number and
    name, one of a dump or of the target now has neither (or the file's name)."""
    counts = list(snapshot.tags.values())
    return SnapshotInfo(number, name, snapshot.kind, snapshot.tick,
                        _sum([np for np, _ in counts]), _sum([p for _, p in counts]),
                        len(snapshot.large))


def kept(snapshot: Snapshot) -> SnapshotInfo:
    return info(snapshot, snapshot.number, snapshot.name)


def _store(session: "Session") -> "PoolSnapshots":
    store = session.pool_snapshots
    store.current_boot(session.target)
    return store


@dataclass
class Pair:
    """The two snapshots compared, their headers, and the target whose verifier log holds the
    newer one's records (for -stacks)."""

    old: Snapshot
    new: Snapshot
    old_info: SnapshotInfo
    new_info: SnapshotInfo
    log: "Target"


def session_pair(session: "Session", refs: list[str]) -> Pair:
    """Snapshots A and B of the session: as named, else B the last, else the last two."""
    store = _store(session)
    if not store.snapshots:
        raise DebuggerError(NO_SNAPSHOT)
    if refs:
        old = store.find(refs[0])
        new = store.find(refs[1]) if len(refs) > 1 else store.snapshots[-1]
    else:
        if len(store.snapshots) < 2:
            raise DebuggerError(ONE_SNAPSHOT if session.target.live else ONE_DUMP)
        old, new = store.snapshots[-2:]
    if old.boot != new.boot:
        raise DebuggerError(f"Snapshots #{old.number} and #{new.number} are of two boots "
                            "(.reboot in between): their counters do not compare")
    return Pair(old, new, kept(old), kept(new), session.target)


def dump_pair(session: "Session", path: str) -> Pair:
    """This target now and another dump of the same machine, the earlier (by tick) first."""
    target = session.target
    try:
        other = open_dump(path)
    except DumpError as exc:
        raise DebuggerError(exc.message) from None
    if other.profile.name != target.profile.name:
        raise DebuggerError(f"{path} is a dump of a {other.profile.title} machine; this "
                            f"target is {target.profile.title}")
    mine = (target.meta.get("scenario"), target.meta.get("seed"))
    theirs = (other.meta.get("scenario"), other.meta.get("seed"))
    if mine != theirs:
        raise DebuggerError(f"{path} is a dump of another machine (scenario {theirs[0]}, "
                            f"seed {theirs[1]}); this target is scenario {mine[0]}, seed "
                            f"{mine[1]}")
    try:
        theirs_now = read_snapshot(other, kind="dump")
    except (DebuggerError, MemoryFault, KeyError):
        raise DebuggerError(f"{path} does not hold the pool tag tracker (nt!PoolTrackTable):"
                            " a full dump (.dump /f) does") from None
    try:
        mine_now = read_snapshot(target, kind="this target")
    except (DebuggerError, MemoryFault, KeyError):
        raise DebuggerError(NO_SNAPSHOT) from None
    pair = [(theirs_now, info(theirs_now, name=path), other),
            (mine_now, info(mine_now), target)]
    if mine_now.tick is not None and theirs_now.tick is not None \
            and mine_now.tick < theirs_now.tick:
        pair.reverse()
    (old, old_info, _), (new, new_info, newer) = pair
    return Pair(old, new, old_info, new_info, newer)


# -- the table of changes -----------------------------------------------------------------------
def _counts(snapshot: Snapshot, pool: str, pattern: str | None) -> dict[int, PoolCount]:
    out = {}
    for key, (np, p) in snapshot.tags.items():
        if pattern is None or tag_matches(pattern, key):
            out[key] = np if pool == NONPAGED_ONLY else p if pool == PAGED_ONLY else _sum([np, p])
    return out


def _lockstep(rows: list[TagChange]) -> dict[str, str]:
    """Letters for tags that grew by the same number of new blocks, made as often."""
    def grew(r: TagChange) -> tuple[int, int]:
        return r.outstanding_diff, r.new.allocs - r.old.allocs

    def beyond_churn(r: TagChange) -> bool:
        """Growth a busy tag's frees cannot make by chance: more than two standard deviations
        of a count that moves by one at each of its frees (with hundreds of churning tags,
        two of them share a small difference and an alloc count now and then)."""
        frees = r.new.frees - r.old.frees
        return r.outstanding_diff >= LOCKSTEP_MIN and r.outstanding_diff ** 2 > 4 * frees

    groups: dict[tuple[int, int], list[str]] = {}
    for r in rows:
        if beyond_churn(r):
            groups.setdefault(grew(r), []).append(r.tag)
    marks: dict[str, str] = {}
    for r in rows:                    # letters in the order the table shows the groups
        group = groups.get(grew(r), [])
        if len(group) > 1 and r.tag not in marks:
            letter = chr(ord("A") + len(set(marks.values())) % 26)
            marks.update({tag: letter for tag in group})
    return marks


def _large(old: Snapshot, new: Snapshot, pool: str, pattern: str | None) -> list[LargeChange]:
    def shown(entries: frozenset[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
        return [e for e in entries
                if (pool == BOTH or bool(e[2] & PAGED) == (pool == PAGED_ONLY))
                and (pattern is None or tag_matches(pattern, e[1]))]

    sums: dict[str, list[int]] = {}
    for column, entries in ((0, new.large - old.large), (2, old.large - new.large)):
        for _, key, _, nbytes in shown(entries):
            tally = sums.setdefault(display_tag(key), [0, 0, 0, 0])
            tally[column] += 1
            tally[column + 1] += nbytes
    changes = [LargeChange(tag, *tally) for tag, tally in sums.items()]
    changes.sort(key=lambda c: (-(c.new_bytes - c.freed_bytes), c.tag))
    return changes


def compare(session: "Session", pair: Pair, q: Query) -> PoolDiff:
    old, new = pair.old, pair.new
    before, after = _counts(old, q.pool, q.pattern), _counts(new, q.pool, q.pattern)
    db = tag_database(session)
    rows = []
    for key in after.keys() | before.keys():
        a, b = before.get(key, ZERO), after.get(key, ZERO)
        if a.outstanding != b.outstanding or a.used != b.used:
            rows.append(TagChange(display_tag(key), a, b, b.outstanding - a.outstanding,
                                  b.used - a.used, "", poolused_description(db, key)))
    if q.sort == BY_ALLOCS:
        rows.sort(key=lambda r: (-r.outstanding_diff, -r.used_diff, r.tag))
    else:
        rows.sort(key=lambda r: (-r.used_diff, -r.outstanding_diff, r.tag))
    marks = _lockstep(rows)
    rows = [TagChange(r.tag, r.old, r.new, r.outstanding_diff, r.used_diff,
                      marks.get(r.tag, ""), r.description) for r in rows]
    return PoolDiff(pair.old_info, pair.new_info, q.sort, q.pool, q.pattern,
                    rows, _sum(list(before.values())), _sum(list(after.values())),
                    _large(old, new, q.pool, q.pattern))


# -- the stacks ---------------------------------------------------------------------------------
class AllocationLog:
    """The verifier's log as -stacks reads it: for each address, the records of its
    allocations by age (how many records ago each was logged; the newest record is 0)."""

    def __init__(self, target: "Target"):
        self.target = target
        self.length, self.records = read_log(target)
        self.index = target.read_u32(target.symbol("nt!VfPoolTracesIndex"))
        allocating: dict[int, bool] = {}          # a record's first frame: an allocation?
        self.allocations: dict[int, list[int]] = {}
        for age, (address, _, _, frames) in enumerate(self.records):
            if not frames:
                continue
            first = frames[0]
            if first not in allocating:
                allocating[first] = symbol_of(target, first).startswith(ALLOCATE_ROUTINE + "+")
            if allocating[first]:
                self.allocations.setdefault(address, []).append(age)

    def age(self, log_index: int) -> int:
        """How many records ago the log stood at `log_index` (nt!VfPoolTracesIndex counts
        records, modulo 2**32)."""
        return (self.index - log_index) & 0xFFFFFFFF

    def stack(self, address: int, nbytes: int, ago: int) -> tuple[int, ...] | None:
        """The stack of the block's allocation: the newest allocation of `nbytes` at
        `address` logged at least `ago` records ago, if the ring still holds it."""
        ages = self.allocations.get(address, [])
        at = bisect_left(ages, ago)
        if at < len(ages) and self.records[ages[at]][1] == nbytes:
            return self.records[ages[at]][3]
        return None


def stacks(session: "Session", pair: Pair, pattern: str | None) -> StackDiff:
    old, new = pair.old, pair.new
    if pair.new_info.number is not None and new.boot != _store(session).boot:
        raise DebuggerError(f"Snapshot #{new.number} is of an earlier boot: the verifier's "
                            "log of this one does not hold its stacks")
    if old.tracked is None or new.tracked is None or old.log_index is None \
            or new.log_index is None:
        raise DebuggerError(NO_TRACKING)
    log = AllocationLog(pair.log)
    old_addresses = {address for address, _, _ in old.tracked}
    # per stack: bytes and blocks at the new snapshot, then at the old one
    groups: dict[tuple[int, ...], list[int]] = {}
    tags: dict[tuple[int, ...], set[str]] = {}
    unseen = [0, 0]
    for column, tracked, ago in ((0, new.tracked, log.age(new.log_index)),
                                 (2, old.tracked, log.age(old.log_index))):
        for address, nbytes, tag in tracked:
            if pattern is not None and not tag_matches(pattern, tag):
                continue
            stack = log.stack(address, nbytes, ago)
            if stack is None:
                if column == 0 and address not in old_addresses:
                    unseen[0] += 1
                    unseen[1] += nbytes
                continue
            tally = groups.setdefault(stack, [0, 0, 0, 0])
            tally[column] += nbytes
            tally[column + 1] += 1
            tags.setdefault(stack, set()).add(display_tag(tag))
    changed = [(stack, t) for stack, t in groups.items() if t[:2] != t[2:]]
    changed.sort(key=lambda st: (st[1][2] - st[1][0], st[1][3] - st[1][1], st[0]))
    shown = [StackGroup(n, sorted(tags[stack]), t[0], t[2], t[1], t[3],
                        [(f, symbol_of(log.target, f)) for f in stack])
             for n, (stack, t) in enumerate(changed, 1)]
    tracker = None
    if pattern is not None:
        before, after = _counts(old, BOTH, pattern), _counts(new, BOTH, pattern)
        tracker = _sum(list(after.values())).outstanding - _sum(list(before.values())).outstanding
    lost = max(log.age(old.log_index) - len(log.records), 0)
    return StackDiff(pair.old_info, pair.new_info, pattern, shown, unseen[0], unseen[1], lost,
                     log.length, [d.name for d in read_drivers(log.target)], tracker)


# -- history ------------------------------------------------------------------------------------
def history(session: "Session", pattern: str) -> TagHistory:
    points = []
    snapshots = _store(session).snapshots
    if not snapshots:
        raise DebuggerError(NO_SNAPSHOT)
    for snapshot in snapshots:
        counts = [c for key, c in snapshot.tags.items() if tag_matches(pattern, key)]
        np, p = _sum([c[0] for c in counts]), _sum([c[1] for c in counts])
        point = SnapshotInfo(snapshot.number, snapshot.name, snapshot.kind, snapshot.tick, np, p,
                             sum(1 for e in snapshot.large if tag_matches(pattern, e[1])))
        points.append(HistoryPoint(point, np.used + p.used))
    if "*" in pattern or "?" in pattern:
        description = f"the tags matching {pattern}"
    else:
        description = poolused_description(tag_database(session), pattern)
    return TagHistory(pattern, description, points)


# -- rendering ----------------------------------------------------------------------------------
def tick_text(tick: int | None) -> str:
    return "tick ?" if tick is None else f"tick {tick}"


def label(s: SnapshotInfo) -> str:
    """`#1 'a'`, `#2 break-in`, `'other.dmp'`, `this target`."""
    if s.number is None:
        return f"'{s.name}'" if s.name is not None else s.kind
    return f"#{s.number} '{s.name}'" if s.name is not None else f"#{s.number} {s.kind}"


def span(old: SnapshotInfo, new: SnapshotInfo) -> str:
    """`from #1 'a' (tick 100) to #2 break-in (tick 30100): 30000 ticks`."""
    text = (f"from {label(old)} ({tick_text(old.tick)}) to {label(new)} "
            f"({tick_text(new.tick)})")
    if old.tick is None or new.tick is None:
        return text + ": time between them unknown"
    return text + f": {new.tick - old.tick} ticks"


def _diff_lines(result: PoolDiff) -> list[str]:
    lines = [f"Pool use {span(result.old, result.new)}",
             "   Sorting by  " + ("Allocations Grown" if result.sort == BY_ALLOCS
                                  else "Bytes Grown")]
    if result.pool != BOTH:
        lines.append(f"   {'Paged' if result.pool == PAGED_ONLY else 'NonPaged'} pool only")
    if result.pattern is not None:
        lines.append(f"   Tags matching {result.pattern}")
    lines += ["", f" {'':5} {'Allocs':^26} {'Used':^38}".rstrip(),
              f" {'Tag':5} {'Old':>8} {'New':>8} {'Diff':>8} {'Old':>12} {'New':>12} "
              f"{'Diff':>12}"]

    def numbers(old: PoolCount, new: PoolCount) -> str:
        return (f" {old.outstanding:8d} {new.outstanding:8d} "
                f"{new.outstanding - old.outstanding:+8d} {old.used:12d} {new.used:12d} "
                f"{new.used - old.used:+12d}")

    for r in result.rows:
        lines.append(f" {r.tag:<5}{numbers(r.old, r.new)} {r.lockstep or ' '} {r.description}")
    if not result.rows:
        lines.append(" (no tag's pool use changed)")
    lines.append(f" TOTAL{numbers(result.old_total, result.new_total)}")
    marked = {r.lockstep: r for r in reversed(result.rows) if r.lockstep}
    if marked:
        lines.append("")
    for letter, grew in sorted(marked.items()):
        lines.append(f" {letter}: grew in lockstep ({grew.outstanding_diff:+d} blocks each, "
                     "allocated as often): probably one leak")
    if result.large:
        lines += ["", " Large allocations (nt!PoolBigPageTable)",
                  f" {'Tag':5} {'New':>8} {'Bytes':>12} {'Freed':>8} {'Bytes':>12}"]
        lines += [f" {c.tag:<5} {c.new_blocks:8d} {c.new_bytes:12d} {c.freed_blocks:8d} "
                  f"{c.freed_bytes:12d}" for c in result.large]
    return lines


USAGE_HEAD = (f"{'Tick':>10} {'NonPaged':>9} {'Used':>12} {'Paged':>9} {'Used':>12} "
              f"{'Large':>6}")


def _usage(s: SnapshotInfo) -> str:
    """Tick, nonpaged and paged allocations and bytes, large allocations (USAGE_HEAD)."""
    return (f"{'?' if s.tick is None else s.tick:>10} {s.nonpaged.outstanding:9d} "
            f"{s.nonpaged.used:12d} {s.paged.outstanding:9d} {s.paged.used:12d} {s.large:6d}")


def _list_lines(result: SnapshotList) -> list[str]:
    width = max([4] + [len(s.name or "") for s in result.snapshots])
    kinds = max(len(s.kind) for s in result.snapshots)
    lines = [f"Pool snapshots of this session ({len(result.snapshots)}, the last "
             f"{result.kept} are kept)", "",
             f" {'#':>4}  {'Name':<{width}}  {'Taken at':<{kinds}} {USAGE_HEAD}"]
    lines += [f" {s.number:4d}  {s.name or '':<{width}}  {s.kind:<{kinds}} {_usage(s)}"
              for s in result.snapshots]
    if not result.session_pool:
        lines += ["", "Session pool is not in them: this target has no session pool tracker "
                      f"(nt!{SESSION_TRACKER})."]
    return lines


def _stack_lines(result: StackDiff) -> list[str]:
    lines = [f"// Verified drivers' pool allocations {span(result.old, result.new)}",
             "// by allocation stack (Driver Verifier's log, nt!VfPoolTraces), biggest change "
             "first:",
             "// + bytes ( new - old ) allocs, + count ( new - old ), the stack; hex numbers.",
             ""]
    total = count = 0
    for g in result.groups:
        grew, more = g.new_bytes - g.old_bytes, g.new_count - g.old_count
        total += grew
        count += more
        lines += [f"{'+' if grew >= 0 else '-'} {abs(grew):8x} ( {g.new_bytes:8x} - "
                  f"{g.old_bytes:8x}) {g.new_count:6x} allocs\tBackTrace{g.backtrace}\t"
                  f"{','.join(g.tags)}",
                  f"{'+' if more >= 0 else '-'} {abs(more):8x} ( {g.new_count:8x} - "
                  f"{g.old_count:8x})\tBackTrace{g.backtrace}\tallocations", ""]
        lines += [f"\t{name}" for _, name in g.frames]
        lines.append("")
    if not result.groups:
        lines += ["// (no stack holds more or fewer blocks than before)", ""]
    lines.append(f"Total increase == {total:x} ({count:x} allocations)")
    lines += ["",
              f"// Not seen: {result.unseen_blocks:x} new blocks ({result.unseen_bytes:x} bytes) "
              f"whose allocation record fell off the log (0x{result.log_length:x} records),",
              "// and the allocations of drivers that are not verified, which are not logged "
              f"(verified: {', '.join(result.verified) or 'none'})."]
    if result.lost_records:
        lines.append(f"// The log no longer reaches back to {label(result.old)}: "
                     f"0x{result.lost_records:x} records since then fell off.")
    if result.tracker_blocks is not None:
        lines.append(f"// The tag tracker counts {result.tracker_blocks:+d} outstanding blocks "
                     f"of {result.pattern} in that time, all drivers.")
    return lines


def spark_characters(session: "Session") -> str:
    """Block characters, unless the output's encoding cannot write them."""
    encoding = getattr(getattr(session, "stdout", None), "encoding", None)
    if encoding is None:
        return SPARK
    try:
        SPARK.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return SPARK_ASCII
    return SPARK


def sparkline(values: list[int], ramp: str) -> str:
    low, high = min(values), max(values)
    if high == low:
        return ramp[0] * len(values)
    top = len(ramp) - 1
    return "".join(ramp[round((v - low) * top / (high - low))] for v in values)


def _history_lines(result: TagHistory, session: "Session") -> list[str]:
    snaps = [p.snapshot for p in result.points]
    width = max([8] + [len(s.name or s.kind) for s in snaps])
    lines = [f"Pool use of {result.pattern}: {result.description}", "",
             f" {'#':>4}  {'Snapshot':<{width}} {USAGE_HEAD}"]
    lines += [f" {s.number:4d}  {s.name or s.kind:<{width}} {_usage(s)}" for s in snaps]
    used = [p.used for p in result.points]
    lines += ["", f" Used {sparkline(used, spark_characters(session))}  "
                  f"({min(used)} to {max(used)} bytes)"]
    return lines


def _saved_line(s: SnapshotInfo) -> str:
    return (f"Saved pool snapshot {label(s)} ({tick_text(s.tick)}): nonpaged "
            f"{s.nonpaged.outstanding} allocations, {s.nonpaged.used} bytes; paged "
            f"{s.paged.outstanding} allocations, {s.paged.used} bytes")


def render_pooldiff(result: object, session: "Session") -> str:
    if isinstance(result, PoolDiff):
        return "\n".join(_diff_lines(result))
    if isinstance(result, SnapshotList):
        return "\n".join(_list_lines(result))
    if isinstance(result, StackDiff):
        return "\n".join(_stack_lines(result))
    if isinstance(result, TagHistory):
        return "\n".join(_history_lines(result, session))
    assert isinstance(result, SnapshotInfo)
    return _saved_line(result)


# -- the command --------------------------------------------------------------------------------
@command("!pooldiff",
         syntax="!pooldiff [-a] [-p|-n] [-tag TagString] [A [B] | -dump FileName] | "
                "-stacks [TagString [A [B]] | -dump FileName] | -history TagString | "
                "-save [Name] | -list",
         render=render_pooldiff,
         help="What grew in pool between two snapshots, and which call stacks hold it (a "
              "kernel-mode UMDH).\n"
              "The session takes a snapshot of pool use (tag tracker, big-page table, the "
              "verifier's tracked allocations) when it opens and at every break-in: after g "
              "(its ticks, Ctrl+C, a PoolHitTag hit, a bug check) and .reboot.\n"
              "`!pooldiff [A [B]]`: the tags whose outstanding allocations or bytes changed "
              "from A to B (default: the last two snapshots), biggest growth in bytes first; "
              "-a sorts by allocations, -p or -n shows paged or nonpaged pool only, "
              "-tag TagString filters as !poolused does (Mm*, CM??).  Tags marked with the "
              "same letter grew by the same number of new blocks: probably one leak.\n"
              "`-dump FileName` in place of A and B: between this target and another dump of "
              "the same machine (the earlier by tick first).\n"
              "`-stacks [TagString [A [B]]]`: with Driver Verifier pool tracking, the verified "
              "drivers' outstanding blocks grouped by allocation stack from the verifier's "
              "log, in UMDH's shape, biggest change first.\n"
              "`-history TagString`: the tag's use in every snapshot, and a sparkline of its "
              "bytes (ASCII when the output cannot show block characters).\n"
              "`-save [Name]` takes a snapshot now; `-list` lists them.  A and B are names or "
              "the numbers -list shows.")
def pooldiff(session: "Session", args: str
             ) -> PoolDiff | SnapshotList | StackDiff | TagHistory | SnapshotInfo:
    q = parse(args)
    if q.form == "save":
        store = _store(session)
        name = q.words[0] if q.words else None
        if name is not None:
            store.check_name(name)
        try:
            return kept(store.take(session.target, SAVED, name))
        except (DebuggerError, MemoryFault, KeyError):
            raise DebuggerError(NO_SNAPSHOT) from None
    if q.form == "list":
        if not _store(session).snapshots:
            raise DebuggerError(NO_SNAPSHOT)
        return SnapshotList([kept(s) for s in _store(session).snapshots],
                            session.target.resolve(f"nt!{SESSION_TRACKER}") is not None,
                            MAX_SNAPSHOTS)
    if q.form == "history":
        assert q.pattern is not None
        return history(session, q.pattern)
    pair = session_pair(session, q.words) if q.path is None else dump_pair(session, q.path)
    if q.form == "stacks":
        return stacks(session, pair, q.pattern)
    return compare(session, pair, q)
