"""From a typed line to commands: split on `;`, find each command in the registry, run it,
render its result, and turn every failure into the debugger's own error text.

Splitting follows KD: `;` separates commands except inside double quotes; `$<` and `$><` (whose
file names may contain `;`) and the `*` comment take the rest of the line.  An error stops the
rest of the line, as it stops a script.  No Python exception ever reaches the user: a
DebuggerError prints its lines, anything unexpected prints one line (and its traceback on
stderr when KDSIM_DEBUG is set).

`run_command` is the one way a command runs; what becomes of its result is the caller's
`present`: printed as text or `.output json` (`execute_command`), one JSON Lines object
(`jsonl_record`), or handed to a program as it is (commands/api.py).  Safe mode is enforced
here, once, for every command registered with `writes_files`.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from kdsim.target import MemoryFault

from . import jsonl
from .context import on_processor
from .errors import DebuggerError, memory_access, no_export, syntax_error
from .interrupt import INTERRUPTS
from .output import write_result
from .registry import Command, all_commands, lookup
from .render import render, render_text
from .session import PagerQuit
from .unmodelled import closest, unmodelled

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

# Modules that register commands; packages are walked so a new module is picked up by itself.
COMMAND_MODULES = ("commands.meta", "commands.scripts", "commands.target_cmds", "commands.lab")
COMMAND_PACKAGES = ("commands.core", "commands.ext")
LOAD_ERRORS: dict[str, str] = {}
_loaded = False

_REST_OF_LINE = ("$<", "$><", "*")
_OPTIONS_JOIN = ("lm",)            # commands whose options may follow the name unspaced
_NAME = re.compile(r"""
      \$\$>a<|\$\$><|\$\$<|\$><|\$<|\$\$      # scripts and the $$ comment
    | [!.][\w.]*                              # !extension, .meta
    | \?\?|\?|\*                              # evaluate, comment
    | [A-Za-z_]\w*                            # plain commands
""", re.VERBOSE)


class Aborted(Exception):
    """A command stopped after its error was already printed (a failing script line, ^C)."""


def debug_enabled() -> bool:
    return bool(os.environ.get("KDSIM_DEBUG"))


def load_commands() -> None:
    """Import every module that registers commands; absent ones (still being written) are
    skipped, broken ones are recorded in LOAD_ERRORS and reported under KDSIM_DEBUG."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in COMMAND_MODULES:
        _import(name)
    for name in COMMAND_PACKAGES:
        package = _import(name)
        path = getattr(package, "__path__", None)
        if path is None:
            continue
        for info in pkgutil.walk_packages(path, name + ".", onerror=lambda _name: None):
            _import(info.name)


