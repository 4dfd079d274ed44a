"""One registry for every command: name, aliases, syntax and help, from which `.help`, `!help`,
completion and the README's command reference are all generated (the pwndbg pattern).

A command function takes the session and the raw argument text (everything after the command
name) and returns a result: None, a str (printed as is) or a result object, which the
command's `render` function turns into the real debugger's text (the Volatility 3 pattern:
commands compute, renderers print).  A renderer returns the text, or yields it line by line
when the result is long (its rows read as they are printed: DESIGN.md "Results stream").

Commands read the target; only those registered as acting (`target_action`, or a display
command's `action_forms` such as `!verifier -disable`) may use its control surface, and a test
holds every other command module to that (tests/test_architecture.py).  Commands that write
files outside the simulated machine are registered with `writes_files`; the dispatcher refuses
them in safe mode (`kdsim --safe`, `.settings set safe=on`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

CommandFunc = Callable[["Session", str], Any]
Renderer = Callable[[Any, "Session"], str | Iterable[str]]   # the text, or its lines

# Categories, in the order `.help` lists them.
CATEGORIES = ("core", "extension", "meta", "target", "lab")


@dataclass(frozen=True)
class Command:
    name: str                       # as typed: "db", "!pool", ".logopen", "?"
    func: CommandFunc
    aliases: tuple[str, ...]
    syntax: str
    help: str
    category: str
    render: Renderer | None
    target_action: bool             # acts on the simulated machine (marked so in .help)
    action_forms: tuple[str, ...]   # arguments with which a display command acts
    writes_files: bool = False      # writes outside the simulated machine: refused in safe mode

    @property
    def acts(self) -> bool:
        """May use the target's control surface."""
        return self.target_action or bool(self.action_forms)


REGISTRY: dict[str, Command] = {}
_BY_ALIAS: dict[str, Command] = {}


def _category(name: str) -> str:
    if name.startswith("!"):
        return "extension"
    if name.startswith("."):
        return "meta"
    return "core"


def command(name: str, *, aliases: tuple[str, ...] = (), syntax: str = "", help: str = "",
            category: str | None = None, render: Renderer | None = None,
            target_action: bool = False,
            action_forms: tuple[str, ...] = (),
            writes_files: bool = False) -> Callable[[CommandFunc], CommandFunc]:
    """Register `func` under `name` (and its aliases).  `writes_files` marks a command that
    writes files outside the simulated machine (a log, a dump): safe mode refuses it."""

    def register(func: CommandFunc) -> CommandFunc:
        cmd = Command(name, func, tuple(aliases), syntax or name, help.strip(),
                      category or _category(name), render, target_action, tuple(action_forms),
                      writes_files)
        for key in (name, *aliases):
            low = key.lower()
            if low in _BY_ALIAS and _BY_ALIAS[low].func is not func:
                raise ValueError(f"command {key!r} registered twice")
            _BY_ALIAS[low] = cmd
        REGISTRY[name] = cmd
        return func

    return register


def lookup(name: str) -> Command | None:
    """Commands match case-insensitively, as in the real debugger."""
    return _BY_ALIAS.get(name.lower())


def all_commands() -> list[Command]:
    return sorted(REGISTRY.values(), key=lambda c: (CATEGORIES.index(c.category), c.name))
