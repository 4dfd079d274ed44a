"""JSON Lines (commands/jsonl.py): every registered command, on a live machine and on a dump,
prints exactly one JSON object per line on standard output; the spelling rules of its fields."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from commands.dispatch import load_commands
from commands.jsonl import SCHEMA, error_text, to_data
from commands.registry import all_commands
from commands.render import Rows
from tests.support import ROOT

# One line per registered command (the script commands run a small file).
LINES = (
    "? nt!PoolBigPageTable + 4", ".formats 1234",
    *(f"{name} nt!PoolBigPageTable L4" for name in
      ("d", "db", "dc", "dd", "dds", "dp", "dps", "dq", "dqs", "dw")),
    "dt nt!_POOL_HEADER", "dt nt!_POOL_HEADER poi(nt!PoolBigPageTable)",
    "eb", "ed", "eq", "ew", "k", "kb", "kn",
    "!analyze -show 19 20 1 2", "!analyze -v", "!help pool", "!lookaside",
    "!pool poi(nt!PoolBigPageTable)", "!pooldiff", "!poolfind Leak 1", "!poolmap Paged",
    "!poolused 4",
    "!poolval poi(nt!PoolBigPageTable)", "!verifier 0xf", "!vm 1",
    "r", "r rip", "ln nt!KeBugCheckEx", "x nt!Pool*", "lm", ".reload", "vertarget",
    's -a myfault L?7000 "Leak"', "?? sizeof(nt!_POOL_HEADER)",
    '!for_each_module ".echo @#ModuleName"', "!process 0 0", "!thread", ".process", ".thread",
    "!object poi(nt!PsInitialSystemProcess)",
    "$$ a comment", "$$<{script}", "$$><{script}", "$$>a<{script} x", "$<{script}",
    "$><{script}", "* a comment", ".bugcheck", ".cls", ".dump /f /o {dir}/m.dmp",
    ".echo hi", ".help .lab", ".logopen {dir}/log.txt", ".logappend {dir}/log.txt",
    ".logclose", ".more", ".output", ".report {dir}/r.html", ".settings",
    ".snapshot /o {dir}/s.kdsnap", ".verifier",
    "g 10", ".check myfault.sys", ".hint", ".lab", "bogus", ".reboot",
)


def _run_all(args: list[str], tmp_path: Path, last: str) -> tuple[list[dict], list[str]]:
    script = tmp_path / "script.txt"
    script.write_text(".echo from a script\n? 1\n")
    typed = [line.format(script=script, dir=tmp_path) for line in LINES] + [last]
    result = subprocess.run([sys.executable, "-m", "commands", "--json", *args], cwd=ROOT,
                            input="\n".join(typed) + "\n", capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]    # every line
    assert all(r["schema"] == SCHEMA and len(r) in (3, 4) for r in records)
    assert all(("result" in r) + ("error" in r) <= 1 for r in records)
    return records, typed


def _check_each_ran(records: list[dict], typed: list[str]) -> set[str]:
    """One object per typed line, in order; the names of the commands typed."""
    ran = [r["command"] for r in records]
    assert [line for line in ran if line in typed] == typed
    return {line.split()[0].split("/")[0] for line in typed}


def test_every_command_on_a_machine_and_a_dump_prints_json_lines(tmp_path):
    records, typed = _run_all(["--scenario", "leak", "--scale", "0.25"], tmp_path, "q")
    names = _check_each_ran(records, typed)
    by_command = {r["command"]: r for r in records}
    assert ".check ANSWER" in by_command[".lab"]["text"]
    assert by_command[".check myfault.sys"]["text"].startswith("Right")
    assert by_command["bogus"] == {"schema": 1, "command": "bogus",
                                   "error": "Syntax error in 'bogus'"}
    pool = by_command["!pool poi(nt!PoolBigPageTable)"]["result"]
    assert pool["address"].startswith("0x")
    used = by_command["!poolused 4"]["result"]["rows"]
    assert all(isinstance(row["tag"], str) and isinstance(row["paged"]["used"], int)
               for row in used)
    inner = [r for r in records if r["command"] == ".echo from a script"]
    assert len(inner) == 5          # the five script commands: each line of theirs its own

    dump_dir = tmp_path / "dump"
    dump_dir.mkdir()
    (tmp_path / "m.dmp").rename(dump_dir / "crash.dmp")
    records, typed = _run_all(["-z", str(dump_dir / "crash.dmp")], dump_dir, "qq")
    names |= _check_each_ran(records, typed)
    assert "error" in {r["command"]: r for r in records}["g 10"]
    load_commands()
    assert {cmd.name for cmd in all_commands()} <= names


def test_fields_are_spelled_by_their_rule():
    @dataclasses.dataclass
    class Block:
        address: int
        tag: int
        size: int
        frames: list[tuple[int, str]]
        output: dict[int, str]
        rows: Rows[int]
        marked: bool

    data = to_data(Block(0xFFFFF80001234560, 0x80000000 | int.from_bytes(b"Leak", "little"),
                         0x20, [(0x8000, "nt!f")], {0x10: "x"}, Rows([1, 2]), True))
    assert data == {"address": "0xfffff80001234560", "tag": "Leak", "size": 32,
                    "frames": [["0x8000", "nt!f"]], "output": {"0x10": "x"}, "rows": [1, 2],
                    "marked": True}
    assert error_text(["        ^ Syntax error in 'x'\n", "second line\n"]) == (
        "Syntax error in 'x'\nsecond line")
