"""Driver Verifier: settings in the real syntax, what it changes in the allocator, pool
tracking, the Allocate/Free log of the second seed case, `!verifier` and `.verifier`."""
from __future__ import annotations

import pytest

import commands.target_cmds  # noqa: F401  (registers g, .reboot, .verifier)
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames
from kdsim.pool import NONPAGED, PAGED
from kdsim.scenarios import boot, scenario
from kdsim.target import Target
from kdsim.verifier import STANDARD_FLAGS, VerifierSettings, parse_settings

MYFAULT = ("myfault+0x11f6", "myfault+0x142f", "nt!IovCallDriver+0xa0",
           "nt!IopXxxControlFile+0x607", "nt!NtDeviceIoControlFile+0x56",
           "nt!KiSystemServiceCopyEnd+0x13")
REGISTRY_FLUSH = ("nt!HvFreeDirtyData+0x7f", "nt!HvOptimizedSyncHive+0x53", "nt!CmFlushKey+0xaf",
                  "nt!NtFlushKey+0x142", "nt!KiSystemServiceCopyEnd+0x13")


@scenario("test-empty", "a machine with no workload", arch="x86")
def _empty(machine: Machine, scale: float = 1.0) -> None:
    pass


# -- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("/flags 1 /driver myfault.sys", VerifierSettings(1, ("myfault.sys",))),
    ("/FLAGS 0x9 /DRIVER a.sys b.sys", VerifierSettings(9, ("a.sys", "b.sys"))),
    ("/standard /all", VerifierSettings(STANDARD_FLAGS, (), True)),
    ("/driver x.sys", VerifierSettings(STANDARD_FLAGS, ("x.sys",))),
    ("/flags 1 /driver x.sys /verifystart", VerifierSettings(1, ("x.sys",), False, True)),
    ("/reset", VerifierSettings()),
])
def test_settings_use_the_verifier_syntax(text: str, expected: VerifierSettings) -> None:
    assert parse_settings(text) == expected


@pytest.mark.parametrize("text, message", [
    ("/flags", "/flags needs a value (e.g. /flags 0x9)"),
    ("/flags zz /driver a.sys", "invalid /flags value 'zz'"),
    ("/flags 0x1000 /driver a.sys", "unsupported /flags value '0x1000'"),
    ("/flags 1", "/flags needs the drivers to verify: /driver NAME ... or /all"),
    ("/driver", "/driver needs at least one driver name"),
    ("/flags 1 /driver a.sys /fast", "unknown option '/fast'"),
    ("/reset /flags 1", "/reset takes no other option"),
])
def test_bad_settings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_settings(text)
    assert str(caught.value) == message


# -- what the verifier changes ------------------------------------------------------------------
def test_verifier_turns_deferred_frees_and_lookasides_off() -> None:
    plain = Machine(get_arch("x86"), 1)
    verified = Machine(get_arch("x86"), 1, verifier="/flags 0x9 /driver myfault.sys")
    flags = verified.g.read_u32(verified.pool.sym_flags)
    assert plain.g.read_u32(plain.pool.sym_flags) == 0x200
    assert flags == 0x8 | 0x20
    assert not verified.pool.settings.deferred_frees
    la = verified.pool.la[0][0][0][0]
    assert verified.memory.read(la + verified.pool.o_la_depth, 2) == b"\0\0"
    level = verified.symbols.resolve("nt!MmVerifierData")
    assert verified.g.read_u32(level) == 9 and plain.g.read_u32(
        plain.symbols.resolve("nt!MmVerifierData")) == 0


def test_threads_are_thre_objects_in_nonpaged_pool() -> None:
    m = Machine(get_arch("x64"), 1, verifier="/flags 1 /driver myfault.sys")
    thread = m.verifier.current_thread(0)
    assert thread & 0xFFF == 0x60 or (thread - 0x60) & 0xF == 0
    header = thread - 0x60
    assert int.from_bytes(m.memory.read(header + 4, 4), "little") == tag_to_ulong("Thre") | 1 << 31


