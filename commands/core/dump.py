"""`.dump`: save the machine as it stands, for `kdsim -z` to open later.

Options follow the documented `.dump` command: in a kernel session `/m`, a small memory dump,
is the default and `/f` writes the complete dump the pool commands need; an existing file is
kept unless `/o` is given; `/u` appends a date-time stamp to the name.  `/ma` and the other
user-mode minidump letters are not kernel options, so they print the usage.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from kdsim.control import DumpCreateError, DumpError, cannot_create, save_dump

from ..errors import DebuggerError
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session

KIND_TITLES = {"full": "Full kernel dump", "mini": "mini kernel dump"}

USAGE = """\
Usage: .dump [options] filename
Options are:
  /a - Create dumps for all processes (requires -u)
  /b[a] - Package dump in a CAB and delete dump
  /c <comment> - Add a comment (not supported in all formats)
  /j <addr> - Provide a JIT_DEBUG_INFO address
  /f - Create a full dump
  /m - Create a minidump (default)
  /o - Overwrite any existing file
  /u - Append unique identifier to dump name

Use ".hh .dump" or open debugger.chm in the debuggers directory to get
detailed documentation on this command.
"""


@dataclass(frozen=True)
class DumpRequest:
    path: str
    kind: str                  # "full" or "mini"
    overwrite: bool
    unique: bool
    comment: str


@dataclass(frozen=True)
class DumpWritten:
    path: str
    kind: str
    size: int                  # bytes in the file


def render_written(result: DumpWritten, session: "Session") -> str:
    return f"Creating {result.path} - {KIND_TITLES[result.kind]}\nDump successfully written"


@command(".dump", syntax=".dump [/f | /m] [/o] [/u] [/c Comment] FileName",
         render=render_written,
         writes_files=True,
         help="Save the machine as it stands to a dump file that `kdsim -z` opens. "
              "/f writes a complete kernel dump (every page: what !pool, !poolused, !poolfind "
              "and !vm need); /m, the default as in kd, writes a small memory dump that keeps "
              "only the modules and the bug-check data. /o overwrites an existing file "
              "(otherwise it is kept), /u appends a date-time stamp to the name, /c stores a "
              "comment.")
def dot_dump(session: "Session", args: str) -> DumpWritten:
    request = parse_dump_args(args)
    path = unique_name(request.path) if request.unique else request.path
    refuse_open_log(session, path)
    target = session.target
    try:
        size = save_dump(target, path, kind=request.kind, comment=request.comment,
                    overwrite=request.overwrite)
    except DumpCreateError as err:
        raise DebuggerError(err.message) from None
    except DumpError as err:
        raise DebuggerError(f"Creating {path} - \n{err.message}") from None
    return DumpWritten(path, request.kind, size)


def refuse_open_log(session: "Session", path: str) -> None:
    """The open log is not a place for a file (Windows refuses, the file being in use): the
    log would lose what it holds and the file what the log writes after it."""
    if session.log_holds(path):
        busy = OSError(errno.ETXTBSY, os.strerror(errno.ETXTBSY), path)
        raise DebuggerError(cannot_create(path, busy))


def parse_dump_args(args: str) -> DumpRequest:
    """Options: each `/x` or `-x` is one letter; the first word that is not
    an option starts the file name, which runs to the end (or to its closing quote).  A word
    that looks like a path (another slash or a dot after its first character) is a file name
    even if it starts with `/`, so `/tmp/crash.dmp` works where kd users write `c:\\crash.dmp`."""
    kind, overwrite, unique, all_processes, comment = "mini", False, False, False, ""
    pos, n = 0, len(args)
    while True:
        pos = _skip_blanks(args, pos)
        if pos >= n:
            raise _usage()
        if not _is_option(args, pos):
            path, pos = _string(args, pos, space_ends=False)
            if not path:
                raise _usage()
            break
        letter = args[pos + 1:pos + 2]
        pos += 2
        if letter == "a":
            all_processes = True
        elif letter == "c":
            comment, pos = _string(args, _skip_blanks(args, pos), space_ends=True)
            # the dump stores UTF-8: a lone surrogate (an undecodable input byte) is kept
            # as its escape rather than failing the write
            comment = comment.encode("utf-8", "backslashreplace").decode("utf-8")
        elif letter == "f":
            kind = "full"
        elif letter == "m":
            kind = "mini"
            if pos < n and args[pos] not in "/- \t":       # /ma, /mf ...: user-mode letters
                raise _usage()
        elif letter == "o":
            overwrite = True
        elif letter == "u":
            unique = True
        elif letter in ("b", "j", "k", "x"):
            raise DebuggerError(f"The /{letter} option of .dump is not available in kdsim")
        elif letter == "?":
            raise _usage()
        else:
            raise _usage(f"Unknown option '{letter}'\n" if letter else "")
    if all_processes and not unique:
        raise _usage()
    return DumpRequest(path, kind, overwrite, unique, comment)


def unique_name(path: str, when: datetime | None = None) -> str:
    """`/u`: `_YYYY-MM-DD_HH-MM-SS-mmm` before a short extension."""
    when = when or datetime.now()
    stamp = when.strftime("_%Y-%m-%d_%H-%M-%S-") + f"{when.microsecond // 1000:03d}"
    head, tail = os.path.split(path)
    stem, dot, ext = tail.rpartition(".")
    if not dot or len(ext) + 1 >= 7:
        return path + stamp
    return os.path.join(head, stem) + stamp + dot + ext


def _is_option(text: str, pos: int) -> bool:
    word = text[pos:].split(None, 1)[0]
    return word[0] in "/-" and not any(c in word[1:] for c in "/\\.")


def _usage(prefix: str = "") -> DebuggerError:
    return DebuggerError(prefix + USAGE)


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _string(text: str, pos: int, space_ends: bool) -> tuple[str, int]:
    """A string argument: quoted up to its closing quote, otherwise up to a blank (comments)
    or the end of the text (file names, trailing blanks trimmed)."""
    if text.startswith('"', pos):
        end = text.find('"', pos + 1)
        end = len(text) if end < 0 else end
        return text[pos + 1:end], end + 1
    end = pos
    while end < len(text) and not (space_ends and text[end] in " \t"):
        end += 1
    return text[pos:end].rstrip(), end
