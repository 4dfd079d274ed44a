"""The pool population of a Windows 7 machine a while after boot.

Counts and sizes are modelled on published `!poolused` and `!pool` output of Windows 7 machines
(the seeds and formats.md): boot-time objects that stay (File, Even, Thre, Vad, MmCa, CM31 ...)
and short-lived traffic (Irp, Mdl, IoNm ...).  x64 sizes are larger where the structures hold
pointers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from .pool import MM_ALLOCATION, NONPAGED, PAGED
from .win32k import populate_sessions
from .workload import Pattern

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

NT_IO = ("nt!IopXxxControlFile+0x607", "nt!NtDeviceIoControlFile+0x56",
         "nt!KiSystemServiceCopyEnd+0x13")

# (driver, tag, pool, x86 sizes, x64 sizes, range?, boot count, protected, first frames)
STAYING = (
    ("nt", "File", NONPAGED, (0xB0,), (0x140,), False, 2600, True, ("nt!IopCreateFile+0x2a1",)),
    ("nt", "Even", NONPAGED, (0x38,), (0x70,), False, 1900, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "Thre", NONPAGED, (0x2B0,), (0x4F0,), False, 520, True, ("nt!PspAllocateThread+0x6b",)),
    ("nt", "Proc", NONPAGED, (0x288,), (0x4D0,), False, 48, True, ("nt!PspAllocateProcess+0x9e",)),
    ("nt", "MmCa", NONPAGED, (0x40, 0x90), (0x80, 0x110), True, 3200, False, ("nt!MiCreateImageFileMap+0x1f3",)),
    ("Ntfs", "Ntfx", NONPAGED, (0xB8,), (0x120,), False, 1500, False, ("Ntfs+0x1c2a0",)),
    ("nt", "Vad ", NONPAGED, (0x40,), (0x70,), False, 5200, False, ("nt!MiInsertVad+0x4e",)),
    ("nt", "MmCi", NONPAGED, (0x58, 0x400), (0x80, 0x600), True, 800, False, ("nt!MiCreateImageFileMap+0x3a1",)),
    ("fltmgr", "FMsl", NONPAGED, (0x60,), (0x90,), False, 400, False, ("fltmgr+0x1f2c",)),
    ("ndis", "NDpp", NONPAGED, (0xF00, 0xFE0), (0xF00, 0xFC0), True, 60, False, ("ndis+0x2d4a1",)),
    ("nt", "ALPC", NONPAGED, (0x1A0, 0x200), (0x280, 0x300), True, 600, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "IoCo", NONPAGED, (0x58,), (0x90,), False, 300, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "Devi", NONPAGED, (0x150, 0x200), (0x200, 0x2C0), True, 150, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "Driv", NONPAGED, (0xF0,), (0x160,), False, 120, True, ("nt!ObpAllocateObject+0x12c",)),
    ("tcpip", "TcpE", NONPAGED, (0x80, 0x140), (0xE0, 0x200), True, 200, False, ("tcpip+0x4c1b2",)),
    ("afd", "AfdE", NONPAGED, (0x60, 0x90), (0xA0, 0x100), True, 100, False, ("afd+0x12a1c",)),
    ("nt", "Muta", NONPAGED, (0x48,), (0x80,), False, 150, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "Sema", NONPAGED, (0x40,), (0x70,), False, 200, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "CM31", PAGED, (0x30, 0x7F0), (0x40, 0xA00), True, 5000, False, ("nt!CmpAllocateKeyControlBlock+0x3e",)),
    ("nt", "MmSt", PAGED | MM_ALLOCATION, (0x40, 0x400), (0x60, 0x600), True, 3000, False, ("nt!MiCreateImageFileMap+0x1f3",)),
    ("Ntfs", "Ntff", PAGED, (0x1A0,), (0x2A0,), False, 1500, False, ("Ntfs+0x2f1b4",)),
    ("Ntfs", "NtFs", PAGED, (0x30, 0x200), (0x40, 0x300), True, 1500, False, ("Ntfs+0x2d310",)),
    ("nt", "Toke", PAGED, (0x200, 0x300), (0x300, 0x480), True, 200, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "SeSd", PAGED, (0x40, 0x180), (0x60, 0x200), True, 1500, False, ("nt!SeCaptureSecurityDescriptor+0x8b",)),
    ("nt", "ObNm", PAGED, (0x30, 0x80), (0x40, 0xC0), True, 800, False, ("nt!ObpAllocateObject+0x1d0",)),
    ("nt", "Key ", PAGED, (0x40,), (0x70,), False, 1200, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "Sect", PAGED, (0x40,), (0x70,), False, 800, True, ("nt!ObpAllocateObject+0x12c",)),
    ("nt", "CMVa", PAGED, (0x20, 0x300), (0x30, 0x400), True, 1500, False, ("nt!CmpCreateKeyControlBlock+0x61",)),
    ("fltmgr", "FMfn", PAGED, (0x100, 0x200), (0x180, 0x300), True, 600, False, ("fltmgr+0x2a18",)),
    ("CI", "CIcr", PAGED, (0x400, 0x3000), (0x400, 0x3000), True, 40, False, ("CI+0x1d2b",)),
    ("nt", "Obtb", PAGED, (0x100, 0x800), (0x200, 0x1000), True, 200, False, ("nt!ObpAllocateObject+0x2a0",)),
    ("nt", "MmSm", PAGED, (0x80, 0x100), (0xC0, 0x180), True, 600, False, ("nt!MiCreateImageFileMap+0x2c4",)),
)

# (driver, tag, pool, x86 sizes, x64 sizes, range?, weight, mean lifetime, first frames)
TRAFFIC = (
    ("nt", "Irp ", NONPAGED, (0x94, 0x3A0), (0x118, 0x4C0), True, 6.0, 300, ("nt!IoAllocateIrp+0x5c",)),
    ("nt", "Mdl ", NONPAGED, (0x30, 0x200), (0x40, 0x300), True, 4.0, 200, ("nt!IoAllocateMdl+0x29",)),
    ("nt", "Io  ", NONPAGED, (0x20, 0x400), (0x30, 0x600), True, 2.0, 400, ("nt!IopCompleteRequest+0x1a1",)),
    ("Ntfs", "Ntfr", NONPAGED, (0x30, 0x100), (0x40, 0x180), True, 1.5, 900, ("Ntfs+0x41c9a",)),
    ("tcpip", "TcpE", NONPAGED, (0x80, 0x140), (0xE0, 0x200), True, 0.5, 2000, ("tcpip+0x4c1b2",)),
    ("nt", "IoNm", PAGED, (0x40, 0x200), (0x60, 0x300), True, 3.0, 100, ("nt!IopCreateFile+0x4e0",)),
    ("Ntfs", "NtFs", PAGED, (0x30, 0x200), (0x40, 0x300), True, 2.0, 800, ("Ntfs+0x2d310",)),
    ("nt", "CMVa", PAGED, (0x20, 0x300), (0x30, 0x400), True, 1.0, 500, ("nt!CmpCreateKeyControlBlock+0x61",)),
    ("nt", "SeTd", PAGED, (0x40, 0x120), (0x60, 0x1C0), True, 1.0, 150, ("nt!SeCreateAccessState+0x4c",)),
)


def _frames(driver: str, first: tuple[str, ...]) -> tuple[str, ...]:
    return first + (("nt!IofCallDriver+0x63",) if driver != "nt" else ()) + NT_IO


def staying(x64: bool, scale: float = 1.0) -> list[tuple[Pattern, int]]:
    """Boot-time objects that stay, with how many of each a booted machine holds."""
    out = []
    for driver, tag, pool, s86, s64, rng, count, prot, first in STAYING:
        pat = Pattern(driver, tag, pool, s64 if x64 else s86, None, float(count),
                      _frames(driver, first), size_range=rng, protected=prot)
        out.append((pat, max(1, round(count * scale))))
    return out


def traffic(x64: bool, scale: float = 1.0) -> list[Pattern]:
    """Short-lived traffic that keeps running after boot."""
    return [Pattern(driver, tag, pool, s64 if x64 else s86, life, weight * scale,
                    _frames(driver, first), size_range=rng)
            for driver, tag, pool, s86, s64, rng, weight, life, first in TRAFFIC]


def populate(machine: "Machine", scale: float = 0.6, settle: int = 3000,
             traffic_share: float = 0.25) -> Iterator[tuple[str, int]]:
    """Play the boot: staying objects interleaved with traffic (`traffic_share` of the ticks
    are traffic), then let the traffic settle.  Yields (phase, ticks) where ticks run
    (kdsim/scenarios/__init__.py)."""
    x64 = machine.arch.ptr_size == 8
    wl = machine.workload
    stay = staying(x64, scale)
    total = sum(n for _, n in stay)
    moving = traffic(x64)
    traffic_weight = sum(p.weight for p in moving)
    for pat, n in stay:
        pat.weight = n * traffic_weight * (1 - traffic_share) / traffic_share / total
    wl.add(*moving, *(p for p, _ in stay))
    yield "boot objects", int(total / (1 - traffic_share))
    for pat, _ in stay:
        wl.remove(pat)
    yield "settling", settle
    yield from populate_sessions(machine, scale)
