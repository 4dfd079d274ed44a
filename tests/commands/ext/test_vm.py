"""`!vm`: exact text in both layouts on hand-built machines, for every flag, real samples
reproduced column for column, numbers that agree with the pool allocator and the process list
because they are read from memory, and the same text from a dump of the machine."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest

from commands.ext.vm import NOT_MODELLED, PAGE_FILE_NAME, PageFile, VmUsage, read_vm, render_vm
from commands.objread import processes, threads
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.control import open_dump, save_dump
from kdsim.layouts import profile_for, tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED
from tests.commands.ext.session_blocks import session_machine
from tests.support import text


def build(arch: str) -> Machine:
    """An empty pool plus a few blocks in both pools, one of them big."""
    m = Machine(get_arch(arch), 0)
    for _ in range(3):
        m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Abcd"))
    for _ in range(2):
        m.pool.allocate(PAGED, 0x200, tag_to_ulong("CM31"))
    m.pool.allocate(PAGED, 0x2000, tag_to_ulong("MmSt"))
    m.pool.allocate(NONPAGED, 0x1800, tag_to_ulong("Leak"))
    m.pool.allocate(PAGED, 0x30, tag_to_ulong("Ntf0"))
    return m


@pytest.fixture(scope="module")
def machines() -> dict[str, Machine]:
    return {arch: build(arch) for arch in ("x86", "x64")}


def session_for(m: Machine, layout: str = "classic") -> Session:
    session = Session(m.target())
    session.settings["vm_layout"] = layout
    return session


def render(vm: VmUsage, layout: str) -> list[str]:
    session = Session(Machine(get_arch("x86"), 0).target())
    session.settings["vm_layout"] = layout
    return render_vm(vm, session).split("\n")


# -- golden output ------------------------------------------------------------------------------
X86_CLASSIC = text(
    "",
    "*** Virtual Memory Usage ***",
    "      Physical Memory:    917368   ( 3669472 Kb)",
    "      Page File: \\??\\C:\\pagefile.sys",
    "         Current:   4190208 Kb Free Space:   4085453 Kb",
    "         Minimum:   4190208 Kb Maximum:      4190208 Kb",
    "      Available Pages:    707307   ( 2829228 Kb)",
    "      ResAvail Pages:     864812   ( 3459248 Kb)",
    "      Locked IO Pages:       210   (     840 Kb)",
    "      Free System PTEs:   290911   ( 1163644 Kb)",
    "      Modified Pages:        791   (    3164 Kb)",
    "      Modified PF Pages:     785   (    3140 Kb)",
    "      NonPagedPool Usage:     56   (     224 Kb)",
    "      NonPagedPool Max:   522368   ( 2089472 Kb)",
    "      PagedPool 0 Usage:       2   (       8 Kb)",
    "      PagedPool 1 Usage:       1   (       4 Kb)",
    "      PagedPool 2 Usage:       1   (       4 Kb)",
    "      PagedPool 3 Usage:       1   (       4 Kb)",
    "      PagedPool 4 Usage:       0   (       0 Kb)",
    "      PagedPool Usage:         5   (      20 Kb)",
    "      PagedPool Maximum:  523264   ( 2093056 Kb)",
    "      Session Commit:       1875   (    7500 Kb)",
    "      Shared Commit:        3750   (   15000 Kb)",
    "      Special Pool:            0   (       0 Kb)",
    "      Shared Process:       8823   (   35292 Kb)",
    "      PagedPool Commit:        5   (      20 Kb)",
    "      Driver Commit:        1875   (    7500 Kb)",
    "      Committed pages:    150005   (  600020 Kb)",
    "      Commit limit:      1929623   ( 7718492 Kb)",
)

X64_CLASSIC_CHANGED_LINES = {
    2: "      Physical Memory:   1048446   ( 4193784 Kb)",
    9: "      Free System PTEs: 33494979   (133979916 Kb)",
    12: "      NonPagedPool Usage:     75   (     300 Kb)",
    20: "      PagedPool Maximum: 33554432   (134217728 Kb)",
}

X86_NEW = text(
    "Page File: \\??\\C:\\pagefile.sys",
    "  Current:   4190208 Kb  Free Space:   4085453 Kb",
    "  Minimum:   4190208 Kb  Maximum:      4190208 Kb",
    "",
    "Physical Memory:           917368 (    3669472 Kb)",
    "Available Pages:           707307 (    2829228 Kb)",
    "ResAvail Pages:            864812 (    3459248 Kb)",
    "Locked IO Pages:              210 (        840 Kb)",
    "Free System PTEs:          290911 (    1163644 Kb)",
    "Modified Pages:               791 (       3164 Kb)",
    "Modified PF Pages:            785 (       3140 Kb)",
    "Modified No Write Pages:        0 (          0 Kb)",
    "NonPagedPool Usage:            56 (        224 Kb)",
    "NonPagedPool Max:          522368 (    2089472 Kb)",
    "PagedPool  0:                   2 (          8 Kb)",
    "PagedPool  1:                   1 (          4 Kb)",
    "PagedPool  2:                   1 (          4 Kb)",
    "PagedPool  3:                   1 (          4 Kb)",
    "PagedPool  4:                   0 (          0 Kb)",
    "PagedPool Usage:                5 (         20 Kb)",
    "PagedPool Maximum:         523264 (    2093056 Kb)",
    "Processor Commit:               0 (          0 Kb)",
    "Session Commit:              1875 (       7500 Kb)",
    "Syspart SharedCommit 0",
    "Shared Commit:               3750 (      15000 Kb)",
    "Special Pool:                   0 (          0 Kb)",
    "Kernel Stacks:               5000 (      20000 Kb)",
    "Pages For MDLs:                 0 (          0 Kb)",
    "Pages For AWE:                  0 (          0 Kb)",
    "NonPagedPool Commit:            0 (          0 Kb)",
    "PagedPool Commit:               5 (         20 Kb)",
    "Driver Commit:               1875 (       7500 Kb)",
    "Boot Commit:                    0 (          0 Kb)",
    "System PageTables:              0 (          0 Kb)",
    "VAD/PageTable Bitmaps:          0 (          0 Kb)",
    "ProcessLockedFilePages:         0 (          0 Kb)",
    "Pagefile Hash Pages:            0 (          0 Kb)",
    "Sum System Commit:          12505 (      50020 Kb)",
    "Total Private:                  0 (          0 Kb)",
    "Misc/Transient Commit:     137500 (     550000 Kb)",
    "Committed pages:           150005 (     600020 Kb)",
    "Commit limit:             1929623 (    7718492 Kb)",
)


def test_classic_x86(machines):
    """No process on this machine: `!vm` adds the per-process list's head alone."""
    session = session_for(machines["x86"])
    assert run(session, "!vm 1") == X86_CLASSIC
    assert run(session, "!vm") == X86_CLASSIC + text(
        "", "      Total Private:           0   (       0 Kb)")


