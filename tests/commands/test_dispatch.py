"""The dispatcher: splitting, lookup, the debugger's error texts, loading the command modules
and robustness."""
from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands import dispatch
from commands.errors import DebuggerError, ParseError
from commands.registry import all_commands, lookup
from commands.session import Session
from commands.testing import blank_target, run, temporary_command
from commands.unmodelled import UNMODELLED


# -- splitting and names -------------------------------------------------------------------
@pytest.mark.parametrize("line, expected", [
    ("db 1; dd 2", [(0, "db 1"), (6, "dd 2")]),
    ('.echo "a;b"; q', [(0, '.echo "a;b"'), (13, "q")]),
    ('.echo "a\\";b"', [(0, '.echo "a\\";b"')]),
    ("  ? 1 ;; ? 2  ", [(2, "? 1"), (9, "? 2")]),
    ("$<c:\\my;file.txt; q", [(0, "$<c:\\my;file.txt; q")]),
    ("? 1; $><a;b", [(0, "? 1"), (5, "$><a;b")]),
    ("$$<a.txt; q", [(0, "$$<a.txt"), (10, "q")]),
    ("* note; q", [(0, "* note; q")]),
    ("$$ note; q", [(0, "$$ note"), (9, "q")]),
    ("", []),
])
def test_split_commands(line, expected):
    assert dispatch.split_commands(line) == expected


@pytest.mark.parametrize("text, expected", [
    ("!pool fa808000 2", ("!pool", "fa808000 2")),
    (".logopen /t x.log", (".logopen", "/t x.log")),
    ("?1+1", ("?", "1+1")),
    ("? 1+1", ("?", "1+1")),
    ("$$>a<file.txt a b", ("$$>a<", "file.txt a b")),
    ("$$ comment", ("$$", "comment")),
    ("dt nt!_POOL_HEADER", ("dt", "nt!_POOL_HEADER")),
    ("(0x88-0x70)", ("", "(0x88-0x70)")),
    ("q", ("q", "")),
])
def test_parse_name(text, expected):
    assert dispatch.parse_name(text)[:2] == expected


def test_arguments_offset():
    assert dispatch.parse_name("!pool   fa808000 ").args_at == 8
    assert dispatch.parse_name("?1").args_at == 1
    assert dispatch.parse_name("q").args_at == 1


# -- errors ----------------------------------------------------------------------------------
def test_unknown_command_caret_counts_the_prompt(session):
    assert run(session, "foo") == "    ^ Syntax error in 'foo'\n"
    assert run(session, "(0x88-0x70)") == "    ^ Syntax error in '(0x88-0x70)'\n"


def test_caret_on_a_multiprocessor_prompt():
    session = Session(blank_target("x64", processors=4))
    assert session.prompt == "0: kd> "
    assert run(session, "foo") == "       ^ Syntax error in 'foo'\n"


def test_error_stops_the_rest_of_the_line_and_quotes_from_the_command(session):
    assert run(session, ".echo yes; bar; .echo no") == (
        "yes\n"
        "               ^ Syntax error in 'bar; .echo no'\n")


def test_unknown_extension_and_meta(session):
    assert run(session, "!xyz 1 2") == "No export xyz found\n"
    assert run(session, "!kdexts.xyz") == "No export kdexts.xyz found\n"
    assert run(session, ".querypackages") == "    ^ Syntax error in '.querypackages'\n"


def test_extension_named_with_its_dll(session):
    assert run(session, "!kdexts.help").startswith("Extension commands:")


def test_debugger_errors_print_their_lines(session):
    def fails(s, args):
        raise DebuggerError("Couldn't resolve error at 'foo'")

    def caret(s, args):
        raise ParseError("Extra character", 3)

    with temporary_command(".kt_fail", fails), temporary_command(".kt_caret", caret):
        assert run(session, ".kt_fail foo") == "Couldn't resolve error at 'foo'\n"
        # prompt, the command's place in the line, its arguments' place, the column in them
        assert run(session, ".echo a; .kt_caret  1+1)") == (
            "a\n" + " " * (4 + 9 + 11 + 3) + "^ Extra character error in '.kt_caret  1+1)'\n")


