"""The workload engine: a habit's blocks are freed through its owner's freeing path, so the
verifier's free records show where the memory went back, on each arch's system-call entry."""
from __future__ import annotations

import re

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.machine import Machine
from kdsim.pool import NONPAGED
from kdsim.population import NT_IO
from kdsim.workload import Pattern

ALLOC = ("Ntfs!NtfsCreateFcb+0x18d", "nt!IofCallDriver+0x63", *NT_IO)
FREE = ("Ntfs!NtfsDeleteFcb+0x152", "nt!IofCallDriver+0x63", *NT_IO)
ENTRY = {"x86": "nt!KiFastCallEntry+0x12a", "x64": "nt!KiSystemServiceCopyEnd+0x13"}


def records(log: str) -> list[list[str]]:
    """The symbols of each record's stack, newest first."""
    out = []
    for record in re.split(r"^Pool block .*\n", log, flags=re.M)[1:]:
        out.append(re.findall(r"^[0-9a-f`]+ (\S+)$", record, re.M))
    return out


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_frees_go_through_the_freeing_path(arch: str) -> None:
    machine = Machine(get_arch(arch), 3, verifier="/flags 0x8 /driver Ntfs.sys")
    fcbs = Pattern("Ntfs", "NtxF", NONPAGED, (0x100,), 5.0, 1.0, ALLOC, free_frames=FREE)
    machine.workload.add(fcbs)
    machine.step(200)
    found = records(run(Session(machine.target()), "!verifier 0x80 20"))
    frees = [r for r in found if r[0].startswith("nt!VfFreePoolNotification")]
    allocations = [r for r in found if r[0].startswith("nt!VeAllocatePoolWithTagPriority")]
    assert frees and allocations
    for stack in frees:
        assert stack[2:] == [*FREE[:-1], ENTRY[arch]]
        assert not any("Allocate" in frame for frame in stack)
    for stack in allocations:
        assert stack[2:] == [*ALLOC[:-1], ENTRY[arch]]


def test_a_habit_without_free_frames_frees_on_its_allocation_stack() -> None:
    machine = Machine(get_arch("x86"), 3)
    fcbs = Pattern("Ntfs", "NtxF", NONPAGED, (0x100,), 5.0, 1.0, ALLOC)
    machine.workload.add(fcbs)
    assert fcbs.free_stack == fcbs.stack and fcbs.stack