def test_classic_x64_wide_values_push_the_kb_column(machines):
    lines = run(session_for(machines["x64"]), "!vm").split("\n")
    for index, line in X64_CLASSIC_CHANGED_LINES.items():
        assert lines[index] == line


def test_new_x86(machines):
    session = session_for(machines["x86"], "new")
    assert run(session, "!vm 1") == X86_NEW
    assert run(session, "!vm") == X86_NEW + text(
        "", "  Pid ImageName                        Commit   SharedCommit        Debt")


def test_new_x64_ten_digit_columns(machines):
    lines = run(session_for(machines["x64"], "new"), "!vm").split("\n")
    assert "Free System PTEs:        33494979 (  133979916 Kb)" in lines
    assert "PagedPool Maximum:       33554432 (  134217728 Kb)" in lines
    assert "NonPagedPool Max:          774140 (    3096560 Kb)" in lines


@pytest.mark.parametrize("line, error", [
    ("!vm zz", "Couldn't resolve error at 'zz'"),
    ("!vm xyz", "Couldn't resolve error at 'xyz'"),
    ("!vm 1 2", "             ^ Extra character error in '!vm 1 2'"),
    ("!vm (1", "Syntax error at '<EOL>'"),
    ("!vm 1+", "Numeric expression missing from '<EOL>'"),
    ("!vm @foo", "Bad register error at '@foo'"),
    ("!vm poi(0)", "Memory access error at ')'"),
])
def test_bad_flags_print_the_debugger_error_and_the_session_goes_on(machines, line, error):
    session = session_for(machines["x86"])
    assert run(session, line) == error + "\n"
    assert run(session, "!vm 1") == X86_CLASSIC


def test_bits_the_extension_does_not_know_are_ignored(machines):
    session = session_for(machines["x86"])
    assert run(session, "!vm 0x1000000") == run(session, "!vm 0")
    assert run(session, "!vm 0x1000001") == X86_CLASSIC


