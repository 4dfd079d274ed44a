"""The session's pool tag database, for the commands that print descriptions.

The user's file (the `pooltag_file` setting, else KDSIM_POOLTAG) may be unusable: missing, a
directory or device, too large.  The commands then describe tags from the built-in list, and
the problem is printed in one line before the first such output of the session, so a user
who expected their file's wording learns why it is absent without every `!pool` repeating it.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from pooltag import TagDatabase

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

_REPORTED: "weakref.WeakKeyDictionary[Session, set[str]]" = weakref.WeakKeyDictionary()


def tag_database(session: "Session") -> TagDatabase:
    """The tag database the session's settings name; its file's problem printed once."""
    db = TagDatabase(session.settings.get("pooltag_file"))
    if db.error is not None:
        reported = _REPORTED.setdefault(session, set())
        if db.error not in reported:
            reported.add(db.error)
            session.write_lines([db.error], "error")
    return db
