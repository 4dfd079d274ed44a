"""`!poolfind`: exact text on hand-built machines, both syntaxes, wildcards, `-x`, ^C, and two
properties: the allocated blocks it reports are exactly the live blocks of the tag, and its
scan finds exactly the headers a slow decode of every block slot finds, corrupted pages and
tags at page ends included."""
from __future__ import annotations

import dataclasses
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commands.ext.poolfind as poolfind
from commands.ext.poolfind import TagScan, finder_of, parse_query
from commands.poolread import PoolHeader, PoolReader, row_text
from commands.registry import lookup
from commands.session import Session
from commands.sessions import current_session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import PAGE_SIZE, QUOTA, tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import PoolSettings
from pooltag import tag_matches
from tests.commands.ext.pool_lines import (
    DESCRIPTION, FIND_LARGE, FIND_ROW, FIND_SCAN, FIND_SEARCH, HEADER, LARGE, REAL_POOLFIND,
)
from tests.commands.ext.session_blocks import session_machine
from tests.support import billed_process, text

PROTECTED = 0x80000000
SETTINGS = PoolSettings(lookasides=False, deferred_frees=False)


def build(arch: str) -> tuple[Session, dict[str, int]]:
    """Leak blocks in both pools and two large ones; a freed Leak; decoy tag bytes inside an
    Mdl block, one of them where a header's tag would be."""
    m = Machine(get_arch(arch), 0, processors=1, settings=SETTINGS)
    pool, leak = m.pool, tag_to_ulong("Leak")
    b = {"np1": pool.allocate(0, 0x40, leak), "mdl": pool.allocate(0, 0x100, tag_to_ulong("Mdl ")),
         "freed": pool.allocate(0, 0x80, leak), "np2": pool.allocate(0, 0x20, leak),
         "paged": pool.allocate(1, 0x300, leak), "big_paged": pool.allocate(1, 0x3000, leak),
         "big_np": pool.allocate(0, 0x5000, leak | PROTECTED)}
    pool.free(b["freed"])
    target = m.target()
    target.write(b["mdl"] + 1, b"Leak")
    target.write(b["mdl"] + 0x14, b"Leak")
    return Session(target), b


@pytest.fixture(scope="module")
def x86() -> tuple[Session, dict[str, int]]:
    return build("x86")


@pytest.fixture(scope="module")
def x64() -> tuple[Session, dict[str, int]]:
    return build("x64")


X86_NONPAGED = """
Scanning large pool allocation table for Tag: Leak (84415000 : 84425000)

*91001000 :large page allocation, Tag  is Leak, size  is 0x3000 bytes
*84430000 :large page allocation, Tag  is Leak, size  is 0x5000 bytes

Searching NonPaged pool (84400000 : 8ae00000) for Tag: Leak

*8442f000 size:   48 previous size:    0  (Allocated) Leak
*8442fe48 size:   28 previous size:  e00  (Allocated) Leak
*8442fe70 size:   88 previous size:   28  (Free)      Leak

"""

X64_PAGED = """
Scanning large pool allocation table for Tag: Leak (fffffa8000c1b000 : fffffa8000c33000)

*fffffa8000c40000 :large page allocation, Tag  is Leak, size  is 0x5000 bytes
*fffff8a000001000 :large page allocation, Tag  is Leak, size  is 0x3000 bytes

Searching Paged pool (fffff8a000000000 : fffff8c000000000) for Tag: Leak

*fffff8a000000000 size:  310 previous size:    0  (Allocated) Leak

"""


def test_x86_nonpaged(x86):
    session, _ = x86
    assert run(session, "!poolfind Leak") == X86_NONPAGED
    assert run(session, "!poolfind Leak 0") == X86_NONPAGED


def test_x64_paged(x64):
    session, _ = x64
    assert run(session, "!poolfind Leak 1") == X64_PAGED
    assert run(session, "!poolfind -tag Leak -paged") == X64_PAGED


