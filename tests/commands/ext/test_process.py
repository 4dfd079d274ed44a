"""`!process`, `!thread`, `.process`, `.thread`: the process and thread lists the object
manager keeps in memory, in the Win7-era layouts, live and dumped, both arches."""
from __future__ import annotations

import re
from typing import Callable

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.control import open_dump, save_dump
from kdsim.machine import Machine
from kdsim.scenarios import boot

X86_BLOCK = re.compile(r"PROCESS ([0-9a-f]{8})  SessionId: (none|\d+)  Cid: ([0-9a-f]{4})    "
                       r"Peb: [0-9a-f]{8,}  ParentCid: [0-9a-f]{4}\n"
                       r"    DirBase: [0-9a-f]{8,}  ObjectTable: [0-9a-f]{8}  "
                       r"HandleCount: [ \d]{3,}\.\n"
                       r"    Image: (\S+)\n")
X64_BLOCK = re.compile(r"PROCESS ([0-9a-f]{16})\n"
                       r"    SessionId: (none|\d+)  Cid: ([0-9a-f]{4})    "
                       r"Peb: [0-9a-f]{8,}  ParentCid: [0-9a-f]{4}\n"
                       r"    DirBase: [0-9a-f]{8,}  ObjectTable: [0-9a-f]{16}  "
                       r"HandleCount: [ \d]{3,}\.\n"
                       r"    Image: (\S+)\n")


def blocks(arch: str, text: str) -> list[tuple[str, str, str, str]]:
    return (X86_BLOCK if arch == "x86" else X64_BLOCK).findall(text)


def process_list(machine: Machine) -> list[int]:
    """The EPROCESS addresses on nt!PsActiveProcessHead, walked here with the layouts."""
    profile = machine.stops.profile
    links = profile.offset("eprocess", "ActiveProcessLinks")
    head = machine.nt.symbols["PsActiveProcessHead"]
    found, at = [], machine.g.read_ptr(head)
    while at != head:
        found.append(at - links)
        at = int.from_bytes(machine.memory.read(at, machine.arch.ptr_size), "little")
    return found


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_every_process_is_listed_in_its_pool_block(booted: Callable[[str], Machine],
                                                   arch: str, tmp_path) -> None:
    machine = booted(arch)
    target = machine.target()
    save_dump(target, str(tmp_path / "m.dmp"))
    expected = process_list(machine)
    for session in (Session(target), Session(open_dump(tmp_path / "m.dmp"))):
        text = run(session, "!process 0 0")
        assert text.startswith("**** NT ACTIVE PROCESS DUMP ****\n")
        found = blocks(arch, text)
        assert [int(address, 16) for address, *_ in found] == expected
        assert found[0][2:] == ("0004", "System")
        assert text.count("\nPROCESS ") == len(found)
        for address, *_ in found[:3]:       # each PROCESS lies inside a Proc block
            assert "Proc" in run(session, f"!pool {address} 2")


def test_the_x86_layout_of_one_process(booted: Callable[[str], Machine]) -> None:
    session = Session(booted("x86").target())
    text = run(session, "!process 0 0 lsass.exe")
    assert not text.startswith("****")
    (address, _, pid, image), = blocks("x86", text)
    assert (pid, image) == ("01ec", "lsass.exe")
    assert run(session, f"!process {pid} 0") == text
    assert run(session, f"!process {address} 0") == text


def test_flag_1_adds_the_details_the_model_keeps(booted: Callable[[str], Machine]) -> None:
    session = Session(booted("x64").target())
    lines = run(session, "!process 0 1 lsass.exe").splitlines()
    names = [line.split()[0] for line in lines[4:]]
    assert names == ["DeviceMap", "Token", "ElapsedTime", "UserTime", "KernelTime",
                     "QuotaPoolUsage[PagedPool]", "QuotaPoolUsage[NonPagedPool]", "Working",
                     "PeakWorkingSetSize", "VirtualSize", "PeakVirtualSize", "PageFaultCount",
                     "MemoryPriority", "BasePriority", "CommitCharge"]
    assert re.fullmatch(r"    Token {29}[0-9a-f]{16}", lines[5])
    assert re.fullmatch(r"    ElapsedTime {23}\d\d:\d\d:\d\d\.\d{3}", lines[6])
    assert re.fullmatch(r"    Working Set Sizes \(now,min,max\)  \(\d+, 50, 345\) "
                        r"\(\d+KB, 200KB, 1380KB\)", lines[11])


def test_threads_of_a_process(booted: Callable[[str], Machine]) -> None:
    machine = booted("x64")
    session = Session(machine.target())
    text = run(session, "!process 0 4 services.exe")
    threads = re.findall(r"\n        THREAD ([0-9a-f]{16})  Cid 01dc\.([0-9a-f]{4})  "
                         r"Teb: [0-9a-f]{16} Win32Thread: 0{16} (WAIT: \(\w+\) \w+ "
                         r"Non-Alertable|RUNNING on processor \d)\n", text)
    assert threads
    thread = threads[0][0]
    shown = run(session, f"!thread {thread}").splitlines()
    assert shown[0].startswith(f"THREAD {thread}  Cid 01dc.{threads[0][1]}  ")
    assert shown[1:3] == ["Not impersonating", shown[2]]
    assert re.fullmatch(r"Owning Process {12}[0-9a-f]{16} {7}Image: {9}services\.exe",
                        shown[3])


