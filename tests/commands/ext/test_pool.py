"""`!pool` on small hand-built machines: exact text, flags, large and unreadable pages, and
corruption written into memory."""
from __future__ import annotations

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import QUOTA, PoolSettings
from kdsim.target import Target
from tests.commands.ext.pool_lines import DESCRIPTION, HEADER, REAL_POOL, ROW
from tests.commands.ext.session_blocks import session_machine
from tests.pooltag.real_file import real_pooltag
from tests.support import billed_process

PROTECTED = 0x80000000
PROCESS = {"x86": 0x8507A030, "x64": 0xFFFFFA8001A3B060}


def build(arch: str) -> tuple[Machine, dict[str, int]]:
    """One nonpaged page: Ntfx at the start, the split remainder, then Irp, a quota NpFn,
    Hack and a freed (protected) Even carved from the end of the page."""
    m = Machine(get_arch(arch), 0, processors=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    pool = m.pool
    blocks = {
        "Ntfx": pool.allocate(0, 0xC0, tag_to_ulong("Ntfx")),
        "Even": pool.allocate(0, 0x38, tag_to_ulong("Even") | PROTECTED),
        "Hack": pool.allocate(0, 0x1F8, tag_to_ulong("Hack")),
        # x86 grows a quota request by the billed process's pointer: 0x68 bytes on both arches
        "NpFn": pool.allocate(QUOTA, 0x5C, tag_to_ulong("NpFn"),
                              process=billed_process(m, PROCESS[arch])),
        "Irp": pool.allocate(0, 0x30, tag_to_ulong("Irp")),
    }
    pool.free(blocks["Even"])
    return m, blocks


@pytest.fixture
def x86() -> tuple[Session, dict[str, int]]:
    m, blocks = build("x86")
    return Session(m.target()), blocks


@pytest.fixture
def x64() -> tuple[Session, dict[str, int]]:
    m, blocks = build("x64")
    return Session(m.target()), blocks


X86_PAGE = """\
Pool page 8442fdd8 region is Nonpaged pool
 8442f000 size:   c8 previous size:    0  (Allocated)  Ntfx
 8442f0c8 size:  c58 previous size:   c8  (Free)       ....
 8442fd20 size:   38 previous size:  c58  (Allocated)  Irp 
 8442fd58 size:   68 previous size:   38  (Allocated)  NpFn Process: 8507a030
*8442fdc0 size:  200 previous size:   68  (Allocated) *Hack
\t\tOwning component : Unknown (update pooltag.txt)
 8442ffc0 size:   40 previous size:  200  (Free)       Eve.
"""

X64_PAGE = """\
Pool page fffffa8000c3fdc0 region is Nonpaged pool
 fffffa8000c3f000 size:   d0 previous size:    0  (Allocated)  Ntfx
 fffffa8000c3f0d0 size:  c20 previous size:   d0  (Free)       ....
 fffffa8000c3fcf0 size:   40 previous size:  c20  (Allocated)  Irp 
 fffffa8000c3fd30 size:   70 previous size:   40  (Allocated)  NpFn Process: fffffa8001a3b060
*fffffa8000c3fda0 size:  210 previous size:   70  (Allocated) *Hack
\t\tOwning component : Unknown (update pooltag.txt)
 fffffa8000c3ffb0 size:   50 previous size:  210  (Free)       Eve.
"""


def test_x86_page(x86):
    session, b = x86
    assert b["Hack"] == 0x8442FDC8
    assert run(session, "!pool 8442fdd8") == X86_PAGE


def test_x64_page(x64):
    session, b = x64
    assert b["Hack"] == 0xFFFFFA8000C3FDB0
    assert run(session, "!pool fffffa80`00c3fdc0") == X64_PAGE


def test_argument_is_an_expression_and_the_header_prints_its_value(x86):
    session, _ = x86
    out = run(session, "!pool 8442ffc8-0x1000+0x1000")
    assert out.splitlines()[0] == "Pool page 8442ffc8 region is Nonpaged pool"
    assert out.endswith("*8442ffc0 size:   40 previous size:  200  (Free)      *Eve.\n"
                        "\t\tPooltag Even : Kernel events (KEVENT) behind their object headers\n")


def test_star_marks_the_header_itself_and_protected_blocks(x86):
    session, b = x86
    session.target.write(b["Irp"] - 4, (tag_to_ulong("Even") | PROTECTED).to_bytes(4, "little"))
    out = run(session, "!pool 8442fd20")
    assert ("*8442fd20 size:   38 previous size:  c58  (Allocated) *Even (Protected)\n"
            "\t\tPooltag Even : Kernel events (KEVENT) behind their object headers\n") in out


def test_flag_2_prints_only_the_entry(x86):
    session, _ = x86
    assert run(session, "!pool 8442fdd8 2") == (
        "Pool page 8442fdd8 region is Nonpaged pool\n"
        "*8442fdc0 size:  200 previous size:   68  (Allocated) *Hack\n"
        "\t\tOwning component : Unknown (update pooltag.txt)\n")


def test_flag_80000000_drops_the_description(x86):
    session, _ = x86
    out = run(session, "!pool 8442fdd8 0x80000002")
    assert out == ("Pool page 8442fdd8 region is Nonpaged pool\n"
                   "*8442fdc0 size:  200 previous size:   68  (Allocated) *Hack\n")


def test_flag_1_dumps_the_start_of_each_block(x86):
    session, b = x86
    session.target.write(b["Hack"], bytes(range(0x20)))
    assert run(session, "!pool 8442fdd8 3") == (
        "Pool page 8442fdd8 region is Nonpaged pool\n"
        "*8442fdc0 size:  200 previous size:   68  (Allocated) *Hack\n"
        "\t\tOwning component : Unknown (update pooltag.txt)\n"
        " 8442fdc8  03020100 07060504 0b0a0908 0f0e0d0c\n"
        "    8442fdd8  13121110 17161514 1b1a1918 1f1e1d1c\n"
        "\n")


def test_description_comes_from_the_session_pooltag_file(x86, tmp_path):
    session, _ = x86
    tags = tmp_path / "pooltag.txt"
    tags.write_text("rem test\nHack - hevd.sys      - HEVD pool overflow buffer\n")
    session.settings["pooltag_file"] = str(tags)
    out = run(session, "!pool 8442fdd8 2")
    assert out.endswith("\t\tPooltag Hack : HEVD pool overflow buffer, Binary : hevd.sys\n")


def test_large_allocation(x86):
    session, _ = x86
    m = session.target.control.machine
    va = m.pool.allocate(0, 0x2100, tag_to_ulong("Proc") | PROTECTED)
    expected = (f"Pool page {va + 0x1234:08x} region is Nonpaged pool\n"
                f"*{va:08x} : large page allocation, tag is Proc, size is 0x2100 bytes\n"
                "\t\tPooltag Proc : EPROCESS of each process, behind its object header, "
                "Binary : nt!ps\n")
    assert run(session, f"!pool {va + 0x1234:x}") == expected
    assert run(session, f"!pool {va:x} 0x80000000").splitlines()[1].startswith(f"*{va:08x} :")


def test_paged_region(x86):
    session, _ = x86
    va = session.target.control.machine.pool.allocate(1, 0x40, tag_to_ulong("MmSt"))
    out = run(session, f"!pool {va:x}")
    assert out.splitlines()[0] == f"Pool page {va:08x} region is Paged pool"
    assert f"*{va - 8:08x} size:   48 previous size:    0  (Allocated) *MmSt" in out


def test_unreadable_page_live_and_in_a_dump(x86):
    session, b = x86
    m = session.target.control.machine
    freed = b["Ntfx"] + 0x3000                      # in nonpaged pool's range, never mapped
    expected = (f"Pool page {freed:08x} region is Unknown\n"
                f"84432000 is not a valid large pool allocation, checking large session pool...\n"
                f"84432000 is not valid pool. Checking for freed (or corrupt) pool\n"
                "Address 84432000 could not be read. It may be a freed, invalid or paged out "
                "page\n")
    assert run(session, f"!pool {freed:x}") == expected
    dump = Session(Target(m.arch, m.memory, m.symbols, m.processors))
    lines = run(dump, f"!pool {freed:x}").splitlines()
    assert lines[2] == ("Unable to read large session pool table (Session data is not present "
                        "in mini and kernel-only dumps)")
    assert len(lines) == 5


def test_no_argument_and_user_addresses(x86):
    session, _ = x86
    assert run(session, "!pool").splitlines()[0] == "Pool page 00000000 region is Unknown"
    assert run(session, "!pool 10000").splitlines()[-1] == (
        "Address 00010000 could not be read. It may be a freed, invalid or paged out page")


@pytest.mark.parametrize("args, error", [
    ("nosuchsymbol", "Couldn't resolve error at 'nosuchsymbol'"),
    ("8442fdd8 )", "Numeric expression missing from ')'"),
])
def test_bad_arguments_print_the_evaluator_error(x86, args, error):
    session, _ = x86
    assert run(session, f"!pool {args}").strip() == error


X86_OVERRUN = """\
Pool page 8442fdd8 region is Nonpaged pool
 8442f000 size:   c8 previous size:    0  (Allocated)  Ntfx
 8442f0c8 size:  c58 previous size:   c8  (Free)       ....
 8442fd20 size:   38 previous size:  c58  (Allocated)  Irp 
 8442fd58 size:   68 previous size:   38  (Allocated)  NpFn Process: 8507a030
*8442fdc0 size:  200 previous size:   68  (Allocated) *Hack
\t\tOwning component : Unknown (update pooltag.txt)
8442ffc0 doesn't look like a valid small pool allocation, checking to see
if the entire page is actually part of a large page allocation...

8442f000 is not a valid large pool allocation, checking large session pool...
8442f000 is freed (or corrupt) pool
Bad previous allocation size @8442ffc0, last size was 40

***
*** An error (or corruption) in the pool was detected;
*** Attempting to diagnose the problem.
***
*** Use !poolval 8442f000 for more details.


Pool page [ 8442f000 ] is INVALID.

Analyzing linked list...
[ 8442ffc0 ]: invalid previous size [ 0x41 ] should be [ 0x40 ]


Scanning for single bit errors...

[ 8442ffc0 ]: single bit error in previous size [ 0x41 ] should be [ 0x40 ]
"""


def test_overrun_into_the_next_header_is_reported(x86):
    """Hack writes one byte past its 0x1f8 bytes: the low byte of the next PreviousSize."""
    session, b = x86
    session.target.write(b["Hack"], b"A" * 0x1F9)
    assert run(session, "!pool 8442fdd8") == X86_OVERRUN


def test_zero_size_header_x64(x64):
    session, b = x64
    nxt = b["Hack"] - 0x10 + 0x210
    session.target.write(nxt, bytes(16))
    lines = run(session, "!pool fffffa8000c3fdc0").splitlines()
    assert lines[7] == ("fffffa8000c3ffb0 doesn't look like a valid small pool allocation, "
                        "checking to see")
    assert "Bad allocation size @fffffa8000c3ffb0, zero is invalid" in lines
    assert ("[ fffffa8000c3ffb0 --> fffffa8000c40000 (size = 0x50 bytes)]: Corrupt region"
            in lines)
    assert lines[-1] == "None found"


def test_block_reaching_past_the_page_is_too_large(x86):
    session, b = x86
    hdr = b["Irp"] - 8
    ulong1 = int.from_bytes(session.target.read(hdr, 4), "little")
    ulong1 = (ulong1 & ~(0x1FF << 16)) | (0x1F0 << 16)          # BlockSize 0xf80 bytes
    session.target.write(hdr, ulong1.to_bytes(4, "little"))
    out = run(session, "!pool 8442fd28")
    assert "Bad allocation size @8442fd20, too large" in out
    assert "*8442fd20" not in out


def test_large_allocation_wins_over_a_broken_walk(x86):
    """A big allocation's page has no headers; the big-page table names it."""
    session, _ = x86
    va = session.target.control.machine.pool.allocate(1, 0x1800, tag_to_ulong("Leak"))
    session.target.write(va, b"\xff" * 16)
    out = run(session, f"!pool {va:x}")
    assert out.splitlines()[1:] == [
        f"*{va:08x} : large page allocation, tag is Leak, size is 0x1800 bytes",
        "\t\tOwning component : Unknown (update pooltag.txt)"]


def special_machine(arch: str, mode: str = "") -> Machine:
    return Machine(get_arch(arch), 0, processors=1,
                   verifier=f"/flags 1 /driver myfault.sys {mode}".strip())


PROJECT_ZERO_LINES = ("Pool page fffff98000000b10 region is Special pool\n"
                      "*fffff98000000000 size:  4f0 data: fffff98000000b10 (NonPaged) *Scbf\n"
                      "\t\tPooltag Scbf : {}\n")


@pytest.fixture(scope="module")
def project_zero_session() -> Session:
    m = special_machine("x64")
    data = m.verifier.special.allocate(False, 0x4F0, tag_to_ulong("Scbf"))
    assert data == 0xFFFFF98000000B10
    return Session(m.target())


def test_special_pool_verify_end_x64(project_zero_session):
    """The Project Zero transcript's line: page, bytes requested, data at the page end; the
    built-in words for Scbf (from Sc??)."""
    assert run(project_zero_session, "!pool fffff98000000b10") == PROJECT_ZERO_LINES.format(
        "Storage class and port drivers, general")


def test_special_pool_verify_end_x64_exactly_with_the_real_pooltag_file(project_zero_session):
    session = Session(project_zero_session.target)
    session.settings["pooltag_file"] = str(real_pooltag())
    assert run(session, "!pool fffff98000000b10") == PROJECT_ZERO_LINES.format(
        "Mass storage driver tags")


def test_special_pool_verify_start_paged_x86():
    m = special_machine("x86", "/verifystart")
    data = m.verifier.special.allocate(True, 0x3C, tag_to_ulong("Leak"))
    assert not data & 0xFFF
    out = run(Session(m.target()), f"!pool {data + 0x10:x} 0x80000000")
    assert out == (f"Pool page {data + 0x10:08x} region is Special pool\n"
                   f"*{data:08x} size:   3c data: {data:08x} (Paged) *Leak\n")


def test_freed_special_pool_and_guard_pages_cannot_be_read():
    m = special_machine("x86")
    special = m.verifier.special
    data = special.allocate(False, 0x20, tag_to_ulong("Leak"))
    session = Session(m.target())
    guard = (data | 0xFFF) + 1
    assert run(session, f"!pool {guard:x}").splitlines()[-1] == (
        f"Address {guard:08x} could not be read. It may be a freed, invalid or paged out page")
    special.free(data)
    lines = run(session, f"!pool {data:x}").splitlines()
    assert lines[0] == f"Pool page {data:08x} region is Special pool"
    assert lines[-1].startswith(f"Address {data & ~0xFFF:08x} could not be read.")


# -- every line has the real layout (pool_lines.py), on a booted machine -------------------------
@pytest.mark.parametrize("pattern, line",
                         [(p, line) for p, lines in REAL_POOL.items() for line in lines])
def test_patterns_accept_the_real_lines(pattern, line):
    assert pattern.match(line)


@pytest.fixture(scope="module", params=["x86", "x64"])
def session(request, booted) -> Session:
    return Session(booted(request.param).target())


def _find_rows(session: Session, tag: str, pool: int) -> list[str]:
    """The tag's small blocks (a registry hive's bins, for one, are large allocations too)."""
    out = run(session, f"!poolfind {tag} {pool}")
    rows = [line for line in out.splitlines()
            if line.startswith("*") and "large page allocation" not in line]
    assert rows, out
    return rows


@pytest.mark.parametrize("tag, pool", [("File", 0), ("Vad", 0), ("MmCa", 0), ("CM31", 1),
                                       ("Ntff", 1)])
def test_every_line_of_pool_has_the_real_layout(session, tag, pool):
    width = session.target.arch.hex_digits
    for row in _find_rows(session, tag, pool)[:12]:
        header = int(row[1:1 + width], 16)
        size = int(row.split("size:")[1].split()[0], 16)
        # an address in the block's data; a free fragment of one block is all header
        address = header + (session.target.arch.block if size > session.target.arch.block
                            else 0) + 3
        lines = run(session, f"!pool {address:x}").splitlines()
        assert HEADER.match(lines[0]) and lines[0].split()[2] == f"{address:0{width}x}"
        rows = [ROW.match(line) for line in lines[1:] if not DESCRIPTION.match(line)]
        assert all(rows), lines
        assert sum(DESCRIPTION.match(line) is not None for line in lines) == 1
        marked = [r for r in rows if r["m"] == "*"]
        assert len(marked) == 1 and marked[0]["m2"] == "*" and marked[0]["tag"] == tag.ljust(4)
        assert marked[0]["addr"] == f"{header:0{width}x}"
        # the chain: each previous size is the size before it, and the page is covered
        sizes = [int(r["size"], 16) for r in rows]
        prevs = [int(r["prev"], 16) for r in rows]
        assert prevs == [0] + sizes[:-1] and sum(sizes) == 0x1000


# -- explain mode ---------------------------------------------------------------------------------
def test_explain_adds_lines_after_the_rows_and_nothing_else(x86):
    session, _ = x86
    run(session, ".settings set explain=on")
    explained = run(session, "!pool 8442fdd8").splitlines()
    notes = [line for line in explained if line.startswith("    -- ")]
    assert [line for line in explained if line not in notes] == X86_PAGE.splitlines()
    assert explained[3] == (
        "    -- free: on ListHeads[394] of nt!NonPagedPoolDescriptor (entry 1 of 1), the list "
        "of free 0xc58-byte chunks; an allocation of up to 0xc50 bytes may be cut from it")
    assert notes[-2:] == [
        "    -- page 8442f000: 0x368 of 0x1000 bytes in use (21 %) by 4 blocks, 0xc98 free in "
        "2 chunks",
        "    -- the page goes back to the pool when its last 4 blocks are freed"]
    run(session, ".settings set explain=off")
    assert run(session, "!pool 8442fdd8") == X86_PAGE


@pytest.mark.parametrize("settings, holder", [
    (PoolSettings(lookasides=True, deferred_frees=False),
     "on processor 1's nonpaged lookaside list for 0x38-byte blocks (entry 1 of 1)"),
    (PoolSettings(lookasides=False, deferred_frees=True),
     "on the deferred-free list (PendingFrees) of nt!NonPagedPoolDescriptor (entry 1 of 1)"),
])
def test_explain_finds_a_freed_block_that_still_says_allocated(settings, holder):
    m = Machine(get_arch("x86"), 0, processors=2, settings=settings)
    kept = m.pool.allocate(0, 0x30, tag_to_ulong("Keep"))
    gone = m.pool.allocate(0, 0x30, tag_to_ulong("Gone"), cpu=1)
    m.pool.free(gone, cpu=1)
    session = Session(m.target())
    run(session, ".settings set explain=on")
    text = run(session, f"!pool {gone:x}")
    assert f"*{gone - 8:08x} size:   38 previous size:  f90  (Allocated) *Gone" in text
    assert f"    -- freed, though its header still says Allocated: {holder}; " in text
    assert ("1 freed block (0x38 bytes) kept on lookaside or deferred-free lists" in text
            and f"pinned (at most 1/8 of the page (0x200 bytes) in use, in at most 4 blocks): "
                f"the page goes back to the pool only when these are freed: Keep at "
                f"{kept - 8:08x}, Gone at {gone - 8:08x}" in text)


# -- session pool -------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_session_page_and_a_large_session_allocation(arch):
    session, blocks = session_machine(arch)
    fmt = session.target.arch.fmt_ptr
    page = run(session, f"!pool {blocks['usac']:x}").splitlines()
    assert page[0] == f"Pool page {fmt(blocks['usac'])} region is Paged session pool"
    assert page[1].startswith(f"*{fmt(blocks['usac'] & ~0xFFF)} size: ")
    assert page[1].endswith("(Allocated) *Usac")
    assert page[-1].endswith("(Allocated)  Gla1")
    big = blocks["gh05"]
    assert run(session, f"!pool {big + 0x1234:x}") == (
        f"Pool page {fmt(big + 0x1234)} region is Paged session pool\n"
        f"{fmt(big + 0x1000)} is not a valid large pool allocation, checking large session "
        "pool...\n"
        f"*{fmt(big)} : large page allocation, tag is Gh05, size is 0x2000 bytes\n"
        "\t\tPooltag Gh05 : GDI surface (bitmap) objects, Binary : win32k.sys\n")


def test_explain_finds_a_session_chunk_on_its_sessions_list():
    session, blocks = session_machine("x86")
    run(session, ".settings set explain=on")
    out = run(session, f"!pool {blocks['usac']:x}")
    assert "-- free: on ListHeads[469] of session 1's PagedPool (entry 1 of 1)" in out
