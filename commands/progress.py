"""Progress of a cold boot, on the terminal: the phase the boot is in and how far it is.

A lab at the seed's scale takes seconds to boot when the boot cache does not have it
(kdsim/bootcache.py).  On a terminal a progress bar shows the phase (`boot objects`,
`load peak` ...) and the percentage of the boot's ticks; it appears with the first tick, so
a machine that opens from the cache shows none.  When standard output or standard error is
not a terminal nothing is printed, so transcripts and pipes stay exactly what the debugger
prints.  Ctrl+C stops the boot (the caller exits with status 130).
"""
from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.control import Progress


def on_terminal() -> bool:
    return all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr))


@contextmanager
def boot_progress(scenario: str, enabled: bool) -> Iterator["Progress | None"]:
    """A progress callback (phase, ticks done, ticks in all) that draws a bar on standard
    error until the block ends; None when not `enabled`."""
    if not enabled:
        yield None
        return
    from prompt_toolkit.output import create_output
    from prompt_toolkit.shortcuts import ProgressBar

    with ExitStack() as bars:
        shown: list[Any] = []                  # the bar and its counter, once the boot ticks

        def report(phase: str, done: int, total: int) -> None:
            if not shown:
                bar = bars.enter_context(ProgressBar(title=f"Booting {scenario}",
                                                     output=create_output(stdout=sys.stderr)))
                shown.extend((bar, bar(label="", total=1)))
            bar, counter = shown
            counter.label = f"{phase}: "
            counter.total = max(total, 1)
            counter.items_completed = done
            bar.invalidate()

        yield report
