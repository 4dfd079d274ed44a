"""The terminal prompt, driven through prompt_toolkit's pipe input: history, completion,
Ctrl+C, Ctrl+D, the pager, and the input lexer."""
from __future__ import annotations

import io
import os
import signal
import threading
import time

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String

from commands.dispatch import load_commands
from commands.interrupt import INTERRUPTS
from commands.lexer import KdLexer
from commands.repl import KdCompleter, history_path, open_history, run_interactive
from commands.session import Session
from commands.testing import blank_target, temporary_command
from kdsim.control import RunResult, Stop
from tests.support import transcript

DUMMY_ROWS = 40        # DummyOutput's screen height


@pytest.fixture(autouse=True)
def _commands():
    load_commands()


@pytest.fixture(autouse=True)
def _no_recent_press():
    """Each test's first Ctrl+C is a new break, however soon after another test's presses."""
    INTERRUPTS.last_press = float("-inf")


@pytest.fixture
def session() -> Session:
    target = blank_target("x86")
    nt = target.symbols.module("nt")
    nt.add("ExAllocatePoolWithTag", nt.base + 0x1000)
    nt.add("ExFreePoolWithTag", nt.base + 0x2000)
    nt.add("PoolTrackTable", nt.base + 0x3000)
    session = Session(target)
    session.stdout = io.StringIO()
    return session


def drive(session: Session, *chunks: str, history=None) -> str:
    """Type the chunks at the prompt, pausing between them so that completion (which runs
    asynchronously) sees each one, and return what the session printed."""
    with create_pipe_input() as pipe:
        pipe.send_text(chunks[0])

        def type_rest():
            for chunk in chunks[1:]:
                time.sleep(0.3)
                pipe.send_text(chunk)

        typist = threading.Thread(target=type_rest)
        typist.start()
        run_interactive(session, input=pipe, output=DummyOutput(),
                        history=history if history is not None else InMemoryHistory())
        typist.join()
    return session.stdout.getvalue()


def test_commands_run_without_echo_and_q_quits(session):
    assert drive(session, ".echo hi\r.echo two\rq\r.echo never\r") == "hi\ntwo\nquit:\n"
    assert session.quit_requested


def test_ctrl_d_leaves(session):
    assert drive(session, ".echo one\r\x04") == "one\n"
    assert not session.quit_requested


def test_ctrl_c_at_the_prompt_discards_the_line(session):
    assert drive(session, ".echo disc", "\x03", ".echo kept\r\x04") == "kept\n"


def test_ctrl_c_inside_a_command_returns_to_the_prompt(session):
    def long_command(s, args):
        s.write("partial\n")
        raise KeyboardInterrupt

    with temporary_command(".kt_long", long_command):
        assert drive(session, ".kt_long; .echo dropped\r.echo next\r\x04") == (
            "partial\n^C\nnext\n")


def test_history_is_persistent(session, tmp_path):
    path = tmp_path / "history"
    drive(session, ".echo one\r.echo two\r\x04", history=FileHistory(str(path)))
    assert list(FileHistory(str(path)).load_history_strings()) == [".echo two", ".echo one"]
    # Up arrow recalls the last command of the previous session.
    session.stdout = io.StringIO()
    assert drive(session, "\x1b[A\r\x04", history=FileHistory(str(path))) == "two\n"


