"""The Python API: drive the debugger from a program, a test or a notebook.

    import kdsim
    with kdsim.open(scenario="leak", scale=0.25) as kd:
        print(kd.run("!poolused /t4 2"))          # the text kd prints
        used = kd.result("!poolused /t4 2")       # the result object the renderer printed
        kd.json("!poolused /t4 2")                # its `kdsim --json` object
        kd.go(1000)                               # let the machine run

Where it lives: the API is the debugger's front end, so it is a module of the debugger
(`commands.api`), beside the CLI that is the other front end; `kdsim.open`, `kdsim.open_dump`
and `kdsim.resume` are the same functions, reached through the `kdsim` package's module
`__getattr__`, which imports this module only when one of them is asked for.  The simulator
therefore never loads the debugger by being imported (commands import `kdsim`; the edge back is
a real, function-level import that tests/test_architecture.py sees and finds acyclic, because
nothing imports the `kdsim` package module itself).

Stable surface: `open`, `open_dump`, `resume`, `Debugger` (`run`, `result`, `json`, `go`,
`close`, `target`, `safe`), `Text`, and the errors `CommandError` and `OpenError`.  A bad
argument raises TypeError or ValueError with a one-line message, as the CLI words it.
"""
from __future__ import annotations

import html
import io
import numbers
import os
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from .dispatch import execute, jsonl_record, load_commands, run_command, split_commands
from .jsonl import error_text
from .session import Session
from .target_cmds import stop_processor

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

__all__ = ["CommandError", "Debugger", "OpenError", "Text", "open", "open_dump", "resume"]

ARCHES = ("x86", "x64")
MAX_SCALE = 4.0
Progress = Callable[[str, int, int], None]


class CommandError(Exception):
    """A command failed; `message` is the debugger's error (what kd would print)."""

    def __init__(self, command: str, message: str):
        super().__init__(f"{command}: {message}")
        self.command = command
        self.message = message


class OpenError(Exception):
    """A dump or snapshot could not be opened; the message is the one line kdsim prints."""


class Text(str):
    """A command's output: a str that a notebook (IPython, Jupyter) shows as kd's text, in a
    fixed-width block, rather than as a quoted string."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


class Debugger:
    """A debugging session on one target, as `kdsim` at its prompt, without a terminal."""

    def __init__(self, target: "Target", *, safe: bool = False):
        load_commands()
        self._out = io.StringIO()
        self._session = Session(target, stdout=self._out, stderr=self._out)
        self._session.settings["color"] = "off"
        self._session.settings["safe"] = bool(safe)
        self._session.processor = stop_processor(target)
        self._closed = False

    # -- what it looks at --------------------------------------------------------------------
    @property
    def target(self) -> "Target":
        """The target the commands read (after `.reboot`, the new machine)."""
        return self._session.target

    @property
    def safe(self) -> bool:
        """Whether commands that write files (`.logopen`, `.dump` ...) are refused."""
        return bool(self._session.settings["safe"])

    # -- commands ----------------------------------------------------------------------------
    def run(self, line: str) -> Text:
        """Run a command line (`;` and all) and return what kd prints for it, errors included
        (no prompt, no echo): a failing command does not raise, as at the prompt."""
        return Text(self._execute(line)[1])

    def result(self, command: str) -> Any:
        """Run one command and return its result: the object the renderer prints (a
        dataclass, docs/json.md lists them), or the text of a command that prints text.
        A field of type Rows is read when iterated.  CommandError if the command failed."""
        text = self._one(command)
        found: list[Any] = []
        with self._session.capture() as captured:
            ok = run_command(self._session, text, lambda cmd, result: found.append(result))
        if not ok:
            raise CommandError(text, self._error(captured))
        return found[0]

    def json(self, command: str) -> dict[str, Any]:
        """Run one command and return its `kdsim --json` object (docs/json.md): "result",
        "text" or "error", and the schema version.  Never raises for a failed command."""
        text = self._one(command)
        self._session.begin_command()
        return jsonl_record(self._session, text)[1]

    def go(self, ticks: int | None = None) -> Text:
        """Let the machine run (`g [Ticks]`); what `g` prints.  CommandError on a dump, or when
        the machine has stopped (a bug check)."""
        if ticks is not None and (isinstance(ticks, bool) or not isinstance(ticks, int)):
            raise TypeError(f"ticks must be an int, not {type(ticks).__name__}")
        if ticks is not None and ticks < 0:
            raise ValueError(f"ticks must be 0 or more, not {ticks}")
        line = "g" if ticks is None else f"g 0n{ticks}"
        ok, text = self._execute(line)
        if not ok:
            raise CommandError(line, self._session.last_error)
        return Text(text)

    def close(self) -> None:
        """Close the session's log, if one is open; the debugger takes no more commands."""
        self._session.close_log(announce=False)
        self._closed = True

    def __enter__(self) -> "Debugger":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        target = self._session.target
        kind = "live machine" if target.live else "dump"
        scenario = target.meta.get("scenario")
        named = f" '{scenario}'" if scenario else ""
        return f"<kdsim Debugger: {target.arch.name} {kind}{named}>"

    # -- inside ------------------------------------------------------------------------------
    def _execute(self, line: str) -> tuple[bool, str]:
        self._check(line)
        self._out.seek(0)
        self._out.truncate()
        ok = execute(self._session, line)
        return ok, self._out.getvalue()

    def _one(self, command: str) -> str:
        self._check(command)
        parts = split_commands(command)
        if len(parts) != 1:
            raise ValueError(f"one command expected, not {len(parts)}: run() takes a line")
        return parts[0][1]

    def _check(self, line: object) -> None:
        if self._closed:
            raise ValueError("the debugger is closed")
        if not isinstance(line, str):
            raise TypeError(f"a command is a str, not {type(line).__name__}")

    @staticmethod
    def _error(captured: list[tuple[str, str]]) -> str:
        return error_text([text for kind, text in captured if kind == "error"]) or "failed"


