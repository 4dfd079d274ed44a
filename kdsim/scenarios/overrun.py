"""The fourth seed case: an overrun, the innocent driver it gets blamed on, and special pool
(seeds/003, "What's So Special About The Pool?").

Three drivers on one I/O path each take ~500-byte nonpaged buffers for every request.  On
Windows 7 a pool page is carved from its end, so the requests come in the order C, A, C, B, A
for the page to read A, B, C, A, C from the bottom up, as in the article's picture: each of
A's second buffers ends where one of B's begins.  B finishes its requests quickly, C keeps
its buffers a while, A longer.  Once in a while DrvA copies 600 bytes into its 500-byte
buffer (kdsim/drivers.py): nothing stops it, the bytes land on the next block's header, and
the machine only notices when that header is next checked, usually when DrvB frees its
buffer.  With special pool on DrvA (`overrun-special`, or `.verifier /flags 0x1 /driver
DrvA.sys` then `.reboot`) the same copy runs into a guard page and the machine stops at
DrvA's store.

Why Python and not a lab file: the three drivers serve one request together, in an order that
lays their buffers out as the article's picture shows (`Request`); a lab file's drivers each
run on their own turns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..drivers import Overrun
from ..modules import seed_modules
from ..pool import NONPAGED
from ..population import NT_IO, populate
from ..workload import Pattern
from . import Lab, Phases, scenario

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine
    from ..workload import Workload

BRIEFING = """\
The innocent driver (seed case 4, Windows 7 SP1 x86, 2 processors)

This machine has three third-party drivers on the same I/O path, DrvA.sys, DrvB.sys and
DrvC.sys, and each takes a buffer of about 500 bytes of nonpaged pool for every request
(tags DrvA, BBBB and CcCc).  Users say it crashes every few minutes.

Let it run (g) until it stops, then read the analysis (!analyze -v): which driver does it
blame?  Is that driver really the one at fault?  Look at the pool page the bug check names
(!pool ADDRESS, db ADDRESS) and at the block in front of the damaged header.

To catch the culprit in the act, turn on special pool for the driver you suspect
(.verifier /flags 0x1 /driver NAME.sys), reboot (.reboot) and let it run again (g).

Which driver corrupts the pool?  Answer with .check DRIVER."""

HINTS = (
    "After g, !analyze -v names the driver whose call was running when the damage was "
    "found.  BAD_POOL_HEADER means the pool was already corrupt at the time of that request: "
    "the driver that trips over a damaged header is not necessarily the one that damaged it.",
    "!pool on the pool entry of the bug check (Arg2 of 0x19/0x20, or "
    "poi(nt!KiBugCheckData+8)) lists the page.  Which block sits right in front of the "
    "corrupt header, and whose is it?",
    "db a little before the corrupt header: the 8 header bytes were overwritten with the "
    "same bytes (46 = 'F') as the end of the block in front of it.  That block's owner wrote "
    "past its end.",
    "Special pool puts the suspect's buffer at the end of a page followed by a guard page: "
    ".verifier /flags 0x1 /driver DrvA.sys, .reboot, g.  The machine stops on the store that "
    "crosses into the guard page (0xD6), and !analyze -v names the real culprit.",
)

LAB = Lab(
    title="The innocent driver",
    briefing=BRIEFING,
    hints=HINTS,
    answers=("DrvA", "DrvA.sys"),
    question="the driver that corrupts the pool",
    solution="overrun.cmd",
    kind="driver", drivers=("DrvA", "DrvA.sys", "DrvB", "DrvB.sys", "DrvC", "DrvC.sys"),
    tags=("DrvA", "BBBB", "CcCc"),
)

SPECIAL_BRIEFING = """\
The innocent driver, caught (seed case 4, Windows 7 SP1 x86, 2 processors)

The same machine as the overrun lab: DrvA.sys, DrvB.sys and DrvC.sys each take a buffer of
about 500 bytes of nonpaged pool for every request (tags DrvA, BBBB and CcCc), and the
machine crashes every few minutes.  This time Driver Verifier's special pool is already on
for one of the drivers (.verifier shows the settings the machine booted with): a buffer in
special pool ends at a page followed by a no-access guard page.

Let it run (g) until it stops and read the analysis (!analyze -v): what was the faulting
instruction doing, and in which driver?  Compare with the crash the overrun lab shows.

Which driver corrupts the pool?  Answer with .check DRIVER."""

SPECIAL_HINTS = (
    "!analyze -v names the bug check: a page fault beyond the end of an allocation means a "
    "store ran past the end of a special pool buffer into its guard page.",
    "The faulting instruction's address (Arg3, and the stack's top frames) lies in the "
    "driver that made the store: that driver's buffer was too small for what it copied.",
)

SPECIAL_LAB = Lab(
    title="The innocent driver, caught",
    briefing=SPECIAL_BRIEFING,
    hints=SPECIAL_HINTS,
    answers=LAB.answers,
    question=LAB.question,
    solution="overrun-special.cmd",
    kind="driver", drivers=LAB.drivers, tags=LAB.tags,
)

IO_PATH = ("nt!IofCallDriver+0x63", *NT_IO)
BUFFER = 500                  # each driver's request buffer
COPIED = 600                  # what DrvA copies into it, now and then
EVERY = 400                   # DrvA's 400th buffer (a second one of a request) is overrun
QUIET = 0.2                   # the rest of the machine's traffic, relative to default
REQUEST_WEIGHT = 3.0          # requests: ~40% of the ticks
WARM_TICKS = 300              # requests before the lab opens: ~250 of DrvA's buffers, no overrun
SPECIAL_POOL_ON_A = "/flags 0x1 /driver DrvA.sys"
MODULES = seed_modules("DrvA", "DrvB", "DrvC")


@dataclass
class Request:
    """One I/O request on the drivers' path: each step takes its buffer, all in one tick."""

    steps: tuple[Callable[["Workload"], None], ...]
    weight: float

    def run(self, engine: "Workload") -> None:
        for step in self.steps:
            step(engine)


def drivers(machine: "Machine") -> Request:
    """DrvA (the culprit), DrvB (its victim) and DrvC on one request path."""
    a = Overrun("DrvA", "DrvA", BUFFER, COPIED, 0.0, ("DrvA+0x1a2b", *IO_PATH),
                store="DrvA+0x1c00", lifetime=20_000.0, every=EVERY)
    b = Pattern("DrvB", "BBBB", NONPAGED, (BUFFER,), 100.0, 0.0, ("DrvB+0x2c10", *IO_PATH))
    c = Pattern("DrvC", "CcCc", NONPAGED, (BUFFER,), 5_000.0, 0.0, ("DrvC+0x1044", *IO_PATH))
    b.bind(machine)
    c.bind(machine)
    # carved from a page's end, these five read A, B, C, A, C from the bottom up
    return Request((c.run, a.run, c.run, b.run, a.run), REQUEST_WEIGHT)


def build(machine: "Machine", scale: float) -> Phases:
    yield from populate(machine, 0.6 * scale)
    for activity in machine.workload.activities:
        activity.weight *= QUIET
    machine.workload.add(drivers(machine))
    yield "I/O requests", WARM_TICKS


scenario("overrun", "Seed case 4: three drivers, a crash every few minutes. Which driver "
         "corrupts the pool?", arch="x86", lab=LAB, modules=MODULES)(build)
scenario("overrun-special",
         "Seed case 4 with special pool already on: which driver corrupts the pool?",
         arch="x86", lab=SPECIAL_LAB, verifier=SPECIAL_POOL_ON_A, modules=MODULES)(build)
