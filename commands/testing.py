"""Small helpers for tests of any command: run a line and get its text, a bare target, and a
command registered only for the duration of a test."""
from __future__ import annotations

import io
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from kdsim.target import Target

from . import registry
from .dispatch import execute, load_commands
from .registry import CommandFunc

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session


def run(session: "Session", line: str) -> str:
    """Run a command line (`;` and all) and return exactly what it printed."""
    load_commands()
    saved, session.stdout = session.stdout, io.StringIO()
    try:
        execute(session, line)
        return session.stdout.getvalue()
    finally:
        session.stdout = saved


def blank_target(arch: str = "x86", processors: int = 1) -> Target:
    """A target with an empty address space and an `nt` module without symbols."""
    return Target.empty(arch, processors)


@contextmanager
def temporary_command(name: str, func: CommandFunc, **options: Any) -> Iterator[None]:
    """Register a command for the duration of a `with` block."""
    saved = dict(registry.REGISTRY), dict(registry._BY_ALIAS)
    registry.command(name, **options)(func)
    try:
        yield
    finally:
        registry.REGISTRY.clear()
        registry.REGISTRY.update(saved[0])
        registry._BY_ALIAS.clear()
        registry._BY_ALIAS.update(saved[1])
