"""Stops: what the machine records when it bug-checks (owner, thread, stack in memory), and a
dump saved after the crash telling the same story."""
from __future__ import annotations

import pytest

from commands.session import Session
from commands.target_cmds import fatal_error_text
from commands.testing import run
from kdsim import dump
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames, seed_modules
from kdsim.pool import NONPAGED
from tests.support import B_FRAMES


def test_the_owner_and_its_thread_are_recorded() -> None:
    m = Machine(get_arch("x64"), 2, verifier="/flags 1 /driver DrvA.sys")
    m.workload.t = 5                              # processor 1
    m.stop(BugCheck(0x50, 0x1000, 1, 0, 0))
    t = m.target()
    assert t.read_u32(t.symbol("nt!KeBugCheckOwner")) == 1
    from commands.core.stack import current_thread
    assert current_thread(t, 1) == m.verifier.threads.current(1, 5)


# -- a dump saved after the crash ---------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_dump_saved_after_the_crash_tells_the_same_story(arch: str, tmp_path) -> None:
    m = Machine(get_arch(arch), 2, verifier="/flags 0x9 /driver DrvB.sys",
                modules=seed_modules("DrvB"))
    stack = frames(m.symbols, B_FRAMES)
    block = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("BBBB"), 0, stack)
    m.pool.free(block, 0, 0, stack)
    with pytest.raises(BugCheck) as caught:
        m.pool.free(block, 0, 0, stack)
    m.stop(caught.value)
    live = Session(m.target())
    path = tmp_path / "crash.kdmp"
    dump.save(m.target(), path)
    dead = Session(dump.load(path))
    for command in (".bugcheck", "k", "kb", "!analyze -v", "!analyze", "!verifier 3",
                    f"!verifier 0x80 {block:x}"):
        assert run(dead, command) == run(live, command), command
    assert fatal_error_text(dead.target) == fatal_error_text(live.target)
    assert "Pool block" in run(dead, f"!verifier 0x80 {block:x}")
