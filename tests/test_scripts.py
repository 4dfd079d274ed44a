"""Script files, logs, .echo and quitting: the transcript text a kd user would see."""
from __future__ import annotations

import io
import re
from datetime import datetime

import pytest

from commands.meta import timestamped
from commands.repl import run_plain
from commands.session import Session
from commands.testing import blank_target, run


@pytest.fixture
def session() -> Session:
    return Session(blank_target("x86"))


@pytest.fixture
def script(tmp_path):
    def write(text: str, name: str = "script.txt") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def transcript(session: Session, lines: list[str]) -> str:
    """What the plain loop prints for these input lines."""
    session.stdout = io.StringIO()
    run_plain(session, lines)
    return session.stdout.getvalue()


# -- the five tokens -------------------------------------------------------------------------
def test_dollar_lt_echoes_each_line_after_the_prompt(session, script):
    path = script(".echo one\n.echo two; .echo three\n\n")
    assert run(session, f"$<{path}") == (
        "kd> .echo one\none\n"
        "kd> .echo two; .echo three\ntwo\nthree\n")


def test_dollar_lt_file_name_takes_the_rest_of_the_line(session, script):
    path = script(".echo semicolon in the name\n", name="a;b.txt")
    assert run(session, f"$< {path}") == (
        "kd> .echo semicolon in the name\nsemicolon in the name\n")


def test_double_dollar_lt_allows_commands_after(session, script):
    path = script(".echo one\n")
    assert run(session, f"$$<{path}; .echo after") == "kd> .echo one\none\nafter\n"


def test_condensed_scripts_run_as_one_block_without_echo(session, script):
    path = script(".echo one\n.echo two\n")
    assert run(session, f"$><{path}") == "one\ntwo\n"
    assert run(session, f"$$><{path}; .echo after") == "one\ntwo\nafter\n"


def test_script_arguments_as_in_the_docs_example(session, script):
    path = script(".echo The first argument is ${$arg1}.\n"
                  ".echo The fifth argument is ${$arg5}.\n"
                  ".echo The fourth argument is ${$arg4}.\n", name="my script.txt")
    assert run(session, f'$$>a< "{path}" "First one" Two "Three More" Four; .echo done') == (
        "The first argument is First one.\n"
        "The fifth argument is ${$arg5}.\n"
        "The fourth argument is Four.\n"
        "done\n")


def test_extra_arguments_are_ignored(session, script):
    path = script(".echo ${$arg1}${$arg2}")
    assert run(session, f"$$>a<{path} a b c d") == "ab\n"


def test_star_comment_swallows_the_rest_of_a_condensed_script(session, script):
    path = script("* a comment\n.echo shown only line by line\n")
    assert run(session, f"$$><{path}") == ""
    assert run(session, f"$$<{path}") == (
        "kd> * a comment\nkd> .echo shown only line by line\nshown only line by line\n")


def test_dollar_dollar_comment_ends_at_semicolon(session):
    assert run(session, "$$ note; .echo after") == "after\n"