# -- the second seed case -----------------------------------------------------------------------
def leak_machine() -> tuple[Machine, int]:
    """x64, verifier on myfault.sys: the registry frees a page, then myfault allocates the
    0xfa000-byte block that lands on it and leaks it."""
    m = Machine(get_arch("x64"), 1, verifier="/flags 0x9 /driver myfault.sys")
    wl = m.workload
    wl.t = 70
    page = m.pool.allocate(PAGED, 0x1000, tag_to_ulong("CM31"), 1)
    m.pool.free(page, 0, 1, frames(m.symbols, REGISTRY_FLUSH))
    wl.t = 140
    leak = m.pool.allocate(PAGED, 0xFA000, tag_to_ulong("Leak"), 0, frames(m.symbols, MYFAULT))
    assert leak == page
    return m, leak


def test_seed_case_two_the_log_shows_the_leaked_blocks_allocation_by_myfault() -> None:
    m, leak = leak_machine()
    s = Session(m.target())
    threads = m.verifier.threads
    alloc_thread, free_thread = threads.current(0, 140), threads.current(1, 70)
    assert alloc_thread != free_thread
    # The frame lines are the second seed case's, address for address.
    assert run(s, f"!verifier 0x80 {leak:x}") == f"""
Log of recent kernel pool Allocate and Free operations:

There are up to 0x10000 entries in the log.

Parsing 0x0000000000010000 log entries, searching for address 0x{leak:016x}.


======================================================================
Pool block {leak:016x}, Size 00000000000fa000, Thread {alloc_thread:016x}
fffff80001923cc6 nt!VeAllocatePoolWithTagPriority+0x2b6
fffff80001923d3d nt!VerifierExAllocatePoolEx+0x1d
fffff880042881f6 myfault+0x11f6
fffff8800428842f myfault+0x142f
fffff8000192e750 nt!IovCallDriver+0xa0
fffff800017a3a97 nt!IopXxxControlFile+0x607
fffff800017a42f6 nt!NtDeviceIoControlFile+0x56
fffff80001487ed3 nt!KiSystemServiceCopyEnd+0x13
======================================================================
Pool block {leak:016x}, Size 0000000000001000, Thread {free_thread:016x}
fffff8000192393a nt!VfFreePoolNotification+0x4a
fffff800015b6a6f nt!ExDeferredFreePool+0x107b
fffff800017273eb nt!HvFreeDirtyData+0x7f
fffff800017269bb nt!HvOptimizedSyncHive+0x53
fffff80001726303 nt!CmFlushKey+0xaf
fffff80001726b22 nt!NtFlushKey+0x142
fffff80001487ed3 nt!KiSystemServiceCopyEnd+0x13
Parsed entry 0000000000010000/0000000000010000...
Finished parsing all pool tracking information.
"""
    # an address inside a block finds its records: both blocks, or only the larger one
    assert run(s, f"!verifier 80 {leak + 0x234:x}").count("Pool block") == 2
    assert run(s, f"!verifier 80 {leak + 0x1234:x}").count("Pool block") == 1


def test_the_log_with_a_quantity_shows_the_newest_records() -> None:
    m, leak = leak_machine()
    out = run(Session(m.target()), "!verifier 0x80 1")
    assert "Displaying the most recent 0x0000000000000001 log entries.\n" in out
    assert out.count("Pool block") == 1 and "Size 00000000000fa000" in out


def test_the_ring_keeps_the_newest_records() -> None:
    m = Machine(get_arch("x86"), 1, verifier="/flags 1 /driver DrvA.sys")
    stack = frames(m.symbols, ("DrvA+0x10",))
    for _ in range(3):
        m.pool.free(m.pool.allocate(NONPAGED, 16, tag_to_ulong("AAAA"), 0, stack), 0, 0, stack)
    index = m.g.read_u32(m.symbols.resolve("nt!VfPoolTracesIndex"))
    assert index == 6
    out = run(Session(m.target()), "!verifier 0x80 2")
    first, second = out.split("=" * 70)[1:]
    assert "nt!VfFreePoolNotification+0x4a" in first and "VeAllocatePool" in second