def _import(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        LOAD_ERRORS[name] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a command module must never stop the debugger from starting
        LOAD_ERRORS[name] = f"{type(exc).__name__}: {exc}"
    if debug_enabled():
        traceback.print_exc(file=sys.stderr)
    return None


def split_commands(line: str) -> list[tuple[int, str]]:
    """The commands of a line as (offset in the line, text), leading blanks removed."""
    parts: list[tuple[int, str]] = []
    pos, n = 0, len(line)
    while pos < n:
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos >= n:
            break
        start = pos
        if line.startswith(_REST_OF_LINE, pos):
            pos = n
        else:
            quoted = False
            while pos < n and (quoted or line[pos] != ";"):
                if line[pos] == "\\" and quoted and pos + 1 < n:
                    pos += 1
                elif line[pos] == '"':
                    quoted = not quoted
                pos += 1
        text = line[start:pos].rstrip()
        if text:
            parts.append((start, text))
        pos += 1            # past the ';'
    return parts


class Parsed(NamedTuple):
    name: str         # as typed: "!pool", ".logopen", "?"
    args: str         # the argument text, blanks around it removed
    args_at: int      # where the arguments start in the command text


def parse_name(text: str) -> Parsed:
    """Split a command into its name as typed and its argument text.  Options may run into
    a command's name as kd allows (`lmvm myfault` is `lm vm myfault`)."""
    match = _NAME.match(text)
    end = match.end() if match is not None else 0
    for name in _OPTIONS_JOIN:
        if end > len(name) and text[:end].lower().startswith(name) and lookup(
                text[:end]) is None:
            end = len(name)
    rest = text[end:]
    args = rest.strip()
    return Parsed(text[:end], args, end + len(rest) - len(rest.lstrip()))


Present = Callable[[Command, Any], None]      # what becomes of a command's result


def execute(session: "Session", line: str) -> bool:
    """Run every command of a line; False when one failed (the rest were not run)."""
    return failed_at(session, line) is None


def failed_at(session: "Session", line: str) -> int | None:
    """Run every command of a line; the offset in the line of the command that failed (the
    rest were not run), or None."""
    for offset, text in split_commands(line):
        if not execute_command(session, text, line[offset:], offset):
            return offset
        if session.quit_requested:
            break
    return None


def execute_command(session: "Session", text: str, rest: str = "", column: int = 0) -> bool:
    """Run one command and print its result (as text, JSON or a JSON Lines object); `rest`
    (from this command to the end of the line) and `column` (its offset in the line) place
    and quote a caret error as KD does."""
    session.begin_command()
    if session.jsonl:
        ok, record = jsonl_record(session, text, rest, column)
        session.write(jsonl.line(record), "json")
        return ok
    return run_command(session, text, lambda cmd, result: write_result(
        session, render(cmd, result, session)), rest, column)


def jsonl_record(session: "Session", text: str, rest: str = "",
                 column: int = 0) -> tuple[bool, dict[str, Any]]:
    """Run one command; (whether it succeeded, its JSON Lines object).  What the command
    prints itself is captured into the object, errors into its `error`."""
    found: list[Any] = []

    def keep(cmd: Command, result: Any) -> None:
        if isinstance(result, (str, type(None))):
            session.write("".join(render_text(cmd, result, session)))
        else:
            found.append(jsonl.to_data(result))

    with session.capture() as captured:
        ok = run_command(session, text, keep, rest, column)
    printed = "".join(piece for kind, piece in captured if kind != "error")
    if ok:
        return True, jsonl.envelope(text, result=found[0] if found else None, text=printed,
                                    has_result=bool(found))
    errors = [piece for kind, piece in captured if kind == "error"]
    return False, jsonl.envelope(text, text=printed,
                                 error=jsonl.error_text(errors) or "the command failed")


def run_command(session: "Session", text: str, present: Present, rest: str = "",
                column: int = 0) -> bool:
    """Run one command and `present` its result; False when it failed, its error printed.
    A command's caret column (ParseError) counts from the start of its argument text."""
    rest = rest or text
    session.last_error = ""
    name, args, args_at = parse_name(text)
    try:
        cmd = _find(session, name)
        _refuse_in_safe_mode(session, cmd)
    except DebuggerError as err:
        _report(session, err, column, rest)
        return False
    try:
        # the first Ctrl+C breaks it (commands/interrupt.py); registers in its expressions
        # are those of the session's processor (commands/context.py)
        with INTERRUPTS.command(), on_processor(session.processor):
            present(cmd, cmd.func(session, args))
        return True
    except DebuggerError as err:
        _report(session, err, column + args_at, rest)
    except (Aborted, PagerQuit):
        pass
    except KeyboardInterrupt:
        INTERRUPTS.note_break()
        _fail(session, ["^C"])
    except MemoryFault:
        _fail(session, memory_access(args).lines("", text))
    except RecursionError:
        _fail(session, [f"Command nesting too deep in '{text}'"])
    except Exception as exc:  # the debugger survives any bug in a command
        _fail(session, [f"Internal error in '{text}': {type(exc).__name__}"
                        f"{'' if debug_enabled() else ' (set KDSIM_DEBUG=1 for details)'}"])
        if debug_enabled():
            traceback.print_exc(file=sys.stderr)
    return False


def _refuse_in_safe_mode(session: "Session", cmd: Command) -> None:
    if cmd.writes_files and session.settings.get("safe"):
        raise DebuggerError(f"{cmd.name} refused: safe mode allows no command that writes "
                            f"files outside the simulated machine")


def _report(session: "Session", err: DebuggerError, column: int, rest: str) -> None:
    """An error's lines; a caret lands `column` characters after the prompt."""
    pad = " " * (len(session.prompt) + column)
    _fail(session, err.lines(pad, rest.rstrip()))


def _fail(session: "Session", lines: list[str]) -> None:
    """Print a failed command's error; its first line is what a command file reports."""
    session.last_error = jsonl.error_text(lines[:1])
    session.write_lines(lines, "error")


def _find(session: "Session", name: str) -> Command:
    """The command typed as `name`; a real command kdsim does not model says so and names
    the closest one it has, a mistyped extension gets kd's `No export` and, unless hints
    are off, the nearest extension (commands/unmodelled.py)."""
    cmd = lookup(name) if name else None
    if cmd is not None:
        return cmd
    missing = unmodelled(name)
    if missing is not None:
        raise DebuggerError(missing)
    if name.startswith("!") and len(name) > 1:
        ext = name[1:]
        # `!kdexts.pool` names the extension DLL too
        cmd = lookup("!" + ext.rsplit(".", 1)[-1])
        if cmd is not None:
            return cmd
        err = no_export(ext)
        near = closest(name, [c.name for c in all_commands() if c.name.startswith("!")])
        if near is not None and session.settings.get("hints", True):
            err = DebuggerError(f"{err.message}\ndid you mean {near}?")
        raise err
    raise syntax_error(0)