@pytest.mark.parametrize("tag", ["Le?k", "Lea?", "?eak", "L*", "Le*", "0x6b61654c", "L??k"])
def test_wildcards_and_tag_values_find_the_same_blocks(x86, tag):
    session, _ = x86
    out = run(session, f"!poolfind {tag}")
    assert out == X86_NONPAGED.replace("Tag: Leak", f"Tag: {tag if tag[0] != '0' else 'Leak'}")


def test_a_pattern_without_literals_walks_every_page(x86):
    session, _ = x86
    rows = [line for line in run(session, "!poolfind * -small").splitlines() if line]
    assert rows[0] == "Searching NonPaged pool (84400000 : 8ae00000) for Tag: *"
    assert "*8442fef8 size:  108 previous size:   88  (Allocated) Mdl " in rows
    assert sum(" Leak" in row for row in rows) == 3


def test_small_and_large_options(x86):
    session, _ = x86
    assert run(session, "!poolfind Leak -large") == X86_NONPAGED.split("\nSearching")[0] + "\n"
    small = run(session, "!poolfind -small Leak")
    assert small == "\n" + X86_NONPAGED[X86_NONPAGED.index("Searching"):]


def test_tag_with_a_space_and_a_protected_free_block():
    m = Machine(get_arch("x86"), 0, processors=1, settings=SETTINGS)
    keep = m.pool.allocate(0, 0x10, tag_to_ulong("AB C"))
    gone = m.pool.allocate(0, 0x38, tag_to_ulong("Even") | PROTECTED)
    m.pool.allocate(0, 0x38, tag_to_ulong("Even") | PROTECTED)
    m.pool.free(gone)
    session = Session(m.target())
    out = run(session, '!poolfind -tag "AB C"')
    assert f"*{keep - 8:08x} size:   18 previous size:    0  (Allocated) AB C\n" in out
    rows = [line for line in run(session, "!poolfind Even").splitlines() if line.startswith("*")]
    assert rows == [f"*{gone - 8 - 0x40:08x} size:   40 previous size:  f68  (Allocated) "
                    "Even (Protected)",
                    f"*{gone - 8:08x} size:   40 previous size:   40  (Free)      Eve."]


def test_x_runs_a_command_for_each_block(x86):
    session, b = x86
    out = run(session, '!poolfind -x "dd @$extret L1" Leak -small').splitlines()
    i = out.index("*8442f000 size:   48 previous size:    0  (Allocated) Leak")
    assert out[i + 1] == "8442f008  00000000"
    assert out[i + 3] == f"{b['np2']:08x}  00000000"


@pytest.mark.parametrize("args", ["", "Abcde", "Leak 3", "Leak -bogus", "-tag", 'Leak -x',
                                  'Leak "unterminated'])
def test_bad_arguments_print_the_usage(x86, args):
    session, _ = x86
    out = run(session, f"!poolfind {args}")
    assert out.startswith("!poolfind TagString|TagValue [PoolType]\n")


def test_session_pool_has_nothing_to_search(x86):
    session, _ = x86
    assert run(session, "!poolfind Leak 4") == X86_NONPAGED.split("\nSearching")[0] + "\n"


@pytest.mark.parametrize("tag", ["Leak", "L?ak", "Le*", "*"])
def test_ctrl_c_stops_the_scan(x86, monkeypatch, tag):
    """Whether the pages are searched for the tag (exactly or checking each tag found) or
    walked, what was found before ^C is printed, and the page reached."""
    session, _ = x86
    real = PoolReader.pages

    def interrupted(self, start, end):
        for page, data in real(self, start, end):
            if page > 0x8442F000:
                raise KeyboardInterrupt
            yield page, data

    monkeypatch.setattr(PoolReader, "pages", interrupted)
    out = run(session, f"!poolfind {tag} -small")
    assert out.endswith("*8442fe70 size:   88 previous size:   28  (Free)      Leak\n\n"
                        "...terminating - searched pool to 8442f000\n"
                        if tag != "*" else "...terminating - searched pool to 8442f000\n")
    assert sum(line.startswith("*") and line.endswith(" Leak") for line in out.split("\n")) == 3


