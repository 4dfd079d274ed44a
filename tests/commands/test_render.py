"""Renderers (commands/render.py): `.output json` makes every command that computes a result
print plain JSON, without the target's arch record, in its fields' declared order, and
docs/json.md describes exactly those results; the text renderer, and colour on a terminal."""
from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import commands.target_cmds  # noqa: F401  (registers g)
from commands.dispatch import load_commands
from commands.reference import JSON_DOC
from commands.registry import all_commands
from commands.render import Rows, colorize, iter_json, render_json
from commands.session import Session
from commands.testing import run, temporary_command
from kdsim.scenarios import boot
from tests.support import ROOT


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
            "!vm 1", "!poolmap Paged", f"!poolmap {block:x}", "!verifier 0xf", "!verifier 4",
            f".dump /o {tmp_path / 'mini.dmp'}", f".snapshot /o {tmp_path / 'live.snap'}",
            f".report {tmp_path / 'pool.html'}", "!pooldiff -save json", "!pooldiff",
            "!pooldiff -list", "!pooldiff -history Irp", "r", "r eax, efl",
            "ln nt!KeBugCheckEx+1", "x nt!Pool*", "lm vm Ntfs", "vertarget",
            's -a Ntfs L?7000 "MZ"', "?? sizeof(nt!_POOL_HEADER)", "!process 0 1",
            "!thread", "!object poi(nt!PsInitialSystemProcess)"]


def _crashed_lines(session: Session) -> list[str]:
    """Special pool on DrvA.sys, stopped at the overrun's 0xD6 after `g`: the analysis, the
    special block, the verifier's drivers and its allocate/free log."""
    run(session, "g")
    assert _json(session, ".bugcheck")["code"] == 0xD6
    block = _json(session, "!verifier 0x80 4")["records"][0]["address"]
    return ["!analyze", "!analyze -v", "kb", f"!pool {block:x}", "!verifier 3",
            f"!verifier 0x80 {block + 1:x}", "!poolfind DrvA 2", "!pooldiff"]


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_every_result_prints_as_plain_json(arch: str, tmp_path: Path) -> None:
    healthy = Session(boot(arch, 7, scale=0.1).target())     # any busy machine will do
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


def test_json_in_pieces_is_the_document_json_dumps_prints() -> None:
    @dataclasses.dataclass
    class Row:
        address: int
        values: list[int | None]
        name: str | None

    @dataclasses.dataclass
    class Table:
        rows: Rows[Row]
        empty: Rows[Row]
        nested: dict[int, list[tuple[int, str]]]
        flags: tuple[bool, float, None]
        blank: list[int]
        none: dict[str, int]

    rows = [Row(0xFFFFF80000000000 + i, [i, None], "nt!\u00e9\"x\n") for i in range(3)]
    table = Table(Rows(row for row in rows), Rows(), {1: [(2, "a")], -3: []}, (True, 0.5, None),
                  [], {})
    plain = {"rows": [dataclasses.asdict(r) for r in rows], "empty": [],
             "nested": {"1": [[2, "a"]], "-3": []}, "flags": [True, 0.5, None], "blank": [],
             "none": {}}
    pieces = list(iter_json(table))
    assert "".join(pieces) == json.dumps(plain, indent=2)
    assert len(pieces) > 20                                   # produced row by row
    assert render_json(Rows([1, 2])) == "[\n  1,\n  2\n]"


def test_a_renderer_may_yield_its_lines(session):
    def lines(result, session):
        yield from (f"line {i}" for i in range(result))

    with temporary_command(".kt_lines", lambda s, a: int(a), render=lines):
        assert run(session, ".kt_lines 3") == "line 0\nline 1\nline 2\n"
        assert run(session, ".kt_lines 0") == ""


def test_json_docs_are_current_and_name_no_arch() -> None:
    """Generated in a fresh interpreter: other tests register commands of their own here."""
    fresh = subprocess.run([sys.executable, "-m", "commands.reference", "--json"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert (ROOT / JSON_DOC).read_text(encoding="utf-8") == fresh, \
        f"{JSON_DOC} is stale: run python -m commands.reference --write"
    assert "### Arch" not in fresh and "`arch`" not in fresh


# -- renderers -------------------------------------------------------------------------------
@dataclass
class _Row:
    address: int
    tag: str


def _render_row(row: _Row, session) -> str:
    return f"{session.target.arch.fmt_ptr(row.address)} {row.tag}"


def test_text_and_json_renderers(session):
    with temporary_command(".kt_row", lambda s, a: _Row(0x82000010, "Leak"),
                           render=_render_row):
        assert run(session, ".kt_row") == "82000010 Leak\n"
        run(session, ".output json")
        assert json.loads(run(session, ".kt_row")) == {"address": 0x82000010, "tag": "Leak"}
        assert run(session, ".echo text stays text") == "text stays text\n"
        assert run(session, ".output") == "Output format is json\n"
        run(session, ".settings set output=text")
        assert run(session, ".kt_row") == "82000010 Leak\n"
    assert render_json({"a": 1}) == '{\n  "a": 1\n}'


def test_colour_wraps_addresses_tags_states_and_errors():
    row = "*fa808000 size:  a20 previous size:    0  (Free)      *MFE0\n"
    assert colorize(row) == (
        "*\x1b[36mfa808000\x1b[0m size:  a20 previous size:    0  "
        "\x1b[32m(Free)\x1b[0m      *\x1b[1;35mMFE0\x1b[0m\n")
    assert colorize("fffffa80`16990040 size: 20 (Allocated) Leak") == (
        "\x1b[36mfffffa80`16990040\x1b[0m size: 20 \x1b[33m(Allocated)\x1b[0m "
        "\x1b[1;35mLeak\x1b[0m")
    assert colorize("\t\tPooltag Leak : leaky driver\n") == (
        "\t\tPooltag \x1b[1;35mLeak\x1b[0m : leaky driver\n")
    assert colorize("No export xyz found\n") == "\x1b[1;31mNo export xyz found\x1b[0m\n"
    assert colorize("kd> !vm\n", "echo") == "\x1b[1mkd> \x1b[0m!vm\n"


def test_colour_only_on_a_terminal_without_no_color(session, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    session.stdout = Tty()
    assert session.color
    session.write("No export x found\n")
    assert session.stdout.getvalue() == "\x1b[1;31mNo export x found\x1b[0m\n"
    monkeypatch.setenv("NO_COLOR", "1")
    assert not session.color
    session.settings["color"] = "on"
    assert session.color
    session.stdout = io.StringIO()
    session.settings["color"] = "auto"
    assert not session.color
