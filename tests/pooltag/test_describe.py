"""The exact description texts `!pool` and `!poolused` print, checked against the seeds and the
verbatim samples in research/formats.md (sections 2.2, 4 and 6): the layout with our built-in
words always, the real words with the real pooltag.txt loaded (skipped where it is absent)."""
from __future__ import annotations

import pytest

from pooltag import TagDatabase, pool_description, poolused_description
from tests.pooltag.real_file import seed_era_pooltag


@pytest.fixture(scope="module")
def real_db(pooltag_txt) -> TagDatabase:
    return TagDatabase(pooltag_txt, builtin=False)


def old_row(tag: str, np_allocs: int, np_used: int, p_allocs: int, p_used: int, desc: str) -> str:
    """The old debugger's `!poolused` row: the description follows the last number directly."""
    return f" {tag:<4} {np_allocs:8d} {np_used:8d}  {p_allocs:8d} {p_used:8d}" + desc


def new_row(tag: str, np_allocs: int, np_used: int, p_allocs: int, p_used: int, desc: str) -> str:
    """The new debugger's `!poolused` row: a TAB before the description."""
    return f" {tag:<4} {np_allocs:9d} {np_used:12d} {p_allocs:10d} {p_used:12d}\t" + desc


# --- !pool ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tag, line", [
    ("Irp ", "\t\tPooltag Irp  : I/O request packets (IRPs)"),
    ("Irp", "\t\tPooltag Irp  : I/O request packets (IRPs)"),
    ("Even", "\t\tPooltag Even : Kernel events (KEVENT) behind their object headers"),
    (0xEE657645,                                                  # protected "Even"
     "\t\tPooltag Even : Kernel events (KEVENT) behind their object headers"),
    ("Thre", "\t\tPooltag Thre : ETHREAD of each thread, behind its object header, "
             "Binary : nt!ps"),
    ("Proc", "\t\tPooltag Proc : EPROCESS of each process, behind its object header, "
             "Binary : nt!ps"),
    ("Gh05", "\t\tPooltag Gh05 : GDI surface (bitmap) objects, Binary : win32k.sys"),
    ("Hack", "\t\tOwning component : Unknown (update pooltag.txt)"),
    ("IoCo", "\t\tOwning component : Unknown (update pooltag.txt)"),   # Win7 spray transcript
])
def test_pool_line_builtin(builtin_db, tag, line):
    assert pool_description(builtin_db, tag) == line


@pytest.mark.parametrize("tag, line", [
    ("Irp", "\t\tPooltag Irp  : Io, IRP packets"),
    ("Proc", "\t\tPooltag Proc : Process objects, Binary : nt!ps"),
    ("Thre", "\t\tPooltag Thre : Thread objects, Binary : nt!ps"),          # seeds/002
    ("FMis", "\t\tPooltag FMis : FLT_INSTANCE structure, Binary : fltmgr.sys"),
    ("V2lg", "\t\tPooltag V2lg : VHD2 core large allocation, Binary : vhdmp.sys"),
    ("Gh05", "\t\tPooltag Gh05 : GDITAG_HMGR_SURF_TYPE, Binary : win32k.sys"),
    ("Usac", "\t\tPooltag Usac : USERTAG_ACCEL, Binary : win32k!_CreateAcceleratorTable"),
    ("Scbf", "\t\tPooltag Scbf : Mass storage driver tags"),
    ("tvEm", "\t\tOwning component : Unknown (update pooltag.txt)"),
    ("VULN", "\t\tOwning component : Unknown (update pooltag.txt)"),
])
def test_pool_line_real_file(real_db, tag, line):
    assert pool_description(real_db, tag) == line


