"""Session space as the debugger finds it in memory.

The sessions are on nt!MiSessionWsList, linked through their `_MM_SESSION_SPACE.WsListEntry`;
nt!MmSessionSpace points at the current process's session, whose pool `!poolused 8` and
`!poolfind ... 4` look at (kd's `!session` would switch it).  Each structure gives its paged
pool's range (`PagedPoolStart` .. `PagedPoolEnd`, the last byte), its tag tracker
(`PoolTrackTableExpansion`, `...Size` entries) and its big-page table (`PoolTrackBigPages`,
`...Size`).  A target without these symbols (a machine built without sessions) has none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.layouts import field_path_offset
from kdsim.layouts.session import mm_session_space
from kdsim.target import MemoryFault

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

MAX_SESSIONS = 64                # a corrupted list ends the walk here
MAX_ENTRIES = 1 << 20            # a table size beyond this is corruption, not a table


@dataclass(frozen=True)
class SessionSpace:
    session_id: int
    address: int                 # its _MM_SESSION_SPACE
    pool_start: int
    pool_end: int                # one past PagedPoolEnd
    tracker: int
    tracker_size: int
    big_table: int
    big_entries: int

    def contains(self, address: int) -> bool:
        return self.pool_start <= address < self.pool_end


def _read(target: "Target", space: int) -> SessionSpace:
    """The session structure at `space`; MemoryFault if it cannot be read or its table sizes
    are not a kernel's (a corrupted structure is as good as an unreadable one)."""
    layout = mm_session_space(target.profile)

    def ptr(name: str) -> int:
        return target.read_ptr(space + field_path_offset(layout, name))

    if max(ptr("PoolTrackTableExpansionSize"), ptr("PoolTrackBigPagesSize")) > MAX_ENTRIES:
        raise MemoryFault(space)
    return SessionSpace(
        target.read_u32(space + field_path_offset(layout, "SessionId")), space,
        ptr("PagedPoolStart"), ptr("PagedPoolEnd") + 1, ptr("PoolTrackTableExpansion"),
        ptr("PoolTrackTableExpansionSize"), ptr("PoolTrackBigPages"),
        ptr("PoolTrackBigPagesSize"))


def sessions(target: "Target") -> list[SessionSpace]:
    """Every session on nt!MiSessionWsList, in list order (none if it cannot be read)."""
    head = target.resolve("nt!MiSessionWsList")
    if head is None:
        return []
    link = field_path_offset(mm_session_space(target.profile), "WsListEntry")
    found: list[SessionSpace] = []
    try:
        entry = target.read_ptr(head)
        while entry != head and len(found) < MAX_SESSIONS:
            found.append(_read(target, entry - link))
            entry = target.read_ptr(entry)
    except MemoryFault:
        pass
    return found


def current_session(target: "Target") -> SessionSpace | None:
    """The session nt!MmSessionSpace points at."""
    space = target.global_ptr("MmSessionSpace", default=0)
    if not space:
        return None
    try:
        return _read(target, space)
    except MemoryFault:
        return None


def session_pool_at(target: "Target", address: int) -> SessionSpace | None:
    """The session whose paged pool holds `address`."""
    return next((s for s in sessions(target) if s.contains(address)), None)
