"""`.dump` (commands/core/dump.py): kd's options, messages and progress lines."""
from __future__ import annotations

import errno
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from commands.core.dump import USAGE, parse_dump_args, unique_name
from commands.errors import DebuggerError
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim import dump as dump_file
from kdsim.dump import load
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import NONPAGED



@pytest.fixture
def machine() -> Machine:
    machine = Machine(get_arch("x86"), seed=0)
    machine.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Smll"))
    return machine


@pytest.fixture
def session(machine) -> Session:
    return Session(machine.target())


def test_full_dump_from_the_live_machine(session, machine, tmp_path):
    path = tmp_path / "full.dmp"
    assert run(session, f".dump /f {path}") == \
        f"Creating {path} - Full kernel dump\nDump successfully written\n"
    assert load(path).memory.pages == machine.memory.pages


def test_default_is_a_mini_dump(session, tmp_path):
    path = tmp_path / "mini.dmp"
    assert run(session, f".dump {path}") == \
        f"Creating {path} - mini kernel dump\nDump successfully written\n"
    assert load(path).meta["dump_type"] == "mini"
    assert run(session, f".dump /o /m {path}").endswith("Dump successfully written\n")


def test_full_dump_from_a_dump(session, tmp_path):
    first, second = tmp_path / "first.dmp", tmp_path / "second.dmp"
    run(session, f".dump /f {first}")
    assert run(Session(load(first)), f".dump /f {second}") == \
        f"Creating {second} - Full kernel dump\nDump successfully written\n"
    assert second.read_bytes() == first.read_bytes()


def test_existing_file_needs_o(session, tmp_path):
    path = tmp_path / "x.dmp"
    path.write_bytes(b"keep me")
    assert run(session, f".dump /f {path}") == \
        f"Unable to create file '{path}' - Win32 error 0n80\n    \"The file exists.\"\n"
    assert path.read_bytes() == b"keep me"
    assert run(session, f".dump /f /o {path}").startswith(f"Creating {path} - Full kernel dump")
    assert load(path).meta["dump_type"] == "full"


def test_full_dump_of_a_mini_dump_is_refused(session, tmp_path):
    mini, full = tmp_path / "mini.dmp", tmp_path / "full.dmp"
    run(session, f".dump {mini}")
    assert run(Session(load(mini)), f".dump /f {full}") == (
        f"Creating {full} - \n"
        "Kernel full dumps can only be written when all of physical memory is accessible - "
        "aborting now\n")
    assert not full.exists()


ACCESS_DENIED = "Win32 error 0n5\n    \"Access is denied.\""


def test_o_onto_a_fifo_a_device_or_a_directory_is_refused(session, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    device = tmp_path / "full"
    device.symlink_to("/dev/full")             # never anything under /dev itself
    for path in (fifo, device, tmp_path):
        assert run(session, f".dump /f /o {path}; .echo not run") == (
            f"Unable to create file '{path}' - {ACCESS_DENIED}\n")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert device.is_symlink() and stat.S_ISCHR(device.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "full"]   # no temp file left


def test_o_replaces_a_regular_file_through_a_rename(session, tmp_path):
    path = tmp_path / "x.dmp"
    path.write_bytes(b"old")
    before = path.stat().st_ino
    link = tmp_path / "link.dmp"
    link.symlink_to(path)
    assert run(session, f".dump /f /o {link}").endswith("Dump successfully written\n")
    assert link.is_symlink()                   # the file it names was replaced, not the link
    assert path.stat().st_ino != before and load(path).meta["dump_type"] == "full"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.dmp", "x.dmp"]


def test_a_failed_write_keeps_the_old_file(session, tmp_path, monkeypatch):
    path = tmp_path / "x.dmp"
    path.write_bytes(b"keep me")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dump_file, "dump_body", full_disk)
    assert run(session, f".dump /f /o {path}") == (
        f"Creating {path} - \nFailed writing to crashdump file - Win32 error 0n112\n"
        '    "There is not enough space on the disk."\n')
    assert path.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["x.dmp"]


