"""`lm`, `ln`, `x`, `.reload`: modules and symbols in the Win7-era debugger's layouts."""
from __future__ import annotations

from typing import Callable

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import X86
from kdsim.control import open_dump, save_dump
from kdsim.machine import Machine
from kdsim.scenarios import boot
from tests.support import build_target, lines

NT = 0x82A0F000
X86_MODULES = (
    ("nt", "ntoskrnl.exe", NT, 0x5F7000,
     {"KeBugCheckEx": NT + 0x80000, "KeBugCheck2": NT + 0x80C10, "PoolHitTag": NT + 0x561000,
      "ExAllocatePoolWithTag": NT + 0x1A8010, "ExAllocatePoolWithQuotaTag": NT + 0x1A7E40}),
    ("myfault", "myfault.sys", 0x8E687000, 0x7000, {}),
)


@pytest.fixture
def x86() -> Session:
    return Session(build_target(X86, modules=X86_MODULES))


@pytest.fixture(scope="module")
def leak() -> Machine:
    return boot("x64", seed=1, scenario="leak", scale=0.05)


# -- ln ---------------------------------------------------------------------------------------
def test_ln_with_an_offset_and_an_exact_match(x86: Session) -> None:
    assert run(x86, "ln nt!KeBugCheckEx+1e") == (
        "(82a8f000)   nt!KeBugCheckEx+0x1e   |  (82a8fc10)   nt!KeBugCheck2\n")
    assert run(x86, "ln 82a8fc10") == lines("""
        (82a8fc10)   nt!KeBugCheck2   |  (82bb6e40)   nt!ExAllocatePoolWithQuotaTag
        Exact matches:
            nt!KeBugCheck2 = <no type information>
        """) + "\n"


def test_ln_in_a_module_without_symbols_and_outside_every_module(x86: Session) -> None:
    assert run(x86, "ln myfault+11f6") == "(8e687000)   myfault+0x11f6\n"
    assert run(x86, "ln 1234") == ""
    assert run(x86, "ln nt!PoolHitTag+0x100") == "(82f70000)   nt!PoolHitTag+0x100\n"


def test_ln_bad_input(x86: Session) -> None:
    assert run(x86, "ln foo") == "Couldn't resolve error at 'foo'\n"
    assert run(x86, "ln") == "Unable to get register context of the current processor\n"


def test_ln_gives_each_verifier_frame_the_symbol_the_stack_shows(leak: Machine) -> None:
    session = Session(leak.target())
    log = run(session, "!verifier 0x80 8").splitlines()
    frames = [line.split(None, 1) for line in log if line.startswith("fffff")]
    assert frames
    for address, symbol in frames:
        first = run(session, f"ln {address}").splitlines()[0]
        name = first.split("   ")[1].strip()
        assert name == symbol.strip(), (address, first)


# -- x ----------------------------------------------------------------------------------------
def test_x_wildcards(x86: Session) -> None:
    assert run(x86, "x nt!ExAllocatePool*") == lines("""
        82bb6e40 nt!ExAllocatePoolWithQuotaTag = <no type information>
        82bb7010 nt!ExAllocatePoolWithTag = <no type information>
        """) + "\n"
    assert run(x86, "x nt!KeBugCheck?") == "82a8fc10 nt!KeBugCheck2 = <no type information>\n"
    assert run(x86, "x *!pool*") == "82f70000 nt!PoolHitTag = <no type information>\n"
    assert run(x86, "x nt!Nothing*") == ""


def test_x_bad_input(x86: Session) -> None:
    assert run(x86, "x foo!bar") == "Couldn't resolve error at 'foo!bar'\n"
    assert run(x86, "x") == "     ^ Syntax error in 'x'\n"
    assert run(x86, "x nt!a nt!b") == "           ^ Syntax error in 'x nt!a nt!b'\n"


def test_x_on_a_machine_finds_the_pool_globals(booted: Callable[[str], Machine]) -> None:
    text = run(Session(booted("x64").target()), "x nt!Pool*")
    names = [line.split()[1] for line in text.splitlines()]
    assert "nt!PoolHitTag" in names and "nt!PoolTrackTable" in names
    assert "Syntax error" not in text


