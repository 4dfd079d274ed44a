"""Script files: `$<`, `$><`, `$$<`, `$$><`, `$$>a<`, and the `*` and `$$` comments.

The five tokens differ as formats.md 1.4 tabulates: `$<`/`$><` take the rest of the line as the
file name (it may contain `;`), the `$$` forms end at `;`; `$><`, `$$><` and `$$>a<` condense the
file into one command block (line ends become `;`), and only `$$>a<` takes arguments, which
replace `${$argN}` (missing ones stay literal, extra ones are ignored).

Echo: `$<` and `$$<` run the file line by line, each line echoed after the prompt as if typed
(as a real `$$< kdinit.txt` transcript shows).  A condensed script is one command block and is
not echoed: the docs' own `$$><` samples and real `$$><`/`$$>a<` transcripts show the output
only, although the reference page's prose says `$><` and `$$><` echo.

An error inside a script aborts the script and the line that ran it, as in kd, and says where:
after the command's own error, one line `file:line: command: why` naming the innermost file
(the scripts that ran it stop without repeating it).  `kdsim --keep-going` runs a `-cf` file on
past its failing lines, each still reported.

A script (and `kdsim -cf`'s file) must be a regular text file of at most 16 MB: `/dev/zero`,
a FIFO, a directory or a dump given by mistake is refused in one line, never read forever.
"""
from __future__ import annotations

import bisect
import errno
import re
from typing import TYPE_CHECKING

from kdsim.control import FileTooLarge, NotRegularFile, read_regular

from .dispatch import Aborted, execute, failed_at, split_commands
from .errors import DebuggerError, syntax_error
from .expr import decimal
from .registry import command

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

MAX_DEPTH = 32
MAX_SCRIPT_BYTES = 16 << 20     # a script is typed text: 16 MB is far beyond any real one
_TOO_LARGE = f"larger than {MAX_SCRIPT_BYTES >> 20} MB"
_ARG = re.compile(r"\$\{\$arg([0-9]+)\}")
_WORD = re.compile(r'"([^"]*)"?|(\S+)')


class NotAScript(OSError):
    """A file that is there but is no script: not a regular file, too large, or binary."""

    def __init__(self, path: str, why: str):
        super().__init__(errno.EINVAL, why, path)
        self.why = why


def cannot_open(name: str, why: str = "") -> DebuggerError:
    # Not found verbatim in a public transcript; worded like dbgeng's other file errors.
    return DebuggerError(f"Couldn't open script file '{name}'" + (f" ({why})" if why else ""))


def read_script(path: str) -> list[str]:
    """The lines of a script file (UTF-8 or UTF-16 with a BOM); OSError if unreadable,
    NotAScript for a device, FIFO, directory or socket, a file above MAX_SCRIPT_BYTES or
    one holding NUL bytes outside UTF-16.  Nothing but a regular file is ever opened for
    long (kdsim.files.read_regular: opened without blocking and checked on the descriptor, so
    a FIFO does not hang), and at most MAX_SCRIPT_BYTES + 1 bytes are read."""
    try:
        raw = read_regular(path, MAX_SCRIPT_BYTES)
    except NotRegularFile:
        raise NotAScript(path, "not a regular file") from None
    except FileTooLarge:
        raise NotAScript(path, _TOO_LARGE) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16", errors="replace")
    elif b"\0" in raw:
        raise NotAScript(path, "not a text file")
    else:
        text = raw.decode("utf-8-sig", errors="replace")
    return text.splitlines()


def words(text: str) -> list[str]:
    """Space-separated words; double quotes group a word with spaces."""
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _WORD.finditer(text)]


def substitute(line: str, args: list[str]) -> str:
    """Replace `${$argN}` by the Nth argument; ones without an argument stay as written
    (`${$arg99999999999}` among them: a number too long to be a count names no argument)."""
    def arg(match: re.Match[str]) -> str:
        index = decimal(match.group(1))
        return args[index - 1] if index is not None and 1 <= index <= len(args) else match.group()
    return _ARG.sub(arg, line)


