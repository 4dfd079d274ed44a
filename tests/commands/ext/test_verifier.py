"""`!verifier`: the Allocate/Free log of the second seed case, pool tracking and the summaries of
each flag, `-disable`, and the 0xC4 unload check as `!verifier` and `!analyze` show it."""
from __future__ import annotations

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames, seed_modules
from kdsim.pool import NONPAGED, PAGED

MYFAULT = ("myfault+0x11f6", "myfault+0x142f", "nt!IovCallDriver+0xa0",
           "nt!IopXxxControlFile+0x607", "nt!NtDeviceIoControlFile+0x56",
           "nt!KiSystemServiceCopyEnd+0x13")
REGISTRY_FLUSH = ("nt!HvFreeDirtyData+0x7f", "nt!HvOptimizedSyncHive+0x53", "nt!CmFlushKey+0xaf",
                  "nt!NtFlushKey+0x142", "nt!KiSystemServiceCopyEnd+0x13")


# -- the second seed case -----------------------------------------------------------------------
def leak_machine() -> tuple[Machine, int]:
    """x64, verifier on myfault.sys: the registry frees a page, then myfault allocates the
    0xfa000-byte block that lands on it and leaks it."""
    m = Machine(get_arch("x64"), 1, verifier="/flags 0x9 /driver myfault.sys",
                modules=seed_modules("myfault"))
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
    m = Machine(get_arch("x86"), 1, verifier="/flags 1 /driver DrvA.sys",
                modules=seed_modules("DrvA"))
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
    m = Machine(get_arch("x86"), 1, verifier="/flags 0x9 /driver DrvA.sys",
                modules=seed_modules("DrvA"))
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
    m = Machine(get_arch("x86"), 1, verifier="/flags 0x8 /driver DrvA.sys",
                modules=seed_modules("DrvA"))
    stack = frames(m.symbols, ("DrvA+0x10",))
    m.pool.free(m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("AAAA"), 0, stack), 0, 0, stack)
    m.verifier.driver_unloading("DrvA.sys")
    assert "Unloaded         00000000       00000000    DrvA.sys" in run(
        Session(m.target()), "!verifier 1")


def test_the_log_on_a_machine_without_verifier() -> None:
    assert run(Session(Machine(get_arch("x86"), 1).target()), "!verifier 0x80 84400000") == (
        "\nLog of recent kernel pool Allocate and Free operations:\n\n"
        "The log is not enabled: Driver Verifier was not active when the target booted.\n")
