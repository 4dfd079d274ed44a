"""Every line `!pool` and `!poolfind` print on a booted machine has the layout of the real
debugger's lines (formats.md 4 and 7): fixed-column patterns, checked first against verbatim
lines of real transcripts, then against our output on both architectures."""
from __future__ import annotations

import re

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.scenarios import boot

ADDR = r"(?:[0-9a-f]{8}|[0-9a-f]{16})"
HEADER = re.compile(rf"^Pool page {ADDR} region is "
                    r"(?:Nonpaged pool|Paged pool|Special pool|Unknown)$")
# "%c%p size: %4x previous size: %4x  %-11s %c%-4s" + Win7-era suffixes
ROW = re.compile(rf"^(?P<m>[ *])(?P<addr>{ADDR}) size: (?P<size>[ 0-9a-f]{{3}}[0-9a-f]) "
                 r"previous size: (?P<prev>[ 0-9a-f]{3}[0-9a-f])  "
                 r"(?P<status>\(Allocated\)|\(Free\)     ) (?P<m2>[ *])(?P<tag>.{4})"
                 rf"(?P<suffix>(?: \(Protected\))?(?: Process: {ADDR})?)$")
DESCRIPTION = re.compile(r"^\t\t(?:Pooltag .{4} : .+"
                         r"|Owning component : Unknown \(update pooltag\.txt\))$")
LARGE = re.compile(rf"^\*{ADDR} : large page allocation, tag is .{{4}}, size is 0x[0-9a-f]+ bytes$")
# !poolfind (Win7-era): the row without the tag marker, the seed's large-allocation line
FIND_ROW = re.compile(rf"^\*?{ADDR} size: [ 0-9a-f]{{3}}[0-9a-f] previous size: [ 0-9a-f]{{3}}"
                      rf"[0-9a-f]  (?:\(Allocated\)|\(Free\)     ) .{{4}}(?: \(Protected\))?"
                      rf"(?: Process: {ADDR})?$")
FIND_LARGE = re.compile(rf"^\*{ADDR} :large page allocation, Tag  is .{{4}}, size  is "
                        r"0x[0-9a-f]+ bytes$")
FIND_SCAN = re.compile(rf"^Scanning large pool allocation table for Tag: \S+ \({ADDR} : {ADDR}\)$")
FIND_SEARCH = re.compile(rf"^Searching (?:NonPaged|Paged) pool \({ADDR} : {ADDR}\) for Tag: \S+$")

# Verbatim from real transcripts (formats.md 4.2, 4.3, 4.5, 7.2; seeds/002).
REAL = {
    HEADER: ["Pool page 85246430 region is Nonpaged pool",
             "Pool page 9655d468 region is Paged pool",
             "Pool page fffffa800d168b60 region is Nonpaged pool",
             "Pool page ffffc48068d7d000 region is Unknown",
             "Pool page ffffb98851f06b10 region is Special pool"],
    ROW: [" 85246000 size:   c8 previous size:    0  (Allocated)  Ntfx",
          " 852460c8 size:   10 previous size:   c8  (Free)       .PZH",
          " 85246118 size:   48 previous size:   20  (Allocated)  Vad ",
          " 85246160 size:   68 previous size:   48  (Allocated)  NpFn Process: 8507a030",
          "*85246428 size:  200 previous size:   b8  (Allocated) *Hack",
          " 85246b98 size:   b8 previous size:  1b8  (Allocated)  File (Protected)",
          "*8628a000 size:   40 previous size:    0  (Allocated) *Even (Protected)",
          " e1001040 size:   10 previous size:   40  (Free)       Mm  ",
          "*fffffa8016990000 size:  540 previous size:    0  (Allocated) *Thre",
          " fffffa8016990540 size:   30 previous size:  540  (Allocated)  AlSe",
          "*ffffbd06d46dffe0 size: 8020 previous size:    0  (Free)      *>.g."],
    DESCRIPTION: ["\t\tOwning component : Unknown (update pooltag.txt)",
                  "\t\tPooltag Even : Event objects",
                  "\t\tPooltag FMis : FLT_INSTANCE structure, Binary : fltmgr.sys"],
    LARGE: ["*ffff8287ad34f000 : large page allocation, tag is Proc, size is 0x1000 bytes",
            "*ffffc986cb6f2000 : large page allocation, tag is V2lg, size is 0x4000 bytes"],
    FIND_ROW: ["826fa130 size:   c0 previous size:   40  (Allocated) SeSd",
               "82721c00 size:   10 previous size:   30  (Free)      SeSd"],
    FIND_LARGE: ["*fffff8a006a00000 :large page allocation, Tag  is Leak, size  is 0xfa000 bytes"],
    FIND_SCAN: ["Scanning large pool allocation table for Tag: Leak (fffffa8002e00000 : "
                "fffffa8002f80000)",
                "Scanning large pool allocation table for Tag: SeSd (827d1000 : 827e9000)"],
    FIND_SEARCH: ["Searching NonPaged pool (823b1000 : 82800000) for Tag: SeSd",
                  "Searching Paged pool (e1000000 : e4400000) for Tag: SeSd"],
}


@pytest.mark.parametrize("pattern, line",
                         [(p, line) for p, lines in REAL.items() for line in lines])
def test_patterns_accept_the_real_lines(pattern, line):
    assert pattern.match(line)


@pytest.fixture(scope="module", params=["x86", "x64"])
def session(request) -> Session:
    return Session(boot(arch=request.param, seed=7).target())


def _find_rows(session: Session, tag: str, pool: int) -> list[str]:
    out = run(session, f"!poolfind {tag} {pool}")
    rows = [line for line in out.splitlines() if line.startswith("*")]
    assert rows, out
    return rows


@pytest.mark.parametrize("tag, pool", [("File", 0), ("Vad", 0), ("MmCa", 0), ("CM31", 1),
                                       ("Ntff", 1)])
def test_every_line_of_pool_has_the_real_layout(session, tag, pool):
    width = session.target.arch.hex_digits
    for row in _find_rows(session, tag, pool)[:12]:
        header = int(row[1:1 + width], 16)
        address = header + session.target.arch.block + 3
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


@pytest.mark.parametrize("tag, pool", [("Even", 0), ("CM*", 1), ("Toke", 1)])
def test_every_line_of_poolfind_has_the_real_layout(session, tag, pool):
    lines = run(session, f"!poolfind {tag} {pool}").splitlines()
    assert lines[0] == "" and FIND_SCAN.match(lines[1]) and lines[2] == ""
    body = [line for line in lines[3:] if line]
    assert FIND_SEARCH.match(body[0])
    hits = body[1:]
    assert hits and all(FIND_ROW.match(line) or FIND_LARGE.match(line) for line in hits), hits


def test_big_allocations_print_the_seed_line(session):
    lines = run(session, "!poolfind * -large").splitlines()
    large = [line for line in lines if line.startswith("*")]
    assert large and all(FIND_LARGE.match(line) for line in large)
    va = int(large[0][1:large[0].index(" ")], 16)
    out = run(session, f"!pool {va + 0x20:x}").splitlines()
    assert HEADER.match(out[0]) and LARGE.match(out[1]) and DESCRIPTION.match(out[2])
