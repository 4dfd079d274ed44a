"""The third seed case: a guided tour of the pool (seeds/002, OSR's "Windows Pool Manager").

A healthy Windows 7 x64 machine where one driver, DrvC, shows every kind of allocation the
article explains: a steady stream of small nonpaged blocks (served by the lookaside lists once
they are warm), one small paged block, and two buffers too big for a pool page, which have no
header and are found only through the big-page table.  The tour walks from `!vm` to the
headers, the tag bytes, the lookaside lists and the header checks; the question is which of
DrvC's tags is a large allocation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..pool import NONPAGED, PAGED
from ..population import NT_IO, populate
from ..workload import Pattern
from . import Lab, Phases, scenario

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine

BRIEFING = """\
A tour of the pool (seed case 3, Windows 7 SP1 x64, 2 processors)

A healthy machine, and one driver to follow: DrvC.sys allocates under three tags, all
starting with 'Cc'.  Walk through the pool the way the article "Windows Pool Manager" does:

  1. Paged and nonpaged pool: !vm shows how much of each is in use; !poolused 2 sorts the
     tags by nonpaged bytes, !poolused 4 by paged bytes.  Where does each DrvC tag live?
  2. Small allocations share pages: !poolfind TAG lists a tag's blocks (add 1 or -paged to
     search paged pool); !pool ADDRESS shows the whole page, one line per _POOL_HEADER.
  3. Headers: dt nt!_POOL_HEADER ADDRESS decodes one: the address !poolfind prints is the
     header itself, and the block's data starts 0x10 bytes after it (@$extret, in
     !poolfind -x); BlockSize counts 16-byte units.
  4. Tags and byte order: db on a header shows the tag's four characters in order; dd shows
     the same four bytes as one number, and a C source writes the constant reversed.
  5. Lookaside lists: !lookaside shows the per-size lists small frees go back to.
  6. Header checks: !poolval ADDRESS walks a page's headers the way the allocator checks
     them on every free.

One of DrvC's tags is too big for a pool page: its blocks have no header at all.  Which tag
is it?  Answer with .check TAG."""

HINTS = (
    "!poolused shows each tag's Allocs and Used bytes: Used divided by Allocs is the size of "
    "one block (with its header, for small ones).  A small block is at most a page minus its "
    "header.",
    "!poolfind marks what it finds in the large allocation table with ':large page "
    "allocation'; small blocks are listed with their size and previous size, as !pool shows "
    "them.  Try !poolfind Cc* to see all of DrvC's tags at once.",
    "Large allocations start on a page boundary and no _POOL_HEADER precedes them: !pool on "
    "one prints a single line, ': large page allocation, tag is ...', found in the large "
    "pool allocation table.  The tag whose blocks are listed that way is the answer.",
)

LAB = Lab(
    title="A tour of the pool",
    briefing=BRIEFING,
    hints=HINTS,
    answers=("CcBf",),
    question="the DrvC tag whose allocations are too big for a pool page",
    kind="tag", drivers=("DrvC", "DrvC.sys"), tags=("CcCc", "CcPg", "CcBf"),
    solution="tour.cmd",
)

DRIVER_FRAMES = ("nt!IofCallDriver+0x63", *NT_IO)
REQUEST_BYTES = 0xE0          # a lookaside size on both architectures
BUFFER_BYTES = 0x2400         # three pages: a large allocation
BUFFERS = 2
TOUR_TICKS = 30_000           # long enough for the lookaside lists to warm up


@scenario("tour", "Seed case 3: a guided tour of the pool; which of a driver's tags has no "
          "pool header?", arch="x64", lab=LAB)
def build(machine: "Machine", scale: float) -> Phases:
    yield from populate(machine, 0.6 * scale)
    requests = Pattern("DrvC", "CcCc", NONPAGED, (REQUEST_BYTES,), 60.0, 2.0,
                       ("DrvC+0x1044", *DRIVER_FRAMES))
    name = Pattern("DrvC", "CcPg", PAGED, (0x150,), None, 0.0,
                   ("DrvC+0x10d8", *DRIVER_FRAMES))
    buffers = Pattern("DrvC", "CcBf", NONPAGED, (BUFFER_BYTES,), None, 0.0,
                      ("DrvC+0x11a0", *DRIVER_FRAMES))
    workload = machine.workload
    # DrvC's start routine keeps a copy of its registry path and two transfer buffers
    for pattern, count in ((name, 1), (buffers, BUFFERS)):
        pattern.bind(machine)
        for _ in range(count):
            pattern.run(workload)
    workload.add(requests)
    yield "DrvC requests", TOUR_TICKS
