"""nt!PoolHitTag: set a tag in memory and the machine breaks in where that tag is counted."""
from __future__ import annotations

import pytest

from commands.dispatch import load_commands
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import NONPAGED
from kdsim.tracker import POOL_HIT_TAG_NONE
from kdsim.scenarios import boot


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_tracker_notes_the_hit_tag_from_memory(arch):
    m = Machine(get_arch(arch), seed=1)
    hit = m.target().symbol("nt!PoolHitTag")
    assert m.target().read_u32(hit) == POOL_HIT_TAG_NONE
    m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Abcd"))
    assert m.pool.take_hit() is None
    m.memory.write(hit, tag_to_ulong("Abcd").to_bytes(4, "little"))
    p = m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Abcd"), cpu=1, stack=(0x1234,))
    assert m.pool.take_hit() == (tag_to_ulong("Abcd"), 1, "ExAllocatePoolWithTag", 1, (0x1234,))
    assert m.pool.take_hit() is None
    m.pool.free(p, cpu=0, stack=(0x5678,))
    assert m.pool.take_hit() == (tag_to_ulong("Abcd"), -1, "ExFreePoolWithTag", 0, (0x5678,))


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_g_breaks_at_dbgbreakpoint_with_the_callers_stack(arch):
    load_commands()
    m = boot(arch, seed=3)
    session = Session(m.target())
    assert run(session, "ed nt!PoolHitTag ' prI'") == ""        # 'Irp ' as a C constant
    out = run(session, "g 0n50000").splitlines()
    assert out[0] == "Break instruction exception - code 80000003 (first chance)"
    assert out[1] == "nt!DbgBreakPoint:"
    assert out[2].endswith(" cc              int     3")
    stack = run(session, "k").splitlines()
    calls = [line.split()[-1] for line in stack[1:]]
    assert calls[0] == "nt!DbgBreakPoint"
    assert calls[1] in ("nt!ExpInsertPoolTracker+0x1c", "nt!ExpRemovePoolTracker+0x1c")
    assert calls[2] in ("nt!ExAllocatePoolWithTag+0x1d1", "nt!ExFreePoolWithTag+0x1a7")
    assert any(c.startswith("nt!IoAllocateIrp") for c in calls)   # the Irp traffic's caller
    assert m.crash is None
    # setting it back lets the machine run on without stopping
    run(session, "ed nt!PoolHitTag ffffff0f")
    assert "RtlpBreakWithStatusInstruction" in run(session, "g 0n2000")
