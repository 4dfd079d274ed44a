"""The session's own commands (commands/meta.py): `.echo`, `.cls` and quitting, logs,
`.settings` and `.more`, and help generated from the registry."""
from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from commands.meta import timestamped
from commands.testing import run, temporary_command
from tests.support import transcript


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


def test_a_log_that_cannot_be_written_is_closed_and_the_session_goes_on(session, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    full = tmp_path / "full.log"
    full.symlink_to("/dev/full")
    assert transcript(session, [f".logopen {full}", ".echo still shown"]) == (
        f"kd> .logopen {full}\nOpened log file '{full}'\n"
        f"Failed writing to log file {full} - Win32 error 0n112\n"
        '    "There is not enough space on the disk."\n'
        f"Closing open log file {full}\n"
        "kd> .echo still shown\nstill shown\n")
    assert session.log is None
    assert full.is_symlink() and os.readlink(full) == "/dev/full"


def test_a_log_that_fails_midway_keeps_what_it_holds(session, tmp_path, monkeypatch):
    log = tmp_path / "kd.log"
    run(session, f".logopen {log}; .echo kept")

    def io_error(text: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(session.log, "write", io_error)
    assert run(session, ".echo on the screen") == (
        "on the screen\n"
        f"Failed writing to log file {log} - Win32 error 0n1117\n"
        '    "The request could not be performed because of an I/O device error."\n'
        f"Closing open log file {log}\n")
    assert log.read_text() == f"Opened log file '{log}'\nkept\n"
    assert run(session, ".logclose; .echo after") == "after\n"


def test_the_open_log_is_not_opened_twice(session, tmp_path):
    log = tmp_path / "kd.log"
    run(session, f".logopen {log}; .echo first")
    assert run(session, f".logopen {log}; .echo not run") == (
        f"Log file '{log}' is already open (.logappend goes on writing to it, "
        ".logclose closes it)\n")
    link = tmp_path / "link.log"
    link.symlink_to(log)
    assert run(session, f".logopen {link}").startswith(f"Log file '{link}' is already open")
    assert run(session, f".logappend {log}; .echo second; .logclose") == (
        f"Closing open log file {log}\nOpened log file '{log}'\nsecond\n"
        f"Closing open log file {log}\n")
    text = log.read_bytes().decode()
    assert "\0" not in text
    assert text.startswith(f"Opened log file '{log}'\nfirst\nLog file '{log}' is already open")
    assert text.endswith(f"Closing open log file {log}\nOpened log file '{log}'\nsecond\n"
                         f"Closing open log file {log}\n")


def test_a_fifo_nobody_reads_is_no_log(session, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert run(session, f".logopen {fifo}") == f"Unable to open log file '{fifo}'\n"


@pytest.mark.parametrize("options, encoding", [("", "utf-8"), ("/u ", "utf-16")])
def test_undecodable_text_is_logged_escaped(session, tmp_path, options, encoding):
    log = tmp_path / "kd.log"
    # what a command line holding the byte 0xff becomes (surrogateescape), shown as the byte
    # it stands for by the sanitiser (commands/sanitize.py), on screen and in the log alike
    assert run(session, f".logopen {options}{log}; .echo \udcff end; .logclose").startswith(
        f"Opened log file '{log}'\n\\xff end\n")
    assert Path(log).read_bytes().decode(encoding).splitlines()[1] == "\\xff end"


# -- settings --------------------------------------------------------------------------------
def test_settings_list_and_set(session):
    assert run(session, ".settings") == (
        "    radix            : 16\n"
        "    poolused_layout  : classic\n"
        "    vm_layout        : classic\n"
        "    pooltag_file     : none\n"
        "    color            : auto\n"
        "    more             : off\n"
        "    output           : text\n"
        "    max_output_lines : 0\n"
        "    explain          : off\n"
        "    hints            : on\n"
        "    safe             : off\n")
    assert run(session, ".settings set radix=10; .settings set poolused_layout=new") == ""
    assert session.settings["radix"] == 10
    assert session.settings["poolused_layout"] == "new"
    assert run(session, ".settings set pooltag_file=/tmp/pooltag.txt") == ""
    assert session.settings["pooltag_file"] == "/tmp/pooltag.txt"
    assert run(session, ".settings set radix=7") == (
        "Invalid value '7' for radix (expected 16, 10, 8)\n")
    assert run(session, ".settings set nope=1") == "Unknown setting 'nope' (see .settings help)\n"
    assert run(session, ".more on; .more") == "Paging is on\n"


# -- help --------------------------------------------------------------------------------------
def test_help_is_generated_from_the_registry(session):
    def go(s, args):
        return None

    with temporary_command(".kt_go", go, syntax=".kt_go", help="Run the workload. Stops at a "
                           "bug check.", category="target", target_action=True):
        text = run(session, ".help")
        assert text.startswith("[machine] acts on the simulated machine (not available on a "
                               "dump)\n\n")
        assert "Target control:\n" in text
        line = next(l for l in text.splitlines() if l.lstrip().startswith(".kt_go "))
        assert line.endswith("Run the workload. [machine]")
        assert run(session, ".help .kt_go") == (
            ".kt_go\n   Run the workload. Stops at a bug check.\n"
            "   Acts on the simulated machine; not available on a dump.\n")
    assert "   .logclose" in run(session, ".help")
    assert run(session, ".help nosuch") == "No help for 'nosuch'\n"
    assert run(session, "!help help") == (
        "!help [Extension]\n   List the extension commands, or describe one.\n")


def test_safe_mode_is_one_way_and_refuses_writing_commands(session, tmp_path):
    assert run(session, ".settings set safe=on") == ""
    assert run(session, ".settings set safe=off") == (
        "Safe mode stays on for the rest of this session\n")
    assert run(session, f".logopen {tmp_path / 'x.log'}; .echo not run") == (
        ".logopen refused: safe mode allows no command that writes files outside the "
        "simulated machine\n")
    assert run(session, ".settings set safe=on; .echo on") == "on\n"
    assert list(tmp_path.iterdir()) == []
