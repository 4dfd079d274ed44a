"""`.snapshot` from the prompt and `kdsim --resume`: a machine saved at the prompt resumes where
it stood; a dump stays a dump (kdsim/snapshot.py has the format's own tests in
tests/kdsim/test_snapshot.py)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from commands.dispatch import load_commands
from commands.session import Session
from commands.testing import run
from kdsim.scenarios import boot
from kdsim.snapshot import MAGIC
from kdsim.target import Target
from tests.support import ROOT

SCALE = 0.05


def kdsim(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], input=stdin.encode(),
                          capture_output=True, cwd=ROOT, timeout=120)


# -- from the prompt: .snapshot, then kdsim --resume --------------------------------------------
SESSION = ("!poolused 4; ed nt!PoolHitTag 'kaeL'; g 0n30000; k; ed nt!PoolHitTag 0; g 0n2000; "
           "!poolused 4; .verifier /flags 0x1 /driver myfault.sys; .verifier; .reboot; !verifier; "
           "g 0n1000; !vm")


def test_resume_goes_on_where_the_prompt_saved(tmp_path):
    path = tmp_path / "lab.kdsnap"
    args = ["--scenario", "leak", "--scale", "0.1", "--seed", "3"]
    saved = kdsim(*args, "-c", f"g 0n3000; .snapshot {path}; {SESSION}; q")
    assert saved.returncode == 0, saved.stderr
    assert f"Creating {path} - live machine snapshot\nSnapshot successfully written\n" in (
        saved.stdout.decode())
    resumed = kdsim("--resume", str(path), "-c", f"{SESSION}; q")
    assert resumed.returncode == 0 and resumed.stderr == b""
    straight = saved.stdout.decode().split("Snapshot successfully written\n", 1)[1]
    assert resumed.stdout.decode().split("\n", 1)[1] == straight
    assert "nt!DbgBreakPoint" in straight and "nt!ExpInsertPoolTracker" in straight
    assert "Driver Verifier: Enabled for myfault.sys" in straight


def test_snapshot_command_options_and_refusals(tmp_path, capsys):
    load_commands()
    m = boot("x86", 1, "overrun", scale=SCALE)
    session = Session(m.target())
    path = tmp_path / "a.kdsnap"
    assert run(session, f".snapshot {path}") == (
        f"Creating {path} - live machine snapshot\nSnapshot successfully written\n")
    assert run(session, f".snapshot {path}") == (
        f"Unable to create file '{path}' - Win32 error 0n80\n    \"The file exists.\"\n")
    assert run(session, f'.snapshot /o "{path}"').endswith("Snapshot successfully written\n")
    assert run(session, ".snapshot") == "Usage: .snapshot [/o] FileName\n"
    assert run(session, f".snapshot {tmp_path}/no/such/dir/x").startswith(
        f"Unable to create file '{tmp_path}/no/such/dir/x' - Win32 error 0n3\n")
    dump = Session(Target(m.arch, m.memory, m.symbols, m.processors))
    assert run(dump, f".snapshot {tmp_path}/b") == (
        f"       ^ No runnable debuggees error in '.snapshot {tmp_path}/b'\n")


def test_snapshot_onto_the_open_log_or_a_non_regular_file_is_refused(tmp_path):
    load_commands()
    session = Session(boot("x86", 1, "overrun", scale=SCALE).target())
    log, fifo, device = tmp_path / "kd.log", tmp_path / "fifo", tmp_path / "full"
    os.mkfifo(fifo)
    device.symlink_to("/dev/full")             # never anything under /dev itself
    run(session, f".logopen {log}")
    assert run(session, f".snapshot /o {log}") == (
        f"Unable to create file '{log}' - Win32 error 0n32\n"
        '    "The process cannot access the file because it is being used by another process."\n')
    for path in (fifo, device, tmp_path):
        assert run(session, f".snapshot /o {path}") == (
            f"Unable to create file '{path}' - Win32 error 0n5\n    \"Access is denied.\"\n")
    run(session, ".logclose")
    assert log.read_text().startswith(f"Opened log file '{log}'\nUnable to create file")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and device.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "full", "kd.log"]


def test_a_dump_stays_a_dump(tmp_path):
    dump_path, snap_path = tmp_path / "crash.dmp", tmp_path / "m.kdsnap"
    made = kdsim("--scale", "0.1", "-c", f".dump /f {dump_path}; .snapshot {snap_path}; q")
    assert made.returncode == 0, made.stderr
    opened = kdsim("-z", str(dump_path), stdin="g\n.reboot\n.snapshot x\nq\n")
    assert opened.stdout.decode().count("No runnable debuggees") == 3
    wrong = kdsim("--resume", str(dump_path))
    assert (wrong.returncode, wrong.stdout) == (1, b"")
    assert wrong.stderr.decode() == (f"kdsim: Could not open snapshot [{dump_path}], not a kdsim "
                                     f"snapshot (could not match the snapshot signature)\n")
    assert kdsim("-z", str(snap_path)).returncode == 1


def test_resume_takes_no_machine_options(tmp_path):
    result = kdsim("--resume", str(tmp_path / "x"), "--scenario", "leak")
    assert result.returncode == 2
    assert result.stderr.decode() == ("kdsim: --resume opens the machine a snapshot holds; "
                                      "--scenario does not apply (see kdsim -h)\n")


@pytest.mark.parametrize("content, expected", [
    (b"", "not a kdsim snapshot (could not match the snapshot signature)"),
    (MAGIC, "the file is truncated (8 bytes)"),
])
def test_resume_refuses_in_one_line_with_status_1(tmp_path, content, expected):
    path = tmp_path / "bad.kdsnap"
    path.write_bytes(content)
    result = kdsim("--resume", str(path))
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == f"kdsim: Could not open snapshot [{path}], {expected}\n"
    missing = kdsim("--resume", str(tmp_path / "none"))
    assert missing.returncode == 1
    assert missing.stderr.decode() == (f"kdsim: Could not open snapshot [{tmp_path / 'none'}], "
                                       f"Win32 error 0n2 \"The system cannot find the file "
                                       f"specified.\"\n")