def test_history_location(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert history_path() == tmp_path / "xdg" / "kdsim" / "history"
    assert isinstance(open_history(), FileHistory)
    assert (tmp_path / "xdg" / "kdsim" / "history").exists()
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history_path() == tmp_path / ".local" / "share" / "kdsim" / "history"
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert isinstance(open_history(blocker / "kdsim" / "history"), InMemoryHistory)


def test_log_records_typed_commands(session, tmp_path):
    log = tmp_path / "kd.log"
    drive(session, f".logopen {log}\r.echo hi\r.logclose\r\x04")
    assert log.read_text() == (
        f"Opened log file '{log}'\nkd> .echo hi\nhi\nkd> .logclose\n"
        f"Closing open log file {log}\n")


# -- completion ------------------------------------------------------------------------------
def complete(session: Session, text: str) -> list[str]:
    completer = KdCompleter(session)
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_tab_completes_through_the_prompt(session):
    assert drive(session, ".ech", "\t", " completed\r\x04") == "completed\n"


def test_completion_of_commands_flags_symbols_and_tags(session, monkeypatch):
    assert complete(session, ".logo") == [".logopen"]
    assert complete(session, "!he") == ["!help"]
    assert complete(session, ".echo x; .logc") == [".logclose"]
    assert complete(session, ".logopen /") == ["/t", "/u"]
    assert complete(session, "? nt!ExA") == ["nt!ExAllocatePoolWithTag"]
    assert complete(session, "? exf") == ["nt!ExFreePoolWithTag"]
    assert complete(session, "? ") == []
    monkeypatch.setattr(session, "known_tags", lambda: ["Leak", "Io  ", "leak"])
    with temporary_command("!kt_find", lambda s, a: None, syntax="!kt_find TagString"):
        assert complete(session, "!kt_find Le") == ["Leak"]
    assert complete(session, ".echo Le") == []

    def broken():
        raise RuntimeError("tracker not readable")

    monkeypatch.setattr(session, "known_tags", broken)
    with temporary_command("!kt_find", lambda s, a: None, syntax="!kt_find TagString"):
        assert complete(session, "!kt_find Le") == []


# -- pager -----------------------------------------------------------------------------------
def test_more_pages_long_output(session):
    def lines(s, args):
        return "\n".join(f"line {n}" for n in range(1, 101))

    page = DUMMY_ROWS - 1
    with temporary_command(".kt_lines", lines):
        session.settings["more"] = True
        out = drive(session, ".kt_lines\r", "\r", "q\r", ".echo after\r\x04")
    assert out == "".join(f"line {n}\n" for n in range(1, 2 * page + 1)) + "after\n"


def test_no_paging_when_more_is_off(session):
    with temporary_command(".kt_lines", lambda s, a: "\n".join(["x"] * 100)):
        assert drive(session, ".kt_lines\r\x04") == "x\n" * 100


# -- prompt and lexer --------------------------------------------------------------------------
def test_prompt_follows_the_target():
    assert Session(blank_target("x86")).prompt == "kd> "
    session = Session(blank_target("x64", processors=2))
    assert session.prompt == "0: kd> "
    session.processor = 1
    assert session.prompt == "1: kd> "
    session.target = blank_target("x86")
    assert session.prompt == "kd> "
    assert session.target.control is None


def _tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in KdLexer().get_tokens(text) if v.strip()]


def test_lexer_tokens():
    assert _tokens("!pool fa808000 2; dt nt!_POOL_HEADER") == [
        (Name.Function, "!pool"), (Number.Hex, "fa808000"), (Number.Hex, "2"),
        (Punctuation, ";"), (Keyword, "dt"), (Name.Namespace, "nt!_POOL_HEADER")]
    assert _tokens(".logopen /t x.log") == [
        (Name.Builtin, ".logopen"), (Name.Attribute, "/t"), (Name, "x"),
        (Operator, "."), (Name, "log")]
    assert _tokens('$$>a<my.txt "a b"; * rest; of line') == [
        (Keyword.Reserved, "$$>a<"), (String, "my.txt"), (String, '"a b"'), (Punctuation, ";"),
        (Comment.Single, "* rest; of line")]
    assert _tokens("$<c:\\a;b.txt") == [(Keyword.Reserved, "$<"), (String, "c:\\a;b.txt")]
    assert _tokens("? @eax + 0n10") == [
        (Keyword, "?"), (Name.Variable, "@eax"), (Operator, "+"), (Number.Hex, "0n10")]


# -- Ctrl+C while a command runs -------------------------------------------------------------
def _spin(started: threading.Event):
    """A command that runs until it is broken into, as `!poolfind ???? 1` on a big pool."""
    def spin(s, args):
        s.write("spinning\n")
        started.set()
        deadline = time.monotonic() + 10          # a test that fails does not hang
        while time.monotonic() < deadline:
            pass
    return spin


@pytest.mark.parametrize("presses", [1, 2, 3])
def test_repeated_ctrl_c_during_a_command_leaves_the_session_at_the_prompt(session, presses):
    """Presses 10 ms apart: the first breaks the command, the others are absorbed, even when
    they land while the next queued commands already run or the loop is between two lines."""
    for _ in range(3):
        INTERRUPTS.last_press = float("-inf")
        session.stdout = io.StringIO()
        started = threading.Event()
        with temporary_command(".kt_spin", _spin(started)), create_pipe_input() as pipe:
            pipe.send_text(".kt_spin; .echo dropped\r" + ".echo after\r" * 20)

            def press():
                assert started.wait(10)
                time.sleep(0.05)
                for _ in range(presses):
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.01)
                time.sleep(0.1)              # every press is handled before the session ends
                pipe.send_text(".echo done\r\x04")

            presser = threading.Thread(target=press)
            presser.start()
            run_interactive(session, input=pipe, output=DummyOutput(),
                            history=InMemoryHistory())
            presser.join()
        assert session.stdout.getvalue() == "spinning\n^C\n" + "after\n" * 20 + "done\n"
        assert not session.quit_requested


