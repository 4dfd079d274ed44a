"""Stops: what the machine records when it bug-checks (owner, thread, stack in memory), how KD
announces it (`g`, the Fatal System Error banner), `k`, `.bugcheck`, and a dump saved after
the crash telling the same story."""
from __future__ import annotations

import pytest

import commands.target_cmds  # noqa: F401  (registers g, .reboot, .verifier)
from commands.session import Session
from commands.target_cmds import BREAK_IN_BANNER, fatal_error_text
from commands.testing import run
from kdsim import dump
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames
from kdsim.pool import NONPAGED
from kdsim.scenarios import boot
from kdsim.stop import raised_in
from kdsim.target import Target

B_FRAMES = ("DrvB+0x2c10", "nt!IofCallDriver+0x63")


def double_free(arch: str) -> Machine:
    """Stopped as when DrvB frees a block twice: BAD_POOL_CALLER 7 in ExFreePoolWithTag."""
    m = Machine(get_arch(arch), 2)
    block = m.arch.nonpaged_start + 0x35008 + (8 if arch == "x64" else 0)
    m.stop(raised_in(BugCheck(0xC2, 7, 0x1297, 0, block), "ExFreePoolWithTag",
                     frames(m.symbols, B_FRAMES)))
    return m


def test_the_stop_is_recorded_with_its_stack_in_memory() -> None:
    m = double_free("x86")
    s = Session(m.target())
    assert run(s, ".bugcheck") == ("Bugcheck code 000000C2\n"
                                   "Arguments 00000007 00001297 00000000 f8035008\n")
    assert run(s, "k") == """\
ChildEBP RetAddr  
90205c30 82a8f61c nt!RtlpBreakWithStatusInstruction
90205c80 82a9029b nt!KiBugCheckDebugBreak+0x1c
90205cd0 82a8f01e nt!KeBugCheck2+0x68b
90205d20 82bb8de1 nt!KeBugCheckEx+0x1e
90205d70 8e712c10 nt!ExFreePoolWithTag+0x1b1
90205e10 82be1063 DrvB+0x2c10
90205e60 00000000 nt!IofCallDriver+0x63
"""
    assert run(s, "kn 2") == (" # ChildEBP RetAddr  \n"
                              "00 90205c30 82a8f61c nt!RtlpBreakWithStatusInstruction\n"
                              "01 90205c80 82a9029b nt!KiBugCheckDebugBreak+0x1c\n")
    assert run(s, "kb 5").splitlines()[4] == ("90205d20 82bb8de1 000000c2 00000007 00001297 "
                                              "nt!KeBugCheckEx+0x1e")
    assert run(s, "kb").splitlines()[0] == "ChildEBP RetAddr  Args to Child              "


def test_x64_stack_layouts() -> None:
    m = double_free("x64")
    s = Session(m.target())
    assert run(s, ".bugcheck") == ("Bugcheck code 000000C2\nArguments 00000000`00000007 "
                                   "00000000`00001297 00000000`00000000 fffffa80`00c35010\n")
    lines = run(s, "k").splitlines()
    assert lines[0] == "Child-SP          RetAddr           Call Site"
    assert lines[4] == "fffff880`05e05d60 fffff800`015b33b0 nt!KeBugCheckEx+0x104"
    kb = run(s, "kb").splitlines()
    assert kb[0] == ("Child-SP          RetAddr           : Args to Child" + " " * 59
                     + ": Call Site")
    assert kb[4] == ("fffff880`05e05d60 fffff800`015b33b0 : 00000000`000000c2 00000000`00000007 "
                     "00000000`00001297 00000000`00000000 : nt!KeBugCheckEx+0x104")


def test_the_owner_and_its_thread_are_recorded() -> None:
    m = Machine(get_arch("x64"), 2, verifier="/flags 1 /driver DrvA.sys")
    m.workload.t = 5                              # processor 1
    m.stop(BugCheck(0x50, 0x1000, 1, 0, 0))
    t = m.target()
    assert t.read_u32(t.symbol("nt!KeBugCheckOwner")) == 1
    from commands.core.stack import current_thread
    assert current_thread(t, 1) == m.verifier.threads.current(1, 5)