def test_utf16_script(session, tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes(".echo wide\r\n".encode("utf-16"))
    assert run(session, f"$$<{path}") == "kd> .echo wide\nwide\n"


# -- failures ----------------------------------------------------------------------------------
def test_missing_script_file_then_the_session_goes_on(session, tmp_path):
    missing = tmp_path / "nosuch.txt"
    assert run(session, f"$$<{missing}; .echo not run") == (
        f"Couldn't open script file '{missing}'\n")
    assert run(session, f"$$>a<{missing} 1 2") == f"Couldn't open script file '{missing}'\n"
    assert run(session, "$<a\x00b") == "Couldn't open script file 'a\x00b'\n"
    assert run(session, ".echo next") == "next\n"


def test_error_aborts_the_script_and_its_line(session, script):
    path = script(".echo one\nbogus\n.echo never\n")
    assert run(session, f"$$<{path}; .echo not after") == (
        "kd> .echo one\none\n"
        "kd> bogus\n"
        "    ^ Syntax error in 'bogus'\n")


def test_nested_and_recursive_scripts(session, tmp_path):
    inner = tmp_path / "inner.txt"
    inner.write_text(".echo inner\n")
    outer = tmp_path / "outer.txt"
    outer.write_text(f".echo outer\n$$<{inner}\n")
    assert run(session, f"$$<{outer}") == (
        f"kd> .echo outer\nouter\nkd> $$<{inner}\nkd> .echo inner\ninner\n")
    loop = tmp_path / "loop.txt"
    loop.write_text(f"$$><{loop}\n")
    assert run(session, f"$$><{loop}") == f"Script nesting too deep at '{loop}'\n"
    assert session.script_depth == 0
    assert run(session, ".echo alive") == "alive\n"


def test_q_inside_a_script_ends_the_session(session, script):
    path = script(".echo one\nq\n.echo never\n")
    assert transcript(session, [f"$$<{path}", ".echo never either"]) == (
        f"kd> $$<{path}\nkd> .echo one\none\nkd> q\nquit:\n")
    assert session.quit_requested


# -- echo, cls, quit ----------------------------------------------------------------------------
@pytest.mark.parametrize("line, printed", [
    (".echo hello world", "hello world\n"),
    ('.echo "quoted; text"', "quoted; text\n"),
    (".echo unquoted; .echo ends", "unquoted\nends\n"),
    (".echo", "\n"),
    (".cls", ""),
    ("q", "quit:\n"),
    ("qq", "quit:\n"),
])
def test_echo_cls_quit(session, line, printed):
    assert run(session, line) == printed


def test_plain_loop_echoes_commands_and_stops_at_q(session):
    assert transcript(session, [".echo a\n", "\n", "q\n", ".echo never\n"]) == (
        "kd> .echo a\na\nkd> q\nquit:\n")


# -- logs --------------------------------------------------------------------------------------
def test_log_holds_everything_printed_while_open(session, tmp_path):
    log = tmp_path / "kd.log"
    assert transcript(session, [f".logopen {log}", ".echo hi", "bogus", ".logclose",
                                ".echo after"]) == (
        f"kd> .logopen {log}\nOpened log file '{log}'\n"
        "kd> .echo hi\nhi\n"
        "kd> bogus\n    ^ Syntax error in 'bogus'\n"
        f"kd> .logclose\nClosing open log file {log}\n"
        "kd> .echo after\nafter\n")
    assert log.read_text() == (
        f"Opened log file '{log}'\n"
        "kd> .echo hi\nhi\n"
        "kd> bogus\n    ^ Syntax error in 'bogus'\n"
        f"kd> .logclose\nClosing open log file {log}\n")


def test_logappend_keeps_the_old_content(session, tmp_path):
    log = tmp_path / "kd.log"
    log.write_text("before\n")
    assert run(session, f".logappend {log}; .echo added; .logclose") == (
        f"Opened log file '{log}'\nadded\nClosing open log file {log}\n")
    assert log.read_text() == (
        f"before\nOpened log file '{log}'\nadded\nClosing open log file {log}\n")


def test_opening_a_log_closes_the_open_one(session, tmp_path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    run(session, f".logopen {first}")
    assert run(session, f".logopen {second}") == (
        f"Closing open log file {first}\nOpened log file '{second}'\n")
    run(session, ".logclose")
    assert first.read_text().endswith(f"Closing open log file {first}\n")
    assert run(session, ".logclose") == ""


def test_logopen_unicode_and_timestamp(session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(session, ".logopen /u wide.log; .echo x; .logclose") == (
        "Opened log file 'wide.log'\nx\nClosing open log file wide.log\n")
    raw = (tmp_path / "wide.log").read_bytes()
    assert raw.startswith(b"\xff\xfe") and raw.decode("utf-16").startswith("Opened log file")
    out = run(session, ".logopen /t /u stamped.txt")
    assert re.fullmatch(r"Opened log file 'stamped_[0-9A-F]{4}_\d{4}-\d\d-\d\d_"
                        r"\d\d-\d\d-\d\d-\d{3}\.txt'\n", out)
    run(session, ".logclose")
    assert run(session, ".logopen; .logclose") == (
        "Opened log file 'Dbgeng.log'\nClosing open log file Dbgeng.log\n")


def test_timestamped_name_matches_the_docs_sample():
    when = datetime(2005, 2, 28, 9, 5, 50, 935000)
    assert timestamped(r"c:\logs\mylogfile.txt", when, 0x2BC) == (
        r"c:\logs\mylogfile_02BC_2005-02-28_09-05-50-935.txt")
    assert timestamped("/var/log.d/kd", when, 0x2BC) == "/var/log.d/kd_02BC_2005-02-28_09-05-50-935"


def test_unopenable_log(session, tmp_path):
    bad = tmp_path / "no" / "such" / "dir.log"
    assert run(session, f".logopen {bad}; .echo not run") == f"Unable to open log file '{bad}'\n"
    assert session.log is None
