"""kdsim: a simulated Windows 7 SP1 kernel, and (through `kdsim.open`, `kdsim.open_dump`,
`kdsim.resume`) the debugger's Python API.

The API belongs to the debugger (commands/api.py, where its design is explained); this module
only reaches it, by a function-level import when one of its names is first asked for, so
importing the simulator never loads the debugger.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from commands.api import (CommandError, Debugger, OpenError, Text, open, open_dump,
                              resume)

API = ("CommandError", "Debugger", "OpenError", "Text", "open", "open_dump", "resume")
__all__ = list(API)


def __getattr__(name: str) -> Any:
    if name in API:
        from commands import api
        return getattr(api, name)
    raise AttributeError(f"module 'kdsim' has no attribute {name!r}")
