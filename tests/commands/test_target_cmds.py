"""The commands that act on the machine: `g` runs the workload and breaks back in (at a bug
check, with the Fatal System Error banner, or where nt!PoolHitTag is counted), `.verifier` sets
the next boot's Driver Verifier and `.reboot` applies it; a dump refuses them all."""
from __future__ import annotations

import pytest

from commands.dispatch import load_commands
from commands.session import Session
from commands.target_cmds import BREAK_IN_BANNER, fatal_error_text
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.machine import Machine
from kdsim.modules import seed_modules
from kdsim.scenarios import boot, scenario
from kdsim.stop import raised_in
from kdsim.target import Target
from tests.support import double_free


def test_fatal_error_banner() -> None:
    assert fatal_error_text(double_free("x86").target()) == """\
*** Fatal System Error: 0x000000c2
                       (0x00000007,0x00001297,0x00000000,0x84435008)

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
                                "nt!RtlpBreakWithStatusInstruction:",
                                "82a8ea10 cc              int     3"]   # no Ctrl+C was pressed
    assert all(len(line) == 79 for line in BREAK_IN_BANNER)
    assert run(s, "k").splitlines()[2] == "a03ffc30 82a8ebd1 nt!KdCheckForDebugBreak+0x22"
    run(s, "g")
    assert m.workload.t == 25 + 10000


class Crash:
    weight = 1.0

    def run(self, engine) -> None:
        if engine.t == 3:
            raise raised_in(BugCheck(0x19, 0x20, 1, 2, 3), "ExFreePoolWithTag")


def _build(machine: Machine, scale: float = 1.0) -> None:
    machine.workload.add(Crash())


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


# -- g at nt!PoolHitTag ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_g_breaks_at_dbgbreakpoint_with_the_callers_stack(arch):
    load_commands()
    m = boot(arch, seed=3, scale=0.1)             # a busy machine: its Irp traffic
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


@scenario("test-empty", "a machine with no workload but myfault loaded", arch="x86",
          modules=seed_modules("myfault"))
def _empty(machine: Machine, scale: float = 1.0) -> None:
    pass


# -- .verifier and .reboot ----------------------------------------------------------------------
def test_dot_verifier_sets_the_next_boot_and_reboot_applies_it() -> None:
    s = Session(boot("x86", 5, "test-empty").target())
    assert run(s, ".verifier /flags 0x9 /driver myfault.sys") == """\
New verifier settings:

Special pool: Enabled
Pool tracking: Enabled
Force IRQL checking: Disabled
I/O verification: Disabled
Deadlock detection: Disabled
DMA checking: Disabled
Security checks: Disabled
Force pending I/O requests: Disabled
Low resources simulation: Disabled
IRP Logging: Disabled
Miscellaneous checks: Disabled
Special pool mode: Verify End

Verified drivers:

myfault.sys


The system reboot is required for the changes to take effect.
"""
    assert run(s, ".verifier").endswith("myfault.sys\n\n\nThe system reboot is required for "
                                        "the changes to take effect.\n")
    assert s.target.control.machine.pool.hook is None
    out = run(s, ".reboot")
    assert out.startswith("Shutdown occurred...unloading all symbol tables.\n"
                          "Waiting to reconnect...\n"
                          "Connected to Windows 7 7601 x86 compatible target, ptr64 FALSE\n"
                          "Kernel Debugger connection established.\n"
                          + "*" * 79 + "\n*\n"
                          "* This is the string you add to your checkin description\n"
                          "* Driver Verifier: Enabled for myfault.sys on Build 7601 ")
    rebooted = s.target.control.machine
    assert rebooted.pool.hook is rebooted.verifier
    assert rebooted.seed == 5 and rebooted.scenario == "test-empty"
    assert run(s, ".verifier").endswith("Verified drivers:\n\nmyfault.sys\n")
    assert run(s, ".verifier /reset") == ("Deleting the verifier settings.\n\n"
                                          "The system reboot is required for the changes to "
                                          "take effect.\n")
    run(s, ".reboot")
    assert s.target.control.machine.pool.hook is None


def test_dot_verifier_rejects_bad_syntax_and_dumps() -> None:
    m = boot("x86", 5, "test-empty")
    s = Session(m.target())
    assert run(s, ".verifier /flags 1 /bogus") == "verifier: unknown option '/bogus'\n"
    dump = Session(Target(m.arch, m.memory, m.symbols, m.processors))
    assert run(dump, ".verifier /flags 1 /driver a.sys") == (
        "       ^ No runnable debuggees error in '.verifier /flags 1 /driver a.sys'\n")
