"""Ctrl+C as kd treats it: the first press breaks the running command, the presses that follow
while it stops are absorbed, and only `q`, Ctrl+D or the end of input end the session.

Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread happens to be, so
a second press 10 ms after the first lands while the first is being handled (printing `^C`,
back in the input loop) and ends the program.  Instead the session installs one handler for its
whole life (`Interrupts.installed`), which decides what a press means:

* while no command runs (at the prompt, waiting on a pipe) a press is absorbed: on a terminal
  the prompt reads Ctrl+C as a key (prompt_toolkit's raw mode), which discards the line;
* the first press while a command runs raises KeyboardInterrupt in it, once: the dispatcher
  prints `^C` and the rest of the line is dropped;
* presses after that are absorbed until the next command starts, and so is any press within
  GRACE seconds of the one before, so a burst of presses is one break even when the next
  command (a pasted or piped line) has already started;
* code that stops by itself between two consistent steps (`g`) runs under `polled()`, where
  the first press only sets the flag it polls.

Because the handler raises at most once per command, the input loops need just one more catch
around each line (`line`): a break that lands between two statements of the dispatcher, outside
a command's own handling, still ends as `^C`, and the bookkeeping is reset there.  Signals reach
the main thread only; elsewhere (a test driving a session from a thread) nothing is installed.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

GRACE = 0.5        # seconds: presses closer than this to the previous one are one break


class Interrupts:
    """The state of Ctrl+C for the process (signal handlers are per process, so is this)."""

    def __init__(self) -> None:
        self.depth = 0            # commands running (a script's commands nest in its own)
        self.broken = False       # the running or last command line was broken into
        self.polling = False      # inside polled(): a press sets `pressed` instead of raising
        self.pressed = False
        self.last_press = float("-inf")

    def on_sigint(self, signum: int, frame: Any) -> None:
        now = monotonic()
        burst = now - self.last_press < GRACE
        self.last_press = now
        if self.broken or burst or not (self.depth or self.polling):
            return
        self.broken = True
        if self.polling:
            self.pressed = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The handler for the duration of the block (re-entrant).  Nothing is installed
        outside the main thread, where Python delivers no signal, nor where SIGINT is ignored
        (a background job of a shell)."""
        previous = signal.getsignal(signal.SIGINT)
        installed = previous is not signal.SIG_IGN and _set_sigint(self.on_sigint)
        try:
            yield
        finally:
            if installed:
                _set_sigint(previous if previous is not None else signal.default_int_handler)

    @contextmanager
    def command(self) -> Iterator[None]:
        """A command runs: the first press breaks it.  Nested commands (a script's) share the
        outermost one's break."""
        if self.depth == 0:
            self.broken = False
        self.depth += 1
        try:
            yield
        finally:
            self.depth = max(self.depth - 1, 0)

    def note_break(self) -> None:
        """A command stopped on KeyboardInterrupt however it was raised: the line is broken."""
        self.broken = True

    @contextmanager
    def polled(self) -> Iterator[Callable[[], bool]]:
        """Presses set a flag the block polls (between two steps of `g`) instead of raising."""
        with self.installed():
            self.pressed = False
            self.polling = True
            try:
                yield lambda: self.pressed
            finally:
                self.polling = False

    @contextmanager
    def line(self, session: "Session") -> Iterator[None]:
        """One line of input: a break that escaped the command's own handling prints `^C` too,
        and the command bookkeeping starts afresh for the next line.  `broken` then tells
        whether the line was broken into."""
        self.broken = False
        try:
            yield
        except KeyboardInterrupt:
            self.broken = True
            session.write_lines(["^C"], "error")
        finally:
            self.depth = 0


def _set_sigint(handler: Any) -> bool:
    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:              # not the main thread
        return False
    return True


INTERRUPTS = Interrupts()
