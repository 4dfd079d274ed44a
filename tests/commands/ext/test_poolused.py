"""`!poolused`: exact text for every flag on hand-built machines of both architectures, the
seed cases and public real output reproduced column for column, and counters that come from
nt!PoolTrackTable in memory."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.ext.poolused import poolused
from commands.poolread import live_tags
from commands.session import Session
from commands.sessions import current_session, sessions
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.dump import load, save
from kdsim.layouts import PAGE_SIZE, field_path_offset, profile_for, tag_to_ulong
from kdsim.layouts.session import mm_session_space
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED
from kdsim.target import Target
from tests.commands.ext.session_blocks import session_machine
from tests.pooltag.real_file import real_pooltag, seed_era_pooltag
from tests.support import text


@pytest.fixture(autouse=True)
def builtin_tags_only(monkeypatch):
    monkeypatch.delenv("KDSIM_POOLTAG", raising=False)


def build(arch: str) -> Machine:
    """An empty pool plus known blocks: a freed Irp, a fully freed Ntf0 (printed nowhere but
    counted in verbose TOTAL), big blocks in both pools and a tag with unprintable bytes."""
    m = Machine(get_arch(arch), 0)
    alloc, key = m.pool.allocate, tag_to_ulong
    for _ in range(3):
        alloc(NONPAGED, 0x40, key("Abcd"))
    irps = [alloc(NONPAGED, 0x100, key("Irp")) for _ in range(2)]
    m.pool.free(irps[0])
    for _ in range(2):
        alloc(PAGED, 0x200, key("CM31"))
    alloc(PAGED, 0x2000, key("MmSt"))
    alloc(NONPAGED, 0x1800, key("Leak"))
    m.pool.free(alloc(PAGED, 0x30, key("Ntf0")))
    alloc(NONPAGED, 0x10, key("rx\0\0"))
    return m


@pytest.fixture(scope="module")
def machines() -> dict[str, Machine]:
    return {arch: build(arch) for arch in ("x86", "x64")}


def session_for(m: Machine | Target, layout: str = "classic") -> Session:
    session = Session(m.target() if isinstance(m, Machine) else m)
    session.settings["poolused_layout"] = layout
    return session


CLASSIC_HEAD = ("  Pool Used:",
                "            NonPaged            Paged",
                " Tag    Allocs     Used    Allocs     Used")
DESC = {
    "Abcd": "UNKNOWN pooltag 'Abcd', please update pooltag.txt",
    "CM31": "Registry data: hive cells, key control blocks and the like , Binary: nt!cm",
    "Irp": "I/O request packets (IRPs) ",
    "Leak": "UNKNOWN pooltag 'Leak', please update pooltag.txt",
    "MmSt": "Prototype page table entries shared by every view of a section , Binary: nt!mm",
    "Pool": "The pool manager's own tables and descriptors ",
    "rx": "UNKNOWN pooltag '  rx', please update pooltag.txt",
}

# -- classic layout (the default), x86 ---------------------------------------------------------
X86_BY_TAG = text(
    "   Sorting by  Tag",
    "",
    *CLASSIC_HEAD,
    " Abcd        3      216         0        0 " + DESC["Abcd"],
    " CM31        0        0         2     1040 " + DESC["CM31"],
    " Irp         1      264         0        0 " + DESC["Irp"],
    " Leak        1     8192         0        0 " + DESC["Leak"],
    " MmSt        0        0         1     8192 " + DESC["MmSt"],
    " Pool        1   217088         0        0 " + DESC["Pool"],
    " rx..        1       24         0        0 " + DESC["rx"],
    " TOTAL           7   225784         3     9232",
)

X86_VERBOSE_ROWS = [
    # tag, nonpaged Allocs Frees Diff Used, paged Allocs Frees Diff Used
    ("Abcd", "       3        0        3      216", "       0        0        0        0"),
    ("CM31", "       0        0        0        0", "       2        0        2     1040"),
    ("Irp ", "       2        1        1      264", "       0        0        0        0"),
    ("Leak", "       1        0        1     8192", "       0        0        0        0"),
    ("MmSt", "       0        0        0        0", "       1        0        1     8192"),
    ("Pool", "       1        0        1   217088", "       0        0        0        0"),
    ("rx..", "       1        0        1       24", "       0        0        0        0"),
]
X86_VERBOSE = text(
    "   Sorting by  Tag",
    "",
    "  Pool Used:",
    "            NonPaged                               Paged",
    " Tag    Allocs    Frees     Diff     Used    Allocs    Frees     Diff     Used",
    *(f" {tag} {nonpaged}  {paged}  {DESC[tag.strip().rstrip('.')]}"
      for tag, nonpaged, paged in X86_VERBOSE_ROWS),
    " TOTAL           8        1        7   225784         4        1        3     9232",
)

X86_BY_NONPAGED = text(
    "   Sorting by  NonPaged Pool Consumed",
    "",
    *CLASSIC_HEAD,
    " Pool        1   217088         0        0 " + DESC["Pool"],
    " Leak        1     8192         0        0 " + DESC["Leak"],
    " Irp         1      264         0        0 " + DESC["Irp"],
    " Abcd        3      216         0        0 " + DESC["Abcd"],
    " rx..        1       24         0        0 " + DESC["rx"],
    " CM31        0        0         2     1040 " + DESC["CM31"],
    " MmSt        0        0         1     8192 " + DESC["MmSt"],
    " TOTAL           7   225784         3     9232",
)

X86_VERBOSE_NONPAGED = text(
    "   Sorting by  NonPaged Pool Consumed",
    "",
    "  Pool Used:",
    "            NonPaged",
    " Tag    Allocs    Frees     Diff     Used",
    " Pool        1        0        1   217088  " + DESC["Pool"],
    " Leak        1        0        1     8192  " + DESC["Leak"],
    " Irp         2        1        1      264  " + DESC["Irp"],
    " Abcd        3        0        3      216  " + DESC["Abcd"],
    " rx..        1        0        1       24  " + DESC["rx"],
    " TOTAL           8        1        7   225784",
)

X86_VERBOSE_PAGED = text(
    "   Sorting by  Paged Pool Consumed",
    "",
    "  Pool Used:",
    "            Paged",
    " Tag    Allocs    Frees     Diff     Used",
    " MmSt        1        0        1     8192  " + DESC["MmSt"],
    " CM31        2        0        2     1040  " + DESC["CM31"],
    " TOTAL           4        1        3     9232",
)

X86_TOP2_NONPAGED = text(
    "   Sorting by  NonPaged Pool Consumed",
    "",
    *CLASSIC_HEAD,
    " Pool        1   217088         0        0 " + DESC["Pool"],
    " Leak        1     8192         0        0 " + DESC["Leak"],
    " TOTAL           7   225784         3     9232",
)


@pytest.mark.parametrize("command, expected", [
    ("!poolused", X86_BY_TAG),
    ("!poolused 0", X86_BY_TAG),
    ("!poolused 1", X86_VERBOSE),
    ("!poolused 2", X86_BY_NONPAGED),
    ("!poolused 6", X86_BY_NONPAGED),              # 2 and 4 together: nonpaged wins
    ("!poolused 3", X86_VERBOSE_NONPAGED),
    ("!poolused 5", X86_VERBOSE_PAGED),
    ("!poolused /t2 2", X86_TOP2_NONPAGED),
    ("!poolused /t 2 2", X86_TOP2_NONPAGED),
    ("!poolused 2 /T 0n2", X86_TOP2_NONPAGED),
], ids=lambda v: v if v.startswith("!") else "")
def test_classic_x86(machines, command, expected):
    assert run(session_for(machines["x86"]), command) == expected


X64_BY_PAGED = text(
    "   Sorting by  Paged Pool Consumed",
    "",
    *CLASSIC_HEAD,
    " MmSt        0        0         1     8192 " + DESC["MmSt"],
    " CM31        0        0         2     1056 " + DESC["CM31"],
    " Abcd        3      240         0        0 " + DESC["Abcd"],
    " Irp         1      272         0        0 " + DESC["Irp"],
    " Leak        1     8192         0        0 " + DESC["Leak"],
    " Pool        1   294912         0        0 " + DESC["Pool"],
    " rx..        1       32         0        0 " + DESC["rx"],
    " TOTAL           7   303648         3     9248",
)


def test_classic_x64_sizes_are_16_byte_blocks(machines):
    out = run(session_for(machines["x64"]), "!poolused 4")
    assert out == X64_BY_PAGED


@pytest.mark.parametrize("pattern, tags", [
    ("CM*", ["CM31"]),
    ("Irp", ["Irp "]),                 # shorter than 4: blank padded, as a tag is
    ("?bcd", ["Abcd"]),
    ("*", ["Abcd", "CM31", "Irp ", "Leak", "MmSt", "Pool", "rx.."]),
    ("abcd", []),                      # case-sensitive
    ("Ntf0", []),                      # nothing outstanding: not printed
])
def test_tag_string(machines, pattern, tags):
    result = poolused(session_for(machines["x86"]), f"0 {pattern}")
    assert [r.tag for r in result.rows] == tags


def test_tag_string_total_counts_the_matching_tags_only(machines):
    assert run(session_for(machines["x86"]), "!poolused 0 CM*") == text(
        "   Sorting by  Tag",
        "",
        *CLASSIC_HEAD,
        " CM31        0        0         2     1040 " + DESC["CM31"],
        " TOTAL           0        0         2     1040",
    )


def test_session_pool_flag_prints_an_empty_session_table(machines):
    assert run(session_for(machines["x86"]), "!poolused 8") == text(
        "   Sorting by Session Tag",
        "",
        *CLASSIC_HEAD,
        " TOTAL           0        0         0        0",
    )


# -- new layout ---------------------------------------------------------------------------------
def test_new_layout_x64(machines):
    assert run(session_for(machines["x64"], "new"), "!poolused") == text(
        " Sorting by Tag",
        "",
        "               NonPaged                  Paged",
        " Tag     Allocs         Used     Allocs         Used",
        "",
        " Abcd         3          240          0            0\t" + DESC["Abcd"],
        " CM31         0            0          2         1056\t" + DESC["CM31"],
        " Irp          1          272          0            0\t" + DESC["Irp"],
        " Leak         1         8192          0            0\t" + DESC["Leak"],
        " MmSt         0            0          1         8192\t" + DESC["MmSt"],
        " Pool         1       294912          0            0\t" + DESC["Pool"],
        " rx..         1           32          0            0\t" + DESC["rx"],
        "",
        "TOTAL         7       303648          3         9248",
    )


def test_new_layout_verbose_x64(machines):
    assert run(session_for(machines["x64"], "new"), "!poolused 1 *") == text(
        " Sorting by Tag",
        "",
        "                            NonPaged                                         Paged",
        " Tag       Allocs       Frees      Diff         Used       Allocs       Frees      Diff"
        "         Used",
        "",
        " Abcd           3           0         3          240            0           0         0"
        "            0\t" + DESC["Abcd"],
        " CM31           0           0         0            0            2           0         2"
        "         1056\t" + DESC["CM31"],
        " Irp            2           1         1          272            0           0         0"
        "            0\t" + DESC["Irp"],
        " Leak           1           0         1         8192            0           0         0"
        "            0\t" + DESC["Leak"],
        " MmSt           0           0         0            0            1           0         1"
        "         8192\t" + DESC["MmSt"],
        " Pool           1           0         1       294912            0           0         0"
        "            0\t" + DESC["Pool"],
        " rx..           1           0         1           32            0           0         0"
        "            0\t" + DESC["rx"],
        "",
        "TOTAL           8           1         7       303648            4           1         3"
        "         9248",
    )


def test_new_layout_sorted_by_nonpaged_x86(machines):
    assert run(session_for(machines["x86"], "new"), "!poolused /t3 2") == text(
        " Sorting by NonPaged Pool Consumed",
        "",
        "               NonPaged                  Paged",
        " Tag     Allocs         Used     Allocs         Used",
        "",
        " Pool         1       217088          0            0\t" + DESC["Pool"],
        " Leak         1         8192          0            0\t" + DESC["Leak"],
        " Irp          1          264          0            0\t" + DESC["Irp"],
        "",
        "TOTAL         7       225784          3         9232",
    )


# -- real output reproduced -----------------------------------------------------------------------
def write_tracker(target: Target, entries: list[tuple]) -> None:
    """Replace nt!PoolTrackTable's contents: (tag, NP allocs, NP frees, NP bytes, P allocs,
    P frees, P bytes) per entry, built with the construct declaration."""
    con = profile_for(target.arch).tracker
    table = target.global_ptr("PoolTrackTable")
    target.write(table, bytes(target.global_ptr("PoolTrackTableSize") * con.sizeof()))
    for i, (tag, npa, npf, npb, pa, pf, pb) in enumerate(entries):
        target.write(table + i * con.sizeof(), con.build(dict(
            Key=tag_to_ulong(tag), NonPagedAllocs=npa, NonPagedFrees=npf, NonPagedBytes=npb,
            PagedAllocs=pa, PagedFrees=pf, PagedBytes=pb)))


def collapse(output: str) -> list[str]:
    return [" ".join(line.split()) for line in output.splitlines() if line.strip()]


# The real output below prints the real file's words: each test checks the same layout with the
# built-in words (always), then the real words with the real pooltag.txt loaded (skipped where it
# is absent; the seeds' older file where they differ).
OUR_WORDS = {
    "Calls made to MmAllocateContiguousMemory":
        "Memory manager: blocks handed out by its contiguous-memory allocator",
    "packet pool": "NDIS packet pools of protocol and miniport drivers",
    "File objects": "FILE_OBJECT of an open file, device or pipe",
    "initial work context": "Work contexts the SMB1 server preallocates",
    "Internal Configuration manager allocations":
        "Registry data: hive cells, key control blocks and the like",
    "Code Integrity allocations for image integrity checking":
        "Code integrity: state kept while image signatures are checked",
    "Contiguous physical memory allocations for device drivers":
        "Physically contiguous memory for drivers' DMA hardware",
    "Etw Buffer": "Event tracing (ETW) session buffers",
    "FCB_DATA": "NTFS file control blocks, paged part",
}


def in_our_words(lines: list[str]) -> list[str]:
    """The real lines with each real description replaced by the built-in one."""
    def ours(line: str) -> str:
        for real, own in OUR_WORDS.items():
            line = line.replace(real, own)
        return line
    return [ours(line) for line in lines]


def with_pooltag_file(session: Session, path: Path) -> Session:
    session.settings["pooltag_file"] = str(path)
    return session


# Seed 000 (first seed case), `!poolused /t5 2` as the blog kept it (blanks collapsed).
SEED_000 = [
    "Sorting by NonPaged Pool Consumed",
    "Pool Used:",
    "NonPaged Paged",
    "Tag Allocs Used Allocs Used",
    "MmCm 3187 17452976 0 0 Calls made to MmAllocateContiguousMemory , Binary: nt!mm",
    "NDpp 1125 4519648 0 0 packet pool , Binary: ndis.sys",
    "File 24911 3992376 0 0 File objects",
    "abcd 8 3305504 0 0 UNKNOWN pooltag 'abcd', please update pooltag.txt",
    "LSwi 1 2576384 0 0 initial work context",
    "TOTAL 239570 65912104 200276 66610504",
]


@pytest.fixture(scope="module")
def seed_000_machine() -> Machine:
    """The seed's top 5 tags and totals written into the tracker."""
    m = Machine(get_arch("x86"), 0)
    top = [("MmCm", 3187, 17452976), ("NDpp", 1125, 4519648), ("File", 24911, 3992376),
           ("abcd", 8, 3305504), ("LSwi", 1, 2576384)]
    # the rest of the machine's 239570 / 65912104 nonpaged, spread over tags below the top 5
    rest_allocs, rest_bytes = 239570 - sum(t[1] for t in top), 65912104 - sum(t[2] for t in top)
    fillers = [(f"Fl{i:02d}", rest_allocs // 20 + (i == 0) * (rest_allocs % 20),
                rest_bytes // 20 + (i == 0) * (rest_bytes % 20)) for i in range(20)]
    entries = [(tag, n + 7, 7, b, 0, 0, 0) for tag, n, b in top + fillers]
    entries.append(("CM31", 0, 0, 0, 200276 + 50, 50, 66610504))
    write_tracker(m.target(), entries)
    return m


def test_seed_000_top5_by_nonpaged_with_total_of_every_tag(seed_000_machine):
    out = collapse(run(session_for(seed_000_machine), "!poolused /t5 2"))
    assert out == in_our_words(SEED_000) != SEED_000


def test_seed_000_exactly_with_the_seeds_pooltag_file(seed_000_machine, tmp_path):
    session = with_pooltag_file(session_for(seed_000_machine), seed_era_pooltag(tmp_path))
    assert collapse(run(session, "!poolused /t5 2")) == SEED_000


# Seed 001, `!poolused 4` on Windows 7 x64: the blog kept every blank as &nbsp; except that the
# rows and the first column lost their leading blank; restored here.
SEED_001 = [
    "   Sorting by  Paged Pool Consumed",
    "",
    "  Pool Used:",
    "            NonPaged            Paged",
    " Tag    Allocs     Used    Allocs     Used",
    " Leak        0        0        23 23552000 UNKNOWN pooltag 'Leak', please update pooltag.txt",
    " CM31        0        0     20520 18514560 Internal Configuration manager allocations"
    " , Binary: nt!cm",
    " CIcr        0        0      2977  8511504 Code Integrity allocations for image integrity"
    " checking , Binary: ci.dll",
]


@pytest.fixture(scope="module")
def seed_001_machine() -> Machine:
    m = Machine(get_arch("x64"), 0)
    leak, cm31, cicr = tag_to_ulong("Leak"), tag_to_ulong("CM31"), tag_to_ulong("CIcr")
    for _ in range(23):                          # the seed's 0xfa000-byte big allocations
        assert m.pool.allocate(PAGED, 0xFA000, leak)
    for i in range(20520):                       # 56- and 57-block chunks: 18514560 bytes
        m.pool.allocate(PAGED, 880 if i < 12480 else 896, cm31)
    for i in range(2977):                        # 178- and 179-block chunks: 8511504 bytes
        m.pool.allocate(PAGED, 2832 if i < 914 else 2848, cicr)
    return m


def test_seed_001_from_real_allocations_on_x64(seed_001_machine):
    out = run(session_for(seed_001_machine), "!poolused 4").splitlines()[:8]
    assert out == in_our_words(SEED_001) != SEED_001


def test_seed_001_exactly_with_the_seeds_pooltag_file(seed_001_machine, tmp_path):
    session = with_pooltag_file(session_for(seed_001_machine), seed_era_pooltag(tmp_path))
    assert run(session, "!poolused 4").splitlines()[:8] == SEED_001


def test_public_new_layout_verbose_sample_exactly():
    """formats.md 6.2, `!poolused 1 Hack` on Windows 10 x64, after the cache chatter."""
    m = Machine(get_arch("x64"), 0)
    m.pool.allocate(NONPAGED, 0x60, tag_to_ulong("Hack"))
    assert run(session_for(m, "new"), "!poolused 1 Hack") == text(
        " Sorting by Tag",
        "",
        "                            NonPaged                                         Paged",
        " Tag       Allocs       Frees      Diff         Used       Allocs       Frees      Diff"
        "         Used",
        "",
        " Hack           1           0         1          112            0           0         0"
        "            0\tUNKNOWN pooltag 'Hack', please update pooltag.txt",
        "",
        "TOTAL           1           0         1          112            0           0         0"
        "            0",
    )


PUBLIC_NEW_ROWS = [
    " Cont      1094      6525216          0            0\t"
    "Contiguous physical memory allocations for device drivers ",
    " EtwB       128      5041136          4       163840\tEtw Buffer , Binary: nt!etw",
    " Ntff         5         1600       2109      2598288\tFCB_DATA , Binary: ntfs.sys",
]


@pytest.fixture(scope="module")
def public_new_machine() -> Machine:
    m = Machine(get_arch("x64"), 0)
    write_tracker(m.target(), [("Cont", 1094, 0, 6525216, 0, 0, 0),
                               ("EtwB", 130, 2, 5041136, 4, 0, 163840),
                               ("Ntff", 5, 0, 1600, 2109, 0, 2598288)])
    return m


def test_public_new_layout_rows_column_for_column(public_new_machine):
    """formats.md 6.2 Win7 x64 `!poolused 2` rows: numbers end at columns 15, 28, 39, 52."""
    lines = run(session_for(public_new_machine, "new"), "!poolused 2").splitlines()
    assert lines[5:8] == in_our_words(PUBLIC_NEW_ROWS)


def test_public_new_layout_rows_exactly_with_the_real_pooltag_file(public_new_machine):
    session = with_pooltag_file(session_for(public_new_machine, "new"), real_pooltag())
    assert run(session, "!poolused 2").splitlines()[5:8] == PUBLIC_NEW_ROWS


def test_public_classic_rows_and_total_column_for_column():
    """The docs' old-layout sample: numbers end at columns 14, 23, 33, 42 (the seeds then put a
    blank before the description), and its TOTAL line exactly."""
    m = Machine(get_arch("x86"), 0)
    rows = [("AcpB", 0, 0, 4, 576), ("Wmip", 146, 3504, 182, 18600), ("usbp", 18, 77056, 2, 96)]
    rest = (3570214 - 164, 209120008 - 80560, 38769 - 188, 13066104 - 19272)
    write_tracker(m.target(), [(t, a, 0, b, pa, 0, pb) for t, a, b, pa, pb in rows]
                  + [("zrst", rest[0], 0, rest[1], rest[2], 0, rest[3])])
    lines = run(session_for(m), "!poolused").splitlines()
    docs = [" AcpB        0        0         4      576",
            " Wmip      146     3504       182    18600",
            " usbp       18    77056         2       96"]
    assert [line[:42] for line in lines[5:8]] == docs
    assert all(line[42] == " " for line in lines[5:8])
    assert lines[-1] == " TOTAL     3570214 209120008     38769 13066104"


PUBLIC_CLASSIC_VERBOSE = [
    "   Sorting by  NonPaged Pool Consumed",
    "",
    "  Pool Used:",
    "            NonPaged",
    " Tag    Allocs    Frees     Diff     Used",
    " EtwB      304      134      170  6550080  Etw Buffer , Binary: nt!etw",
    " File 32630649 32618671    11978  3752928  File objects ",
]


@pytest.fixture(scope="module")
def public_verbose_machine() -> Machine:
    m = Machine(get_arch("x64"), 0)
    write_tracker(m.target(), [("EtwB", 304, 134, 6550080, 0, 0, 0),
                               ("File", 32630649, 32618671, 3752928, 0, 0, 0)])
    return m


def test_public_classic_verbose_nonpaged_sample(public_verbose_machine):
    """dumpanalysis.org, Vista x64 `!poolused 3`: nonpaged columns only, two blanks before
    the description."""
    lines = run(session_for(public_verbose_machine), "!poolused 3").splitlines()
    assert lines[:7] == in_our_words(PUBLIC_CLASSIC_VERBOSE)


def test_public_classic_verbose_sample_exactly_with_the_real_pooltag_file(
        public_verbose_machine):
    session = with_pooltag_file(session_for(public_verbose_machine), real_pooltag())
    assert run(session, "!poolused 3").splitlines()[:7] == PUBLIC_CLASSIC_VERBOSE


# -- computed from memory -------------------------------------------------------------------------
def tracker_entry(target: Target, tag: str) -> int:
    con = profile_for(target.arch).tracker
    table = target.global_ptr("PoolTrackTable")
    for i in range(target.global_ptr("PoolTrackTableSize")):
        if target.read_u32(table + i * con.sizeof()) == tag_to_ulong(tag):
            return table + i * con.sizeof()
    raise AssertionError(f"{tag} not in the tracker")


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_zeroing_a_tracker_entry_in_memory_changes_the_output(arch):
    m = build(arch)
    session = session_for(m)
    before = poolused(session, "")
    target = m.target()
    entry = tracker_entry(target, "Leak")
    size = profile_for(target.arch).tracker.sizeof()
    target.write(entry + 4, bytes(size - 4))          # keep the key, zero the counters
    after = poolused(session, "")
    assert [r.tag for r in before.rows if r.tag == "Leak"] == ["Leak"]
    assert "Leak" not in [r.tag for r in after.rows]
    assert after.nonpaged_total.used == before.nonpaged_total.used - PAGE_SIZE * 2
    target.write(entry, bytes(4))                      # an empty slot is skipped altogether
    assert "Leak" not in run(session, "!poolused 1")


def test_protected_tags_print_without_the_protected_bit():
    m = Machine(get_arch("x86"), 0)
    m.pool.allocate(NONPAGED, 0x20, tag_to_ulong("Proc") | 0x80000000)
    assert [r.tag for r in poolused(session_for(m), "0 Pro?").rows] == ["Proc"]


ALLOCATION = st.tuples(st.sampled_from(["Ta01", "Ta02", "Tb 1", "T\x01zz"]),
                       st.sampled_from([NONPAGED, PAGED]),
                       st.sampled_from([1, 0x18, 0x100, 0x7F0, 0xFE0, 0xFF0, 0x1000, 0x2345]),
                       st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["x86", "x64"]), allocations=st.lists(ALLOCATION, max_size=40))
def test_counts_match_the_blocks_really_live(arch, allocations):
    """Whatever was allocated and freed, each tag's outstanding count and bytes are those of
    its live blocks: BlockSize granules for small blocks, whole pages for big ones."""
    m = Machine(get_arch(arch), 0)
    expected: dict[tuple[str, int], list[int]] = {}
    for tag, pool, size, freed in allocations:
        address = m.pool.allocate(pool, size, tag_to_ulong(tag))
        if freed:
            m.pool.free(address)
            continue
        if size <= m.arch.max_small:
            charged = m.arch.block_size(size) * m.arch.block
        else:
            charged = -(-size // PAGE_SIZE) * PAGE_SIZE
        counts = expected.setdefault((tag, pool), [0, 0])
        counts[0] += 1
        counts[1] += charged
    result = poolused(session_for(m), "0 T*")
    got = {}
    for row in result.rows:
        tag = row.tag.replace(".", "\x01")
        for pool, count in ((NONPAGED, row.nonpaged), (PAGED, row.paged)):
            if not count.empty:
                got[(tag, pool)] = [count.outstanding, count.used]
    assert got == expected


# -- errors, completion, JSON ---------------------------------------------------------------------
@pytest.mark.parametrize("command, message", [
    ("!poolused zz", "Couldn't resolve error at 'zz'"),
    ("!poolused /x 2", "Syntax error at '/x 2'"),
    ("!poolused /t", "Numeric expression missing from '<EOL>'"),
    ("!poolused /t zz", "Couldn't resolve error at 'zz'"),
])
def test_bad_arguments_print_the_debugger_error_and_the_session_goes_on(machines, command,
                                                                         message):
    session = session_for(machines["x86"])
    assert run(session, command) == message + "\n"
    assert run(session, "!poolused 0 CM31").startswith("   Sorting by  Tag\n")


def test_live_tags_for_completion(machines):
    assert live_tags(machines["x86"].target()) == ["Abcd", "CM31", "Irp", "Leak", "MmSt", "Pool"]


def test_json_output(machines):
    session = session_for(machines["x86"])
    session.settings["output"] = "json"
    data = json.loads(run(session, "!poolused 2 Leak"))
    assert data["sort"] == "nonpaged"
    assert data["rows"] == [{"tag": "Leak",
                             "nonpaged": {"allocs": 1, "frees": 0, "outstanding": 1, "used": 8192},
                             "paged": {"allocs": 0, "frees": 0, "outstanding": 0, "used": 0},
                             "description": DESC["Leak"]}]


# -- session pool -------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_session_pool_flag_reads_the_current_sessions_tracker(arch):
    """Session 1's tags (not session 0's Usac, nor the system pools'), as paged usage; the
    freed Usac shows in the verbose counts."""
    session, _ = session_machine(arch)
    usac, gla1 = (264, 72) if arch == "x86" else (272, 80)
    assert run(session, "!poolused 8") == text(
        "   Sorting by Session Tag",
        "",
        "  Pool Used:",
        "            NonPaged            Paged",
        " Tag    Allocs     Used    Allocs     Used",
        " Gh05        0        0         1     8192 GDI surface (bitmap) objects , Binary:"
        " win32k.sys",
        f" Gla1        0        0         1 {gla1:8d} GDI lookaside: device context objects"
        " , Binary: win32k.sys",
        f" Usac        0        0         1 {usac:8d} USER keyboard accelerator tables , Binary:"
        " win32k!_CreateAcceleratorTable",
        f" TOTAL           0        0         3 {8192 + usac + gla1:8d}",
    )
    verbose = run(session, "!poolused 9 Usac").splitlines()
    assert verbose[5].split()[:9] == ["Usac", "0", "0", "0", "0", "2", "1", "1", str(usac)]


def test_session_pool_reads_the_same_from_a_dump(tmp_path):
    """The sessions are found through memory and symbols only: a full dump shows them too."""
    live, _ = session_machine("x64")
    save(live.target, tmp_path / "s.dmp")
    dumped = Session(load(tmp_path / "s.dmp"))
    for command in ("!poolused 8", "!poolfind Usac 4"):
        assert run(dumped, command) == run(live, command)


def test_a_corrupted_session_structure_reads_as_no_session():
    """A table size no kernel keeps is corruption: no session to read, no huge read."""
    session, _ = session_machine("x86")
    target = session.target
    current = current_session(target)
    assert current is not None
    layout = mm_session_space(target.profile)
    size_at = current.address + field_path_offset(layout, "PoolTrackTableExpansionSize")
    target.write(size_at, (0x7FFFFFFF).to_bytes(4, "little"))
    assert current_session(target) is None and len(sessions(target)) == 1
    assert run(session, "!poolused 8").splitlines()[-1].split() == ["TOTAL", "0", "0", "0", "0"]
