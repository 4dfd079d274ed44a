"""`!poolmap`: golden pictures of a small hand-built pool (both arches, `NO_COLOR`, 80 and 20
columns), the figures against `!vm` and `!poolused`, the first seed case's pinned pages against
its fixed variant, the overrun's smashed header and special pool's guard page, explain mode and
every kind of bad input."""
from __future__ import annotations

import json
import re

import pytest

from commands.ext.poolmap import pool_map
from commands.ext.vm import read_vm
from commands.glyphs import COLOURS, GLYPHS, MAP_ROW
from commands.poolcensus import NONPAGED_POOL, PAGED_POOL
from commands.render import colorize
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import PoolSettings
from kdsim.scenarios import boot


@pytest.fixture(autouse=True)
def _plain_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")


def build(arch: str) -> tuple[Machine, dict[str, int]]:
    """A page of eight Ntfx blocks, one half full, the first seed case's pattern (a free
    chunk, one small ReEv block, a free chunk: MmCm freed around it) and a large allocation."""
    m = Machine(get_arch(arch), 0, processors=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    pool, unit = m.pool, m.arch.block
    blocks = {"Ntfx": [pool.allocate(0, 0x200 - unit, tag_to_ulong("Ntfx")) for _ in range(8)][0],
              "Half": pool.allocate(0, 0x800 - unit, tag_to_ulong("Half")),
              "MmCm": pool.allocate(0, 0xF18 - 2 * unit, tag_to_ulong("MmCm"))}
    last = pool.allocate(0, 0x10, tag_to_ulong("ReEv"))
    blocks["ReEv"] = pool.allocate(0, 0x10, tag_to_ulong("ReEv"))
    pool.free(last)
    pool.free(blocks["MmCm"])
    blocks["Big"] = pool.allocate(0, 0x2000, tag_to_ulong("Big "))
    return m, blocks


def session_for(arch: str) -> tuple[Session, dict[str, int]]:
    m, blocks = build(arch)
    return Session(m.target()), blocks


X86_MAP = """\
NonPaged pool: 52 pages in use (208 Kb), in address order; 1 cell = 1 page
  in use: 206872 bytes (what !poolused counts)
  free: 6120 bytes inside these pages
  pinned: 1 page (1.9 %)

84400000  LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL#+pLL

Legend: . under 1/4 of the page in use  : 1/4 to 1/2  + 1/2 to 3/4
        # 3/4 or more
        p pinned: at most 1/8 of the page (0x200 bytes) in use, in at most 4
          blocks
        L large allocation  ! headers that do not chain to the page end
Pinned pages hold blocks of: ReEv 1 (pages each)
"""

X86_TAG_MAP = """\
NonPaged pool: 52 pages in use (208 Kb), in address order; 1 cell = 1 page
  in use: 206872 bytes (what !poolused counts)
  free: 6120 bytes inside these pages
  pinned: 1 page (1.9 %)
  tag ReEv: 24 bytes in use on 1 page, shown @

84400000  LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL#+@LL

Legend: . under 1/4 of the page in use  : 1/4 to 1/2  + 1/2 to 3/4
        # 3/4 or more
        p pinned: at most 1/8 of the page (0x200 bytes) in use, in at most 4
          blocks
        L large allocation  ! headers that do not chain to the page end
        @ holds a block of the tag
Pinned pages hold blocks of: ReEv 1 (pages each)
"""

X86_PAGE = """\
Pool page 84431000 (Nonpaged pool), block by block: 1 cell = 8 bytes, 0x200
  bytes a row

  0  (...............................................................
     free
200  ................................................................
400  ................................................................
600  ................................................................
800  ................................................................
a00  ................................................................
c00  ................................................................
e00  ..........................................................[**(..
                                                               *ReEv

84431fd8 is 0x0 bytes into the data of the block at 84431fd0 (ReEv)
In use 0x18 bytes, free 0xfe8; pinned (at most 1/8 of the page (0x200 bytes) in
  use, in at most 4 blocks)
Legend: [ header of a block in use  * the block holding the address
        ( header of a free chunk  . free bytes
"""

X64_MAP = """\
NonPaged pool: 68 pages in use (272 Kb), in address order; 1 cell = 1 page
  in use: 272416 bytes (what !poolused counts)
  free: 6112 bytes inside these pages
  pinned: 1 page (1.5 %)

fffffa8000c00000  LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL
fffffa8000c38000  LLLLLLL#+pLL

Legend: . under 1/4 of the page in use  : 1/4 to 1/2  + 1/2 to 3/4
        # 3/4 or more
        p pinned: at most 1/8 of the page (0x200 bytes) in use, in at most 4
          blocks
        L large allocation  ! headers that do not chain to the page end
Pinned pages hold blocks of: ReEv 1 (pages each)
"""

X64_TAG_MAP = """\
NonPaged pool: 68 pages in use (272 Kb), in address order; 1 cell = 1 page
  in use: 272416 bytes (what !poolused counts)
  free: 6112 bytes inside these pages
  pinned: 1 page (1.5 %)
  tag ReEv: 32 bytes in use on 1 page, shown @

fffffa8000c00000  LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL
fffffa8000c38000  LLLLLLL#+@LL

Legend: . under 1/4 of the page in use  : 1/4 to 1/2  + 1/2 to 3/4
        # 3/4 or more
        p pinned: at most 1/8 of the page (0x200 bytes) in use, in at most 4
          blocks
        L large allocation  ! headers that do not chain to the page end
        @ holds a block of the tag
Pinned pages hold blocks of: ReEv 1 (pages each)
"""

X64_PAGE = """\
Pool page fffffa8000c41000 (Nonpaged pool), block by block: 1 cell = 16 bytes,
  0x400 bytes a row

  0  (...............................................................
     free
400  ................................................................
800  ................................................................
c00  ............................................................[*(.
                                                                 *ReEv

fffffa8000c41fd0 is 0x0 bytes into the data of the block at fffffa8000c41fc0
  (ReEv)
In use 0x20 bytes, free 0xfe0; pinned (at most 1/8 of the page (0x200 bytes) in
  use, in at most 4 blocks)
Legend: [ header of a block in use  * the block holding the address
        ( header of a free chunk  . free bytes
"""


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_golden_pictures(arch: str) -> None:
    session, blocks = session_for(arch)
    golden = {name: value for name, value in globals().items()
              if name.startswith(arch.upper() + "_")}
    assert run(session, "!poolmap") == golden[f"{arch.upper()}_MAP"]
    assert run(session, "!poolmap nonpaged") == golden[f"{arch.upper()}_MAP"]
    assert run(session, "!poolmap NonPaged ReEv") == golden[f"{arch.upper()}_TAG_MAP"]
    assert run(session, f"!poolmap {blocks['ReEv']:x}") == golden[f"{arch.upper()}_PAGE"]


X64_NARROW_PAGE_START = """\
Pool page
  fffffa8000c41000
  (Nonpaged pool),
  block by block: 1
  cell = 16 bytes,
  0x100 bytes a row

(...............
free
................
"""


def test_a_terminal_20_columns_wide_gets_a_narrower_picture(monkeypatch) -> None:
    """Rows lose their addresses, prose and legend wrap; nothing is wider than the terminal."""
    monkeypatch.setenv("COLUMNS", "20")
    session, blocks = session_for("x64")
    page = run(session, f"!poolmap {blocks['ReEv']:x}")
    assert page.startswith(X64_NARROW_PAGE_START)
    assert "............[*(.\n            *ReEv\n" in page
    pool = run(session, "!poolmap NonPaged ReEv")
    assert "LLLLLLLLLLLLLLL#\n+@LL\n" in pool
    for text in (page, pool):
        assert max(len(line) for line in text.splitlines()) <= 20


def test_explain_says_what_holds_each_free_chunk_and_pins_the_page() -> None:
    session, blocks = session_for("x86")
    plain = run(session, f"!poolmap {blocks['ReEv']:x}")
    run(session, ".settings set explain=on")
    explained = run(session, f"!poolmap {blocks['ReEv']:x}")
    assert explained.startswith(plain)
    assert explained[len(plain):] == (
        "    -- page 84431000: 0x18 of 0x1000 bytes in use (0 %) by 1 block, 0xfe8 free in 2 "
        "chunks\n"
        "    -- pinned (at most 1/8 of the page (0x200 bytes) in use, in at most 4 blocks): the "
        "page goes back to the pool only when these are freed: ReEv at 84431fd0\n"
        "    -- free: on ListHeads[505] of nt!NonPagedPoolDescriptor (entry 1 of 1), the list "
        "of free 0xfd0-byte chunks; an allocation of up to 0xfc8 bytes may be cut from it\n"
        "    -- free: on ListHeads[2] of nt!NonPagedPoolDescriptor (entry 1 of 1), the list of "
        "free 0x18-byte chunks; an allocation of up to 0x10 bytes may be cut from it\n")
    notes = run(session, "!poolmap").splitlines()[-2:]
    assert notes == [
        "    -- !vm counts the pool's pages (52 pages = 212992 bytes) and !poolused the bytes "
        "in use (206872): the difference, 6120 bytes, is free space inside pages the pool keeps",
        "    -- a page goes back to the memory manager only when its last block is freed: the "
        "1 pinned page keep 4072 bytes free that only small requests can use"]


# -- the figures --------------------------------------------------------------------------------
def _figures(text: str) -> tuple[int, int, int, float]:
    """(pages, bytes in use, pinned pages, pinned %) as the map's head prints them."""
    head = " ".join(text.split("\n\n")[0].split())
    pages = int(re.search(r"pool: (\d+) pages in use", head)[1])
    used = int(re.search(r"in use: (\d+) bytes", head)[1])
    pinned = re.search(r"pinned: (\d+) pages? \(([\d.]+) %\)", head)
    return pages, used, int(pinned[1]), float(pinned[2])


def _poolused_totals(session: Session) -> tuple[int, int]:
    total = run(session, "!poolused").splitlines()[-1].split()
    return int(total[2]), int(total[4])


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_pages_agree_with_vm_and_bytes_with_poolused(arch: str, booted) -> None:
    session = Session(booted(arch).target())
    vm = read_vm(session.target)
    nonpaged, paged = _poolused_totals(session)
    for pool, pages, used in (("NonPaged", vm.nonpaged_usage, nonpaged),
                              ("Paged", vm.paged_usage, paged)):
        assert _figures(run(session, f"!poolmap {pool}"))[:2] == (pages, used), pool


def test_fragmentation_pins_a_quarter_of_nonpaged_pool_and_whole_pages_do_not() -> None:
    """The first seed case at a fifth of its size: at least 25 % of nonpaged pages pinned, and
    at most 5 % once the driver asks for whole pages; the pages are `!vm`'s and, on the
    fragmented machine, the bytes are `!poolused`'s."""
    fragmented = Session(boot(seed=0, scenario="fragmentation", scale=0.2).target())
    pages, used, pinned, share = _figures(run(fragmented, "!poolmap NonPaged"))
    assert pages == read_vm(fragmented.target).nonpaged_usage
    assert used == _poolused_totals(fragmented)[0]
    assert pinned >= pages / 4 and share >= 25.0
    held = run(fragmented, "!poolmap").splitlines()[-1]
    assert held.startswith("Pinned pages hold blocks of: ReEv ")
    fixed = Session(boot(seed=0, scenario="fragmentation-pages", scale=0.2).target())
    pages, _, pinned, share = _figures(run(fixed, "!poolmap NonPaged"))
    assert pages == read_vm(fixed.target).nonpaged_usage
    assert pinned <= pages / 20 and share <= 5.0
    result = pool_map(fixed, PAGED_POOL, None)
    assert result.census.pool == PAGED_POOL
    assert pool_map(fixed, NONPAGED_POOL, "MmCm").tag_pages > 0


# -- corruption and special pool ------------------------------------------------------------------
def test_the_overrun_crash_page_marks_the_smashed_header() -> None:
    session = Session(boot(seed=1, scenario="overrun", scale=0.25).target())
    run(session, "g")
    stop = session.target.stop_state()
    assert stop is not None and stop.code == 0x19
    bad = stop.params[1]
    text = run(session, f"!poolmap {bad:x}")
    row = next(line for line in text.splitlines() if line.startswith(f"{bad & 0xFFF:3x}  "))
    assert row[5:] == "!" + "?" * 63
    lines = text.splitlines()
    assert lines[lines.index(row) + 1].strip() == "*bad header"
    words = " ".join(text.split())
    assert f"{bad:08x} is in the header that cannot be right, at {bad:08x}" in words
    assert f"Bad previous allocation size @{bad:08x}, last size was 40" in words
    run(session, ".settings set explain=on")
    explained = run(session, f"!poolmap {bad:x}")
    assert "repeat the last bytes of the block in front of it (DrvA at" in explained
    assert "wrote past its end" in explained


def test_overrun_special_shows_the_data_ending_at_the_guard_page() -> None:
    session = Session(boot(seed=0, scenario="overrun-special", scale=0.25).target())
    run(session, "g")
    stop = session.target.stop_state()
    assert stop is not None and stop.code == 0xD6
    fault = stop.params[0]
    text = run(session, f"!poolmap {fault:x}")
    lines = text.splitlines()
    last = next(i for i, line in enumerate(lines) if line.startswith(" e00  "))
    assert lines[last].endswith("=" * 40)                  # the data runs to the page end
    assert lines[last + 2] == "1000  *" + "X" * 63           # then the guard page, hit first
    assert lines[last + 3].strip() == "*guard page"
    assert "is in the guard page, 0x4 bytes past the end of the data (DrvA at" in " ".join(
        text.split())
    data_page = fault - 0x1000
    assert run(session, f"!poolmap {data_page + 0xf00:x}").count("*") > 10


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("line, message", [
    ("!poolmap 0", "00000000 is not a pool address: not in nonpaged, paged or special pool"),
    ("!poolmap 84431000+10000", "Pool page 84441000 could not be read: no pool uses it now "
                                "(a freed page)"),
    ("!poolmap NonPagd", "'NonPagd' is neither a pool (NonPaged, Paged, Session) nor an "
                         "address; to mark a tag: !poolmap NonPaged NonPagd"),
    ("!poolmap Paged Toolong", "'Toolong' is not a pool tag: up to four characters, * and ? "
                               "as wildcards"),
    # the control character is printed escaped, as everything the session prints (sanitize.py)
    ("!poolmap Paged Ab\x01", "'Ab\\x01' is not a pool tag: up to four characters, * and ? as "
                              "wildcards"),
    ("!poolmap Paged A B", "Usage: !poolmap [NonPaged|Paged|Session] [Tag] | Address"),
    ("!poolmap Session", "Session pool: this machine models no session space, so there is no "
                         "session pool to map"),
    ("!poolmap b0000000", "Special pool page b0000000 could not be read: no special allocation "
                          "is on it or beside it (a freed pair)"),
])
def test_bad_input_is_one_line(line: str, message: str) -> None:
    session, _ = session_for("x86")
    assert run(session, line) == message + "\n"


def test_a_tag_pattern_with_wildcards_is_a_tag() -> None:
    session, _ = session_for("x86")
    assert "tag Re*: 24 bytes in use on 1 page" in run(session, "!poolmap NonPaged Re*")
    assert "tag Ntfx: 4096 bytes in use on 1 page" in run(session, '!poolmap NonPaged "Ntfx"')


def test_json_holds_every_page() -> None:
    session, _ = session_for("x86")
    run(session, ".output json")
    data = json.loads(run(session, "!poolmap NonPaged ReEv"))
    assert len(data["census"]["pages"]) == 52
    assert data["tag_pages"] == 1 and data["holders"] == {"ReEv": 1}


# -- colour ---------------------------------------------------------------------------------------
def test_colour_paints_cells_and_never_moves_a_column() -> None:
    assert len({g.char for g in GLYPHS}) == len(COLOURS)
    assert all(COLOURS[g.char] == g.colour for g in GLYPHS)
    row = "84400000  LLLL#+p."
    assert MAP_ROW.match(row)
    painted = colorize(row + "\n")
    assert painted != row + "\n"
    assert re.sub(r"\x1b\[[\d;]*m", "", painted) == row + "\n"
    assert COLOURS["p"] in painted
