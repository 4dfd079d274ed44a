"""The Python API (commands/api.py, reached as `kdsim.open` ...): text, result objects, JSON
Lines objects, running the machine, and one-line errors for bad arguments."""
from __future__ import annotations

import subprocess
import sys

import pytest

import kdsim
from commands import api
from commands.ext.poolused import PoolUsed
from tests.support import ROOT


@pytest.fixture(scope="module")
def kd(booted):
    """A debugger on the shared default machine (read-only use)."""
    with kdsim.Debugger(booted("x86").target()) as debugger:
        yield debugger


def test_kdsim_names_are_the_api_and_importing_kdsim_loads_no_debugger():
    assert kdsim.open is api.open and kdsim.Debugger is api.Debugger
    assert (kdsim.open_dump, kdsim.resume) == (api.open_dump, api.resume)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kdsim.nope  # noqa: B018
    code = "import sys, kdsim.target; print(any(m.startswith('commands') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == "False\n"


def test_run_returns_kd_text_and_errors_do_not_raise(kd):
    text = kd.run("? 1+1; .echo done")
    assert text == "Evaluate expression: 2 = 00000002\ndone\n"
    assert isinstance(text, kdsim.Text)
    assert kd.run("bogus") == "       ^ Syntax error in 'bogus'\n"     # under "0: kd> bogus"
    assert text._repr_html_() == "<pre>Evaluate expression: 2 = 00000002\ndone\n</pre>"


def test_result_is_the_object_the_renderer_prints(kd):
    used = kd.result("!poolused /t2 2")
    assert isinstance(used, PoolUsed) and len(used.rows) == 2
    assert kd.result(".echo hi") == "hi\n"
    with pytest.raises(kdsim.CommandError) as failed:
        kd.result("dt nt!_NO_SUCH")
    assert failed.value.command == "dt nt!_NO_SUCH" and failed.value.message
    with pytest.raises(ValueError, match="one command expected, not 2"):
        kd.result("? 1; ? 2")


def test_json_is_the_jsonl_object(kd):
    record = kd.json("? 0x80000000")
    assert record == {"schema": 1, "command": "? 0x80000000",       # sign-extended, as kd does
                      "result": {"value": "0xffffffff80000000", "decimal": -2147483648,
                                 "hex": "80000000"}}
    assert kd.json("nope") == {"schema": 1, "command": "nope",
                               "error": "Syntax error in 'nope'"}


def test_go_runs_the_machine_and_a_dump_refuses(tmp_path):
    with kdsim.open(scale=0.25, seed=3, cache=False) as kd:
        before = kd.result("? poi(nt!KeTickCount)").value
        kd.go(50)
        assert kd.result("? poi(nt!KeTickCount)").value > before
        kd.run(f".dump /f {tmp_path / 'm.dmp'}")
        with pytest.raises(TypeError):
            kd.go("50")                                   # type: ignore[arg-type]
    with pytest.raises(ValueError, match="closed"):
        kd.run("? 1")
    with kdsim.open_dump(tmp_path / "m.dmp") as dump:
        assert not dump.target.live
        with pytest.raises(kdsim.CommandError):
            dump.go(1)


def test_safe_debugger_refuses_writing_commands(booted, tmp_path):
    kd = kdsim.Debugger(booted("x86").target(), safe=True)
    assert kd.safe
    assert "refused" in kd.run(f".logopen {tmp_path / 'log.txt'}")
    assert not (tmp_path / "log.txt").exists()


@pytest.mark.parametrize("options, error, message", [
    ({"scale": 9}, ValueError, "scale must be above 0 and at most 4, not 9"),
    ({"scale": "big"}, TypeError, "scale must be a number, not str"),
    ({"seed": 1 << 64}, ValueError, "seed must be a 64-bit number"),
    ({"seed": 1.5}, TypeError, "seed must be an int, not float"),
    ({"arch": "arm"}, ValueError, "arch must be x86 or x64, not 'arm'"),
    ({"scenario": "nope"}, ValueError, "nope"),
    ({"lab": "default"}, ValueError, "scenario 'default' has no lab"),
    ({"lab": "leak", "scenario": "overrun"}, ValueError, "disagree"),
    ({"colour": "on"}, TypeError, "colour"),
])
def test_bad_arguments_are_one_line_errors(options, error, message):
    with pytest.raises(error, match=message):
        kdsim.open(**options)


def test_unreadable_files_are_open_errors(tmp_path):
    junk = tmp_path / "junk.dmp"
    junk.write_bytes(b"not a dump")
    with pytest.raises(kdsim.OpenError, match="junk.dmp"):
        kdsim.open_dump(junk)
    with pytest.raises(kdsim.OpenError):
        kdsim.resume(tmp_path / "missing.kdsnap")
