"""The first seed case: pool fragmentation (seeds/000).

A driver (cmdrv.sys) uses MmAllocateContiguousMemory heavily for a while: each 0xF18-byte
`MmCm` block takes a fresh nonpaged page and leaves a 0xE8-byte remainder, where small
long-lived blocks (ReEv, MFE0) settle.  When the driver lets most of its blocks go, those
survivors keep their pages: `!vm` still counts the pages, `!poolused` only the bytes.  In the
variant the driver asks for whole pages, which leave no remainder, and the gap closes.
Nothing here writes memory: the gap is what the allocator makes of this traffic.

Why Python and not a lab file: the driver's habit changes during the boot (a load peak, then
quiet), and the background runs at the seed's own scale and settle time; a lab file has one
habit per entry for the whole boot.
"""
from __future__ import annotations

from ..modules import seed_modules
from ..pool import NONPAGED
from ..population import populate
from ..workload import Pattern
from . import Lab, Phases, scenario

BRIEFING = """\
Pool fragmentation (seed case 1, Windows 7 SP1 x86, 4 processors)

The support case: a server has been up for weeks and nonpaged pool keeps growing, but no
driver seems to own that much of it.  You have a kernel debugger on the machine.

Compare what the memory manager says nonpaged pool holds (!vm) with what the pool tags
account for (!poolused 2).  If the two disagree, find out where the difference lives: look
at the pages themselves (!pool) and at which tag keeps asking for almost a whole page.

When you know which tag's allocation habit fragments the pool, answer with .check TAG."""

HINTS = (
    "Start with !vm: note NonPagedPool Usage.  Then !poolused /t5 2 and its TOTAL line: the "
    "NonPaged Used column is in bytes, !vm's figure is in pages (4 KB each).",
    "A gap between the two means pages that are held but mostly free.  !poolfind ReEv 0 "
    "lists small blocks; pick one and run !pool on its address.",
    "Pages with one small allocated block between (or after) large free chunks cannot be "
    "returned: one live block pins the whole page.  Which request size needs a page of its own "
    "and leaves a small remainder?  Look at the sizes in !poolfind MmCm 0.",
    "MmCm blocks are 0xF18 bytes: each takes a fresh page and leaves 0xE8 bytes behind, where "
    "small long-lived blocks settle.  When MmCm is freed, the page stays.  The answer is MmCm; "
    "compare with `kdsim --scenario fragmentation-pages`, where the driver asks for whole pages.",
)

LAB = Lab(
    title="Pool fragmentation",
    briefing=BRIEFING,
    hints=HINTS,
    answers=("MmCm",),
    question="the tag whose allocation size fragments nonpaged pool",
    solution="fragmentation.cmd",
    kind="tag", drivers=("cmdrv", "cmdrv.sys"), tags=("MmCm", "ReEv", "MFE0", "NtFs"),
)

PAGES_BRIEFING = """\
Pool fragmentation, the fix (seed case 1, Windows 7 SP1 x86, 4 processors)

The same server as the fragmentation lab, after the driver's vendor shipped an update: the
driver now asks the memory manager for a different size of block during its load peaks.

Compare what the memory manager says nonpaged pool holds (!vm) with what the pool tags
account for (!poolused 2), as in the fragmentation lab.  Does the gap remain?  Which tag's
blocks changed size, and to what?

Answer with .check TAG: the tag whose allocation habit the update changed."""

PAGES_HINTS = (
    "!vm's NonPagedPool Usage is in pages, !poolused's TOTAL in bytes: divide by 0x1000 "
    "before comparing.",
    "!poolused 2 sorts by nonpaged bytes: the tag at the top during a load peak is the "
    "driver's.  !poolfind TAG 0 shows its block sizes: compare them with a page.",
)

PAGES_LAB = Lab(
    title="Pool fragmentation, the fix",
    briefing=PAGES_BRIEFING,
    hints=PAGES_HINTS,
    answers=LAB.answers,
    question="the tag whose allocation habit the update changed",
    solution="fragmentation-pages.cmd",
    kind="tag", drivers=LAB.drivers, tags=LAB.tags,
)

# The seed's scale: ~240,000 live nonpaged and ~200,000 live paged blocks at scale 1.
BACKGROUND_SCALE = 2.3
PEAK_TICKS = 100_000
AFTER_TICKS = 100_000
LIFETIME = 30_000              # ticks an MmCm block lives, at scale 1
PEAK_WEIGHT = 16.0             # how busy the driver is during its load peak
SURVIVORS = 1.6                # how often small long-lived blocks are allocated
MODULES = seed_modules("cmdrv")


def _build(machine, scale: float, whole_pages: bool) -> Phases:
    yield from populate(machine, BACKGROUND_SCALE * scale, settle=2000, traffic_share=0.1)
    for activity in machine.workload.activities:       # a quiet server: little other traffic
        activity.weight *= 0.2
    size = 0x1000 if whole_pages else 0xF18 - machine.arch.block
    lifetime = LIFETIME * scale
    contiguous = Pattern("cmdrv", "MmCm", NONPAGED, (size,), lifetime, PEAK_WEIGHT,
                         ("cmdrv+0x1a2b", "nt!IofCallDriver+0x63", "nt!IopXxxControlFile+0x607",
                          "nt!NtDeviceIoControlFile+0x56", "nt!KiSystemServiceCopyEnd+0x13"))
    machine.workload.add(
        contiguous,
        # small blocks that stay: they settle wherever a small chunk is free
        Pattern("nt", "ReEv", NONPAGED, (0x10, 0x30), None, 3.0 * SURVIVORS, ()),
        Pattern("Ntfs", "MFE0", NONPAGED, (0x10, 0x60, 0xA0), None, 2.0 * SURVIVORS, ()),
        Pattern("Ntfs", "NtFs", NONPAGED, (0x200, 0xA00), lifetime / 20, 4.0, (),
                size_range=True),
    )
    yield "load peak", int(PEAK_TICKS * scale)
    contiguous.weight = 1.0                # the load peak is over: the driver allocates less
    machine.workload.add()                 # (re-weigh the activities)
    yield "after the peak", int(AFTER_TICKS * scale)


@scenario("fragmentation", "Seed case 1: nonpaged pool grows, but no tag owns that much. "
          "Where is the gap?", arch="x86", lab=LAB, processors=4, modules=MODULES)
def build(machine, scale: float) -> Phases:
    return _build(machine, scale, whole_pages=False)


@scenario("fragmentation-pages",
          "Seed case 1 after the vendor's update: does the gap remain?",
          arch="x86", lab=PAGES_LAB, processors=4, modules=MODULES)
def build_pages(machine, scale: float) -> Phases:
    return _build(machine, scale, whole_pages=True)
