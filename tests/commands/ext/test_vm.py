"""`!vm`: exact text in both layouts on hand-built machines, real samples reproduced column for
column, and numbers that agree with the pool allocator because they are read from memory."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest

from commands.ext.vm import PAGE_FILE_NAME, PageFile, VmUsage, read_vm, render_vm
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
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
    assert run(session_for(machines["x86"]), "!vm") == X86_CLASSIC


def test_classic_x64_wide_values_push_the_kb_column(machines):
    lines = run(session_for(machines["x64"]), "!vm").split("\n")
    for index, line in X64_CLASSIC_CHANGED_LINES.items():
        assert lines[index] == line


def test_new_x86(machines):
    assert run(session_for(machines["x86"], "new"), "!vm") == X86_NEW


def test_new_x64_ten_digit_columns(machines):
    lines = run(session_for(machines["x64"], "new"), "!vm").split("\n")
    assert "Free System PTEs:        33494979 (  133979916 Kb)" in lines
    assert "PagedPool Maximum:       33554432 (  134217728 Kb)" in lines
    assert "NonPagedPool Max:          774140 (    3096560 Kb)" in lines


@pytest.mark.parametrize("flags", ["1", "0", "0x3f", "2", "4", "8", "0x10", "0x20"])
def test_flags_add_nothing_the_machine_does_not_model(machines, flags):
    assert run(session_for(machines["x86"]), f"!vm {flags}") == X86_CLASSIC


def test_bad_flags_print_the_debugger_error_and_the_session_goes_on(machines):
    session = session_for(machines["x86"])
    assert run(session, "!vm zz") == "Couldn't resolve error at 'zz'\n"
    assert run(session, "!vm") == X86_CLASSIC


# -- real output reproduced ---------------------------------------------------------------------
def usage(**values: int) -> VmUsage:
    fields = {f.name: 0 for f in dataclasses.fields(VmUsage)}
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
