"""The user's pooltag.txt reaches what `kdsim` prints, end to end: named by KDSIM_POOLTAG or by
`.settings set pooltag_file=` among the startup commands, its words come first and the built-in
words describe the tags it does not know."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.pooltag.real_file import real_pooltag
from tests.support import ROOT

COMMANDS = "!pool poi(nt!PsActiveProcessHead) 2; !poolused 2 Proc; !poolused 2 Irp"
OUR_PROC = "EPROCESS of each process, behind its object header"
OUR_IRP = "I/O request packets (IRPs)"


def kdsim(commands: str = COMMANDS, pooltag: Path | None = None) -> str:
    """What a small x86 machine prints for the commands, KDSIM_POOLTAG naming `pooltag`."""
    env = {name: value for name, value in os.environ.items() if name != "KDSIM_POOLTAG"}
    if pooltag is not None:
        env["KDSIM_POOLTAG"] = str(pooltag)
    result = subprocess.run(
        [sys.executable, "-m", "commands.cli", "--arch", "x86", "--scale", "0.02",
         "-c", commands], input=b"", capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    return result.stdout.decode()


def descriptions(out: str) -> tuple[str, str, str]:
    """The `!pool` description line and the Proc and Irp rows' description columns."""
    lines = out.splitlines()
    pool = next(line for line in lines if line.startswith("\t\t"))
    proc, irp = (line.split(None, 5)[5] for line in lines
                 if line.startswith((" Proc ", " Irp  ")))
    return pool, proc, irp


def test_without_a_file_the_builtin_words():
    assert descriptions(kdsim()) == (f"\t\tPooltag Proc : {OUR_PROC}, Binary : nt!ps",
                                     f"{OUR_PROC} , Binary: nt!ps", f"{OUR_IRP} ")


def test_the_env_var_file_comes_first(tmp_path):
    mine = tmp_path / "pooltag.txt"
    mine.write_text("Proc - mine.sys      - my processes\n")
    assert descriptions(kdsim(pooltag=mine)) == (
        "\t\tPooltag Proc : my processes, Binary : mine.sys",
        "my processes , Binary: mine.sys", f"{OUR_IRP} ")          # Irp: not in the file


def test_the_setting_among_the_startup_commands(tmp_path):
    mine = tmp_path / "pooltag.txt"
    mine.write_text("Irp  - <unknown>    - my packets\n")
    out = kdsim(f".settings set pooltag_file={mine}; {COMMANDS}")
    assert descriptions(out) == (f"\t\tPooltag Proc : {OUR_PROC}, Binary : nt!ps",
                                 f"{OUR_PROC} , Binary: nt!ps", "my packets ")


def test_the_real_file_prints_its_own_words():
    assert descriptions(kdsim(pooltag=real_pooltag())) == (
        "\t\tPooltag Proc : Process objects, Binary : nt!ps",
        "Process objects , Binary: nt!ps", "Io, IRP packets ")
