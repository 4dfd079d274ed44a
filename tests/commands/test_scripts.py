"""Script files (`$<`, `$$<`, `$><`, `$$><`, `$$>a<`) and comments: the transcript text a kd user
would see."""
from __future__ import annotations

import pytest

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
