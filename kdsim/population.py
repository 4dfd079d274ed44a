"""The pool population of a Windows 7 machine a while after boot, played from the tag catalogue.

Every catalogue entry (kdsim/catalogue/win7sp1.toml) becomes up to two drivers' habits: the
blocks its component allocates while the machine boots and keeps (`staying`), and the traffic
it keeps up afterwards, each block freed by its owner after a drawn lifetime (`traffic`).  The
boot plays both at once; then the staying habits stop and the traffic runs on.  Scale 1 is the
full-size machine of the catalogue; labs pass smaller or larger scales for their own size.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from .arch import get_arch
from .catalogue import Entry, load
from .win32k import populate_sessions
from .workload import Pattern

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

CATALOGUE = "win7sp1"
# below a driver's dispatch routine, for scenarios' own stacks: DeviceIoControl from user mode
NT_IO = ("nt!IopXxxControlFile+0x607", "nt!NtDeviceIoControlFile+0x56",
         "nt!KiSystemServiceCopyEnd+0x13")
# the traffic's weights add up to this, whatever the scale: scenarios and lab files weigh their
# own drivers against it (kdsim/scenarios/leak.py, kdsim/labfile.py DEFAULT_TRAFFIC)
TRAFFIC_WEIGHT = 21.0
# ticks of traffic alone after the boot, at scale 1: the frees and reuse that make a machine
# that has run a while (its lookaside lists hit, every busy tag shows frees)
SETTLE_TICKS = 50_000


def _pattern(entry: Entry, arch: str, lifetime: float | None, weight: float) -> Pattern:
    sizes = entry.sizes[arch]
    if lifetime is not None:              # traffic: small blocks only (the larger ones stay)
        sizes = sizes[:1] + tuple(min(s, get_arch(arch).max_small) for s in sizes[1:])
    return Pattern(entry.module, entry.tag, entry.pool_type, sizes, lifetime, weight,
                   entry.alloc, size_range=len(sizes) == 2, protected=entry.protected,
                   free_frames=entry.free, object_type=entry.object_type)


def _arch(x64: bool) -> str:
    return "x64" if x64 else "x86"


def staying(x64: bool, scale: float = 1.0) -> list[tuple[Pattern, int]]:
    """Boot-time blocks that stay, with how many of each a booted machine holds (a small
    machine has none of the rarest: a tenth of two ACPI tables is none, not a whole one)."""
    arch = _arch(x64)
    counts = [(e, round(e.boot * scale)) for e in load(CATALOGUE).entries]
    return [(_pattern(e, arch, None, float(n)), n) for e, n in counts if n]


def traffic(x64: bool) -> list[Pattern]:
    """The traffic that keeps running after boot, weighing TRAFFIC_WEIGHT in all."""
    arch = _arch(x64)
    moving = [e for e in load(CATALOGUE).entries if e.rate]
    total = sum(e.rate for e in moving)
    return [_pattern(e, arch, e.life, e.rate * TRAFFIC_WEIGHT / total) for e in moving]


def populate(machine: "Machine", scale: float = 1.0, settle: int | None = None,
             traffic_share: float = 0.25) -> Iterator[tuple[str, int]]:
    """Play the boot: staying blocks interleaved with traffic (`traffic_share` of the ticks
    are traffic), then let the traffic settle (`settle` ticks; SETTLE_TICKS at scale 1).
    Yields (phase, ticks) where ticks run (kdsim/scenarios/__init__.py)."""
    machine.objects.boot(scale)
    x64 = machine.arch.ptr_size == 8
    wl = machine.workload
    stay = staying(x64, scale)
    total = sum(n for _, n in stay)
    moving = traffic(x64)
    for pat, n in stay:
        pat.weight = n * TRAFFIC_WEIGHT * (1 - traffic_share) / traffic_share / total
    wl.add(*moving, *(p for p, _ in stay))
    yield "boot objects", int(total / (1 - traffic_share))
    for pat, _ in stay:
        wl.remove(pat)
    yield "settling", int(SETTLE_TICKS * scale) if settle is None else settle
    yield from populate_sessions(machine, scale)