def test_pool_line_unprintable_tag_bytes(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("rx?? - rx.sys - wildcard\n")
    db = TagDatabase(path, builtin=False)
    assert pool_description(db, b"rx\0\x01") == "\t\tPooltag rx.. : wildcard, Binary : rx.sys"


# --- !poolused -----------------------------------------------------------------------------

# seeds/000 (`!poolused /t5 2`; the blog collapsed the column blanks) and seeds/001, as printed
SEED_000_ROWS = {
    "MmCm": "Calls made to MmAllocateContiguousMemory , Binary: nt!mm",
    "NDpp": "packet pool , Binary: ndis.sys",
    "File": "File objects ",
    "abcd": "UNKNOWN pooltag 'abcd', please update pooltag.txt",
    "LSwi": "initial work context ",
}
SEED_001_ROWS = {
    "Leak": "UNKNOWN pooltag 'Leak', please update pooltag.txt",
    "CM31": "Internal Configuration manager allocations , Binary: nt!cm",
    "CIcr": "Code Integrity allocations for image integrity checking , Binary: ci.dll",
}


def test_poolused_seed_rows_in_our_words(builtin_db):
    """The seeds' layout (` , Binary: `, the trailing blank without a binary, the UNKNOWN
    line) with the built-in words."""
    rows = {
        "MmCm": "Memory manager: blocks handed out by its contiguous-memory allocator"
                " , Binary: nt!mm",
        "NDpp": "NDIS packet pools of protocol and miniport drivers , Binary: ndis.sys",
        "File": "FILE_OBJECT of an open file, device or pipe ",
        "abcd": SEED_000_ROWS["abcd"],
        "LSwi": "Work contexts the SMB1 server preallocates ",
        "Leak": SEED_001_ROWS["Leak"],
        "CM31": "Registry data: hive cells, key control blocks and the like , Binary: nt!cm",
        "CIcr": "Code integrity: state kept while image signatures are checked"
                " , Binary: ci.dll",
    }
    assert {t: poolused_description(builtin_db, t) for t in rows} == rows


def test_poolused_seed_rows_with_the_seeds_pooltag_file(tmp_path):
    """The seeds' exact words, from the real file as the seeds' debugger had it."""
    db = TagDatabase(seed_era_pooltag(tmp_path), environ={})
    rows = SEED_000_ROWS | SEED_001_ROWS
    assert {t: poolused_description(db, t) for t in rows} == rows


def test_poolused_unknown_quotes_tag_with_blanks_and_nuls(builtin_db):
    assert poolused_description(builtin_db, "Ggb") == \
        "Graphics (GDI) allocations of win32k "                             # via G???
    assert poolused_description(builtin_db, "AGP") == \
        "UNKNOWN pooltag 'AGP ', please update pooltag.txt"
    assert poolused_description(builtin_db, b"rx\0\0") == \
        "UNKNOWN pooltag '  rx', please update pooltag.txt"
    assert poolused_description(builtin_db, 0x6B61654C | 0x80000000) == \
        "UNKNOWN pooltag 'Leak', please update pooltag.txt"


def test_poolused_old_layout_docs_rows(real_db):
    """Verbatim rows of the docs' old-format sample whose tags the real file still describes the
    same way."""
    d = lambda tag: poolused_description(real_db, tag)   # noqa: E731
    assert old_row("1394", 1, 520, 0, 0, d("1394")) == \
        " 1394        1      520         0        0UNKNOWN pooltag '1394', please update pooltag.txt"
    assert old_row("AGP ", 1, 344, 2, 384, d("AGP ")) == \
        " AGP         1      344         2      384UNKNOWN pooltag 'AGP ', please update pooltag.txt"
    assert old_row("AcdN", 2, 1072, 0, 0, d("AcdN")) == \
        " AcdN        2     1072         0        0TDI AcdObjectInfoG "
    assert old_row("WmiG", 30, 6960, 0, 0, d("WmiG")) == \
        " WmiG       30     6960         0        0Allocation of WMIGUID "
    assert old_row("hSVD", 0, 0, 1, 40, d("hSVD")) == \
        " hSVD        0        0         1       40Shared Heap Tag , Binary: mrxdav.sys"
    assert old_row("ohci", 1, 136, 0, 0, d("ohci")) == \
        " ohci        1      136         0        01394 OHCI host controller driver "
    assert old_row("rx..", 3, 1248, 0, 0, d(b"rx\0\0")) == \
        " rx..        3     1248         0        0UNKNOWN pooltag '  rx', please update pooltag.txt"


def test_poolused_new_layout_rows(real_db):
    d = lambda tag: poolused_description(real_db, tag)   # noqa: E731
    assert new_row("EtwB", 128, 5041136, 4, 163840, d("EtwB")) == \
        " EtwB       128      5041136          4       163840\tEtw Buffer , Binary: nt!etw"
    assert new_row("CM31", 0, 0, 19797, 91705344, d("CM31")) == \
        " CM31         0            0      19797     91705344\t" \
        "Internal Configuration manager allocations , Binary: nt!cm"
    assert new_row("File", 9386, 3741536, 0, 0, d("File")) == \
        " File      9386      3741536          0            0\tFile objects "
    assert new_row("NtxF", 7350, 2704800, 0, 0, d("NtxF")) == \
        " NtxF      7350      2704800          0            0\tFCB_NONPAGED" \
        "                      NtfsFcbNonpagedDataLookasideList , Binary: ntfs.sys"
    assert new_row("amda", 5768754, 1938325232, 32, 9360, d("amda")) == \
        " amda   5768754   1938325232         32         9360\t" \
        "UNKNOWN pooltag 'amda', please update pooltag.txt"
    for tag, text in [("AmlH", "ACPI AMLI Pooltags "),
                      ("FMsl", "STREAM_LIST_CTRL structure , Binary: fltmgr.sys"),
                      ("Vad ", "Mm virtual address descriptors , Binary: nt!mm"),
                      ("Ntff", "FCB_DATA , Binary: ntfs.sys"),
                      ("MmSt", "Mm section object prototype ptes , Binary: nt!mm"),
                      ("IoWI", "Io work items , Binary: nt!io")]:
        assert d(tag) == text