# -- pool tracking and !verifier summaries ------------------------------------------------------
def tracked_machine() -> Machine:
    m = Machine(get_arch("x86"), 1, verifier="/flags 0x9 /driver DrvA.sys")
    stack = frames(m.symbols, ("DrvA+0x1a2b", "nt!IofCallDriver+0x63"))
    keep = [m.pool.allocate(PAGED if i % 2 else NONPAGED, 0x40 + i, tag_to_ulong("AAAA"), 0, stack)
            for i in range(4)]
    m.pool.free(keep[0], 0, 0, stack)
    m.big = m.pool.allocate(NONPAGED, 0x2000, tag_to_ulong("AAAA"), 0, stack)   # normal pool
    return m


TRACKED_SUMMARY = """
Verify Level 9 ... enabled options are:
    Special pool
    All pool allocations checked on unload

Summary of All Verifier Statistics

RaiseIrqls                             0x0
AcquireSpinLocks                       0x0
Synch Executions                       0x0
Trims                                  0x0

Pool Allocations Attempted             0x5
Pool Allocations Succeeded             0x5
Pool Allocations Succeeded SpecialPool 0x4
Pool Allocations With NO TAG           0x0
Pool Allocations Failed                0x0
Resource Allocations Failed Deliberately   0x0
"""


def test_verifier_without_flags_prints_level_options_and_statistics() -> None:
    assert run(Session(tracked_machine().target()), "!verifier") == TRACKED_SUMMARY


def test_verifier_3_lists_each_drivers_outstanding_allocations() -> None:
    m = tracked_machine()
    entry = m.verifier.entries["drva"]
    out = run(Session(m.target()), "!verifier 3 DrvA.sys")
    assert out == TRACKED_SUMMARY + f"""
Current paged pool allocations         0x2 for 00000084 bytes
Peak paged pool allocations            0x2 for 00000084 bytes
Current nonpaged pool allocations      0x2 for 00002042 bytes
Peak nonpaged pool allocations         0x2 for 00002042 bytes

Driver Verification List

Entry     State           NonPagedPool   PagedPool   Module

{entry:08x} Loaded           00002042       00000084    DrvA.sys

Current Pool Allocations  00000002    00000002
Current Pool Bytes        00002042    00000084
Peak Pool Allocations     00000002    00000002
Peak Pool Bytes           00002042    00000084

PoolAddress  SizeInBytes    Tag       CallersAddress
{m.big:08x}     0x00002000     AAAA      8e701a2b
b0002fb8     0x00000041     AAAA      8e701a2b
b0004fb8     0x00000042     AAAA      8e701a2b
b0006fb8     0x00000043     AAAA      8e701a2b
"""


def test_verifier_1_and_an_unknown_image() -> None:
    s = Session(tracked_machine().target())
    out = run(s, "!verifier 1")
    assert "Current Pool Allocations" not in out and out.endswith("    DrvA.sys\n")
    assert run(s, "!verifier 3 other.sys").endswith(
        "Entry     State           NonPagedPool   PagedPool   Module\n")


def test_verifier_0xf_adds_the_fault_injection_and_irql_sections() -> None:
    out = run(Session(tracked_machine().target()), "!verifier 0xf")
    rule = "-" * 47 + " "
    assert out.endswith("\n".join([
        "", rule, "Fault injection trace log".ljust(48), rule, "",
        "Driver Verifier didn't inject any faults.", "",
        rule, "Track irql trace log".ljust(48), rule, "",
        "Displaying most recent 0x00000004 entries from the IRQL transition log.",
        "There are up to 0x100 entries in the log.", ""]))
    assert "PoolAddress  SizeInBytes    Tag       CallersAddress\n" in out


