"""One debugging session: the target it looks at, its settings, and the single output path.

Every character the debugger prints goes through `Session.write`, so the screen, the open log
(`.logopen`) and the pager (`.more on`) can never disagree about what was printed.  The screen
gets colour when it is a terminal; the log always gets plain text, as a real KD log does.
Control characters in what is printed are escaped first (commands/sanitize.py), so text from the
target or a file can never drive the terminal; colour is added after.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable

from .poolread import live_tags
from .render import colorize
from .sanitize import sanitize

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target


@dataclass(frozen=True)
class Setting:
    default: Any
    choices: tuple[Any, ...] | None     # None: free text (a path); "none" clears it
    help: str


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
    "output": Setting("text", ("text", "json"),
                      "command results as the debugger's text or as JSON (.output text|json)"),
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


class LogFile:
    """An open `.logopen`/`.logappend` file; `name` is printed as the user gave it."""

    def __init__(self, name: str, append: bool, unicode: bool):
        self.name = name
        encoding = "utf-16" if unicode else "utf-8"
        self.handle: IO[str] = open(name, "a" if append else "w", encoding=encoding,
                                    newline="")

    def write(self, text: str) -> None:
        self.handle.write(text)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class Session:
    def __init__(self, target: "Target", *, stdout: IO[str] | None = None):
        self.target = target
        self.settings: dict[str, Any] = {name: s.default for name, s in SETTINGS.items()}
        self.stdout = stdout if stdout is not None else sys.stdout
        self.processor = 0
        self.log: LogFile | None = None
        self.pager: Pager | None = None
        self.script_depth = 0
        self.quit_requested = False

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

    def write(self, text: str, kind: str = "output") -> None:
        """Print text (kind: output, error or echo) to the screen, the log and the pager."""
        if not text:
            return
        text = sanitize(text)           # nothing from the target reaches a terminal raw
        if self.log is not None:
            self.log.write(text)
        pager = self.pager if self.settings["more"] else None
        shown = colorize(text, kind) if self.color else text
        if pager is None:
            self.stdout.write(shown)
            self.stdout.flush()
            return
        for line in shown.splitlines(keepends=True):
            self.stdout.write(line)
            self.stdout.flush()
            if line.endswith("\n"):
                pager.line_shown()

    def write_lines(self, lines: list[str], kind: str = "output") -> None:
        self.write("".join(line + "\n" for line in lines), kind)

    def record_input(self, line: str, echo: bool) -> None:
        """A command as it appears in a transcript: prompt then command.

        A typed command is already on the terminal, so it only goes to the log; a command
        read from a pipe or a script is echoed, as KD echoes script commands."""
        text = f"{self.prompt}{line}\n"
        if echo:
            self.write(text, "echo")
        elif self.log is not None:
            self.log.write(sanitize(text))

    def begin_command(self) -> None:
        """A typed command starts a new page (a script's commands share one)."""
        if self.pager is not None and self.script_depth == 0:
            self.pager.reset()

    def clear_screen(self) -> None:
        if _isatty(self.stdout):
            self.stdout.write("\x1b[2J\x1b[H")
            self.stdout.flush()

    # -- log -------------------------------------------------------------------------------
    def open_log(self, name: str, *, append: bool, unicode: bool = False) -> None:
        """Open a log (closing any open one, as KD does); OSError if it cannot be opened."""
        log = LogFile(name, append, unicode)
        self.close_log()
        self.log = log

    def close_log(self, announce: bool = True) -> None:
        """Close the open log; `.logclose` announces it (the line is the log's last)."""
        if self.log is None:
            return
        if announce:
            self.write(f"Closing open log file {self.log.name}\n")
        self.log.close()
        self.log = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
