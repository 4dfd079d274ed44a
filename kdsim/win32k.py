"""win32k.sys and the session pool it fills: the sessions, the module, and its tags' habits.

Every Windows 7 machine has two sessions (0 for services, 1 for the user logged on) and
win32k, the session image, allocates most of what their paged pools hold: GDI surfaces
(`Gh05`, large ones in whole pages), the GDI lookaside objects (`Gla*`), fonts and the
TrueType driver's buffers (`Gfnt`, `Gffv`, `Gpfe`, `Ttfd`, `Gcac`), USER's thread and process
information, cursors, accelerator tables, window text and queued messages (`Usti`, `Uspi`,
`Uscu`, `Usac`, `Ustx`, `Usqm`).  Each tag keeps a boot-time population that stays and a
traffic that allocates and frees all the time, in both sessions, the interactive one holding
most (formats.md 8.2's `!vm 4`: ~3 MB of session paged pool in session 0; Windows Internals'
32-bit example: 2.3 MB and 14 MB).  Sizes are the request sizes, x64 larger where the
structures hold pointers; every stack runs through win32k's own routines to the system-call
entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from .pool import SESSION_PAGED
from .sessionpool import INTERACTIVE, SessionPools
from .workload import Pattern

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine
    from .workload import Workload

WIN32K_SIZE = 0x316000
# win32k routines that allocate (RVAs in the image)
WIN32K_FUNCTIONS = {
    "Win32AllocPool": 0x9F0B0,
    "HeavyAllocPool": 0x4A1D0,
    "AllocateObject": 0x4A5E0,
    "HmgAlloc": 0x4B100,
    "GreCreateDIBitmapReal": 0x1A2C0,
    "NtGdiCreateDIBSection": 0x1B400,
    "NtGdiCreateCompatibleBitmap": 0x1C800,
    "GreCreateRectRgn": 0x2D300,
    "NtGdiCreateRectRgn": 0x2D900,
    "GreCreateDCW": 0x36A00,
    "NtGdiCreateCompatibleDC": 0x37200,
    "GreCreatePalette": 0x3F100,
    "GreCreateSolidBrush": 0x41C00,
    "_CreateAcceleratorTable": 0x10E400,
    "NtUserCreateAcceleratorTable": 0x10E900,
    "_CreateEmptyCursorObject": 0xF2000,
    "NtUserCallNoParam": 0xF2A00,
    "DefSetText": 0xDA300,
    "NtUserDefSetText": 0xDA900,
    "AllocQEntry": 0xB5000,
    "_PostMessage": 0xB6200,
    "NtUserPostMessage": 0xB6C00,
    "AllocateW32Thread": 0xA1200,
    "xxxCreateThreadInfo": 0xA2000,
    "AllocateW32Process": 0xA4100,
    "xxxInitProcessInfo": 0xA4C00,
    "PALLOCMEM": 0x4A900,
    "bCreateFontFileView": 0x160000,
    "PUBLIC_PFTOBJ_bLoadFonts": 0x161000,
    "GreAddFontResourceWInternal": 0x161C00,
    "ttfdSemLoadFontFile": 0x230000,
    "ttfdQueryFontData": 0x231400,
    "GreExtTextOutWLocked": 0x17C000,
    "NtGdiExtTextOutW": 0x17D200,
}
SYSCALL_X86 = ("KiFastCallEntry", 0x11F1C0, 0x12A)       # (routine, RVA in nt, return offset)
SYSCALL_X64 = ("KiSystemServiceCopyEnd", None, 0x13)

# (tag, allocating routine and its caller, x86 sizes, x64 sizes, range?,
#  blocks that stay in session 1, share of them in session 0, traffic weight, mean lifetime)
TAGS = (
    ("Gh05", ("HeavyAllocPool+0x2a", "GreCreateDIBitmapReal+0x1b8", "NtGdiCreateDIBSection+0x12f"),
     (0x170, 0x2400), (0x1E0, 0x2600), True, 2200, 0.08, 0.6, 1000),
    ("Gla5", ("AllocateObject+0xbe", "HmgAlloc+0x56", "NtGdiCreateCompatibleBitmap+0x9c"),
     (0x168,), (0x270,), False, 600, 0.1, 0.8, 500),
    ("Gla1", ("AllocateObject+0xbe", "GreCreateDCW+0x8d", "NtGdiCreateCompatibleDC+0x6b"),
     (0x3D8,), (0x5F0,), False, 250, 0.15, 0.5, 666),
    ("Gla4", ("AllocateObject+0xbe", "GreCreateRectRgn+0x3c", "NtGdiCreateRectRgn+0x2a"),
     (0x88,), (0xD0,), False, 400, 0.1, 1.0, 133),
    ("Gla8", ("AllocateObject+0xbe", "GreCreatePalette+0x61", "NtGdiCreateCompatibleBitmap+0x9c"),
     (0x98,), (0xE0,), False, 150, 0.2, 0.2, 833),
    ("Glab", ("AllocateObject+0xbe", "GreCreateSolidBrush+0x47", "NtGdiCreateCompatibleDC+0x6b"),
     (0xA8,), (0x100,), False, 500, 0.1, 0.6, 300),
    ("Gh04", ("HeavyAllocPool+0x2a", "GreCreateRectRgn+0x8e", "NtGdiCreateRectRgn+0x2a"),
     (0x40, 0x600), (0x60, 0x800), True, 300, 0.1, 1.2, 83),
    ("Gfnt", ("PALLOCMEM+0x1b", "GreAddFontResourceWInternal+0xef", "NtGdiExtTextOutW+0x21b"),
     (0x200, 0xC00), (0x2C0, 0xF00), True, 300, 0.4, 0.1, 1666),
    ("Gffv", ("PALLOCMEM+0x1b", "bCreateFontFileView+0x4e", "GreAddFontResourceWInternal+0xb2"),
     (0x58,), (0x88,), False, 400, 0.5, 0.1, 1666),
    ("Gpfe", ("PALLOCMEM+0x1b", "PUBLIC_PFTOBJ_bLoadFonts+0x1c8",
              "GreAddFontResourceWInternal+0xb2"),
     (0x80, 0x120), (0xC0, 0x1A0), True, 800, 0.5, 0.1, 1666),
    ("Ttfd", ("PALLOCMEM+0x1b", "ttfdSemLoadFontFile+0x8a", "GreExtTextOutWLocked+0x3d0"),
     (0x40, 0xFF0), (0x60, 0xFE0), True, 350, 0.3, 1.0, 200),
    ("Gcac", ("PALLOCMEM+0x1b", "ttfdQueryFontData+0x5d", "GreExtTextOutWLocked+0x3d0"),
     (0x100, 0x1000), (0x180, 0x1000), True, 200, 0.2, 0.8, 400),
    ("Usti", ("Win32AllocPool+0x13", "AllocateW32Thread+0x28", "xxxCreateThreadInfo+0x41"),
     (0x1D8,), (0x338,), False, 450, 0.3, 0.3, 833),
    ("Uspi", ("Win32AllocPool+0x13", "AllocateW32Process+0x2b", "xxxInitProcessInfo+0x1e"),
     (0x148,), (0x260,), False, 60, 0.4, 0.05, 2666),
    ("Uscu", ("Win32AllocPool+0x13", "_CreateEmptyCursorObject+0x3d", "NtUserCallNoParam+0x7c"),
     (0x60,), (0xA0,), False, 700, 0.05, 0.3, 1000),
    ("Usac", ("Win32AllocPool+0x13", "_CreateAcceleratorTable+0x1e",
              "NtUserCreateAcceleratorTable+0x7b"),
     (0x30, 0x400), (0x40, 0x500), True, 120, 0.05, 0.1, 1333),
    ("Ustx", ("Win32AllocPool+0x13", "DefSetText+0x5d", "NtUserDefSetText+0x9a"),
     (0x20, 0x200), (0x28, 0x220), True, 900, 0.05, 1.0, 500),
    ("Usqm", ("Win32AllocPool+0x13", "AllocQEntry+0x2e", "_PostMessage+0x14b"),
     (0x30,), (0x50,), False, 40, 0.1, 2.0, 20),
)
SESSION0_TRAFFIC = 0.3           # session 0's traffic, as a share of the interactive one's
TRAFFIC_RATE = 0.5               # the weights above, against the rest of the machine's traffic


@dataclass
class SessionPattern(Pattern):
    """A win32k habit in one session: its blocks go to that session's pool (the process
    running it belongs to the session)."""

    session: int = INTERACTIVE

    def run(self, engine: "Workload") -> None:
        sessions = engine.pool.sessions
        assert sessions is not None, "win32k runs on a machine with sessions"
        sessions.current = self.session
        super().run(engine)


def _syscall(machine: "Machine") -> str:
    """The system-call entry the stacks end in (x86: KiFastCallEntry; x64: its copy end),
    published in nt where the kernel's table does not have it yet."""
    name, rva, offset = SYSCALL_X86 if machine.arch.ptr_size == 4 else SYSCALL_X64
    if name not in machine.nt.symbols and rva is not None:
        machine.nt.add(name, machine.arch.nt_base + rva)
    return f"nt!{name}+{offset:#x}"


