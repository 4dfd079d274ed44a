"""`.snapshot`: save the live machine, for `kdsim --resume` to go on from where it stands.

A dump (`.dump`) is memory and symbols, read-only, as in kd; a snapshot also holds what the
simulator keeps outside memory (kdsim/snapshot.py), so the resumed machine runs on (`g`),
reboots and takes new verifier settings.  As with `.dump`, an existing file is kept unless
`/o` is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.control import SnapshotError, save_snapshot

from ..errors import DebuggerError
from ..registry import command
from ..target_cmds import _live
from .dump import refuse_open_log

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session

USAGE = "Usage: .snapshot [/o] FileName"


@dataclass(frozen=True)
class SnapshotWritten:
    path: str
    size: int                  # bytes in the file


def render_written(result: SnapshotWritten, session: "Session") -> str:
    return f"Creating {result.path} - live machine snapshot\nSnapshot successfully written"


@command(".snapshot", syntax=".snapshot [/o] FileName", category="target", target_action=True,
         render=render_written,
         writes_files=True,
         help="Save the live machine to a snapshot file for `kdsim --resume`. The snapshot "
              "holds memory and everything the simulator keeps beside it, so the resumed "
              "machine runs on (g), reboots (.reboot) and takes verifier settings. /o "
              "overwrites an existing file (otherwise it is kept).")
def dot_snapshot(session: "Session", args: str) -> SnapshotWritten:
    control = _live(session, ".snapshot", args)
    path, overwrite = parse_snapshot_args(args)
    refuse_open_log(session, path)
    try:
        size = save_snapshot(control, path, overwrite)
    except SnapshotError as err:
        raise DebuggerError(err.message) from None
    return SnapshotWritten(path, size)


def parse_snapshot_args(args: str) -> tuple[str, bool]:
    """(file name, overwrite): `/o` (or `-o`) first, then the name, quoted or to the end."""
    text = args.strip()
    overwrite = False
    while text[:2].lower() in ("/o", "-o") and text[2:3] in ("", " ", "\t"):
        overwrite = True
        text = text[2:].lstrip()
    if text.startswith('"'):
        text = text[1:].split('"', 1)[0]
    if not text or text[0] in "/-" and not any(c in text[1:] for c in "/\\."):
        raise DebuggerError(USAGE)
    return text, overwrite
