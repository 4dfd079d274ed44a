"""The second seed case: who leaked this tag? (seeds/001, "Call Stacks for Pool Allocations").

Sysinternals' NotMyFault asks myfault.sys, through DeviceIoControl, to allocate 0xfa000 bytes
of paged pool tagged `Leak`, and never frees them.  Driver Verifier is on for myfault.sys
(`verifier /flags 0x9 /driver myfault.sys`: special pool and pool tracking), so every
allocation the driver makes is logged with its call stack in nt!VfPoolTraces, and every free
on the machine is logged too: the registry flushing hives frees one-page buffers all the time,
which is why the log can hold an older free of the address a `Leak` block now occupies.
`!poolused 4` puts `Leak` first, `!poolfind Leak` lists the large allocations, and
`!verifier 0x80 ADDRESS` shows myfault's stack.  `g` lets NotMyFault run on: the leak grows.
The last hint offers the advanced path: `!pooldiff` between two break-ins, and `!pooldiff
-stacks Leak` for the stacks that hold what grew (kdsim/scenarios/leak-pooldiff.cmd).

Why Python and not a lab file: the registry's flusher is the kernel's own traffic, with nt's
stacks, which a lab file's drivers cannot claim (a lab driver is never nt), and the leak is a
timer that fires every `LEAK_PERIOD`-th turn, not a rate a file's weight gives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..modules import seed_modules
from ..pool import PAGED
from ..population import populate
from ..workload import Pattern
from . import Lab, Phases, scenario

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine
    from ..workload import Workload

BRIEFING = """\
Who leaked this tag? (seed case 2, Windows 7 SP1 x64, 2 processors)

Paged pool on this machine keeps growing.  Driver Verifier was turned on for the driver you
suspect, and the machine rebooted (verifier /flags 0x9 /driver myfault.sys), so the kernel
now keeps a log of that driver's pool allocations with their call stacks.

Find the tag that holds the most paged pool (!poolused 4), list its allocations
(!poolfind TAG), and ask the verifier's log who allocated one of them
(!verifier 0x80 ADDRESS).  The most recent record is at the top.  On a live machine you can
let it run (g) and check back later: are the blocks still there, are there more?

Which driver is leaking?  Answer with .check DRIVER."""

HINTS = (
    "!poolused 4 sorts the tags by paged pool bytes.  The top tag has few allocations, but "
    "each is almost a megabyte.",
    "Blocks that big have no pool header: they are large page allocations, listed first by "
    "!poolfind from the large pool allocation table.  Pick one of the addresses it prints.",
    "!verifier 0x80 ADDRESS lists the log records of that block, newest first: the "
    "allocation's stack starts with nt!VeAllocatePoolWithTagPriority and "
    "nt!VerifierExAllocatePoolEx; the next frame is the driver that asked.  Older records may "
    "be frees of an earlier block at the same address (the registry's, for instance).",
    "The stack reads myfault+0x11f6, called from myfault's DeviceIoControl handler "
    "(nt!IopXxxControlFile, nt!NtDeviceIoControlFile).  g lets the machine run on; "
    "!poolused 4 then shows more Leak blocks, none freed.",
    "The advanced path, a kernel-mode UMDH: !pooldiff -save before, g 0n30000, then !pooldiff "
    "lists what grew between the two snapshots (Leak first, by whole 0xfa000 blocks) and "
    "!pooldiff -stacks Leak groups the new blocks by the allocation stack the verifier logged.",
)

LAB = Lab(
    title="Who leaked this tag?",
    briefing=BRIEFING,
    hints=HINTS,
    answers=("myfault", "myfault.sys"),
    question="the driver that leaks paged pool",
    kind="driver", drivers=("myfault", "myfault.sys"), tags=("Leak",),
    solution="leak.cmd",
)

VERIFIER_SETTINGS = "/flags 0x9 /driver myfault.sys"
LEAK_BYTES = 0xFA000
# the stack of seeds/001 below the verifier's two frames
MYFAULT_FRAMES = ("myfault+0x11f6", "myfault+0x142f", "nt!IovCallDriver+0xa0",
                  "nt!IopXxxControlFile+0x607", "nt!NtDeviceIoControlFile+0x56",
                  "nt!KiSystemServiceCopyEnd+0x13")
HIVE_FLUSH_FRAMES = ("nt!HvFreeDirtyData+0x7f", "nt!HvOptimizedSyncHive+0x53",
                     "nt!CmFlushKey+0xaf", "nt!NtFlushKey+0x142",
                     "nt!KiSystemServiceCopyEnd+0x13")
LEAK_TICKS = 100_000           # the boot workload after the population: ~22 Leak blocks
LEAK_PERIOD = 200              # NotMyFault's timer leaks on every 200th of its turns...
TIMER_WEIGHT = 1.0             # ...which come one tick in ~22: a block per ~4,500 ticks


@dataclass
class Timer:
    """NotMyFault's leak timer: every `period`-th time it is picked, one more `Leak` block, so
    the leak grows steadily with the time the machine runs."""

    leak: Pattern
    period: int
    weight: float
    turns: int = 0

    def run(self, engine: "Workload") -> None:
        self.turns += 1
        if self.turns % self.period == 0:
            self.leak.run(engine)


@scenario("leak", "Seed case 2: paged pool keeps growing; the verifier logs stacks. Which "
          "driver leaks?", arch="x64", lab=LAB, verifier=VERIFIER_SETTINGS,
          modules=seed_modules("myfault"))
def build(machine: "Machine", scale: float) -> Phases:
    yield from populate(machine, 0.6 * scale)
    leak = Pattern("myfault", "Leak", PAGED, (LEAK_BYTES,), None, 0.0, MYFAULT_FRAMES)
    leak.bind(machine)
    machine.workload.add(
        Timer(leak, LEAK_PERIOD, TIMER_WEIGHT),
        # the registry's lazy flusher: one-page buffers of dirty hive data, soon freed
        Pattern("nt", "CM10", PAGED, (0x1000,), 40.0, 0.5, HIVE_FLUSH_FRAMES),
    )
    yield "NotMyFault leaking", int(LEAK_TICKS * scale)