def test_unexpected_exception_is_one_line_and_the_session_goes_on(session, monkeypatch, capsys):
    def boom(s, args):
        return 1 // 0

    monkeypatch.delenv("KDSIM_DEBUG", raising=False)
    with temporary_command(".kt_boom", boom):
        assert run(session, ".kt_boom; .echo after") == (
            "Internal error in '.kt_boom': ZeroDivisionError (set KDSIM_DEBUG=1 for details)\n")
        assert capsys.readouterr().err == ""
        monkeypatch.setenv("KDSIM_DEBUG", "1")
        assert run(session, ".kt_boom") == "Internal error in '.kt_boom': ZeroDivisionError\n"
        err = capsys.readouterr().err
        assert "Traceback" in err and "ZeroDivisionError" in err
    assert run(session, ".echo still here") == "still here\n"


def test_memory_fault_escaping_a_command(session):
    def reads(s, args):
        return s.target.read(0x80001000, 4)

    with temporary_command(".kt_read", reads):
        assert run(session, ".kt_read 80001000") == "Memory access error at '80001000'\n"


def test_ctrl_c_inside_a_command_prints_caret_c_and_drops_the_rest(session):
    def interrupted(s, args):
        raise KeyboardInterrupt

    with temporary_command(".kt_long", interrupted):
        assert run(session, ".kt_long; .echo not run") == "^C\n"
    assert run(session, ".echo next") == "next\n"


def test_deep_recursion_is_an_error_not_a_crash(session):
    def recurse(s, args):
        return recurse(s, args)

    with temporary_command(".kt_rec", recurse):
        assert run(session, ".kt_rec") == "Command nesting too deep in '.kt_rec'\n"


# -- loading ---------------------------------------------------------------------------------
def test_load_commands_skips_absent_and_records_broken_modules(tmp_path, monkeypatch):
    pkg = tmp_path / "kt_cmds"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "from commands.registry import command\n"
        "@command('.kt_loaded', help='x')\n"
        "def f(s, a):\n    return 'loaded'\n")
    (pkg / "broken.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(dispatch, "COMMAND_PACKAGES", ("kt_cmds", "kt_absent"))
    monkeypatch.setattr(dispatch, "COMMAND_MODULES", ("kt_absent_module",))
    monkeypatch.setattr(dispatch, "LOAD_ERRORS", {})
    monkeypatch.setattr(dispatch, "_loaded", False)
    monkeypatch.delenv("KDSIM_DEBUG", raising=False)
    with temporary_command(".kt_placeholder", lambda s, a: None):
        dispatch.load_commands()
        assert lookup(".kt_loaded") is not None
    assert dispatch.LOAD_ERRORS == {"kt_cmds.broken": "RuntimeError: half written"}
    for name in ("kt_cmds", "kt_cmds.good", "kt_cmds.broken"):
        sys.modules.pop(name, None)


# -- fuzz ------------------------------------------------------------------------------------
def _command_names() -> list[str]:
    """Every registered command that only reads (acting on the machine would be slow)."""
    dispatch.load_commands()
    return sorted(c.name for c in all_commands() if not c.target_action)


_PIECES = st.sampled_from(_command_names() + [
    "?", "!", ".", "$<", "$$>a<", "$$<", "$><", "*", "$$", ";", '"', "\\", " ", "q", "qq",
    "set", "radix=", "json", "!pool", "nt!", "0x", "0n", "`", "(", ")", "@eax", "poi(",
    "ffffffff", "80000000", "1+1", "-", "/t", "L", "L?", "${$arg1}", "\x00", "\t", "é",
])
_LINES = st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=8).map("".join))


@pytest.fixture(scope="module")
def fuzz_target():
    """The default simulated machine (what users fuzz by hand) at a twentieth of its size (the
    commands are the same; a page scan of the full-size pools per example would take the
    suite's minutes), or a bare target before it exists.  Commands that act on the machine are
    left out of the fuzz."""
    try:
        from kdsim.control import open_machine
    except ImportError:
        return blank_target("x86")
    return open_machine(arch="x86", seed=1, scale=0.05)