def test_slices_of_the_scan_print_the_same_rows_and_stop_the_same_on_ctrl_c(x86, monkeypatch):
    session, _ = x86
    monkeypatch.setattr(poolfind, "SCAN_PAGES", 1)
    assert run(session, "!poolfind Leak") == X86_NONPAGED
    test_ctrl_c_stops_the_scan(x86, monkeypatch, "Leak")


def test_the_pool_is_scanned_as_its_rows_are_printed(x86, monkeypatch):
    """A slice is scanned when the renderer asks for its rows, not before."""
    session, _ = x86
    monkeypatch.setattr(poolfind, "SCAN_PAGES", 1)
    scanned: list[int] = []
    real = TagScan.run

    def spy(self):
        scanned.append(self.start)
        real(self)

    monkeypatch.setattr(TagScan, "run", spy)
    result = lookup("!poolfind").func(session, "Leak -small")
    assert scanned == []
    rows = iter(result.searches[0].headers)
    assert next(rows).address == 0x8442F000
    assert scanned[-1] == 0x8442F000 and len(scanned) < 0x30 + 1
    assert [h.address for h in rows] == [0x8442FE48, 0x8442FE70]


@given(st.lists(st.tuples(st.integers(0, 8), st.integers(1, 12)), max_size=8),
       st.integers(1, 5))
def test_slices_cover_every_readable_page_once(gaps_and_runs, pages):
    class Reader:
        def valid_runs(self, start, end):
            return iter(runs)

    runs, va = [], 0x10000
    for gap, length in gaps_and_runs:
        va += gap * 0x1000
        runs.append((va, length * 0x1000))
        va += length * 0x1000
    readable = {a for run, size in runs for a in range(run, run + size, 0x1000)}
    poolfind.SCAN_PAGES, saved = pages, poolfind.SCAN_PAGES
    try:
        slices = list(poolfind._slices(Reader(), 0x10000, va + 0x5000))
    finally:
        poolfind.SCAN_PAGES = saved
    covered = [a for lo, hi in slices for a in sorted(readable) if lo <= a < hi]
    assert covered == sorted(readable)
    assert all(len([a for a in readable if lo <= a < hi]) <= pages for lo, hi in slices)
    assert all(a[1] <= b[0] for a, b in zip(slices, slices[1:]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["x86", "x64"]),
       ops=st.lists(st.tuples(st.booleans(), st.sampled_from(["Leak", "Irp ", "Proc"]),
                              st.integers(1, 0xF00), st.booleans()), min_size=1, max_size=60))
def test_reports_exactly_the_live_blocks(arch, ops):
    m = Machine(get_arch(arch), 0, processors=1, settings=SETTINGS)
    live: dict[int, str] = {}
    for paged, tag, size, free_one in ops:
        address = m.pool.allocate(int(paged), size, tag_to_ulong(tag))
        live[address] = tag
        if free_one and len(live) > 1:
            victim = sorted(live)[size % len(live)]
            m.pool.free(victim)
            del live[victim]
    session = Session(m.target())
    header = m.arch.block
    for pool in (0, 1):
        out = run(session, f"!poolfind Leak {pool} -small")
        found = {int(line[1:line.index(" ")], 16) + header for line in out.splitlines()
                 if "(Allocated)" in line}
        small = {a for a, t in live.items() if t == "Leak" and a & 0xFFF
                 and (m.mm.paged.contains(a) == bool(pool))}
        assert found == small


def test_special_pool_search():
    m = Machine(get_arch("x64"), 0, processors=1, verifier="/flags 1 /driver myfault.sys")
    m.verifier.special.allocate(False, 0x4F0, tag_to_ulong("Scbf"))
    m.verifier.special.allocate(True, 0x3C, tag_to_ulong("Leak"))
    out = run(Session(m.target()), "!poolfind Leak 2")
    assert out.split("\n")[3:] == [
        "Searching Special pool (fffff98000000000 : fffff98008000000) for Tag: Leak", "",
        "*fffff98000002000 size:   3c data: fffff98000002fc0 (Paged) Leak", "", ""]


