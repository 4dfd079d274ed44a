"""Pool-usage snapshots: what the debugger remembers of the pool from one break-in to the next,
for `!pooldiff` (commands/ext/pooldiff.py).

A snapshot is the session's data, read from memory through `Target` (never the simulator's
objects): the tag tracker's counters (nt!PoolTrackTable), the large allocations of
nt!PoolBigPageTable, the clock (nt!KeTickCount, ticks since boot, when the target has it) and,
when Driver Verifier tracks pool, the verified drivers' outstanding allocations with the
position of the verifier's Allocate/Free log (nt!VfPoolTracesIndex), which `!pooldiff
-stacks` matches against the log.  Session pool has its own tracker on Windows
(nt!ExpSessionPoolTrackTable); the simulated machine models no session space, so that table
is read, and counted as paged pool, only on a target that has it.

The session keeps the snapshots (`Session.pool_snapshots`): one when it opens, one after every
`g` (its ticks ran out, Ctrl+C, a PoolHitTag hit, a bug check), one after `.reboot`, and those
`!pooldiff -save` takes.  A reboot starts a new boot, and counters of two boots do not
compare.  The session keeps the last MAX_SNAPSHOTS and always the first.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.control import POOL_TRACKING, Stop
from kdsim.target import MemoryFault

from .errors import DebuggerError
from .ext.poolused import PoolCount, _sum, tracker_entries
from .ext.verifier import read_drivers, read_statistics
from .poolread import PoolReader

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

SESSION_TRACKER = "ExpSessionPoolTrackTable"
MAX_SNAPSHOTS = 256
NAME = re.compile(r"[A-Za-z_][\w.-]{0,31}")

# what took a snapshot, as -list prints it
OPENED, SAVED, REBOOTED = "session open", "saved", "reboot"
STOPS = {Stop.BREAK_IN: "break-in", Stop.POOL_HIT: "PoolHitTag", Stop.BUGCHECK: "bug check"}
CTRL_C = "Ctrl+C"
ZERO = PoolCount(0, 0, 0, 0)


@dataclass(frozen=True, eq=False)
class Snapshot:
    number: int                                    # in the order taken, from 0
    name: str | None                               # given by -save NAME
    kind: str                                      # what took it (OPENED, SAVED, a stop ...)
    boot: int                                      # snapshots of one boot compare
    tick: int | None                               # nt!KeTickCount, None if unreadable
    tags: dict[int, tuple[PoolCount, PoolCount]]   # tag ULONG: (nonpaged, paged)
    session_pool: bool                             # the session tracker was read (as paged)
    large: frozenset[tuple[int, int, int, int]]    # big pages: (va, tag, pool type, bytes)
    tracked: frozenset[tuple[int, int, int]] | None  # verifier: (address, bytes, tag)
    log_index: int | None                          # nt!VfPoolTracesIndex, None: no log


def read_tick(target: "Target") -> int | None:
    """nt!KeTickCount (a _KSYSTEM_TIME), None when the target has no readable clock."""
    at = target.resolve("nt!KeTickCount")
    if at is None:
        return None
    layout = target.profile.system_time
    try:
        time = layout.parse(target.read(at, layout.sizeof()))
    except MemoryFault:
        return None
    return time.LowPart | (time.High1Time << 32)


def _tracking(target: "Target") -> tuple[frozenset[tuple[int, int, int]] | None, int | None]:
    """The verified drivers' outstanding allocations (None unless pool tracking is on) and
    the log's index (None when the verifier keeps no log)."""
    try:
        level = read_statistics(target)["Level"]
        length = target.read_u32(target.symbol("nt!VfPoolTracesLength"))
    except (KeyError, MemoryFault):
        return None, None
    tracked = None
    if level & POOL_TRACKING:
        tracked = frozenset((a.address, a.size, a.tag & 0xFFFFFFFF)
                            for d in read_drivers(target, allocations=True)
                            for a in d.allocations)
    index = target.read_u32(target.symbol("nt!VfPoolTracesIndex")) if length else None
    return tracked, index


