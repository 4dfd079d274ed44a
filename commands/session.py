"""One debugging session: the target it looks at, its settings, and the single output path.

Every character the debugger prints goes through `Session.write`, so the screen, the open log
(`.logopen`) and the pager (`.more on`) can never disagree about what was printed.  The screen
gets colour when it is a terminal; the log always gets plain text, as a real KD log does.
A log that stops taking text (a full disk, an I/O error) is closed with kd's error and the
screen goes on; a screen that stops taking text (a closed pipe) ends the session as `q` does.

JSON Lines (`.output jsonl`, `kdsim --json`) keeps standard output to one JSON object per
command: while a command runs, what it writes is captured (`capture`) into its object, and
anything written outside a command (banners, where a command file stopped) is a diagnostic that
goes to standard error.
Control characters in what is printed are escaped first (commands/sanitize.py), so text from the
target or a file can never drive the terminal; colour is added after.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from kdsim.control import win32_error

from .poolread import live_tags
from .poolsnapshots import PoolSnapshots
from .render import colorize
from .sanitize import sanitize

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target


@dataclass(frozen=True)
class Setting:
    default: Any
    choices: tuple[Any, ...] | None     # None: free text (a path); "none" clears it
    help: str
    parse: Callable[[str], Any] | None = None   # a free value that is not text; ValueError


def line_count(text: str) -> int:
    """A number of lines in decimal (ASCII digits only); 0 or `off`: no limit."""
    if text.lower() in ("off", "none"):
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValueError("expected a number of lines (0 or off: no limit)")
    return int(text)


SETTINGS: dict[str, Setting] = {
    "radix": Setting(16, (16, 10, 8), "default radix of numbers typed without a prefix"),
    "poolused_layout": Setting("classic", ("classic", "new"),
                               "!poolused layout: classic (Win7-era debugger) or new (Win8+)"),
    "vm_layout": Setting("classic", ("classic", "new"),
                         "!vm layout: classic (Win7-era debugger) or new (Win8+)"),
    "pooltag_file": Setting(None, None, "pooltag.txt used for tag descriptions (none: built in)"),
    "color": Setting("auto", ("auto", "on", "off"),
                     "colour on the screen (auto: only on a terminal without NO_COLOR)"),
    "more": Setting(False, (False, True), "page long output on a terminal (.more on|off)"),
    "output": Setting("text", ("text", "json", "jsonl"),
                      "command results as the debugger's text, as JSON, or as JSON Lines: one "
                      "object per command (.output text|json|jsonl)"),
    "max_output_lines": Setting(0, None, "stop a command's result after this many lines, "
                                "for scripted runs (0: no limit)", line_count),
    "explain": Setting(False, (False, True), "!pool and !poolmap explain why each block is there"),
    "hints": Setting(True, (False, True), "a line of advice where a typed command, tag or "
                     "number probably means something else (commands/hints.py)"),
    "safe": Setting(False, (False, True), "refuse every command that writes files outside the "
                    "simulated machine (on for the rest of the session once set)"),
}


class PagerQuit(Exception):
    """The user answered `q` at the pager: the command's remaining output is dropped."""


class Pager:
    """Counts screen lines since the command started and asks before each new page."""

    def __init__(self, height: Callable[[], int], ask: Callable[[], bool]):
        self.height = height
        self.ask = ask          # True: show another page; False: stop
        self.shown = 0

    def reset(self) -> None:
        self.shown = 0

    def line_shown(self) -> None:
        self.shown += 1
        if self.shown >= max(self.height() - 1, 1):
            if not self.ask():
                raise PagerQuit
            self.shown = 0


class OutputClosed(BaseException):
    """The screen can no longer be written (a closed pipe, a closed or failing standard
    output): the session ends as after `q`.  A BaseException, like KeyboardInterrupt, so that
    no command's own error handling mistakes it for a failure of its own."""

    def __init__(self, error: OSError):
        super().__init__(error)
        self.error = error


class LogFile:
    """An open `.logopen`/`.logappend` file; `name` is printed as the user gave it.

    Every string the session shows can be written: what UTF-8 or UTF-16 cannot encode (a lone
    surrogate from undecodable bytes) is written as a backslash escape.  The file is opened
    without blocking, so a FIFO nobody reads is refused rather than waited on."""

    def __init__(self, name: str, append: bool, unicode: bool):
        self.name = name
        flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(name, flags, 0o666)
        try:
            os.set_blocking(fd, True)
            self.identity = _identity(os.fstat(fd))
            self.handle: IO[str] = open(fd, "a" if append else "w", newline="",
                                        encoding="utf-16" if unicode else "utf-8",
                                        errors="backslashreplace")
        except BaseException:
            os.close(fd)
            raise

    def holds(self, path: str) -> bool:
        """Whether `path` names this log's file (through any link)."""
        try:
            return _identity(os.stat(path)) == self.identity
        except (OSError, ValueError):
            return False

    def write(self, text: str) -> None:
        """OSError when the file cannot take it (a full disk, an I/O error)."""
        self.handle.write(text)
        self.handle.flush()

    def close(self) -> None:
        """Close the file; bytes a failed write left behind are dropped."""
        try:
            self.handle.close()
        except OSError:
            pass


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