# -- real output reproduced ---------------------------------------------------------------------
def usage(**values: int) -> VmUsage:
    """Counters as given, the rest 0; no per-process list (None), as in the samples below."""
    fields = {f.name: 0 for f in dataclasses.fields(VmUsage)
              if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    fields.update(page_files=[PageFile(PAGE_FILE_NAME, 0, 0, 0, 0)], paged_pools=[])
    fields.update(values)
    return VmUsage(**fields)


# The docs' XP `!vm 1` sample (Debugging Tools help copy, where no line lost its indent).
XP_SAMPLE = usage(physical=16270, available=5543, resident_available=6759, locked_io=112,
                  free_system_ptes=45089, free_nonpaged_ptes=5145, free_special_nonpaged=336,
                  modified=714, nonpaged_usage=877, nonpaged_max=6252,
                  paged_pools=[729, 432, 436], paged_max=13312, shared_commit=1097,
                  special_pool=229, process_commit=1956, paged_commit=1597, driver_commit=828,
                  committed=21949, commit_limit=36256)
XP_LINES = [
    "      Physical Memory:     16270   (   65080 Kb)",
    "      Available Pages:      5543   (   22172 Kb)",
    "      ResAvail Pages:       6759   (   27036 Kb)",
    "      Locked IO Pages:       112   (     448 Kb)",
    "      Free System PTEs:    45089   (  180356 Kb)",
    "      Free NP PTEs:         5145   (   20580 Kb)",
    "      Free Special NP:       336   (    1344 Kb)",
    "      Modified Pages:        714   (    2856 Kb)",
    "      NonPagedPool Usage:    877   (    3508 Kb)",
    "      NonPagedPool Max:     6252   (   25008 Kb)",
    "      PagedPool 0 Usage:     729   (    2916 Kb)",
    "      PagedPool 1 Usage:     432   (    1728 Kb)",
    "      PagedPool 2 Usage:     436   (    1744 Kb)",
    "      PagedPool Usage:      1597   (    6388 Kb)",
    "      PagedPool Maximum:   13312   (   53248 Kb)",
    "      Shared Commit:        1097   (    4388 Kb)",
    "      Special Pool:          229   (     916 Kb)",
    "      Shared Process:       1956   (    7824 Kb)",
    "      PagedPool Commit:     1597   (    6388 Kb)",
    "      Driver Commit:         828   (    3312 Kb)",
    "      Committed pages:     21949   (   87796 Kb)",
    "      Commit limit:        36256   (  145024 Kb)",
]


def test_classic_counter_columns_match_the_docs_sample():
    lines = render(XP_SAMPLE, "classic")
    assert [line for line in lines if line in XP_LINES] == XP_LINES
    assert lines[:2] == ["", "*** Virtual Memory Usage ***"]


# Seed 000 (first seed case) `!vm`, blanks collapsed by the blog; its first line kept its six.
# The blog cuts the output after `Commit limit` (its per-process list is not shown), so the
# result has no list: the lines the seed shows are the first lines of a machine's `!vm`.
SEED_000 = usage(
    page_files=[PageFile(PAGE_FILE_NAME, 4190208, 4090220, 4190208, 4190208)],
    physical=917368, available=649161, resident_available=860271, locked_io=210,
    free_system_ptes=14629, free_nonpaged_ptes=4230, free_special_nonpaged=0, modified=791,
    modified_pagefile=785, nonpaged_usage=25463, nonpaged_max=32647,
    paged_pools=[8717, 6113, 6100, 6033, 6116], paged_max=60416, session_commit=1870,
    shared_commit=5401, special_pool=0, process_commit=8957, paged_commit=33120,
    driver_commit=1939, committed=227031, commit_limit=1929623)
SEED_000_TEXT = r"""*** Virtual Memory Usage ***
Physical Memory: 917368 ( 3669472 Kb)
Page File: \??\C:\pagefile.sys
Current: 4190208 Kb Free Space: 4090220 Kb
Minimum: 4190208 Kb Maximum: 4190208 Kb
Available Pages: 649161 ( 2596644 Kb)
ResAvail Pages: 860271 ( 3441084 Kb)
Locked IO Pages: 210 ( 840 Kb)
Free System PTEs: 14629 ( 58516 Kb)
Free NP PTEs: 4230 ( 16920 Kb)
Free Special NP: 0 ( 0 Kb)
Modified Pages: 791 ( 3164 Kb)
Modified PF Pages: 785 ( 3140 Kb)
NonPagedPool Usage: 25463 ( 101852 Kb)
NonPagedPool Max: 32647 ( 130588 Kb)
PagedPool 0 Usage: 8717 ( 34868 Kb)
PagedPool 1 Usage: 6113 ( 24452 Kb)
PagedPool 2 Usage: 6100 ( 24400 Kb)
PagedPool 3 Usage: 6033 ( 24132 Kb)
PagedPool 4 Usage: 6116 ( 24464 Kb)
PagedPool Usage: 33079 ( 132316 Kb)
PagedPool Maximum: 60416 ( 241664 Kb)
Session Commit: 1870 ( 7480 Kb)
Shared Commit: 5401 ( 21604 Kb)
Special Pool: 0 ( 0 Kb)
Shared Process: 8957 ( 35828 Kb)
PagedPool Commit: 33120 ( 132480 Kb)
Driver Commit: 1939 ( 7756 Kb)
Committed pages: 227031 ( 908124 Kb)
Commit limit: 1929623 ( 7718492 Kb)""".split("\n")


def test_seed_000_lines():
    lines = render(SEED_000, "classic")
    assert [" ".join(line.split()) for line in lines if line] == SEED_000_TEXT
    assert lines[2].startswith("      Physical Memory:")


# Windows Internals 6th ed. notes, Win7 x64 under the new debugger (page-file lines with their
# two-blank indent, as the `!vm 4` sample of the same notes has them).
WIN7 = usage(
    page_files=[PageFile(PAGE_FILE_NAME, 4193784, 4181660, 4193784, 12581352)],
    physical=1048446, available=820027, resident_available=973277, locked_io=0,
    free_system_ptes=33494979, modified=4801, modified_pagefile=4771, nonpaged_usage=9217,
    nonpaged_max=774140, paged_pools=[32876, 4124, 0, 0, 57], paged_max=33554432,
    session_commit=7647, shared_commit=9386, special_pool=0, kernel_stacks=8220,
    paged_commit=37108, driver_commit=3082, committed=233484, commit_limit=2096416)
WIN7_LINES = [
    "Page File: \\??\\C:\\pagefile.sys",
    "  Current:   4193784 Kb  Free Space:   4181660 Kb",
    "  Minimum:   4193784 Kb  Maximum:     12581352 Kb",
    "",
    "Physical Memory:          1048446 (    4193784 Kb)",
    "Available Pages:           820027 (    3280108 Kb)",
    "ResAvail Pages:            973277 (    3893108 Kb)",
    "Locked IO Pages:                0 (          0 Kb)",
    "Free System PTEs:        33494979 (  133979916 Kb)",
    "Modified Pages:              4801 (      19204 Kb)",
    "Modified PF Pages:           4771 (      19084 Kb)",
    "Modified No Write Pages:        0 (          0 Kb)",
    "NonPagedPool Usage:          9217 (      36868 Kb)",
    "NonPagedPool Max:          774140 (    3096560 Kb)",
    "PagedPool  0:               32876 (     131504 Kb)",
    "PagedPool  1:                4124 (      16496 Kb)",
    "PagedPool  2:                   0 (          0 Kb)",
    "PagedPool  3:                   0 (          0 Kb)",
    "PagedPool  4:                  57 (        228 Kb)",
    "PagedPool Usage:            37057 (     148228 Kb)",
    "PagedPool Maximum:       33554432 (  134217728 Kb)",
    "Session Commit:              7647 (      30588 Kb)",
    "Syspart SharedCommit 0",
    "Shared Commit:               9386 (      37544 Kb)",
    "Special Pool:                   0 (          0 Kb)",
    "Kernel Stacks:               8220 (      32880 Kb)",
    "Pages For AWE:                  0 (          0 Kb)",
    "NonPagedPool Commit:            0 (          0 Kb)",
    "PagedPool Commit:           37108 (     148432 Kb)",
    "Driver Commit:               3082 (      12328 Kb)",
    "Boot Commit:                    0 (          0 Kb)",
    "System PageTables:              0 (          0 Kb)",
    "ProcessLockedFilePages:         0 (          0 Kb)",
    "Pagefile Hash Pages:            0 (          0 Kb)",
    "Committed pages:           233484 (     933936 Kb)",
    "Commit limit:             2096416 (    8385664 Kb)",
]


def test_new_layout_matches_the_win7_sample_line_for_line():
    lines = render(WIN7, "new")
    assert [line for line in lines if line in WIN7_LINES] == WIN7_LINES


def test_new_layout_overflowing_values_as_the_win11_sample_shows():
    lines = render(usage(free_system_ptes=4294977138, nonpaged_max=4294967296,
                         paged_commit=18446735282293205272), "new")
    assert "Free System PTEs:      4294977138 (17179908552 Kb)" in lines
    assert "NonPagedPool Max:      4294967296 (17179869184 Kb)" in lines
    assert "PagedPool Commit:  18446735282293205272 (18446708908044166240 Kb)" in lines


def test_new_layout_warns_when_system_commit_exceeds_the_total():
    lines = render(usage(shared_commit=10, committed=4), "new")
    at = lines.index("Total Private:                  0 (          0 Kb)")
    assert lines[at + 1:at + 4] == [
        "",
        "********** Sum of individual system commit + Process commit exceeds overall commit "
        "by 24 Kb ? ********",
        "Committed pages:                4 (         16 Kb)",
    ]
    assert not any(line.startswith("Misc/Transient") for line in lines)


# -- computed from memory -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_pool_usage_agrees_with_the_allocator(arch):
    m = Machine(get_arch(arch), 0)
    rng = random.Random(7)
    live: list[int] = []
    for _ in range(3000):
        if live and rng.random() < 0.4:
            m.pool.free(live.pop(rng.randrange(len(live))))
        else:
            size = rng.choice([0x20, 0x100, 0x400, 0xF00, 0x1800, 0x5000])
            live.append(m.pool.allocate(rng.choice([NONPAGED, PAGED]), size, tag_to_ulong("Rnd?")))
    vm = read_vm(m.target())
    assert vm.nonpaged_usage == m.mm.nonpaged.in_use
    assert vm.paged_usage == sum(vm.paged_pools) == m.mm.paged.in_use
    assert len(vm.paged_pools) == m.settings.paged_pools + 1
    lines = run(session_for(m), "!vm").split("\n")
    assert f"      PagedPool Usage:  {vm.paged_usage:8d}   ({vm.paged_usage * 4:8d} Kb)" in lines


def test_descriptor_pages_are_read_from_memory():
    m = build("x86")
    target = m.target()
    before = read_vm(target).paged_pools
    descriptor = target.read_ptr(target.symbol("nt!ExpPagedPoolDescriptor") + 3 * 4)
    offset = profile_for(target.arch).offset("descriptor", "TotalPages")
    target.write(descriptor + offset, (40).to_bytes(4, "little"))
    lines = run(session_for(m), "!vm").split("\n")
    assert "      PagedPool 3 Usage:      40   (     160 Kb)" in lines
    total = sum(before) - before[3] + 40
    assert f"      PagedPool Usage:        {total}   (     {total * 4} Kb)" in lines


@pytest.mark.parametrize("layout, warning", [
    ("classic", "      ********** 1 pool allocations have failed **********"),
    ("new", "********** 1 pool allocations have failed **********"),
])
def test_a_failed_allocation_adds_the_warning(layout, warning):
    m = build("x86")
    assert m.pool.allocate(NONPAGED, 0x10000000, tag_to_ulong("Huge")) == 0
    lines = run(session_for(m, layout), "!vm").split("\n")
    at = lines.index(warning)
    assert lines[at - 2].lstrip().startswith("PagedPool Maximum:")
    assert lines[at - 1] == lines[at + 1] == ""
    assert lines[at + 2].lstrip().startswith(("Session Commit:", "Processor Commit:"))


def test_failure_count_is_read_from_memory():
    m = build("x64")
    target = m.target()
    target.write(target.symbol("nt!ExPoolFailures"), (1234).to_bytes(4, "little"))
    assert "      ********** 1234 pool allocations have failed **********" in run(
        session_for(m), "!vm").split("\n")


def test_json_output(machines):
    session = session_for(machines["x86"])
    session.settings["output"] = "json"
    data = json.loads(run(session, "!vm 1"))
    assert data["flags"] == 1
    assert data["nonpaged_usage"] == machines["x86"].mm.nonpaged.in_use
    assert data["page_files"][0]["name"] == "\\??\\C:\\pagefile.sys"


def test_a_windows_7_kernel_prints_no_xp_pte_lines(machines):
    """XP's nonpaged PTE pool lines belong to a kernel with nt!MmFreeNonPagedPtes."""
    for m in machines.values():
        out = run(session_for(m), "!vm")
        assert "Free System PTEs:" in out
        assert "Free NP PTEs" not in out and "Free Special NP" not in out


@pytest.mark.parametrize("layout", ["classic", "new"])
def test_flag_4_adds_each_sessions_memory(layout):
    """Session 1 holds a 0x2000-byte large block and a page of small ones, session 0 a page;
    each session's commit also counts its tracker and big-page table (21 + 3 pages on x64)."""
    session, _ = session_machine("x64")
    session.settings["vm_layout"] = layout
    out = run(session, "!vm 4")
    assert out.endswith(text(
        "", "Terminal Server Memory Usage By Session:", "",
        "Session ID 0 @ fffff900c0000000:",
        "Paged Pool Usage:        4 Kb",
        "NonPaged Usage:          0 Kb",
        "Commit Usage:          100 Kb", "",
        "Session ID 1 @ fffff900c4000000:",
        "Paged Pool Usage:       12 Kb",
        "NonPaged Usage:          0 Kb",
        "Commit Usage:          108 Kb"))
    assert "Terminal Server" not in run(session, "!vm 1")


# -- the flags' sections on a machine with processes ---------------------------------------------
def with_processes(arch: str) -> Machine:
    """The pool of `build` plus the boot set's processes and their threads (no tick run)."""
    m = build(arch)
    m.objects.boot(0.05)
    return m


@pytest.fixture(scope="module")
def booted_objects() -> dict[str, Machine]:
    return {arch: with_processes(arch) for arch in ("x86", "x64")}


# Each process's EPROCESS.CommitCharge, largest first (ties in list order); the same on both
# arches.  Classic: Windows Internals 6th ed.'s Win7 `!vm`; new: the FLARE-ON 2019 Win7 x64 one.
PROCESSES = [(0x600, "explorer.exe", 9800), (0x37C, "svchost.exe", 6200),
             (0x6E8, "SearchIndexer.e", 6100), (0x310, "svchost.exe", 4100),
             (0x874, "audiodg.exe", 4000), (0x354, "svchost.exe", 3100),
             (0x120, "svchost.exe", 2900), (0x474, "svchost.exe", 2700),
             (0x3C0, "svchost.exe", 2300), (0x7E4, "wmpnetwk.exe", 1900),
             (0x5A8, "taskhost.exe", 1800), (0x450, "spoolsv.exe", 1600),
             (0x5E4, "dwm.exe", 1400), (0x1DC, "services.exe", 1310),
             (0x1EC, "lsass.exe", 950), (0x270, "svchost.exe", 900),
             (0x2B4, "svchost.exe", 850), (0x74C, "sppsvc.exe", 790),
             (0x7A0, "svchost.exe", 770), (0x1F4, "lsm.exe", 650),
             (0x21C, "winlogon.exe", 650), (0x1B0, "csrss.exe", 520),
             (0x170, "csrss.exe", 470), (0x1A4, "wininit.exe", 360),
             (0x10C, "smss.exe", 98), (0x4, "System", 12)]
CLASSIC_PROCESSES = text(
    "",
    "      Total Private:       56230   (  224920 Kb)",
    "         0600 explorer.exe      9800 (   39200 Kb)",
    "         037c svchost.exe       6200 (   24800 Kb)",
    "         06e8 SearchIndexer.e   6100 (   24400 Kb)",
    "         0310 svchost.exe       4100 (   16400 Kb)",
    "         0874 audiodg.exe       4000 (   16000 Kb)",
    "         0354 svchost.exe       3100 (   12400 Kb)",
    "         0120 svchost.exe       2900 (   11600 Kb)",
    "         0474 svchost.exe       2700 (   10800 Kb)",
    "         03c0 svchost.exe       2300 (    9200 Kb)",
    "         07e4 wmpnetwk.exe      1900 (    7600 Kb)",
    "         05a8 taskhost.exe      1800 (    7200 Kb)",
    "         0450 spoolsv.exe       1600 (    6400 Kb)",
    "         05e4 dwm.exe           1400 (    5600 Kb)",
    "         01dc services.exe      1310 (    5240 Kb)",
    "         01ec lsass.exe          950 (    3800 Kb)",
    "         0270 svchost.exe        900 (    3600 Kb)",
    "         02b4 svchost.exe        850 (    3400 Kb)",
    "         074c sppsvc.exe         790 (    3160 Kb)",
    "         07a0 svchost.exe        770 (    3080 Kb)",
    "         01f4 lsm.exe            650 (    2600 Kb)",
    "         021c winlogon.exe       650 (    2600 Kb)",
    "         01b0 csrss.exe          520 (    2080 Kb)",
    "         0170 csrss.exe          470 (    1880 Kb)",
    "         01a4 wininit.exe        360 (    1440 Kb)",
    "         010c smss.exe            98 (     392 Kb)",
    "         0004 System              12 (      48 Kb)",
)
NEW_PROCESSES = text(
    "",
    "  Pid ImageName                        Commit   SharedCommit        Debt",
    "",
    "  600 explorer.exe                   39200 Kb           0 Kb        0 Kb",
    "  37c svchost.exe                    24800 Kb           0 Kb        0 Kb",
    "  6e8 SearchIndexer.e                24400 Kb           0 Kb        0 Kb",
    "  310 svchost.exe                    16400 Kb           0 Kb        0 Kb",
    "  874 audiodg.exe                    16000 Kb           0 Kb        0 Kb",
    "  354 svchost.exe                    12400 Kb           0 Kb        0 Kb",
    "  120 svchost.exe                    11600 Kb           0 Kb        0 Kb",
    "  474 svchost.exe                    10800 Kb           0 Kb        0 Kb",
    "  3c0 svchost.exe                     9200 Kb           0 Kb        0 Kb",
    "  7e4 wmpnetwk.exe                    7600 Kb           0 Kb        0 Kb",
    "  5a8 taskhost.exe                    7200 Kb           0 Kb        0 Kb",
    "  450 spoolsv.exe                     6400 Kb           0 Kb        0 Kb",
    "  5e4 dwm.exe                         5600 Kb           0 Kb        0 Kb",
    "  1dc services.exe                    5240 Kb           0 Kb        0 Kb",
    "  1ec lsass.exe                       3800 Kb           0 Kb        0 Kb",
    "  270 svchost.exe                     3600 Kb           0 Kb        0 Kb",
    "  2b4 svchost.exe                     3400 Kb           0 Kb        0 Kb",
    "  74c sppsvc.exe                      3160 Kb           0 Kb        0 Kb",
    "  7a0 svchost.exe                     3080 Kb           0 Kb        0 Kb",
    "  1f4 lsm.exe                         2600 Kb           0 Kb        0 Kb",
    "  21c winlogon.exe                    2600 Kb           0 Kb        0 Kb",
    "  1b0 csrss.exe                       2080 Kb           0 Kb        0 Kb",
    "  170 csrss.exe                       1880 Kb           0 Kb        0 Kb",
    "  1a4 wininit.exe                     1440 Kb           0 Kb        0 Kb",
    "  10c smss.exe                         392 Kb           0 Kb        0 Kb",
    "    4 System                            48 Kb           0 Kb        0 Kb",
)


@pytest.mark.parametrize("arch", ["x86", "x64"])
@pytest.mark.parametrize("layout, section", [("classic", CLASSIC_PROCESSES),
                                             ("new", NEW_PROCESSES)])
def test_flag_0_differs_from_flag_1_exactly_by_the_per_process_list(booted_objects, arch,
                                                                    layout, section):
    session = session_for(booted_objects[arch], layout)
    short = run(session, "!vm 1")
    assert run(session, "!vm") == run(session, "!vm 0") == short + section
    vm = read_vm(session.target)
    assert [(p.pid, p.image, p.commit) for p in vm.processes] == PROCESSES
    assert vm.total_private == sum(commit for *_, commit in PROCESSES) == 56230
    assert read_vm(session.target, 1).processes is None


def test_total_private_is_a_counter_of_the_new_layout_for_every_flag(booted_objects):
    session = session_for(booted_objects["x64"], "new")
    for flags in ("", "1", "5"):
        assert "Total Private:              56230 (     224920 Kb)" in run(
            session, f"!vm {flags}").split("\n")


def test_the_process_list_is_read_from_memory():
    m = with_processes("x86")
    target = m.target()
    explorer = next(p for p in processes(target).entries
                    if target.read(p + target.profile.offset("eprocess", "ImageFileName"),
                                   8) == b"explorer")
    target.write(explorer + target.profile.offset("eprocess", "CommitCharge"),
                 (1).to_bytes(4, "little"))
    lines = run(session_for(m), "!vm").split("\n")
    assert "      Total Private:       46431   (  185724 Kb)" in lines
    assert lines[-3:] == ["         0004 System              12 (      48 Kb)",
                          "         0600 explorer.exe         1 (       4 Kb)", ""]


@pytest.mark.parametrize("layout", ["classic", "new"])
def test_a_bad_link_ends_the_process_list_with_the_read_error(layout):
    m = with_processes("x64")
    target = m.target()
    third = processes(target).entries[2]
    link = third + target.profile.offset("eprocess", "ActiveProcessLinks")
    target.write(link, (0xFFFFF6FB40000000).to_bytes(8, "little"))
    session = session_for(m, layout)
    lines = run(session, "!vm").split("\n")
    assert lines[-2] == "Memory read error fffff6fb40000000"
    vm = read_vm(target)
    assert [p.pid for p in vm.processes] == [0x170, 0x10C, 0x4]
    assert vm.bad_link == 0xFFFFF6FB40000000
    assert "Memory read error" not in run(session, "!vm 1")


@pytest.mark.parametrize("arch", ["x86", "x64"])
@pytest.mark.parametrize("flag", [2, 8, 0x10])
def test_sections_the_model_does_not_keep_say_so(booted_objects, arch, flag):
    session = session_for(booted_objects[arch])
    assert run(session, f"!vm {flag | 1:#x}") == run(session, "!vm 1") + text(
        "", NOT_MODELLED[flag])


def test_not_modelled_lines_in_full():
    assert NOT_MODELLED == {
        2: "Memory management thread stacks are not modelled by kdsim (no System thread starts "
           "at nt!MiModifiedPageWriter, nt!KeBalanceSetManager ...); instead: !process 4 6",
        8: "The page file write log is not modelled by kdsim (no paging I/O is simulated); "
           "instead: the Page File and Modified PF Pages lines",
        0x10: "Working set owner thread stacks are not modelled by kdsim (no working set lock "
              "is held); instead: !process 4 6",
    }


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_flag_2_shows_a_memory_manager_thread_as_thread_does(arch):
    m = with_processes(arch)
    target = m.target()
    system = processes(target).entries[0]
    thread = threads(target, system).entries[1]
    writer = target.symbol("nt!MiModifiedPageWriter")
    target.write(thread + target.profile.offset("ethread", "StartAddress"),
                 writer.to_bytes(target.arch.ptr_size, "little"))
    session = session_for(m)
    out = run(session, "!vm 3")
    assert out == run(session, "!vm 1")[:-1] + "\n\n" + run(session, f"!thread {thread:x}")
    assert NOT_MODELLED[2] not in out
    vm = json.loads(run_json(session, "!vm 3"))
    assert [t["line"]["address"] for t in vm["mm_threads"]] == [thread]


def run_json(session: Session, line: str) -> str:
    session.settings["output"] = "json"
    try:
        return run(session, line)
    finally:
        session.settings["output"] = "text"


REGIONS_X86 = text(
    "",
    "System Region               Base Address    NumberOfBytes",
    "",
    "NonPagedPool          :         84400000          6a00000",
    "PagedPool             :         91000000          f000000",
    "SpecialPool           :         b0000000          4000000",
)
REGIONS_X64 = text(
    "",
    "System Region               Base Address    NumberOfBytes",
    "",
    "PagedPool             : fffff8a000000000       2000000000",
    "SpecialPool           : fffff98000000000          8000000",
    "NonPagedPool          : fffffa8000c00000         bcffc000",
)


@pytest.mark.parametrize("layout", ["classic", "new"])
@pytest.mark.parametrize("arch, table", [("x86", REGIONS_X86), ("x64", REGIONS_X64)])
def test_flag_0x20_adds_the_system_region_table(machines, layout, arch, table):
    """The Win10 debugger's table (formats.md 4.3): the pools' bounds from nt's globals."""
    session = session_for(machines[arch], layout)
    assert run(session, "!vm 0x21") == run(session, "!vm 1") + table


def test_the_region_table_has_session_space_when_there_are_sessions():
    session, _ = session_machine("x64")
    out = run(session, "!vm 0x21")
    assert out.endswith(text(
        "PagedPool             : fffff8a000000000       2000000000",
        "Session               : fffff900c0000000          8000000",
        "SpecialPool           : fffff98000000000          8000000",
        "NonPagedPool          : fffffa8000c00000         bcffc000"))


def test_region_bounds_are_read_from_memory():
    m = build("x86")
    target = m.target()
    target.write(target.symbol("nt!MmPagedPoolEnd"), (0x92000000).to_bytes(4, "little"))
    assert "PagedPool             :         91000000          1000000" in run(
        session_for(m), "!vm 0x21").split("\n")


def test_every_section_in_bit_order(booted_objects):
    """Counters, processes, then 2, 4, 8, 0x10, 0x20 (no transcript shows two together)."""
    out = run(session_for(booted_objects["x86"]), "!vm 0x3e")
    marks = ["Total Private:", NOT_MODELLED[2], NOT_MODELLED[8], NOT_MODELLED[0x10],
             "System Region"]
    assert [out.index(mark) for mark in marks] == sorted(out.index(mark) for mark in marks)


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_dump_gives_the_same_text(booted_objects, arch, tmp_path):
    live = booted_objects[arch].target()
    save_dump(live, str(tmp_path / "m.dmp"))
    dumped = open_dump(tmp_path / "m.dmp")
    for layout in ("classic", "new"):
        for line in ("!vm", "!vm 1", "!vm 0x3e", "!vm 0x3f"):
            a, b = Session(live), Session(dumped)
            a.settings["vm_layout"] = b.settings["vm_layout"] = layout
            assert run(a, line) == run(b, line)


def test_json_carries_the_sections(booted_objects):
    session = session_for(booted_objects["x64"])
    data = json.loads(run_json(session, "!vm 0x26"))
    assert data["total_private"] == 56230
    assert data["processes"][0] == {"pid": 0x600, "image": "explorer.exe", "commit": 9800}
    assert data["mm_threads"] == []
    assert [r["name"] for r in data["regions"]] == ["PagedPool", "SpecialPool", "NonPagedPool"]
    data = json.loads(run_json(session, "!vm 1"))
    assert data["processes"] is None and data["regions"] is None and data["mm_threads"] is None