def test_fatal_error_banner() -> None:
    assert fatal_error_text(double_free("x86").target()) == """\
*** Fatal System Error: 0x000000c2
                       (0x00000007,0x00001297,0x00000000,0xF8035008)

Break instruction exception - code 80000003 (first chance)

A fatal system error has occurred.
Debugger entered on first try; Bugcheck callbacks have not been invoked.

A fatal system error has occurred.

For analysis of this file, run !analyze -v
nt!RtlpBreakWithStatusInstruction:
82a8ea10 cc              int     3"""
    x64 = fatal_error_text(double_free("x64").target()).splitlines()
    assert x64[1] == (" " * 23 + "(0x0000000000000007,0x0000000000001297,0x0000000000000000,"
                                 "0xFFFFFA8000C35010)")
    assert x64[-1] == "fffff800`01488a10 cc              int     3"
    assert fatal_error_text(Machine(get_arch("x86"), 2).target()) == ""


# -- g ----------------------------------------------------------------------------------------
def test_g_runs_the_workload_and_breaks_back_in() -> None:
    m = boot("x86", 4, "test-empty-bugcheck")
    s = Session(m.target())
    out = run(s, "g 0n25")
    assert m.workload.t == 25
    assert out.splitlines() == ["Break instruction exception - code 80000003 (first chance)",
                                *BREAK_IN_BANNER, "nt!RtlpBreakWithStatusInstruction:",
                                "82a8ea10 cc              int     3"]
    assert all(len(line) == 79 for line in BREAK_IN_BANNER)
    assert run(s, "k").splitlines()[2] == "90205d80 82a8ebd1 nt!KdCheckForDebugBreak+0x22"
    run(s, "g")
    assert m.workload.t == 25 + 10000


class Crash:
    weight = 1.0

    def run(self, engine) -> None:
        if engine.t == 3:
            raise raised_in(BugCheck(0x19, 0x20, 1, 2, 3), "ExFreePoolWithTag")


def _build(machine: Machine, scale: float = 1.0) -> None:
    machine.workload.add(Crash())


from kdsim.scenarios import scenario  # noqa: E402

scenario("test-empty-bugcheck", "nothing runs", arch="x86")(lambda machine, scale=1.0: None)
scenario("test-crash-at-3", "bug-checks at tick 3", arch="x86")(_build)


def test_g_stops_at_a_bug_check_and_moves_to_its_processor() -> None:
    m = boot("x86", 4, "test-crash-at-3")
    s = Session(m.target())
    assert run(s, "g") == fatal_error_text(s.target) + "\n"
    assert m.workload.t == 3 and s.prompt == "1: kd> "
    assert run(s, "g") == "The machine has stopped at a bug check; .reboot restarts it.\n"
    run(s, ".reboot")
    assert s.prompt == "0: kd> " and s.target.stop_state() is None


def test_g_on_a_dump_has_no_runnable_debuggee() -> None:
    m = Machine(get_arch("x86"), 4)
    s = Session(Target(m.arch, m.memory, m.symbols, m.processors))
    assert run(s, "g") == "       ^ No runnable debuggees error in 'g'\n"
    assert run(s, ".reboot") == "       ^ No runnable debuggees error in '.reboot'\n"


def test_g_refuses_an_absurd_tick_count() -> None:
    s = Session(boot("x86", 4, "test-empty-bugcheck").target())
    assert run(s, "g 1000001") == "g runs at most 0x1000000 ticks at a time\n"


# -- a dump saved after the crash ---------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_dump_saved_after_the_crash_tells_the_same_story(arch: str, tmp_path) -> None:
    m = Machine(get_arch(arch), 2, verifier="/flags 0x9 /driver DrvB.sys")
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