def load_win32k(machine: "Machine") -> None:
    """Map win32k.sys (the session image) into the module list with its routines."""
    module = machine.symbols.add_module("win32k", "win32k.sys", machine.arch.win32k_base,
                                        WIN32K_SIZE)
    for name, rva in WIN32K_FUNCTIONS.items():
        module.add(name, module.base + rva)
    machine.objects.load_modules([module])


def patterns(machine: "Machine", scale: float) -> tuple[list[tuple[Pattern, int]], list[Pattern]]:
    """(boot patterns with the blocks each leaves, traffic patterns) of both sessions."""
    x64 = machine.arch.ptr_size == 8
    syscall = _syscall(machine)
    staying: list[tuple[Pattern, int]] = []
    moving: list[Pattern] = []
    for tag, frames, s86, s64, rng, count, share0, weight, life in TAGS:
        stack = tuple(f"win32k!{f}" for f in frames) + (syscall,)
        sizes = s64 if x64 else s86
        for session, stays, rate in ((INTERACTIVE, count, weight),
                                     (0, count * share0, weight * SESSION0_TRAFFIC)):
            rate *= TRAFFIC_RATE
            staying.append((SessionPattern("win32k", tag, SESSION_PAGED, sizes, None, 1.0, stack,
                                           size_range=rng, session=session),
                            max(1, round(stays * scale))))
            moving.append(SessionPattern("win32k", tag, SESSION_PAGED, sizes, life, rate, stack,
                                         size_range=rng, session=session))
    return staying, moving


def populate_sessions(machine: "Machine", scale: float = 0.6,
                      traffic_share: float = 0.5) -> Iterator[tuple[str, int]]:
    """Create the sessions and win32k, and play win32k's boot in them: its staying blocks
    interleaved with all the traffic running (`traffic_share` of the ticks), after which its
    traffic goes on with the rest.  Yields (phase, ticks) as `population.populate` does."""
    machine.pool.sessions = SessionPools(machine)
    load_win32k(machine)
    wl = machine.workload
    stay, moving = patterns(machine, scale)
    wl.add(*moving)
    total = sum(n for _, n in stay)
    others = sum(a.weight for a in wl.activities)
    for pat, n in stay:
        pat.weight = n * others * (1 - traffic_share) / traffic_share / total
    wl.add(*(p for p, _ in stay))
    yield "session pool", int(total / (1 - traffic_share))
    for pat, _ in stay:
        wl.remove(pat)