# -- opening a target ------------------------------------------------------------------------
def machine_target(*, scenario: str | None = None, arch: str | None = None,
                   seed: int | None = None, scale: float | None = None,
                   verifier: str | None = None, lab: str | None = None,
                   use_cache: bool = True, progress: Progress | None = None,
                   spell: Callable[[str], str] = str) -> "Target":
    """Boot (or take from the boot cache) a scenario's machine; TypeError or ValueError for
    a bad argument, named as `spell` spells it (the CLI: `--scale`), ImportError when the
    simulator is missing."""
    from kdsim.control import open_machine, scenario_lab
    if lab is not None:
        if scenario is not None and scenario != lab:
            raise ValueError(f"{spell('lab')} '{lab}' and {spell('scenario')} '{scenario}' "
                             f"disagree: a lab is the scenario of that name")
        if scenario_lab(_text(lab, "lab", spell)) is None:
            raise ValueError(f"scenario '{lab}' has no lab (see --list-scenarios)")
        scenario = lab
    if scenario is not None:
        _text(scenario, "scenario", spell)
    if arch is not None and arch not in ARCHES:
        raise ValueError(f"{spell('arch')} must be x86 or x64, not {arch!r}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"{spell('scale')} must be a number, not {type(scale).__name__}")
        if not 0 < scale <= MAX_SCALE:
            raise ValueError(f"{spell('scale')} must be above 0 and at most {MAX_SCALE:g}, "
                             f"not {scale:g}")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"{spell('seed')} must be an int, not {type(seed).__name__}")
        if not -(1 << 63) <= seed < 1 << 63:
            raise ValueError(f"{spell('seed')} must be a 64-bit number, not {seed}")
    if verifier is not None:
        _text(verifier, "verifier", spell)
    options: dict[str, Any] = {"arch": arch, "seed": seed, "scenario": scenario,
                               "scale": scale, "verifier": verifier}
    try:
        return open_machine(**{k: v for k, v in options.items() if v is not None},
                                    use_cache=use_cache, progress=progress)
    except (ValueError, KeyError) as exc:
        raise ValueError(str(exc.args[0]) if exc.args else type(exc).__name__) from None


def dump_target(path: str | os.PathLike[str]) -> "Target":
    """The target of a dump file; OpenError says why it cannot be opened."""
    from kdsim.control import DumpError, open_dump
    try:
        return open_dump(path)
    except DumpError as exc:
        raise OpenError(exc.message) from None


def snapshot_target(path: str | os.PathLike[str]) -> "Target":
    """The live target a snapshot holds; OpenError says why it cannot be opened."""
    from kdsim.control import SnapshotError, open_snapshot
    try:
        return open_snapshot(path)
    except SnapshotError as exc:
        raise OpenError(exc.message) from None


def _text(value: object, name: str, spell: Callable[[str], str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{spell(name)} must be a str, not {type(value).__name__}")
    return value


def open(scenario: str | None = None, *, arch: str | None = None, seed: int | None = None,
         scale: float | None = None, lab: str | None = None, verifier: str | None = None,
         cache: bool = True, safe: bool = False) -> Debugger:
    """A debugger on a simulated machine: the scenario (`kdsim --list-scenarios`; the default
    machine if None) or the lab of that name, on its own arch unless `arch` is given, booted
    with `seed` at `scale`, with Driver Verifier settings in verifier.exe syntax.  `cache`:
    use the boot cache.  `safe`: refuse commands that write files."""
    return Debugger(machine_target(scenario=scenario, arch=arch, seed=seed, scale=scale,
                                   lab=lab, verifier=verifier, use_cache=cache), safe=safe)


def open_dump(path: str | os.PathLike[str], *, safe: bool = False) -> Debugger:
    """A debugger on a dump file (`kdsim -z`): read-only, as in kd."""
    return Debugger(dump_target(path), safe=safe)


def resume(path: str | os.PathLike[str], *, safe: bool = False) -> Debugger:
    """A debugger on the live machine a snapshot holds (`kdsim --resume`)."""
    return Debugger(snapshot_target(path), safe=safe)
