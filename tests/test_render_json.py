"""`.output json`: every command that computes a result prints plain JSON, without the target's
arch record, in its fields' declared order, and docs/json.md describes exactly those results."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import commands.target_cmds  # noqa: F401  (registers g)
from commands.dispatch import load_commands
from commands.reference import JSON_DOC
from commands.registry import all_commands
from commands.render import render_json
from commands.session import Session
from commands.testing import run
from kdsim.scenarios import boot

ROOT = Path(__file__).resolve().parent.parent


def _json(session: Session, line: str) -> Any:
    out = run(session, line)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"{line!r} did not print JSON:\n{out}")


def _no_arch(value: Any, line: str) -> None:
    """No `arch` key and no object carrying the Arch record's fields, at any depth."""
    if isinstance(value, dict):
        assert "arch" not in value and "ptr_size" not in value, f"{line!r} prints the arch"
        for item in value.values():
            _no_arch(item, line)
    elif isinstance(value, list):
        for item in value:
            _no_arch(item, line)


def _healthy_lines(session: Session, tmp_path: Path) -> list[str]:
    """The default machine: a small block found by `!poolfind` feeds `!pool`, `!poolval` and
    `dt`."""
    found = _json(session, "!poolfind Irp")
    block = found["searches"][0]["headers"][0]["address"]
    display = [f"{name} nt!PoolBigPageTable L8" for name in
               ("d", "db", "dc", "dd", "dds", "dp", "dps", "dq", "dqs", "dw")]
    return ["? nt!PoolBigPageTable + 4", ".formats 1234", *display, "dt nt!_POOL_HEADER",
            f"dt nt!_POOL_HEADER {block:x}", "k", "kb", "kn", ".bugcheck",
            "!analyze -show 19 20 1 2", "!lookaside", f"!pool {block:x} 3",
            "!pool poi(nt!PoolBigPageTable)", f"!poolval {block:x} 3", "!poolused 4",
            "!vm 1", "!verifier 0xf", "!verifier 4", f".dump /o {tmp_path / 'mini.dmp'}",
            f".snapshot /o {tmp_path / 'live.snap'}"]


def _crashed_lines(session: Session) -> list[str]:
    """Special pool on DrvA.sys, stopped at the overrun's 0xD6 after `g`: the analysis, the
    special block, the verifier's drivers and its allocate/free log."""
    run(session, "g")
    assert _json(session, ".bugcheck")["code"] == 0xD6
    block = _json(session, "!verifier 0x80 4")["records"][0]["address"]
    return ["!analyze", "!analyze -v", "kb", f"!pool {block:x}", "!verifier 3",
            f"!verifier 0x80 {block + 1:x}", "!poolfind DrvA 2"]


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_every_result_prints_as_plain_json(arch: str, tmp_path: Path) -> None:
    healthy = Session(boot(arch, 1).target())
    crashed = Session(boot(arch, 1, "overrun-special", scale=0.25).target())
    for session in (healthy, crashed):
        run(session, ".output json")
    lines = [(healthy, line) for line in _healthy_lines(healthy, tmp_path)]
    lines += [(crashed, line) for line in _crashed_lines(crashed)]
    printed: set[str] = set()
    for session, line in lines:
        data = _json(session, line)
        assert isinstance(data, dict), line
        _no_arch(data, line)
        printed.add(line.split()[0])
    load_commands()
    assert printed == {cmd.name for cmd in all_commands() if cmd.render is not None}


def test_json_keeps_declared_field_order_and_refuses_what_is_not_data() -> None:
    @dataclasses.dataclass
    class Inner:
        zeta: int
        alpha: tuple[int, int]

    @dataclasses.dataclass
    class Outer:
        name: str
        inner: Inner
        table: dict[int, str]

    text = render_json(Outer("x", Inner(1, (2, 3)), {16: "a"}))
    assert text == json.dumps({"name": "x", "inner": {"zeta": 1, "alpha": [2, 3]},
                               "table": {"16": "a"}}, indent=2)
    assert list(json.loads(text)["inner"]) == ["zeta", "alpha"]
    with pytest.raises(TypeError):
        render_json(Outer("x", Inner(1, (2, 3)), {16: object()}))


def test_json_docs_are_current_and_name_no_arch() -> None:
    """Generated in a fresh interpreter: other tests register commands of their own here."""
    fresh = subprocess.run([sys.executable, "-m", "commands.reference", "--json"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert (ROOT / JSON_DOC).read_text(encoding="utf-8") == fresh, \
        f"{JSON_DOC} is stale: run python -m commands.reference --write"
    assert "### Arch" not in fresh and "`arch`" not in fresh