class Session:
    def __init__(self, target: "Target", *, stdout: IO[str] | None = None,
                 stderr: IO[str] | None = None):
        self.target = target
        self.settings: dict[str, Any] = {name: s.default for name, s in SETTINGS.items()}
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr            # diagnostics in JSON Lines mode; None: sys.stderr
        self.captures: list[list[tuple[str, str]]] = []    # innermost last: (kind, text)
        self.last_error = ""            # the first line of the last error a command printed
        self.processor = 0
        self.log: LogFile | None = None
        self.pager: Pager | None = None
        self.script_depth = 0
        self.quit_requested = False
        self.pool_snapshots = PoolSnapshots(target)       # the first: the session opens

    # -- the target ------------------------------------------------------------------------
    @property
    def prompt(self) -> str:
        if self.target.processors > 1:
            return f"{self.processor}: kd> "
        return "kd> "

    def known_tags(self) -> list[str]:
        """Pool tags present on the target (read from nt!PoolTrackTable), for completion."""
        try:
            return live_tags(self.target)
        except Exception:           # a dump without the tracker: nothing to offer
            return []

    # -- output ----------------------------------------------------------------------------
    @property
    def color(self) -> bool:
        mode = self.settings["color"]
        if mode != "auto":
            return mode == "on"
        return _isatty(self.stdout) and not os.environ.get("NO_COLOR")

    @property
    def jsonl(self) -> bool:
        return bool(self.settings["output"] == "jsonl")

    @contextmanager
    def capture(self) -> Iterator[list[tuple[str, str]]]:
        """Keep what is written meanwhile, as (kind, text), instead of showing it; a JSON
        line (kind `json`) still goes out."""
        captured: list[tuple[str, str]] = []
        self.captures.append(captured)
        try:
            yield captured
        finally:       # by identity: two captures holding the same text are equal lists
            self.captures[:] = [c for c in self.captures if c is not captured]

    def write(self, text: str, kind: str = "output") -> None:
        """Print text (kind: output, error, echo, or json: a JSON line) to the screen, the log
        and the pager.

        A log that cannot take the text is closed with kd's error after the text is shown;
        a screen that cannot be written any more raises OutputClosed."""
        if not text:
            return
        if kind != "json":
            text = sanitize(text)       # nothing from the target reaches a terminal raw
        if kind != "json":
            if self.captures:
                self.captures[-1].append((kind, text))
                return
            if self.jsonl:
                self._diagnose(text)
                return
        log_error = self._to_log(text)
        pager = self.pager if self.settings["more"] else None
        shown = colorize(text, kind) if self.color and kind != "json" else text
        try:
            if pager is None:
                self._show(shown)
                return
            for line in shown.splitlines(keepends=True):
                self._show(line)
                if line.endswith("\n"):
                    pager.line_shown()
        finally:
            if log_error is not None:
                self.write(log_error, "error")

    def _diagnose(self, text: str) -> None:
        """Text outside a command's JSON object: standard error, so standard output stays
        JSON (a standard error that cannot be written loses it: the JSON goes on)."""
        try:
            stream = self.stderr or sys.stderr
            stream.write(text)
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def _show(self, text: str) -> None:
        try:
            self.stdout.write(text)
            self.stdout.flush()
        except OSError as exc:
            raise OutputClosed(exc) from None

    def _to_log(self, text: str) -> str | None:
        """Write to the open log, if any; when that fails, close it and return what to say."""
        log = self.log
        if log is None:
            return None
        try:
            log.write(text)
            return None
        except OSError as exc:
            self.log = None
            log.close()
            code, why = win32_error(exc, None, creating=True)
            return (f"Failed writing to log file {log.name} - {code}\n    \"{why}\"\n"
                    f"Closing open log file {log.name}\n")

    def write_lines(self, lines: list[str], kind: str = "output") -> None:
        self.write("".join(line + "\n" for line in lines), kind)

    def record_input(self, line: str, echo: bool) -> None:
        """A command as it appears in a transcript: prompt then command.

        A typed command is already on the terminal, so it only goes to the log; a command
        read from a pipe or a script is echoed, as KD echoes script commands.  JSON Lines
        names the command in its object instead."""
        if self.jsonl:
            return
        text = f"{self.prompt}{line}\n"
        if echo:
            self.write(text, "echo")
        elif (failure := self._to_log(sanitize(text))) is not None:
            self.write(failure, "error")

    def begin_command(self) -> None:
        """A typed command starts a new page (a script's commands share one)."""
        if self.pager is not None and self.script_depth == 0:
            self.pager.reset()

    def clear_screen(self) -> None:
        if _isatty(self.stdout) and not self.jsonl:
            self.stdout.write("\x1b[2J\x1b[H")
            self.stdout.flush()

    # -- log -------------------------------------------------------------------------------
    def open_log(self, name: str, *, append: bool, unicode: bool = False) -> None:
        """Open a log (closing any open one, as KD does); OSError if it cannot be opened.

        When `name` is the open log's own file, that log is closed first, so the file never
        has two writers (refusing to overwrite it is the caller's part: `log_holds`)."""
        if self.log is not None and self.log.holds(name):
            self.close_log()
        log = LogFile(name, append, unicode)
        self.close_log()
        self.log = log

    def log_holds(self, path: str) -> bool:
        """Whether the open log is the file `path` names."""
        return self.log is not None and self.log.holds(path)

    def close_log(self, announce: bool = True) -> None:
        """Close the open log; `.logclose` announces it (the line is the log's last)."""
        if self.log is None:
            return
        if announce:
            self.write(f"Closing open log file {self.log.name}\n")
        if self.log is not None:        # a failed write has closed it already
            self.log.close()
            self.log = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
