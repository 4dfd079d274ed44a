"""Renderers: a command's result as the debugger's text, as JSON, and the terminal's colours.

Commands compute, renderers print (DESIGN.md).  The text renderer is the command's own
`render`; JSON is the result's dataclass fields, for scripts (`.output json`); colour is
applied to the finished text, line by line, so it can never change a column: it only wraps
addresses, tags, `(Free)`/`(Allocated)` and error lines in ANSI sequences.

Results stream (DESIGN.md): a result field may be `Rows`, produced while it is printed, and a
command's `render` may yield its lines instead of returning the text, so `render` hands the
session the text piece by piece and memory stays flat however long the output.  JSON is
encoded the same way, piece by piece, into the document `json.dumps(indent=2)` would print.
"""
from __future__ import annotations

import dataclasses
import json
import re
from itertools import groupby
from typing import TYPE_CHECKING, Any, Generic, Iterable, Iterator, TypeVar

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


T = TypeVar("T")


class Rows(Generic[T]):
    """A result field holding rows that are read when the result is printed, not before
    (a memory range, every block of a pool): iterating it yields them one by one, JSON prints
    it as an array.  `source` is iterated afresh each time: a generator gives one pass."""

    def __init__(self, source: Iterable[T] = ()):
        self.source = source

    def __iter__(self) -> Iterator[T]:
        return iter(self.source)


def render_text(cmd: "Command", result: Any, session: "Session") -> Iterator[str]:
    """The classic debugger text of a result, newline-terminated, in pieces (None prints
    nothing).  A command's `render` returns the text or yields it line by line."""
    if result is None:
        return
    if isinstance(result, str):
        text = result
    elif cmd.render is None:
        text = str(result)
    else:
        rendered = cmd.render(result, session)
        if not isinstance(rendered, str):
            for line in rendered:
                yield line + "\n"
            return
        text = rendered
    if text:
        yield text if text.endswith("\n") else text + "\n"


def render_json(result: Any) -> str:
    """A result object as JSON: a dataclass is an object of its fields in declaration order,
    tuples and Rows are arrays, dict keys are strings (docs/json.md).  Only plain data gets
    through: a value JSON cannot spell raises TypeError instead of printing as its repr."""
    return "".join(iter_json(result))


_SCALARS = (str, int, float, bool, type(None))


def iter_json(value: Any, indent: str = "") -> Iterator[str]:
    """`json.dumps(value, indent=2)` in pieces, with dataclasses as objects and Rows as arrays
    read as they are encoded.  Plain data (scalars, and arrays and objects of them: a row)
    is left to json.dumps whole."""
    if isinstance(value, _SCALARS):
        yield json.dumps(value)
        return
    inner = indent + "  "
    if isinstance(value, dict) or (dataclasses.is_dataclass(value)
                                   and not isinstance(value, type)):
        fields = value if isinstance(value, dict) else _fields(value)
        if all(_leaf(item) for item in fields.values()):
            yield json.dumps(fields, indent=2).replace("\n", "\n" + indent)
            return
        items = iter(fields.items())
        first = next(items)
        yield "{"
        for sep, (key, item) in _separated(first, items):
            yield f"{sep}\n{inner}{json.dumps(_key(key))}: "
            yield from iter_json(item, inner)
        yield f"\n{indent}}}"
    elif _leaf(value):
        yield json.dumps(value, indent=2).replace("\n", "\n" + indent)
    elif isinstance(value, (list, tuple, Rows)):
        rows = iter(value)
        missing = object()
        head = next(rows, missing)
        if head is missing:
            yield "[]"
            return
        yield "["
        for sep, item in _separated(head, rows):
            yield f"{sep}\n{inner}"
            yield from iter_json(item, inner)
        yield f"\n{indent}]"
    else:
        raise TypeError(f"{type(value).__name__} is not a result field JSON can print")


def _leaf(value: Any) -> bool:
    """A scalar, or a list or tuple of scalars: what json.dumps prints as this would."""
    return isinstance(value, _SCALARS) or (isinstance(value, (list, tuple))
                                           and all(isinstance(v, _SCALARS) for v in value))


def _separated(first: T, rest: Iterator[T]) -> Iterator[tuple[str, T]]:
    """Each item with the comma that goes before it (none before the first)."""
    yield "", first
    for item in rest:
        yield ",", item


def _key(key: Any) -> str:
    """A dict key as JSON spells it: a string, as json.dumps converts it."""
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, bool, type(None))):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def render(cmd: "Command", result: Any, session: "Session") -> Iterator[str]:
    """What the session prints for a result, in newline-terminated pieces.  With `.output
    json` result objects print as JSON; plain text (messages, `.echo`) stays text."""
    if session.settings["output"] == "json" and not isinstance(result, (str, type(None))):
        yield from iter_json(result)
        yield "\n"
    else:
        yield from render_text(cmd, result, session)


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
