"""Script files (`$<`, `$$<`, `$><`, `$$><`, `$$>a<`) and comments: the transcript text a kd user
would see."""
from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from commands.scripts import MAX_SCRIPT_BYTES
from commands.testing import run
from tests.support import transcript


@pytest.fixture
def script(tmp_path):
    def write(text: str, name: str = "script.txt") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


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
    # the NUL is echoed back escaped (commands/sanitize.py)
    assert run(session, "$<a\x00b") == "Couldn't open script file 'a\\x00b'\n"
    assert run(session, ".echo next") == "next\n"


TOKENS = ["$<", "$$<", "$><", "$$><", "$$>a<"]


@pytest.mark.parametrize("token", TOKENS)
def test_dev_zero_is_refused_without_reading_it(session, token):
    assert run(session, f"{token}/dev/zero") == (
        "Couldn't open script file '/dev/zero' (not a regular file)\n")


@pytest.mark.parametrize("token", TOKENS)
def test_a_fifo_is_refused_at_once(session, tmp_path, token):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    printed: list[str] = []
    worker = threading.Thread(target=lambda: printed.append(run(session, f"{token}{fifo}")),
                              daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():                   # blocked on the FIFO: let it go, then fail
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail(f"{token} waited on a FIFO")
    assert printed == [f"Couldn't open script file '{fifo}' (not a regular file)\n"]


def test_directories_and_sockets_are_refused(session, tmp_path):
    assert run(session, f"$<{tmp_path}") == (
        f"Couldn't open script file '{tmp_path}' (not a regular file)\n")
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert run(session, f"$$<{path}") == (
            f"Couldn't open script file '{path}' (not a regular file)\n")


def test_binary_and_oversized_files_are_refused(session, tmp_path):
    binary = tmp_path / "crash.dmp"
    binary.write_bytes(b"KDSIMDMP\x02\x00\x00\x00\x1b[2J")
    assert run(session, f"$<{binary}") == (
        f"Couldn't open script file '{binary}' (not a text file)\n")
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:          # sparse: costs no disk
        handle.truncate(MAX_SCRIPT_BYTES + 1)
    assert run(session, f"$$><{big}") == f"Couldn't open script file '{big}' (larger than 16 MB)\n"
    undecodable = tmp_path / "latin1.txt"
    undecodable.write_bytes(b".echo caf\xe9\n")
    assert run(session, f"$$><{undecodable}") == "caf\ufffd\n"
    assert run(session, ".echo next") == "next\n"


def test_error_aborts_the_script_and_its_line(session, script):
    path = script(".echo one\nbogus\n.echo never\n")
    assert run(session, f"$$<{path}; .echo not after") == (
        "kd> .echo one\none\n"
        "kd> bogus\n"
        "    ^ Syntax error in 'bogus'\n"
        f"{path}:2: bogus: Syntax error in 'bogus'\n")


def test_nested_and_recursive_scripts(session, tmp_path):
    inner = tmp_path / "inner.txt"
    inner.write_text(".echo inner\n")
    outer = tmp_path / "outer.txt"
    outer.write_text(f".echo outer\n$$<{inner}\n")
    assert run(session, f"$$<{outer}") == (
        f"kd> .echo outer\nouter\nkd> $$<{inner}\nkd> .echo inner\ninner\n")
    loop = tmp_path / "loop.txt"
    loop.write_text(f"$$><{loop}\n")
    assert run(session, f"$$><{loop}") == (f"Script nesting too deep at '{loop}'\n"
                                          f"{loop}:1: $$><{loop}: Script nesting too deep at "
                                          f"'{loop}'\n")
    assert session.script_depth == 0
    assert run(session, ".echo alive") == "alive\n"


def test_q_inside_a_script_ends_the_session(session, script):
    path = script(".echo one\nq\n.echo never\n")
    assert transcript(session, [f"$$<{path}", ".echo never either"]) == (
        f"kd> $$<{path}\nkd> .echo one\none\nkd> q\nquit:\n")
    assert session.quit_requested


def test_a_condensed_script_reports_the_line_of_the_failing_command(session, script):
    path = script(".echo one\n.echo two; bogus\n.echo three\n")
    out = run(session, f"$$>a<{path}")
    assert out.startswith("one\ntwo\n")
    assert out.endswith(f"{path}:2: bogus: Syntax error in 'bogus;.echo three'\n")
    assert "\nthree" not in out


def test_a_failing_script_line_in_json_lines_is_its_own_object(session, script):
    path = script(".echo one\nbogus\n")
    run(session, ".output jsonl")
    lines = [json.loads(line) for line in run(session, f"$$<{path}").splitlines()]
    assert lines == [
        {"schema": 1, "command": ".echo one", "text": "one\n"},
        {"schema": 1, "command": "bogus", "error": "Syntax error in 'bogus'"},
        {"schema": 1, "command": f"$$<{path}",
         "error": f"{path}:2: bogus: Syntax error in 'bogus'"}]
