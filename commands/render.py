"""Renderers: a command's result as the debugger's text, as JSON, and the terminal's colours.

Commands compute, renderers print (DESIGN.md).  The text renderer is the command's own
`render`; JSON is the result's dataclass fields, for scripts (`.output json`); colour is
applied to the finished text, line by line, so it can never change a column: it only wraps
addresses, tags, `(Free)`/`(Allocated)` and error lines in ANSI sequences.
"""
from __future__ import annotations

import dataclasses
import json
import re
from itertools import groupby
from typing import TYPE_CHECKING, Any

from .glyphs import COLOURS, MAP_ROW

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Command
    from .session import Session

RESET = "\x1b[0m"
STYLES = {
    "address": "\x1b[36m",        # cyan
    "free": "\x1b[32m",           # green
    "allocated": "\x1b[33m",      # yellow
    "tag": "\x1b[1;35m",          # bold magenta
    "error": "\x1b[1;31m",        # bold red
    "echo": "\x1b[1m",            # bold: the prompt of an echoed command
}

# An address as the debugger prints it: 8 hex digits, or 16 with an optional backtick.
_ADDRESS = r"(?<![\w`])(?:[0-9a-fA-F]{8}`[0-9a-fA-F]{8}|[0-9a-fA-F]{16}|[0-9a-fA-F]{8})(?![\w`])"
_STATE_TAG = r"\((?P<state>Free|Allocated)\)(?P<gap> +\*?)(?P<tag>[^\s*]{1,4})"
_POOLTAG = r"(?<=Pooltag )(?P<ptag>\S{1,4})(?= :)"
_TOKENS = re.compile(f"(?P<addr>{_ADDRESS})|{_STATE_TAG}|{_POOLTAG}")
_ERROR_LINE = re.compile(
    r"^\s*\^ .* error in '|error at '|^Numeric expression missing from '|^No export \S+ found"
    r"|^Couldn't |^Unable to |^Memory access error")


def render_text(cmd: "Command", result: Any, session: "Session") -> str:
    """The classic debugger text of a result (None prints nothing)."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    if cmd.render is not None:
        return cmd.render(result, session)
    return str(result)


def render_json(result: Any) -> str:
    """A result object as JSON: a dataclass is an object of its fields in declaration order,
    tuples are arrays, dict keys are strings (docs/json.md).  Only plain data gets through: a
    value JSON cannot spell raises TypeError instead of printing as its repr."""
    return json.dumps(result, indent=2, default=_fields)


def _fields(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not a result field JSON can print")


def render(cmd: "Command", result: Any, session: "Session") -> str:
    """What the session prints for a result, newline-terminated.  With `.output json` result
    objects print as JSON; plain text (messages, `.echo`) stays text."""
    if session.settings["output"] == "json" and not isinstance(result, (str, type(None))):
        text = render_json(result)
    else:
        text = render_text(cmd, result, session)
    if text and not text.endswith("\n"):
        text += "\n"
    return text


def colorize(text: str, kind: str = "output") -> str:
    """ANSI colour for the screen; kind is output, error or echo (an echoed command)."""
    return "".join(_colorize_line(line, kind) for line in text.splitlines(keepends=True))


def _colorize_line(line: str, kind: str) -> str:
    body = line.rstrip("\n")
    end = line[len(body):]
    if not body:
        return line
    if kind == "error" or _ERROR_LINE.search(body):
        return f"{STYLES['error']}{body}{RESET}{end}"
    if kind == "echo":
        prompt, sep, command = body.partition("> ")
        return f"{STYLES['echo']}{prompt}{sep}{RESET}{command}{end}"
    row = MAP_ROW.match(body)
    if row:                                  # a `!poolmap` row: each run of cells its colour
        return row["lead"] + "".join(f"{COLOURS[c]}{''.join(run)}{RESET}"
                                     for c, run in groupby(row["cells"])) + end
    return _TOKENS.sub(_paint, body) + end


def _paint(match: re.Match[str]) -> str:
    if match.group("addr"):
        return f"{STYLES['address']}{match.group('addr')}{RESET}"
    if match.group("ptag"):
        return f"{STYLES['tag']}{match.group('ptag')}{RESET}"
    state = match.group("state")
    return (f"{STYLES[state.lower()]}({state}){RESET}{match.group('gap')}"
            f"{STYLES['tag']}{match.group('tag')}{RESET}")