# -- .reload ----------------------------------------------------------------------------------
def test_reload(x86: Session) -> None:
    assert run(x86, ".reload") == lines("""
        Loading Kernel Symbols
        ..
        Loading User Symbols

        Loading unloaded module list
        """) + "\n"
    assert run(x86, ".reload /f nt") == ""
    assert run(x86, ".reload myfault.sys") == (
        "*** ERROR: Module load completed but symbols could not be loaded for myfault.sys\n")
    assert run(x86, ".reload nope.sys") == "Unable to find module 'nope.sys'\n"


def test_reload_prints_a_dot_per_module_63_to_a_line() -> None:
    modules = tuple((f"m{i}", f"m{i}.sys", 0x90000000 + i * 0x10000, 0x1000, {})
                    for i in range(70))
    text = run(Session(build_target(X86, modules=modules)), ".reload").splitlines()
    assert text[1:3] == ["." * 63, "." * 7]


# -- lm ---------------------------------------------------------------------------------------
def test_lm_layout(x86: Session) -> None:
    assert run(x86, "lm") == lines("""
        start    end        module name
        82a0f000 83006000   nt         (pdb symbols)          
        8e687000 8e68e000   myfault    (no symbols)           
        """) + "\n"


def test_lm_options(x86: Session) -> None:
    header = "start    end        module name\n"
    myfault = "8e687000 8e68e000   myfault    (no symbols)           \n"
    verbose = "\n".join(["    Loaded symbol image file: myfault.sys",
                         "    Image path: myfault.sys",
                         "    Image name: myfault.sys",
                         "    ImageSize:        00007000"])
    assert run(x86, "lm m my*") == header + myfault
    assert run(x86, "lm k m MYFAULT") == header + myfault
    assert run(x86, "lm a myfault+0x6fff") == header + myfault
    assert run(x86, "lm a myfault+0x7000") == header
    for line in ("lmvm myfault", "lmv m myfault", "lm vm myfault", "lmkv m myfault"):
        assert run(x86, line) == header + myfault + verbose + "\n", line


@pytest.mark.parametrize("line,message", [
    ("lm z", "       ^ Syntax error in 'lm z'"),
    ("lm m", "        ^ Syntax error in 'lm m'"),
    ("lm a foo", "Couldn't resolve error at 'foo'"),
])
def test_lm_bad_input(x86: Session, line: str, message: str) -> None:
    assert run(x86, line) == message + "\n"


def test_leak_lm_lists_nt_windows_drivers_and_myfault(leak: Machine, tmp_path) -> None:
    target = leak.target()
    path = tmp_path / "leak.dmp"
    save_dump(target, str(path))
    for session in (Session(target), Session(open_dump(path))):
        names = [line.split()[2] for line in run(session, "lm").splitlines()[1:]]
        # by address: hal just below nt, then the drivers
        assert names[:2] == ["hal", "nt"] and {"Ntfs", "tcpip", "ndis", "myfault"} <= set(names)
        base, end = run(session, "lmvm myfault").splitlines()[1].split()[:2]
        assert (int(base.replace("`", ""), 16), int(end.replace("`", ""), 16)) == (
            leak.symbols.module("myfault").base, leak.symbols.module("myfault").base + 0x7000)


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_default_machine_lists_only_windows_own_drivers(
        arch: str, booted: Callable[[str], Machine]) -> None:
    """The seed cases' drivers are loaded on their labs' machines only: no giveaway."""
    listed = run(Session(booted(arch).target()), "lm").splitlines()[1:]
    names = {line.split()[2] for line in listed}
    assert {"nt", "hal", "Ntfs", "tcpip", "win32k"} <= names
    assert not names & {"myfault", "DrvA", "DrvB", "DrvC", "cmdrv"}


def test_lm_walks_the_loaded_module_list_and_stops_at_a_bad_link() -> None:
    machine = boot("x86", seed=5, scale=0.02)
    session = Session(machine.target())
    assert run(session, "lmvm Ntfs").splitlines()[3] == (
        "    Image path: \\SystemRoot\\system32\\DRIVERS\\Ntfs.sys")
    head = machine.nt.symbols["PsLoadedModuleList"]
    first = machine.g.read_ptr(head)
    second = int.from_bytes(machine.memory.read(first, 4), "little")
    run(session, f"ed {second:x} 0x0badf00d")          # the second entry's Flink
    lines = run(session, "lm").splitlines()
    assert [line.split()[2] for line in lines[1:-1]] == ["hal", "nt"]    # by address
    assert lines[-1] == "Memory read error 0badf00d"
