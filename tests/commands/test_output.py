"""commands/output.py: a result reaches the session in writes of a few kilobytes, an error part
way prints what came before it, and `max_output_lines` stops a runaway result with one line."""
from __future__ import annotations

import io
from typing import Iterator

import pytest

from commands.dispatch import load_commands
from commands.errors import DebuggerError
from commands.output import BATCH_BYTES, limit_message, write_result
from commands.session import Session
from commands.testing import run, temporary_command


@pytest.fixture(autouse=True)
def _commands_loaded() -> None:
    """Before temporary_command saves the registry, so restoring it keeps every command."""
    load_commands()


class Writes(io.StringIO):
    """Counts the writes that reach the screen."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def numbered(count: int) -> Iterator[str]:
    for i in range(count):
        yield f"{i:08x}  row\n"


def test_pieces_are_gathered_into_few_writes(session: Session) -> None:
    session.stdout = Writes()
    write_result(session, numbered(20000))
    text = session.stdout.getvalue()
    assert text == "".join(numbered(20000))
    assert session.stdout.writes <= 2 * len(text) // BATCH_BYTES + 2


def test_an_error_part_way_prints_what_came_before(session: Session) -> None:
    def failing(s, args):
        return 3

    def render(result, s):
        yield "first"
        raise DebuggerError("Memory access error at 'x'")

    with temporary_command(".kt_fail", failing, render=render):
        assert run(session, ".kt_fail; .echo not run") == (
            "first\nMemory access error at 'x'\n")


def test_max_output_lines_stops_a_result_with_one_line(session: Session) -> None:
    assert run(session, ".settings set max_output_lines=5") == ""
    assert session.settings["max_output_lines"] == 5
    with temporary_command(".kt_rows", lambda s, a: int(a),
                           render=lambda n, s: (f"row {i}" for i in range(n))):
        out = run(session, ".kt_rows 1000000000; .echo next")
        assert out.splitlines() == ([f"row {i}" for i in range(5)]
                                    + [limit_message(5), "next"])
        assert run(session, ".kt_rows 5") == "".join(f"row {i}\n" for i in range(5))
        session.stdout = io.StringIO()
        write_result(session, ["a\nb\nc\n", "d\ne\nf\ng\n"])      # cut inside a piece
        assert session.stdout.getvalue() == "a\nb\nc\nd\ne\n" + limit_message(5) + "\n"
        run(session, ".settings set max_output_lines=off")
        assert run(session, ".kt_rows 6").count("\n") == 6


@pytest.mark.parametrize("value", ["-1", "x", "1e3", "\u00b2", "1" * 19, ""])
def test_max_output_lines_takes_a_plain_number(session: Session, value: str) -> None:
    assert run(session, f".settings set max_output_lines={value}") == (
        f"Invalid value '{value}' for max_output_lines "
        "(expected a number of lines (0 or off: no limit))\n")
    assert session.settings["max_output_lines"] == 0
