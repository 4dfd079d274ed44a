"""`!lookaside`: the pool's lookaside lists read through nt!KiProcessorBlock."""
from __future__ import annotations

import re

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import PoolSettings

# formats.md 9, docs sample: the block's layout, column for column
BLOCK = [re.compile(r'^Lookaside "[^"]*" @ 0x(?:[0-9a-f]{8}|[0-9a-f]{16})  Tag\(hex\): '
                    r'0x[0-9a-f]{8} ".{4}"$'),
         re.compile(r"^    Type           = {7}[0-9a-f]{4}  \w+(?: \w+)*$"),
         re.compile(r"^    Current Depth  = [ \d]{10}  Max Depth  = [ \d]{10}$"),
         re.compile(r"^    Size           = [ \d]{10}  Max Alloc  = [ \d]{10}$"),
         re.compile(r"^    AllocateMisses = [ \d]{10}  FreeMisses = [ \d]{10}$"),
         re.compile(r"^    TotalAllocates = [ \d]{10}  TotalFrees = [ \d]{10}$"),
         re.compile(r"^    Hit Rate       = [ \d]{10}% Hit Rate   = [ \d]{10}%$")]
DOCS_SAMPLE = """\
Lookaside "" @ 0xfffff88001294f80  Tag(hex): 0x7366744e "Ntfs"
    Type           =       0011  PagedPool RaiseIfAllocationFailure
    Current Depth  =          0  Max Depth  =          4
    Size           =        496  Max Alloc  =       1984
    AllocateMisses =          8  FreeMisses =          0
    TotalAllocates =     272492  TotalFrees =     272488
    Hit Rate       =         99% Hit Rate   =        100%"""


def build(arch: str) -> tuple[Session, Machine]:
    """Five 0x10-byte Irp blocks freed, then two taken again: the P list of their size fills
    to its depth of 2, the rest go to the L list, the next allocations hit."""
    m = Machine(get_arch(arch), 0, processors=1, settings=PoolSettings(deferred_frees=False))
    blocks = [m.pool.allocate(0, 0x10, tag_to_ulong("Irp ")) for _ in range(5)]
    for b in blocks:
        m.pool.free(b)
    for _ in range(2):
        m.pool.allocate(0, 0x10, tag_to_ulong("Irp "))
    return Session(m.target()), m


def test_the_pattern_accepts_the_docs_sample():
    assert all(p.match(line) for p, line in zip(BLOCK, DOCS_SAMPLE.splitlines(), strict=True))


def test_one_list_x86():
    session, m = build("x86")
    own, shared = m.pool.la[0][0][2]                    # nonpaged, BlockSize 3 (0x18 bytes)
    assert run(session, f"!lookaside {own:x}") == f"""
Lookaside "" @ 0x{own:08x}  Tag(hex): 0x6c6f6f50 "Pool"
    Type           =       0000  NonPagedPool
    Current Depth  =          0  Max Depth  =          2
    Size           =         24  Max Alloc  =         48
    AllocateMisses =          5  FreeMisses =          3
    TotalAllocates =          7  TotalFrees =          5
    Hit Rate       =         28% Hit Rate   =         40%
"""
    assert run(session, f"!lookaside {shared:x}").splitlines()[3:] == [
        "    Current Depth  =          2  Max Depth  =          2",
        "    Size           =         24  Max Alloc  =         48",
        "    AllocateMisses =          5  FreeMisses =          1",
        "    TotalAllocates =          5  TotalFrees =          3",
        "    Hit Rate       =          0% Hit Rate   =         66%"]


def test_one_list_x64_paged():
    session, m = build("x64")
    own, _ = m.pool.la[0][1][0]
    assert run(session, f"!lookaside {own:x}").splitlines()[1:4] == [
        f'Lookaside "" @ 0x{own:016x}  Tag(hex): 0x6c6f6f50 "Pool"',
        "    Type           =       0001  PagedPool",
        "    Current Depth  =          0  Max Depth  =          2"]


def test_all_system_lists_and_totals():
    session, m = build("x86")
    lines = run(session, "!lookaside").splitlines()
    blocks = [lines[i + 1:i + 8] for i, line in enumerate(lines[:-5]) if line == ""]
    assert len(blocks) == 64
    for block in blocks:
        assert all(p.match(line) for p, line in zip(BLOCK, block, strict=True)), block
    assert lines[-4:] == [
        "Total NonPaged currently allocated for above lists =       48",
        "Total NonPaged potential for above lists           =     8448",
        "Total Paged currently allocated for above lists    =        0",
        "Total Paged potential for above lists              =     8448"]
    assert run(session, "!lookaside 0") == run(session, "!lookaside")
    every = run(session, "!lookaside -all")
    assert every.count("Lookaside ") == 128
    assert f"@ 0x{m.pool.la[0][0][2][0]:08x} " in every


def test_reset_and_set_depth_write_the_list():
    session, m = build("x86")
    own = m.pool.la[0][0][2][0]
    assert run(session, f"!lookaside {own:x} 2 20").splitlines()[3] == (
        "    Current Depth  =          0  Max Depth  =         32")
    assert m.pool._r16(own + m.pool.o_la_depth) == 32
    assert run(session, f"!lookaside {own:x} 1").splitlines()[5:] == [
        "    AllocateMisses =          0  FreeMisses =          0",
        "    TotalAllocates =          0  TotalFrees =          0",
        "    Hit Rate       =          0% Hit Rate   =          0%"]


@pytest.mark.parametrize("args, error", [
    ("f8025000 3", "Syntax error at '3'"),
    ("f8025000 1 5", "Syntax error at '1 5'"),
    ("10", "Memory access error at '10'"),
])
def test_bad_arguments(args, error):
    session, _ = build("x86")
    assert run(session, f"!lookaside {args}").strip() == error
