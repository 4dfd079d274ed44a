"""A machine with session space and a few blocks in each session's pool, for the commands that
read session pool (`!poolused 8`, `!poolfind ... 4`, `!pool` on a session address)."""
from __future__ import annotations

from commands.session import Session
from kdsim.arch import get_arch
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import PoolSettings, SESSION_PAGED
from kdsim.sessionpool import SessionPools


def session_machine(arch: str) -> tuple[Session, dict[str, int]]:
    """Session 1 (the current one): Usac, Gla1 and a large Gh05; session 0: a Usac of its own,
    which the current session's views do not show."""
    m = Machine(get_arch(arch), 0, processors=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    sessions = m.pool.sessions = SessionPools(m)
    pool = m.pool

    def alloc(sid: int, size: int, tag: str) -> int:
        sessions.current = sid
        return pool.allocate(SESSION_PAGED, size, tag_to_ulong(tag))

    blocks = {"other": alloc(0, 0x80, "Usac"), "usac": alloc(1, 0x100, "Usac"),
              "gla1": alloc(1, 0x40, "Gla1"), "gh05": alloc(1, 0x2000, "Gh05"),
              "freed": alloc(1, 0x60, "Usac")}
    pool.free(blocks["freed"])
    return Session(m.target()), blocks
