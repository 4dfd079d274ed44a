"""Errors the debugger prints in its own words; the session always goes on after one.

Two shapes exist in the real debugger (formats.md 1.3): parser errors print a caret line under
the offending column (`     ^ Syntax error in '<whole command>'`), evaluator errors print one
line naming the rest of the text (`Couldn't resolve error at 'foo'`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target


class DebuggerError(Exception):
    """A one-line (or few-line) message, printed as is."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def lines(self, prompt: str, command_line: str) -> list[str]:
        return self.message.split("\n")


class ParseError(DebuggerError):
    """Caret-line error: `kind` is 'Syntax', 'Extra character', ...; `column` is the offset of
    the offending character in the command's argument text (the dispatcher adds the prompt
    and the command's own position on the line)."""

    def __init__(self, kind: str, column: int):
        super().__init__(f"{kind} error")
        self.kind = kind
        self.column = column

    def lines(self, prompt: str, command_line: str) -> list[str]:
        pad = " " * (len(prompt) + self.column)
        return [f"{pad}^ {self.kind} error in '{command_line}'"]


def _at(text: str) -> str:
    return text if text else "<EOL>"


def syntax_error(column: int = 0) -> ParseError:
    return ParseError("Syntax", column)


def extra_character(column: int) -> ParseError:
    return ParseError("Extra character", column)


def syntax_error_at(rest: str) -> DebuggerError:
    return DebuggerError(f"Syntax error at '{_at(rest)}'")


def couldnt_resolve(rest: str) -> DebuggerError:
    return DebuggerError(f"Couldn't resolve error at '{_at(rest)}'")


def numeric_missing(rest: str) -> DebuggerError:
    return DebuggerError(f"Numeric expression missing from '{_at(rest)}'")


def memory_access(rest: str) -> DebuggerError:
    return DebuggerError(f"Memory access error at '{_at(rest)}'")


def bad_register(rest: str) -> DebuggerError:
    return DebuggerError(f"Bad register error at '{_at(rest)}'")


def no_export(name: str) -> DebuggerError:
    return DebuggerError(f"No export {name} found")


def nt_symbol(target: "Target", name: str) -> int:
    """The address of the nt symbol `name`; an absent one reported as the evaluator reports
    it (a dump whose symbol table lacks it)."""
    address = target.resolve(f"nt!{name}")
    if address is None:
        raise couldnt_resolve(f"nt!{name}")
    return address


def nt_global(target: "Target", name: str) -> int:
    """`Target.global_ptr(name)`, an absent symbol reported as the evaluator reports it."""
    try:
        return target.global_ptr(name)
    except KeyError:
        raise couldnt_resolve(f"nt!{name}") from None
