"""`!analyze`: the fourth seed case both ways through the `kdsim` entry point (the victim is
blamed without special pool, the culprit with it), the report's layout, and the blame rules."""
from __future__ import annotations

import pytest

import commands.target_cmds  # noqa: F401  (registers g, .reboot, .verifier)
from commands.cli import main
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.drivers import Overrun
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames, seed_modules
from kdsim.pool import NONPAGED
from kdsim.scenarios import scenario

A_FRAMES = ("DrvA+0x1a2b", "nt!IofCallDriver+0x63", "nt!IopXxxControlFile+0x607",
            "nt!NtDeviceIoControlFile+0x56")
B_FRAMES = ("DrvB+0x2c10", "nt!IofCallDriver+0x63", "nt!IopXxxControlFile+0x607")
C_FRAMES = ("DrvC+0x1044", "nt!IofCallDriver+0x63")
DRIVERS = seed_modules("DrvA", "DrvB", "DrvC")


class Steps:
    """Test scaffolding: one scripted driver operation per tick, then nothing."""

    weight = 1.0

    def __init__(self, *ops):
        self.ops = list(ops)

    def run(self, engine) -> None:
        if self.ops:
            self.ops.pop(0)(engine)


def seed_case_four(machine: Machine, scale: float = 1.0) -> None:
    """Drivers A, B and C with ~500-byte buffers: C's lands at the front of a fresh page, B's at
    its end, A's right before B's; A copies 600 bytes into its 500; then B frees its buffer."""
    blocks: dict[str, int] = {}
    stack = {name: frames(machine.symbols, spec)
             for name, spec in (("A", A_FRAMES), ("B", B_FRAMES), ("C", C_FRAMES))}

    def allocate(name: str, tag: str):
        def op(engine) -> None:
            blocks[name] = engine.allocate(NONPAGED, 500, tag_to_ulong(tag), stack[name])
        return op

    def free_b(engine) -> None:
        engine.free(blocks["B"], tag_to_ulong("DrvB"), stack["B"])

    culprit = Overrun("DrvA", "DrvA", 500, 600, 1.0, A_FRAMES, store="DrvA+0x1c00")
    machine.workload.add(Steps(allocate("C", "DrvC"), allocate("B", "DrvB"), culprit.run,
                               free_b))


scenario("test-overrun", "fourth seed case, no special pool", arch="x86",
         modules=DRIVERS)(seed_case_four)
scenario("test-overrun-special", "fourth seed case, special pool on DrvA.sys", arch="x86",
         verifier="/flags 0x1 /driver DrvA.sys", modules=DRIVERS)(seed_case_four)


def kdsim(tmp_path, capsys, *args: str, script: tuple[str, ...]) -> str:
    commands_file = tmp_path / "cmds.txt"
    commands_file.write_text("\n".join([*script, "q"]) + "\n")
    assert main([*args, "-cf", str(commands_file)]) == 0
    return capsys.readouterr().out