def test_the_current_thread_shows_its_stack(booted: Callable[[str], Machine]) -> None:
    session = Session(booted("x86").target())
    text = run(session, "!thread").splitlines()
    assert "RUNNING on processor 0" in text[0]
    at = text.index("ChildEBP RetAddr  Args to Child              ")
    assert text[at + 1].endswith("nt!RtlpBreakWithStatusInstruction")
    owner = text[3].split()[2]
    assert run(session, "!process -1 0").startswith(f"PROCESS {owner}  ")


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_break_in_shows_the_idle_thread_live_and_dumped(booted: Callable[[str], Machine],
                                                          arch: str, tmp_path) -> None:
    machine = booted(arch)
    live = Session(machine.target())
    text = run(live, "!thread")
    lines = text.splitlines()
    assert re.match(r"THREAD ([0-9a-f]+)  Cid 0000\.0000  .* RUNNING on processor 0$", lines[0])
    assert re.fullmatch(r"Owning Process +([0-9a-f]+) +Image: +Idle", lines[3])
    idle = lines[3].split()[2]
    (address, session_id, pid, image), = blocks(arch, run(live, "!process -1 0"))
    assert (address, session_id, pid, image) == (idle, "none", "0000", "Idle")
    assert "Image: Idle" not in run(live, "!process 0 0")
    # `k`'s frames lie on the thread's stack, between its Limit and its Init
    init = int(re.search(r"Stack Init ([0-9a-f]+)", text).group(1), 16)
    limit = int(re.search(r" Limit ([0-9a-f]+)", text).group(1), 16)
    children = [int(line.split()[0].replace("`", ""), 16)
                for line in run(live, "k").splitlines()[1:]]
    assert len(children) == 4 and all(limit <= child < init for child in children)
    thread = lines[0].split()[1]
    assert run(live, f".thread {thread}") == f"Implicit thread is now {_addr(arch, thread)}\n"
    assert run(live, "!thread") == text
    # a mini dump keeps the stop's processor, thread, process and stack, not the handle table
    for kind, commands in (("full", ("!thread", "k", "kb", "!process -1 0", "r")),
                           ("mini", ("!thread", "k", "kb", "r"))):
        save_dump(machine.target(), str(tmp_path / f"{kind}.dmp"), kind=kind)
        dead = Session(open_dump(tmp_path / f"{kind}.dmp"))
        for command in commands:
            shown, expected = run(dead, command), run(live, command)
            if kind == "mini":          # a mini dump keeps no clock: the wait's ticks are 0
                shown, expected = (re.sub(r"Ticks: .*", "", x) for x in (shown, expected))
            assert shown == expected, (kind, command)


def _addr(arch: str, value: str) -> str:
    return value if arch == "x86" else f"{value[:8]}`{value[8:]}"


def test_implicit_process_and_thread(booted: Callable[[str], Machine]) -> None:
    session = Session(booted("x86").target())
    current = run(session, ".process")
    assert re.fullmatch(r"Implicit process is now [0-9a-f]{8}\n", current)
    lsass = blocks("x86", run(session, "!process 0 0 lsass.exe"))[0][0]
    assert run(session, f".process {lsass}") == f"Implicit process is now {lsass}\n"
    assert run(session, "!process").startswith(f"PROCESS {lsass}  ")
    assert run(session, ".process 0") == current
    assert re.fullmatch(r"Implicit thread is now [0-9a-f]{8}\n", run(session, ".thread"))


@pytest.mark.parametrize("line,message", [
    ("!process 80001000 0", "TYPE mismatch for process object at 80001000"),
    ("!process 7777 0", "No process has the ID 7777"),
    ("!process foo", "Couldn't resolve error at 'foo'"),
    ("!thread 80001000", "TYPE mismatch for thread object at 80001000"),
    (".process 80001000", "TYPE mismatch for process object at 80001000"),
    (".thread 80001000", "TYPE mismatch for thread object at 80001000"),
])
def test_bad_input(booted: Callable[[str], Machine], line: str, message: str) -> None:
    assert run(Session(booted("x86").target()), line) == message + "\n"


def test_a_corrupt_link_stops_the_walk_and_says_so() -> None:
    machine = boot("x86", seed=5, scale=0.02)
    session = Session(machine.target())
    before = blocks("x86", run(session, "!process 0 0"))
    third = int(before[2][0], 16)
    links = machine.stops.profile.offset("eprocess", "ActiveProcessLinks")
    run(session, f"ed {third + links:x} 0x0badf00d")
    text = run(session, "!process 0 0")
    assert len(blocks("x86", text)) == 3
    assert text.endswith("Memory read error 0badf00d\n")
    run(session, f"ed {third + links:x} {third + links:x}")        # a loop onto itself
    assert len(blocks("x86", run(session, "!process 0 0"))) == 3


def test_a_target_without_processor_blocks_says_so(session: Session) -> None:
    for line in ("!process", "!process -1", "!thread", ".process", ".thread"):
        assert run(session, line) == "Unable to get the current thread\n", line
    assert run(session, "!process 0 0") == "Unable to get nt!PsActiveProcessHead\n"