def test_the_open_log_is_no_place_for_a_dump(session, tmp_path):
    log = tmp_path / "kd.log"
    run(session, f".logopen {log}; .echo before")
    assert run(session, f".dump /f /o {log}") == (
        f"Unable to create file '{log}' - Win32 error 0n32\n"
        '    "The process cannot access the file because it is being used by another process."\n')
    run(session, ".echo after; .logclose")
    assert log.read_text().startswith(f"Opened log file '{log}'\nbefore\nUnable to create")
    assert log.read_text().endswith(f"after\nClosing open log file {log}\n")


def test_comment_is_stored(session, tmp_path):
    path = tmp_path / "c.dmp"
    run(session, f'.dump /c "before the leak" /f {path}')
    assert load(path).meta["comment"] == "before the leak"
    run(session, f".dump /o /c oneword {path}")
    assert load(path).meta["comment"] == "oneword"


def test_unique_name(session, tmp_path):
    written = run(session, f".dump /u /f {tmp_path / 'u.dmp'}")
    name = written.splitlines()[0].split(" ")[1]
    assert Path(name).exists()
    assert Path(name).name.startswith("u_") and name.endswith(".dmp")


@pytest.mark.parametrize("name, expected", [
    ("crash.dmp", "crash_2011-02-03_04-05-06-007.dmp"),
    ("crash", "crash_2011-02-03_04-05-06-007"),
    ("crash.longext", "crash.longext_2011-02-03_04-05-06-007"),
    ("/tmp/dir.d/crash", "/tmp/dir.d/crash_2011-02-03_04-05-06-007"),
    ("/tmp/dir.d/crash.dmp", "/tmp/dir.d/crash_2011-02-03_04-05-06-007.dmp"),
])
def test_unique_name_stamp(name, expected):
    assert unique_name(name, datetime(2011, 2, 3, 4, 5, 6, 7999)) == expected


@pytest.mark.parametrize("args", ["", "/f", "/ma x.dmp", "/mf x.dmp", "/a x.dmp", "/?",
                                  '/f ""'])
def test_usage(session, args):
    assert run(session, f".dump {args}") == USAGE + "\n"


def test_unknown_option(session):
    assert run(session, ".dump /z x.dmp") == "Unknown option 'z'\n" + USAGE + "\n"


def test_options_kd_has_but_kdsim_does_not(session):
    assert run(session, ".dump /b x.dmp") == \
        "The /b option of .dump is not available in kdsim\n"


@pytest.mark.parametrize("args, path, kind, overwrite, unique, comment", [
    ("/f /tmp/a b.dmp", "/tmp/a b.dmp", "full", False, False, ""),
    ('/f "/tmp/a b.dmp"', "/tmp/a b.dmp", "full", False, False, ""),
    ("-f -o x.dmp  ", "x.dmp", "full", True, False, ""),
    ("/fo x.dmp", "o x.dmp", "full", False, False, ""),     # kd reads on after one letter
    ("/u /f x.dmp", "x.dmp", "full", False, True, ""),
    ("/u/f x.dmp", "/u/f x.dmp", "mini", False, False, ""),  # looks like a path: a file name
    ("/a /u x.dmp", "x.dmp", "mini", False, True, ""),
    ('/c "two words" /m x.dmp', "x.dmp", "mini", False, False, "two words"),
    ("/f ./x.dmp", "./x.dmp", "full", False, False, ""),
])
def test_parse(args, path, kind, overwrite, unique, comment):
    request = parse_dump_args(args)
    assert (request.path, request.kind, request.overwrite, request.unique, request.comment) == \
        (path, kind, overwrite, unique, comment)


def test_parse_errors_are_debugger_errors():
    with pytest.raises(DebuggerError):
        parse_dump_args("/q x")
