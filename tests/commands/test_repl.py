"""The terminal prompt, driven through prompt_toolkit's pipe input: history, completion,
Ctrl+C, Ctrl+D, the pager, and the input lexer."""
from __future__ import annotations

import io
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
from commands.lexer import KdLexer
from commands.repl import KdCompleter, history_path, open_history, run_interactive
from commands.session import Session
from commands.testing import blank_target, temporary_command

DUMMY_ROWS = 40        # DummyOutput's screen height


@pytest.fixture(autouse=True)
def _commands():
    load_commands()


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