# -- every line has the real layout (pool_lines.py), on a booted machine -------------------------
@pytest.mark.parametrize("pattern, line",
                         [(p, line) for p, lines in REAL_POOLFIND.items() for line in lines])
def test_patterns_accept_the_real_lines(pattern, line):
    assert pattern.match(line)


@pytest.fixture(scope="module", params=["x86", "x64"])
def session(request, booted) -> Session:
    return Session(booted(request.param).target())


@pytest.mark.parametrize("tag, pool", [("Even", 0), ("CM*", 1), ("Toke", 1)])
def test_every_line_of_poolfind_has_the_real_layout(session, tag, pool):
    lines = run(session, f"!poolfind {tag} {pool}").splitlines()
    assert lines[0] == "" and FIND_SCAN.match(lines[1]) and lines[2] == ""
    body = [line for line in lines[3:] if line]
    at = next(i for i, line in enumerate(body) if not FIND_LARGE.match(line))  # large first
    assert FIND_SEARCH.match(body[at])
    hits = body[:at] + body[at + 1:]
    assert hits and all(FIND_ROW.match(line) or FIND_LARGE.match(line) for line in hits), hits


def test_big_allocations_print_the_seed_line(session):
    lines = run(session, "!poolfind * -large").splitlines()
    large = [line for line in lines if line.startswith("*")]
    assert large and all(FIND_LARGE.match(line) for line in large)
    va = int(large[0][1:large[0].index(" ")], 16)
    out = run(session, f"!pool {va + 0x20:x}").splitlines()
    assert HEADER.match(out[0]) and LARGE.match(out[1]) and DESCRIPTION.match(out[2])


# -- the scan against a slow decode of every block slot ---------------------------------------
def slow_find(reader: PoolReader, start: int, end: int, pattern: str) -> list[PoolHeader]:
    """Every block-aligned slot of every page decoded on its own and kept where the rule of
    PoolReader.find_headers holds: a size inside the page, a PreviousSize of 0 exactly at the
    page start and otherwise the BlockSize of the header it points back to, a next header
    whose PreviousSize is this BlockSize; and the tag, protected bit stripped, matches."""
    unit, found = reader.unit, []
    for page, data in reader.pages(start, end):
        slots = [reader.decode(data, off, page + off) for off in range(0, PAGE_SIZE, unit)]
        for i, h in enumerate(slots):
            nxt, back = i + h.block_size, i - h.previous_size
            if not h.block_size or nxt > len(slots):
                continue
            if not (back >= 0 and slots[back].block_size == h.previous_size
                    if h.previous_size else i == 0):
                continue
            if nxt < len(slots) and slots[nxt].previous_size != h.block_size:
                continue
            if tag_matches(pattern, h.tag & ~PROTECTED):
                found.append(h)
    return found


def _check(session: Session, pattern: str, pool: int) -> list[PoolHeader]:
    """`!poolfind` prints and JSON holds exactly the headers slow_find finds; those."""
    reader = PoolReader(session.target)
    ranges = reader.ranges()
    expected = slow_find(reader, *(ranges.paged if pool else ranges.nonpaged),
                         parse_query(pattern).pattern)
    out = run(session, f"!poolfind {pattern} {pool} -small")
    arch = session.target.arch
    assert [line for line in out.splitlines() if line.startswith("*")] == \
        [row_text(arch, h, "*", "") for h in expected]
    run(session, ".output json")
    try:
        data = json.loads(run(session, f"!poolfind {pattern} {pool} -small"))
    finally:
        run(session, ".output text")
    assert data["searches"][0]["headers"] == [dataclasses.asdict(h) for h in expected]
    return expected


TAGS = ["Leak", "LeaL", "eakL", "LLLL", "Irp ", "L\x00ak"]
PATTERNS = ["Leak", "Lea?", "L?ak", "?eak", "??ak", "LL", "LLLL", "Le*", "L*k", "Irp", "I?p",
            "0x6b61654c", "0x4c4c4c4c"]