def read_snapshot(target: "Target", number: int = 0, name: str | None = None,
                  kind: str = OPENED, boot: int = 0) -> Snapshot:
    """The target's pool usage now.  A target without a readable tag tracker raises
    DebuggerError or MemoryFault."""
    tags = {key: (np, p) for key, np, p in tracker_entries(target)}
    session_pool = target.resolve(f"nt!{SESSION_TRACKER}") is not None
    if session_pool:
        for key, np, p in tracker_entries(target, SESSION_TRACKER):
            old_np, old_p = tags.get(key, (ZERO, ZERO))
            tags[key] = (old_np, _sum([old_p, np, p]))
    large = frozenset((b.va, b.tag, b.pool_type, b.nbytes) for b in PoolReader(target).big_pages())
    tracked, index = _tracking(target)
    return Snapshot(number, name, kind, boot, read_tick(target), tags, session_pool, large,
                    tracked, index)


class PoolSnapshots:
    """The snapshots of one session, oldest first; takes the first when it is made."""

    def __init__(self, target: "Target"):
        self.snapshots: list[Snapshot] = []
        self.taken = 0                    # numbers given so far
        self.boot = 0
        self._target = weakref.ref(target)
        self.record(target, OPENED)

    def current_boot(self, target: "Target") -> int:
        """The boot `target` is: a new one when the session's target has changed (.reboot)."""
        if self._target() is not target:
            self._target = weakref.ref(target)
            self.boot += 1
        return self.boot

    def take(self, target: "Target", kind: str, name: str | None = None) -> Snapshot:
        """A new snapshot of the target, kept; DebuggerError or MemoryFault if the target
        has no readable tag tracker."""
        snapshot = read_snapshot(target, self.taken, name, kind, self.current_boot(target))
        self.taken += 1
        self.snapshots.append(snapshot)
        if len(self.snapshots) > MAX_SNAPSHOTS:
            del self.snapshots[1]
        return snapshot

    def record(self, target: "Target", kind: str) -> None:
        """An automatic snapshot; a target without a readable tracker (a blank one, a mini
        dump) has nothing to remember, and the command that stopped goes on."""
        try:
            self.take(target, kind)
        except (DebuggerError, MemoryFault, KeyError):
            pass

    def after_run(self, target: "Target", stop: Stop, interrupted: bool) -> None:
        """The snapshot of a break-in: after `g`, however the run ended."""
        self.record(target, CTRL_C if interrupted and stop is Stop.BREAK_IN else STOPS[stop])

    def find(self, ref: str) -> Snapshot:
        """A snapshot by name (case-insensitive) or number (`3` or `#3`)."""
        low = ref.lower()
        for snapshot in self.snapshots:
            if snapshot.name is not None and snapshot.name.lower() == low:
                return snapshot
        digits = ref.removeprefix("#")
        if digits.isdigit() and digits.isascii():
            number = int(digits)
            for snapshot in self.snapshots:
                if snapshot.number == number:
                    return snapshot
            raise DebuggerError(f"No pool snapshot #{number} (!pooldiff -list shows them)")
        raise DebuggerError(f"No pool snapshot named '{ref}' (!pooldiff -list shows them)")

    def check_name(self, name: str) -> None:
        """A name for -save: a letter or `_` first, then letters, digits, `_`, `.`, `-`;
        not one in use."""
        if not NAME.fullmatch(name) or not name.isascii():
            raise DebuggerError(f"'{name}' is no snapshot name: a letter first, then letters, "
                                f"digits, '_', '.' or '-', 32 at most")
        for snapshot in self.snapshots:
            if snapshot.name is not None and snapshot.name.lower() == name.lower():
                raise DebuggerError(f"The name '{name}' is taken by snapshot #{snapshot.number}"
                                    f": choose another")