def _fuzz_once(target, line: str, tmp_path_factory, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path_factory.getbasetemp())      # .logopen, .dump write files
    monkeypatch.delenv("KDSIM_DEBUG", raising=False)
    session = Session(target)
    out = run(session, line)
    session.quit_requested = False
    session.close_log(announce=False)
    if lookup("?") is not None:
        assert run(session, "? 1+1") == "Evaluate expression: 2 = 00000002\n"
    else:
        assert run(session, ".echo alive") == "alive\n"
    return out


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=_LINES)
def test_fuzz_no_traceback_and_the_session_goes_on(line, fuzz_target, tmp_path_factory,
                                                   monkeypatch):
    assert "Traceback" not in _fuzz_once(fuzz_target, line, tmp_path_factory, monkeypatch)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=_LINES.filter(lambda text: "\x00" not in text))
def test_fuzz_commands_answer_in_the_debugger_s_words(line, fuzz_target, tmp_path_factory,
                                                      monkeypatch):
    """Stricter: no command falls through to the dispatcher's internal-error line.  (A NUL in
    a file name is left out: some file-writing commands still report it that way.)"""
    out = _fuzz_once(fuzz_target, line, tmp_path_factory, monkeypatch)
    assert "Internal error" not in out


# -- real commands kdsim does not model, mistyped extensions ----------------------------------------
def test_a_real_command_kdsim_lacks_says_so_and_names_the_closest(session):
    assert run(session, "u nt!KeBugCheckEx") == (
        "u is not modelled by kdsim (disassembly: kdsim keeps no code bytes); "
        "instead: k, ln Address\n")
    assert run(session, "!irp 8a1b2c30").startswith(
        "!irp is not modelled by kdsim (I/O objects); instead: !pool Address")
    assert run(session, "BP nt!KeBugCheckEx").startswith("BP is not modelled by kdsim")
    assert run(session, ".sympath srv*").startswith(".sympath is not modelled by kdsim")
    assert run(session, "u; .echo not reached").count("\n") == 1


def test_every_unmodelled_command_is_unregistered_and_its_advice_exists():
    dispatch.load_commands()
    assert not [name for name in UNMODELLED if lookup(name) is not None]
    for entry in set(UNMODELLED.values()):
        for advice in entry.instead.split(", "):
            assert lookup(advice.split()[0]) is not None, advice


def test_a_mistyped_extension_gets_a_hint_unless_hints_are_off(session):
    assert run(session, "!poolusde") == "No export poolusde found\ndid you mean !poolused?\n"
    assert run(session, "!POOLFIDN Leak") == "No export POOLFIDN found\ndid you mean !poolfind?\n"
    assert run(session, "!xyzzy") == "No export xyzzy found\n"
    run(session, ".settings set hints=off")
    assert run(session, "!poolusde") == "No export poolusde found\n"


def test_options_may_run_into_lm_s_name():
    assert dispatch.parse_name("lmvm myfault")[:2] == ("lm", "vm myfault")
    assert dispatch.parse_name("lm")[:2] == ("lm", "")
    assert dispatch.parse_name("lmx")[:2] == ("lm", "x")


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_commands_around_pool_work_live_and_on_a_dump(arch, tmp_path):
    """Issue 12: none of these prints `Syntax error` or `No export`, live or dumped."""
    from kdsim.control import open_dump, save_dump
    from kdsim.scenarios import boot
    target = boot(arch, seed=2, scale=0.02).target()
    save_dump(target, str(tmp_path / "m.dmp"))
    lines = ("lm", "r", "ln nt!KeBugCheckEx", "x nt!Pool*", "vertarget", "!process 0 0",
             "!thread", ".reload", "?? sizeof(nt!_POOL_HEADER)", "dt -v nt!_POOL_HEADER",
             "? @" + ("eip" if arch == "x86" else "rip"))
    for session in (Session(target), Session(open_dump(tmp_path / "m.dmp"))):
        for line in lines:
            text = run(session, line)
            assert text and "Syntax error" not in text and "No export" not in text, line