HEADER_WORDS = struct.Struct("<II")
# A run of headers written into a pool page: (paged, which page, first slot, blocks as
# (BlockSize, tag, protected, PoolType), which of them to spoil, by how much (0: none)).
CHAINS = st.tuples(st.integers(0, 1), st.integers(0, 1 << 20), st.integers(0, 511),
                   st.lists(st.tuples(st.integers(1, 4), st.sampled_from(TAGS), st.booleans(),
                                      st.sampled_from([0, 1, 2, 1 | QUOTA])),
                            min_size=1, max_size=6),
                   st.integers(0, 5), st.integers(-2, 2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["x86", "x64"]),
       ops=st.lists(st.tuples(st.integers(0, 1), st.sampled_from(TAGS), st.integers(1, 0xF00),
                              st.booleans(), st.booleans(), st.booleans()),
                    min_size=1, max_size=30),
       chains=st.lists(CHAINS, max_size=4),
       garbage=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1 << 20),
                                  st.integers(0, PAGE_SIZE - 1),
                                  st.sampled_from(TAGS) | st.binary(min_size=1, max_size=4)),
                        max_size=4),
       pattern=st.sampled_from(PATTERNS))
def test_the_scan_finds_what_a_slow_decode_finds(arch, ops, chains, garbage, pattern):
    """Blocks of look-alike tags (shifted, self-overlapping, protected, quota); then runs of
    headers written over pool pages, one field of one of them spoilt, so each check of the
    rule fails somewhere, the last slot of a page included; then bytes anywhere."""
    m = Machine(get_arch(arch), 0, processors=1, settings=SETTINGS)
    live: list[int] = []
    owner = billed_process(m, 0x85070000)
    for paged, tag, size, protected, quota, free_one in ops:
        key = tag_to_ulong(tag) | (PROTECTED if protected else 0)
        live.append(m.pool.allocate(paged | (QUOTA if quota else 0), size, key,
                                    process=owner if quota else 0))
        if free_one and len(live) > 1:
            m.pool.free(live.pop(size % len(live)))
    target = m.target()
    reader = PoolReader(target)
    codec, unit, slots = target.profile.codec, reader.unit, PAGE_SIZE // reader.unit
    ranges = reader.ranges()
    pages = {pool: [page for page, _ in reader.pages(*span)]
             for pool, span in ((0, ranges.nonpaged), (1, ranges.paged))}
    for paged, which, slot, blocks, spoil, delta in chains:
        if not pages[paged]:
            continue
        page, slot = pages[paged][which % len(pages[paged])], slot % slots
        prev = 0 if slot == 0 else blocks[0][0]
        for i, (bs, tag, protected, ptype) in enumerate(blocks):
            if slot + bs > slots:
                break
            fields = [prev, bs]
            if i == spoil % len(blocks):
                fields[delta % 2] = max(fields[delta % 2] + delta, 0)
            target.write(page + slot * unit,
                         HEADER_WORDS.pack(codec.pack(fields[0], 0, fields[1], ptype),
                                     tag_to_ulong(tag) | (PROTECTED if protected else 0)))
            prev, slot = bs, slot + bs
    for paged, which, offset, raw in garbage:
        if pages[paged]:
            data = raw.encode("latin-1") if isinstance(raw, str) else raw
            page = pages[paged][which % len(pages[paged])]
            target.write(page + min(offset, PAGE_SIZE - len(data)), data)
    session = Session(target)
    for pool in (0, 1):
        found = _check(session, pattern, pool)
        if not chains and not garbage:    # healthy pages: the slot rule is the page walk
            span = ranges.paged if pool else ranges.nonpaged
            tag = parse_query(pattern).pattern
            assert found == [h for page, data in reader.pages(*span)
                             for h in reader.walk(page, data).headers
                             if tag_matches(tag, h.tag & ~PROTECTED)]


