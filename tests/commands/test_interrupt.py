"""What a Ctrl+C means, decided by the session's SIGINT handler (the REPL tests drive it with
real signals through prompt_toolkit's pipe input; tests/commands/test_cli.py on a terminal)."""
from __future__ import annotations

import io
import signal
import threading

import pytest

from commands import interrupt
from commands.dispatch import load_commands
from commands.interrupt import Interrupts
from commands.session import Session
from commands.testing import blank_target, run, temporary_command


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The handler's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(interrupt, "monotonic", lambda: now[0])
    return now


def press(ctrl_c: Interrupts) -> bool:
    """One press; True when it broke the running code."""
    try:
        ctrl_c.on_sigint(signal.SIGINT, None)
    except KeyboardInterrupt:
        return True
    return False


def test_the_first_press_breaks_a_command_the_rest_are_absorbed(clock):
    ctrl_c = Interrupts()
    assert not press(ctrl_c)                        # no command runs: nothing to break
    clock[0] += 1
    with ctrl_c.command():
        assert press(ctrl_c)
        clock[0] += 5                               # long after, but the same command
        assert not press(ctrl_c)
        with ctrl_c.command():                      # a script's command stopping too
            assert not press(ctrl_c)
    assert ctrl_c.broken and ctrl_c.depth == 0
    clock[0] += 1
    with ctrl_c.command():                          # the next command can be broken again
        assert not ctrl_c.broken
        assert press(ctrl_c)


def test_a_burst_of_presses_is_one_break(clock):
    ctrl_c = Interrupts()
    with ctrl_c.command():
        assert press(ctrl_c)
    clock[0] += 0.01
    with ctrl_c.command():                          # the next line already runs
        assert not press(ctrl_c)
        clock[0] += 0.01
        assert not press(ctrl_c)
        clock[0] += interrupt.GRACE                 # a press after a pause is a new one
        assert press(ctrl_c)


def test_polled_code_sees_a_flag_instead(clock):
    ctrl_c = Interrupts()
    with ctrl_c.command(), ctrl_c.polled() as pressed:
        assert not pressed()
        assert not press(ctrl_c)
        assert pressed()
        clock[0] += 0.01
        assert not press(ctrl_c)
    assert not ctrl_c.polling


def test_a_break_outside_a_commands_own_handling_ends_the_line_as_caret_c():
    ctrl_c = Interrupts()
    session = Session(blank_target("x86"), stdout=io.StringIO())
    ctrl_c.broken = True                            # the line before was broken into
    with ctrl_c.line(session):
        assert not ctrl_c.broken
        ctrl_c.depth = 2                            # left over by a command cut short
        raise KeyboardInterrupt
    assert session.stdout.getvalue() == "^C\n"
    assert ctrl_c.depth == 0 and ctrl_c.broken


def test_installed_for_a_block_and_re_entrant():
    ctrl_c = Interrupts()
    before = signal.getsignal(signal.SIGINT)
    with ctrl_c.installed():
        assert signal.getsignal(signal.SIGINT) == ctrl_c.on_sigint
        with ctrl_c.installed():
            signal.raise_signal(signal.SIGINT)      # absorbed: no command runs
        assert signal.getsignal(signal.SIGINT) == ctrl_c.on_sigint
    assert signal.getsignal(signal.SIGINT) is before


def test_the_dispatcher_marks_a_broken_line(session):
    load_commands()

    def broken(s, args):
        raise KeyboardInterrupt

    with temporary_command(".kt_broken", broken):
        assert run(session, ".kt_broken; .echo dropped") == "^C\n"
    assert interrupt.INTERRUPTS.broken and interrupt.INTERRUPTS.depth == 0
    assert run(session, ".echo next") == "next\n"
    assert not interrupt.INTERRUPTS.broken


def test_an_ignored_sigint_stays_ignored():
    ctrl_c = Interrupts()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c.installed():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_nothing_is_installed_outside_the_main_thread():
    ctrl_c, seen = Interrupts(), []

    def session_in_a_thread():
        with ctrl_c.installed():
            seen.append(signal.getsignal(signal.SIGINT) != ctrl_c.on_sigint)

    worker = threading.Thread(target=session_in_a_thread)
    worker.start()
    worker.join()
    assert seen == [True]