def test_verifier_help_and_disable() -> None:
    m = tracked_machine()
    s = Session(m.target())
    assert run(s, "!verifier ?").startswith("!verifier [Flags [Image]]\n")
    assert run(s, "!verifier -disable") == ""
    assert run(s, "!verifier").startswith("\nVerify Level 0 ... enabled options are:\n\n")
    stack = frames(m.symbols, ("DrvA+0x1a2b",))
    assert m.mm.nonpaged.contains(m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("AAAA"), 0, stack))


# -- 0xC4 ---------------------------------------------------------------------------------------
def test_a_zero_byte_allocation_by_a_verified_driver_is_c4_0() -> None:
    m = Machine(get_arch("x86"), 1, verifier="/flags 1 /driver DrvA.sys")
    with pytest.raises(BugCheck) as caught:
        m.pool.allocate(PAGED, 0, tag_to_ulong("AAAA"), 0, frames(m.symbols, ("DrvA+0x10",)))
    assert (caught.value.code, caught.value.params) == (0xC4, (0, 0, PAGED, 0))


def test_unloading_with_outstanding_allocations_is_c4_62() -> None:
    m = tracked_machine()
    with pytest.raises(BugCheck) as caught:
        m.verifier.driver_unloading("DrvA.sys", frames(m.symbols, ("nt!IofCallDriver+0x63",)))
    entry = m.verifier.entries["drva"]
    assert (caught.value.code, caught.value.params) == (0xC4, (0x62, entry + 0x10, entry, 4))
    m.stop(caught.value)
    out = run(Session(m.target()), "!analyze -v")
    for line in ("DRIVER_VERIFIER_DETECTED_VIOLATION (c4)",
                 "Arg1: 00000062, A driver has forgotten to free its pool allocations prior to "
                 "unloading.",
                 "Arg4: 00000004, total # of (paged+nonpaged) allocations that weren't freed.",
                 "\tType !verifier 3 drivername.sys for info on the allocations",
                 "\tthat were leaked that caused the bugcheck.",
                 "BUGCHECK_STR:  0xc4_62", "MODULE_NAME: DrvA", "IMAGE_NAME:  DrvA.sys",
                 "FAILURE_BUCKET_ID:  0xc4_62_LEAKED_POOL_IMAGE_DrvA.sys"):
        assert line + "\n" in out
    assert "Probably caused by : DrvA.sys\n" in run(Session(m.target()), "!analyze")


def test_unloading_after_freeing_everything_is_fine() -> None:
    m = Machine(get_arch("x86"), 1, verifier="/flags 0x8 /driver DrvA.sys")
    stack = frames(m.symbols, ("DrvA+0x10",))
    m.pool.free(m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("AAAA"), 0, stack), 0, 0, stack)
    m.verifier.driver_unloading("DrvA.sys")
    assert "Unloaded         00000000       00000000    DrvA.sys" in run(
        Session(m.target()), "!verifier 1")


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


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_hand_packed_records_agree_with_the_declared_layouts(arch: str) -> None:
    """The log and the tracking table are written with struct on the hot path."""
    m = Machine(get_arch(arch), 1, verifier="/flags 0x8 /driver DrvA.sys")
    v, L = m.verifier, m.verifier.layouts
    frames_ = list(range(1, 14))
    assert v.record.pack(0x1000, 0x20, 0x3000, *frames_) == L.pool_trace.build(
        {"Address": 0x1000, "Size": 0x20, "Thread": 0x3000, "StackTrace": frames_})
    assert v.entry.pack(1, 2, 3, 4) == L.pool_entry.build(
        {"VirtualAddress": 1, "CallingAddress": 2, "NumberOfBytes": 3, "Tag": 4})


def test_the_log_on_a_machine_without_verifier() -> None:
    assert run(Session(Machine(get_arch("x86"), 1).target()), "!verifier 0x80 f8000000") == (
        "\nLog of recent kernel pool Allocate and Free operations:\n\n"
        "The log is not enabled: Driver Verifier was not active when the target booted.\n")