# -- the seed case through the entry point ----------------------------------------------------
# (the test machine has no processes: the stopped thread is processor 0's idle thread, so
# PROCESS_NAME is Idle; on a lab's machine it is the process the driver ran for)
X86_OVERRUN_ANALYSIS = """\
0: kd> !analyze -v
*******************************************************************************
*                                                                             *
*                        Bugcheck Analysis                                    *
*                                                                             *
*******************************************************************************

BAD_POOL_HEADER (19)
The pool is already corrupt at the time of the current request.
This may or may not be due to the caller.
The internal pool links must be walked to figure out a possible cause of
the problem, and then special pool applied to the suspect tags or the driver
verifier to a suspect driver.
Arguments:
Arg1: 00000020, a pool block header size is corrupt.
Arg2: 84435e00, The pool entry we were looking for within the page.
Arg3: 84436030, The next pool entry.
Arg4: 46464646, (reserved)

Debugging Details:
------------------


BUGCHECK_STR:  0x19_20

POOL_ADDRESS:  84435e00 Nonpaged pool

DEFAULT_BUCKET_ID:  VISTA_DRIVER_FAULT

PROCESS_NAME:  Idle

LAST_CONTROL_TRANSFER:  from 82bb8de1 to 82a8f01e

STACK_TEXT:  
a03ffb80 82bb8de1 00000019 00000020 84435e00 nt!KeBugCheckEx+0x1e
a03ffbd0 8e712c10 00000000 00000000 00000000 nt!ExFreePoolWithTag+0x1b1
a03ffc70 82be1063 00000000 00000000 00000000 DrvB+0x2c10
a03ffcc0 82da9a97 00000000 00000000 00000000 nt!IofCallDriver+0x63
a03ffd60 00000000 00000000 00000000 00000000 nt!IopXxxControlFile+0x607


STACK_COMMAND:  kb

FOLLOWUP_IP: 
DrvB+2c10
8e712c10 ??              ???

SYMBOL_STACK_INDEX:  2

SYMBOL_NAME:  DrvB+2c10

FOLLOWUP_NAME:  MachineOwner

MODULE_NAME: DrvB

IMAGE_NAME:  DrvB.sys

FAILURE_BUCKET_ID:  0x19_20_DrvB+2c10

BUCKET_ID:  0x19_20_DrvB+2c10

Followup: MachineOwner
---------
"""


def test_without_special_pool_the_victim_is_blamed(tmp_path, capsys) -> None:
    out = kdsim(tmp_path, capsys, "--scenario", "test-overrun", "--seed", "1",
                script=("g", "!analyze -v"))
    assert out.startswith("0: kd> g\n*** Fatal System Error: 0x00000019\n"
                          "                       (0x00000020,0x84435E00,0x84436030,0x46464646)\n")
    assert X86_OVERRUN_ANALYSIS in out


def test_with_special_pool_the_culprit_is_caught_at_the_write(tmp_path, capsys) -> None:
    out = kdsim(tmp_path, capsys, "--scenario", "test-overrun-special", "--seed", "1",
                script=("g", "!analyze -v", "!analyze"))
    fatal, analysis = out.split("1: kd> !analyze -v\n")     # tick 3 ran on processor 1
    assert "*** Fatal System Error: 0x000000d6\n" in fatal
    for line in ("DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION (d6)",
                 "Arg2: 00000001, value 0 = read operation, 1 = write operation",
                 "BUGCHECK_STR:  0xD6", "WRITE_ADDRESS:  b0001000 Special pool",
                 "SYMBOL_NAME:  DrvA+1c00", "MODULE_NAME: DrvA", "IMAGE_NAME:  DrvA.sys",
                 "FAILURE_BUCKET_ID:  0xD6_DrvA+1c00"):
        assert line + "\n" in analysis
    assert "Probably caused by : DrvA.sys ( DrvA+1c00 )\n" in analysis


def test_the_stack_shows_the_faulting_store_under_the_page_fault(tmp_path, capsys) -> None:
    out = kdsim(tmp_path, capsys, "--scenario", "test-overrun-special", "--seed", "1",
                script=("g", "k"))
    stack = out.split("1: kd> k\n")[1].split("1: kd> q\n")[0]
    sites = [line.split(" ", 2)[2] for line in stack.splitlines()[1:]]
    assert sites[3:8] == ["nt!KeBugCheckEx+0x1e", "nt!MmAccessFault+0x10c6", "nt!KiTrap0E+0xdc",
                          "DrvA+0x1c00", "DrvA+0x1a2b"]


# -- layout and blame on hand-made stops ------------------------------------------------------
def stopped(arch: str, bc: BugCheck, stack: tuple[int, ...] = (), routine: str = "") -> Session:
    m = Machine(get_arch(arch), 3)
    if routine:
        from kdsim.stop import raised_in
        raised_in(bc, routine, stack)
    m.stop(bc)
    return Session(m.target())


