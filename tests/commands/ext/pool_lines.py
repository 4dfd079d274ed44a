"""The layout of every line the real `!pool` and `!poolfind` print (formats.md 4 and 7), as
fixed-column patterns, with verbatim lines of real transcripts that each pattern must accept.
test_pool.py and test_poolfind.py check the patterns against those lines, then our output on a
booted machine of each architecture against the patterns."""
from __future__ import annotations

import re


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
REAL_POOL = {
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
          " 91001040 size:   10 previous size:   40  (Free)       Mm  ",
          "*fffffa8016990000 size:  540 previous size:    0  (Allocated) *Thre",
          " fffffa8016990540 size:   30 previous size:  540  (Allocated)  AlSe",
          "*ffffbd06d46dffe0 size: 8020 previous size:    0  (Free)      *>.g."],
    DESCRIPTION: ["\t\tOwning component : Unknown (update pooltag.txt)",
                  "\t\tPooltag Even : Event objects",
                  "\t\tPooltag FMis : FLT_INSTANCE structure, Binary : fltmgr.sys"],
    LARGE: ["*ffff8287ad34f000 : large page allocation, tag is Proc, size is 0x1000 bytes",
            "*ffffc986cb6f2000 : large page allocation, tag is V2lg, size is 0x4000 bytes"],
}
REAL_POOLFIND = {
    FIND_ROW: ["826fa130 size:   c0 previous size:   40  (Allocated) SeSd",
               "82721c00 size:   10 previous size:   30  (Free)      SeSd"],
    FIND_LARGE: ["*fffff8a006a00000 :large page allocation, Tag  is Leak, size  is 0xfa000 bytes"],
    FIND_SCAN: ["Scanning large pool allocation table for Tag: Leak (fffffa8002e00000 : "
                "fffffa8002f80000)",
                "Scanning large pool allocation table for Tag: SeSd (827d1000 : 827e9000)"],
    FIND_SEARCH: ["Searching NonPaged pool (823b1000 : 82800000) for Tag: SeSd",
                  "Searching Paged pool (91000000 : 94400000) for Tag: SeSd"],
}