def _page_of(m: Machine) -> int:
    """A nonpaged pool page of its own, for hand-written headers."""
    return m.pool.allocate(0, 0xF00, tag_to_ulong("Pad ")) & ~(PAGE_SIZE - 1)


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_tag_in_the_last_bytes_of_a_page(arch):
    """A one-block header at the page end has its tag in the page's last four bytes; a tag
    there under a header its neighbours contradict is not a block."""
    m = Machine(get_arch(arch), 0, processors=1, settings=SETTINGS)
    codec, unit = m.target().profile.codec, m.arch.block
    good, bad = _page_of(m), _page_of(m)
    slots = PAGE_SIZE // unit
    header = struct.Struct("<II")
    for page, last_prev in ((good, slots - 1), (bad, slots - 2)):
        data = bytearray(PAGE_SIZE)
        header.pack_into(data, 0, codec.pack(0, 0, slots - 1, 1), tag_to_ulong("Mdl "))
        header.pack_into(data, PAGE_SIZE - unit, codec.pack(last_prev, 0, 1, 1),
                         tag_to_ulong("Leak") | PROTECTED)
        m.target().write(page, bytes(data))
    session = Session(m.target())
    found = _check(session, "Leak", 0)
    assert [h.address for h in found] == [good + PAGE_SIZE - unit]
    assert run(session, "!poolfind Leak -small").splitlines()[3] == \
        f"*{m.arch.fmt_ptr(good + PAGE_SIZE - unit)} size: {unit:4x} previous size: " \
        f"{PAGE_SIZE - unit:4x}  (Allocated) Leak (Protected)"


def test_a_tag_overlapping_a_false_match_is_found():
    """x64: PoolType 0x41 is an `A` just before the tag `AAAA`, so the bytes hold `AAAAA` and
    the first match, one byte early, overlaps the tag."""
    m = Machine(get_arch("x64"), 0, processors=1, settings=SETTINGS)
    codec, page = m.target().profile.codec, _page_of(m)
    data, slots = bytearray(PAGE_SIZE), PAGE_SIZE // 16
    struct.pack_into("<II", data, 0, codec.pack(0, 0, slots - 1, 0x41), tag_to_ulong("AAAA"))
    struct.pack_into("<II", data, PAGE_SIZE - 16, codec.pack(slots - 1, 0, 1, 0), 0)
    m.target().write(page, bytes(data))
    session = Session(m.target())
    for pattern in ("AAAA", "A?AA", "AA*"):
        assert [h.address for h in _check(session, pattern, 0)] == [page]


@pytest.mark.parametrize("pattern, offset, exact", [
    ("Leak", 4, True), ("?eak", 5, True), ("??ak", 6, True), ("???k", None, None),
    ("L*", 4, False), ("*ak", None, None), ("Le?*", 4, False), ("?e*", 5, False)])
def test_what_the_scan_searches_for(pattern, offset, exact):
    finder = finder_of(pattern)
    assert (None if finder is None else (finder.offset, finder.exact)) == \
        (None if offset is None else (offset, exact))


# -- session pool -------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_session_pool_searches_the_current_sessions_table_and_pages(arch):
    session, blocks = session_machine(arch)
    reader = PoolReader(session.target)
    current = current_session(session.target)
    assert current is not None and current.session_id == 1
    fmt = reader.arch.fmt_ptr
    table_end = current.big_table + current.big_entries * reader.layouts.big_page.sizeof()
    table = f"({fmt(current.big_table)} : {fmt(table_end)})"
    pool = f"({fmt(current.pool_start)} : {fmt(current.pool_end)})"
    usac = blocks["usac"] - reader.unit
    size = "108" if arch == "x86" else "110"
    assert run(session, "!poolfind Usac 4") == text(
        "", f"Scanning large pool allocation table for Tag: Usac {table}", "",
        f"Searching Session pool {pool} for Tag: Usac", "",
        f"*{fmt(usac)} size:  {size} previous size:    0  (Allocated) Usac", "")
    assert run(session, "!poolfind Gh05 -session") == text(
        "", f"Scanning large pool allocation table for Tag: Gh05 {table}", "",
        f"*{fmt(blocks['gh05'])} :large page allocation, Tag  is Gh05, size  is 0x2000 bytes",
        "", f"Searching Session pool {pool} for Tag: Gh05", "")
    # the system's pools know none of it
    assert "Usac" not in run(session, "!poolfind Usac 1").split("for Tag: Usac")[-1]