def test_analyze_show_describes_a_code() -> None:
    s = stopped("x64", BugCheck(0x19, 0x22, 0x1000, 1, 0))
    assert run(s, "!analyze -show c2 7 121a 2140001 8d2dd820") == (
        "BAD_POOL_CALLER (c2)\n"
        "The current thread is making a bad pool request.  Typically this is at a bad IRQL "
        "level or double freeing the same allocation, etc.\n"
        "Arguments:\n"
        "Arg1: 0000000000000007, Attempt to free pool which was already freed\n"
        "Arg2: 000000000000121a, (reserved)\n"
        "Arg3: 0000000002140001, Memory contents of the pool block\n"
        "Arg4: 000000008d2dd820, Address of the block of pool being deallocated\n")


def test_kernel_only_pool_stack_is_pool_corruption() -> None:
    s = stopped("x86", BugCheck(0x19, 3, 0x84401000, 0, 0), routine="ExAllocatePoolWithTag")
    out = run(s, "!analyze -v")
    for line in ("Arg1: 00000003, the pool freelist is corrupt.",
                 "SYMBOL_NAME:  nt!ExAllocatePoolWithTag+4f1", "FOLLOWUP_NAME:  Pool_corruption",
                 "MODULE_NAME: Pool_Corruption", "IMAGE_NAME:  Pool_Corruption",
                 "FAILURE_BUCKET_ID:  0x19_3_nt!ExAllocatePoolWithTag+4f1",
                 "Followup: Pool_corruption"):
        assert line + "\n" in out
    assert "Probably caused by : Pool_Corruption ( nt!ExAllocatePoolWithTag+4f1 )\n" in run(
        s, "!analyze")


def test_x64_buckets_carry_the_x64_prefix_and_stack_text_has_four_arguments() -> None:
    m = Machine(get_arch("x64"), 3, modules=DRIVERS)
    stack = frames(m.symbols, B_FRAMES)
    from kdsim.stop import raised_in
    m.stop(raised_in(BugCheck(0xC2, 7, 0x1297, 0x4020001, 0xFFFFFA8000C48010),
                     "ExFreePoolWithTag", stack))
    out = run(Session(m.target()), "!analyze -v")
    assert "BUGCHECK_STR:  0xc2_7\n" in out
    assert "POOL_ADDRESS:  fffffa8000c48010 Unknown\n" in out
    assert ("fffff880`05dffda0 fffff800`015b33b0 : 00000000`000000c2 00000000`00000007 "
            "00000000`00001297 00000000`04020001 : nt!KeBugCheckEx+0x104\n") in out
    assert "FAILURE_BUCKET_ID:  X64_0xc2_7_DrvB+2c10\n" in out


def test_analyze_on_a_running_machine_says_there_is_nothing_to_analyze() -> None:
    s = Session(Machine(get_arch("x86"), 3).target())
    assert run(s, "!analyze -v") == ("The target has not stopped at a bug check: nothing to "
                                     "analyze (nt!KiBugCheckData is zero).\n")
    assert run(s, "!analyze -x") == "Unknown option '-x'\n"


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_banner_lines_are_79_columns(arch: str) -> None:
    s = stopped(arch, BugCheck(0x50, 0x1000, 1, 0, 0))
    banner = run(s, "!analyze").splitlines()[:5]
    assert [len(line) for line in banner] == [79] * 5


def test_opening_a_crash_dump_prints_the_short_analysis() -> None:
    from commands.ext.analyze import crash_dump_text
    s = stopped("x86", BugCheck(0x19, 3, 0x84401000, 0, 0), routine="ExAllocatePoolWithTag")
    assert crash_dump_text(s.target) + "\n" == run(s, "!analyze")
    assert crash_dump_text(Machine(get_arch("x86"), 3).target()) == ""