def run_lines(session: "Session", lines: list[str], *, echo: bool, source: str | None = None,
              keep_going: bool = False) -> bool:
    """Run lines one by one, each echoed after the prompt when `echo`; stop at the first
    failing line (False) or at `q`.  A failing line of the file `source` is reported by its
    number; with `keep_going` the lines after it run too (and the result is still False)."""
    ok = True
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        session.record_input(line, echo)
        if not execute(session, line):
            ok = False
            if source is not None:
                report_failure(session, source, number, line)
            if not keep_going:
                return False
        if session.quit_requested:
            break
    return ok


def report_failure(session: "Session", source: str, number: int, command: str) -> None:
    """Where a command file stopped: `file:line: command: why`, once, for the innermost file
    (the scripts that ran it stop too, without repeating it)."""
    if session.last_error:
        session.write(f"{source}:{number}: {command.strip()}: {session.last_error}\n", "error")
        session.last_error = ""


def run_block(session: "Session", name: str, lines: list[str]) -> bool:
    """A condensed script: its lines as one command block; a failing command is reported
    with the line it came from."""
    block = ";".join(lines)
    offset = failed_at(session, block)
    if offset is None:
        return True
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    command = split_commands(block[offset:])[0][1]
    report_failure(session, name, bisect.bisect_right(starts, offset), command)
    return False


def run_script(session: "Session", name: str, *, condense: bool,
               args: list[str] | None = None) -> None:
    """Run a script file; raise Aborted when one of its commands failed."""
    if not name:
        raise syntax_error(0)
    if session.script_depth >= MAX_DEPTH:
        raise DebuggerError(f"Script nesting too deep at '{name}'")
    try:
        lines = read_script(name)
    except NotAScript as exc:
        raise cannot_open(name, exc.why) from None
    except (OSError, ValueError):       # ValueError: a NUL in the name
        raise cannot_open(name) from None
    if args is not None:
        lines = [substitute(line, args) for line in lines]
    session.script_depth += 1
    try:
        if condense:
            ok = run_block(session, name, lines)
        else:
            ok = run_lines(session, lines, echo=True, source=name)
    finally:
        session.script_depth -= 1
    if not ok:
        raise Aborted


def _file_name(text: str) -> str:
    text = text.strip()
    if text.startswith('"'):
        return text[1:].split('"', 1)[0]
    return text


@command("$<", syntax="$<Filename", category="meta",
         help="Run a script file line by line, echoing each command; the file name is the "
              "rest of the line and may contain ';'.")
def _run_lines_any_name(session: "Session", args: str) -> None:
    run_script(session, _file_name(args), condense=False)


@command("$><", syntax="$><Filename", category="meta",
         help="Run a script file as one command block (line ends become ';'); the file name is "
              "the rest of the line.")
def _run_block_any_name(session: "Session", args: str) -> None:
    run_script(session, _file_name(args), condense=True)


@command("$$<", syntax="$$<Filename", category="meta",
         help="Run a script file line by line, echoing each command; ';' may follow.")
def _run_lines(session: "Session", args: str) -> None:
    run_script(session, _file_name(args), condense=False)


@command("$$><", syntax="$$><Filename", category="meta",
         help="Run a script file as one command block (line ends become ';'); ';' may follow.")
def _run_block(session: "Session", args: str) -> None:
    run_script(session, _file_name(args), condense=True)


@command("$$>a<", syntax="$$>a<Filename [arg1 arg2 ...]", category="meta",
         help="Run a script file as one command block, with ${$argN} replaced by the Nth "
              "argument; commands are not echoed.")
def _run_with_args(session: "Session", args: str) -> None:
    parts = words(args)
    run_script(session, parts[0] if parts else "", condense=True, args=parts[1:])


@command("*", syntax="* [any text]", category="meta",
         help="Comment: the rest of the line is ignored, ';' included.")
def _comment_line(session: "Session", args: str) -> None:
    return None


@command("$$", syntax="$$ [any text]", category="meta",
         help="Comment: ignored up to the next ';'.")
def _comment(session: "Session", args: str) -> None:
    return None