def test_ctrl_c_while_g_runs_breaks_in_once(monkeypatch):
    """`g` polls: the first press breaks in between two chunks of ticks, the rest are
    absorbed, and the session stays at the prompt."""
    from commands import target_cmds

    class Machine:
        def run(self, ticks, interrupted):
            started.set()
            deadline = time.monotonic() + 10
            while not interrupted() and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.05)                 # the presses that follow land while it stops
            return RunResult(Stop.BREAK_IN, 0)

    started = threading.Event()
    target = blank_target("x86")
    target.control = Machine()
    monkeypatch.setattr(target_cmds, "break_in_text", lambda target: "broke in")
    session = Session(target)
    session.stdout = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("g\r")

        def press():
            assert started.wait(10)
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
            time.sleep(0.1)
            pipe.send_text(".echo after\r\x04")

        presser = threading.Thread(target=press)
        presser.start()
        run_interactive(session, input=pipe, output=DummyOutput(), history=InMemoryHistory())
        presser.join()
    assert session.stdout.getvalue() == "broke in\nafter\n"


def test_a_press_between_commands_is_absorbed(session):
    """No command runs: nothing to break, and the session does not end."""
    previous = signal.getsignal(signal.SIGINT)
    with INTERRUPTS.installed():
        signal.raise_signal(signal.SIGINT)
        assert transcript(session, [".echo still"]) == "kd> .echo still\nstill\n"
    assert signal.getsignal(signal.SIGINT) is previous


# -- bracketed paste --------------------------------------------------------------------------
def paste(*lines: str, end: str = "\n") -> str:
    return "\x1b[200~" + "\n".join(lines) + end + "\x1b[201~"


def test_a_bracketed_paste_runs_each_line_as_a_piped_file_would(session):
    lines = [f".echo line {n}" for n in range(50)]
    out = drive(session, paste(*lines) + "\x04")
    assert out == "".join(f"kd> .echo line {n}\nline {n}\n" for n in range(50))
    piped = Session(session.target)
    assert out == transcript(piped, lines)


def test_a_paste_with_crlf_and_blank_lines(session):
    assert drive(session, "\x1b[200~.echo a\r\n\r\n.echo b\r\n\x1b[201~\x04") == (
        "kd> .echo a\na\nkd> .echo b\nb\n")


def test_a_paste_without_a_line_end_is_typed_text(session):
    """One word (an address, a tag) joins the line being typed; the text after a paste's last
    line end stays on the prompt to be edited."""
    assert drive(session, ".echo ", paste("pasted", end=""), "\r\x04") == "pasted\n"
    session.stdout = io.StringIO()
    assert drive(session, ".echo x", paste("y", ".echo par", end=""), "tial\r\x04") == (
        "kd> .echo xy\nxy\npartial\n")


def test_pasted_lines_go_to_the_history(session):
    history = InMemoryHistory()
    drive(session, paste(".echo one", ".echo two") + "\x04", history=history)
    assert list(history.get_strings()) == [".echo one", ".echo two"]


def test_q_in_a_paste_ends_the_session(session):
    assert drive(session, paste(".echo one", "q", ".echo never") + "\x04") == (
        "kd> .echo one\none\nkd> q\nquit:\n")
    assert session.quit_requested


def test_ctrl_c_drops_the_rest_of_a_paste(session):
    started = threading.Event()
    with temporary_command(".kt_spin", _spin(started)), create_pipe_input() as pipe:
        pipe.send_text(paste(".echo first", ".kt_spin", ".echo dropped", ".echo dropped too"))

        def press():
            assert started.wait(10)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            pipe.send_text(".echo typed\r\x04")

        presser = threading.Thread(target=press)
        presser.start()
        run_interactive(session, input=pipe, output=DummyOutput(), history=InMemoryHistory())
        presser.join()
    assert session.stdout.getvalue() == (
        "kd> .echo first\nfirst\nkd> .kt_spin\nspinning\n^C\ntyped\n")
