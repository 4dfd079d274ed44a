"""`r` and `@reg`: the stopped processor's context as the stop saved it (kdsim/stop.py), in
the Win7-era debugger's layout, on a live machine and on a dump of it."""
from __future__ import annotations

from typing import Callable

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.control import open_dump, save_dump
from kdsim.layouts import field_offsets
from kdsim.machine import Machine
from kdsim.scenarios import boot
from tests.support import lines


def context_value(machine: Machine, field: str, cpu: int = 0) -> int:
    """A context field read straight from the KPRCB, not through the debugger."""
    profile = machine.stops.profile
    prcb = machine.g.read_ptr(machine.nt.symbols["KiProcessorBlock"]
                              + cpu * machine.arch.ptr_size)
    at = prcb + profile.context_frame + field_offsets(profile.context)[field]
    size = next(s.sizeof() for s in profile.context.subcons if s.name == field)
    return int.from_bytes(machine.memory.read(at, size), "little")


def test_r_x86_layout(booted: Callable[[str], Machine]) -> None:
    machine = booted("x86")
    ip, sp, bp = (context_value(machine, f) for f in ("Eip", "Esp", "Ebp"))
    assert machine.symbols.symbolize(ip) == "nt!RtlpBreakWithStatusInstruction"
    assert run(Session(machine.target()), "r") == lines(f"""
        eax=00000000 ebx=00000000 ecx=00000000 edx=00000000 esi=00000000 edi=00000000
        eip={ip:08x} esp={sp:08x} ebp={bp:08x} iopl=0         nv up ei pl zr na pe nc
        cs=0008  ss=0010  ds=0023  es=0023  fs=0030  gs=0000             efl=00000246
        nt!RtlpBreakWithStatusInstruction:
        {ip:08x} cc              int     3
        """) + "\n"


def test_r_x64_layout(booted: Callable[[str], Machine]) -> None:
    machine = booted("x64")
    ip, sp, bp = (context_value(machine, f) for f in ("Rip", "Rsp", "Rbp"))
    zero = "0" * 16
    fmt = machine.arch.fmt_addr
    assert run(Session(machine.target()), "r") == lines(f"""
        rax={zero} rbx={zero} rcx={zero}
        rdx={zero} rsi={zero} rdi={zero}
        rip={ip:016x} rsp={sp:016x} rbp={bp:016x}
         r8={zero}  r9={zero} r10={zero}
        r11={zero} r12={zero} r13={zero}
        r14={zero} r15={zero}
        iopl=0         nv up ei pl zr na pe nc
        cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b             efl=00000246
        nt!RtlpBreakWithStatusInstruction:
        {fmt(ip)} cc              int     3
        """) + "\n"


@pytest.mark.parametrize("arch,ip", [("x86", "eip"), ("x64", "rip")])
def test_named_registers_and_expressions(booted: Callable[[str], Machine], arch: str,
                                         ip: str) -> None:
    machine = booted(arch)
    session = Session(machine.target())
    value = context_value(machine, ip.capitalize())
    digits = 8 if arch == "x86" else 16
    assert run(session, f"r {ip}") == f"{ip}={value:0{digits}x}\n"
    assert run(session, f"r {ip}, efl") == f"{ip}={value:0{digits}x} efl=00000246\n"
    assert run(session, "r cs") == ("cs=0008\n" if arch == "x86" else "cs=0010\n")
    assert run(session, "r zf") == "zf=1\n"
    # @reg and a bare register name in any expression; the first frame of k
    shown = run(session, f"? @{ip}")
    assert shown == run(session, f"? {ip}") == run(session, "? nt!RtlpBreakWithStatusInstruction")
    first_frame = run(session, "k").splitlines()[1].split()
    assert first_frame[-1] == "nt!RtlpBreakWithStatusInstruction"
    assert run(session, f"ln @{ip}").startswith(f"({machine.arch.fmt_addr(value)})   "
                                                "nt!RtlpBreakWithStatusInstruction")


def test_sub_registers_on_x64() -> None:
    machine = boot("x64", seed=7, scale=0.02)
    session = Session(machine.target())
    run(session, "r rax=1122334455667788")
    assert run(session, "r rax, eax, ax, al, ah") == (
        "rax=1122334455667788 eax=55667788 ax=7788 al=88 ah=77\n")
    run(session, "r al=ff")
    assert run(session, "r rax") == "rax=11223344556677ff\n"
    assert run(session, "? @r8d+1") == "Evaluate expression: 1 = 00000000`00000001\n"


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_after_the_overrun_s_crash_the_ip_is_the_first_frame_of_k(arch: str, tmp_path) -> None:
    machine = boot(arch, seed=1, scenario="overrun", scale=0.05)
    machine.step(400_000)
    assert machine.crash is not None
    target = machine.target()
    path = tmp_path / "crash.dmp"
    save_dump(target, str(path))
    ip = "eip" if arch == "x86" else "rip"
    for session in (Session(target), Session(open_dump(path))):
        session.processor = machine.g.read_u32(machine.stops.sym_owner)
        value = int(run(session, f"? @{ip}").split("= ")[1].replace("`", ""), 16)
        first = run(session, "k").splitlines()[1]
        assert first.split()[-1] == machine.symbols.symbolize(value)
        assert run(session, "r").splitlines()[-2] == f"{machine.symbols.symbolize(value)}:"
        if arch == "x64":        # KeBugCheckEx's arguments, as its context saved them
            assert run(session, "r rcx, rdx") == (f"rcx={machine.crash.code:016x} "
                                                 f"rdx={machine.crash.params[0]:016x}\n")


def test_setting_a_register_live_and_refusing_on_a_dump(tmp_path) -> None:
    machine = boot("x86", seed=7, scale=0.02)
    target = machine.target()
    session = Session(target)
    assert run(session, "r eax=0x1234+1") == ""
    assert run(session, "r eax") == "eax=00001235\n"
    assert run(session, "r ah=ff") == ""
    assert run(session, "r eax") == "eax=0000ff35\n"
    path = tmp_path / "m.dmp"
    save_dump(target, str(path))
    dumped = Session(open_dump(path))
    assert run(dumped, "r eax") == "eax=0000ff35\n"
    assert run(dumped, "r") == run(session, "r")
    assert run(dumped, "r eax=1") == "Registers of a dump cannot be changed\n"


@pytest.mark.parametrize("line,message", [
    ("r foo", "         ^ Bad register error in 'r foo'"),
    ("r eax, foo", "              ^ Bad register error in 'r eax, foo'"),
    ("r rax", "         ^ Bad register error in 'r rax'"),
    ("r eax=", "Numeric expression missing from '<EOL>'"),
    ("r eax=zz", "Couldn't resolve error at 'zz'"),
    ("? @foo", "Bad register error at '@foo'"),
])
def test_bad_input(booted: Callable[[str], Machine], line: str, message: str) -> None:
    session = Session(booted("x86").target())
    assert run(session, line) == message + "\n"


def test_a_target_without_processor_blocks(session: Session) -> None:
    assert run(session, "r") == "Unable to get register context of the current processor\n"
    assert run(session, "? @eax") == "Bad register error at '@eax'\n"
