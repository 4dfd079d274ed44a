"""`!verifier [Flags [Image]]`, `!verifier 0x80 [Quantity | Address]`: Driver Verifier's
settings, statistics, verified drivers and their pool, and the pool Allocate/Free log.

Everything is read from memory (the target's profile, kdsim/layouts, declares the structures):
nt!MmVerifierData (level and statistics), the _MI_VERIFIER_DRIVER_ENTRY list at
nt!MiSuspectDriverList with each driver's _VI_POOL_ENTRY pages, and the _VF_POOL_TRACE ring at
nt!VfPoolTraces (nt!VfPoolTracesLength records, the newest at nt!VfPoolTracesIndex).

Summary forms use the Win7-era debugger layout (formats.md 10.2, 10.5): `Verify Level 9bb ...
enabled options are:`, statistics labels padded to 39 columns, with bit 0 the `Driver
Verification List` table, with bit 1 each driver's counters and outstanding allocations, with
bits 2 and 3 the fault-injection and IRQL sections.  The log (0x80) follows the second seed
case: the header lines, one `=` row before each record, `Pool block <addr>, Size <size>, Thread
<thread>` and one `<return address> <symbol>` line per frame, newest first; an Address selects
the records of blocks containing it, a Quantity the most recent records.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_SIZE, POOL_TRACE_FRAMES, struct_of
from pooltag import display_tag

from ..core.stack import symbol_of
from ..errors import DebuggerError, nt_global, nt_symbol
from ..expr import parse_leading
from ..objread import unicode_at
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

LOG_FLAG = 0x80
QUANTITY_FLAGS = (0x4, 0x8, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400)
SEPARATOR = "=" * 70
SECTION_RULE = "-" * 47 + " "
IRQL_LOG_ENTRIES = 0x100
DEFAULT_IRQL_RECORDS = 4
MAX_DRIVERS = 1024                    # a corrupt list must not loop forever
NO_LOG = "The log is not enabled: Driver Verifier was not active when the target booted."

# the names the Win7-era debugger gives the level's bits
OPTION_NAMES: dict[int, str] = {
    0x001: "Special pool",
    0x002: "Special irql",
    0x004: "Inject random low-resource API failures",
    0x008: "All pool allocations checked on unload",
    0x010: "Io subsystem checking enabled",
    0x020: "Deadlock detection enabled",
    0x080: "DMA checking enabled",
    0x100: "Security checks enabled",
    0x200: "Force pending I/O requests enabled",
    0x400: "IRP logging enabled",
    0x800: "Miscellaneous checks enabled",
}

STATISTICS = (
    ("RaiseIrqls", "RaiseIrqls"),
    ("AcquireSpinLocks", "AcquireSpinLocks"),
    ("Synch Executions", "SynchronizeExecutions"),
    ("Trims", "Trims"),
    None,
    ("Pool Allocations Attempted", "AllocationsAttempted"),
    ("Pool Allocations Succeeded", "AllocationsSucceeded"),
    ("Pool Allocations Succeeded SpecialPool", "AllocationsSucceededSpecialPool"),
    ("Pool Allocations With NO TAG", "AllocationsWithNoTag"),
    ("Pool Allocations Failed", "AllocationsFailed"),
)
USAGE = """\
!verifier [Flags [Image]]
!verifier 4 [Quantity]
!verifier 8 [Quantity]
!verifier 0x80 [Quantity]
!verifier 0x80 Address
!verifier -disable
!verifier ?

Flags: 0 level, options and statistics; 1 adds the verified drivers; 2 (with 1) adds their
pool allocations; 4 the fault injection log; 8 the IRQL log; 0x80 the pool Allocate/Free log
(the Quantity most recent records, or the records of blocks containing Address)."""


# -- reading ----------------------------------------------------------------------------------
@dataclass
class Allocation:
    address: int
    size: int
    tag: int
    caller: int


@dataclass
class DriverInfo:
    entry: int
    name: str
    loaded: bool
    current_allocations: tuple[int, int]          # (nonpaged, paged)
    current_bytes: tuple[int, int]
    peak_allocations: tuple[int, int]
    peak_bytes: tuple[int, int]
    allocations: list[Allocation] = field(default_factory=list)


@dataclass
class VerifierSummary:
    flags: int
    level: int
    statistics: dict[str, int]
    drivers: list[DriverInfo] | None               # with bit 0
    details: bool                                  # bit 1: counters and allocations


@dataclass
class TraceRecord:
    address: int
    size: int
    thread: int
    frames: list[tuple[int, str]]                  # (return address, symbol)


@dataclass
class PoolLog:
    length: int
    address: int | None                            # searching for this address
    quantity: int | None
    records: list[TraceRecord]


@dataclass
class EmptyLog:
    """!verifier 4/8/0x20.. on a log this machine does not keep."""

    flags: int


def read_statistics(target: "Target") -> dict[str, int]:
    """nt!MmVerifierData, field by field."""
    layout = target.profile.verifier_data
    parsed = layout.parse(target.read(nt_symbol(target, "MmVerifierData"), layout.sizeof()))
    return {k: v for k, v in parsed.items() if isinstance(v, int)}


def read_drivers(target: "Target", allocations: bool = False) -> list[DriverInfo]:
    """The verified drivers on nt!MiSuspectDriverList (and their outstanding allocations)."""
    L = target.profile
    head = nt_symbol(target, "MiSuspectDriverList")
    out: list[DriverInfo] = []
    entry = target.read_ptr(head)
    while entry != head and entry and len(out) < MAX_DRIVERS:
        e = L.driver_entry.parse(target.read(entry, L.driver_entry.sizeof()))
        name = unicode_at(target, entry + L.offset("driver_entry", "BaseName"))
        info = DriverInfo(
            entry, name, e.Loads > e.Unloads,
            (e.CurrentNonPagedPoolAllocations, e.CurrentPagedPoolAllocations),
            (e.NonPagedBytes, e.PagedBytes),
            (e.PeakNonPagedPoolAllocations, e.PeakPagedPoolAllocations),
            (e.PeakNonPagedBytes, e.PeakPagedBytes))
        if allocations:
            headers = e.PoolPageHeaders
            info.allocations = _tracked(target, headers.get("NextEntry", headers.get("Next")))
        out.append(info)
        entry = e.Links.Flink
    return out


def _tracked(target: "Target", page: int) -> list[Allocation]:
    """The in-use _VI_POOL_ENTRYs of a driver's chain of tracking pages (whole pages unpacked
    at once: with `/all`, every break-in reads thousands)."""
    L = target.profile
    entry = struct_of(L.pool_entry)
    first = -(-L.pool_page_header.sizeof() // entry.size) * entry.size
    last = first + (PAGE_SIZE - first) // entry.size * entry.size
    out: list[Allocation] = []
    seen: set[int] = set()
    while page and page not in seen:
        seen.add(page)
        data = target.read(page, PAGE_SIZE)
        out += [Allocation(va, nbytes, tag, caller)
                for va, caller, nbytes, tag in entry.iter_unpack(data[first:last]) if va]
        page = L.pool_page_header.parse(data).NextPage
    return out


def read_log(target: "Target") -> tuple[int, list[tuple[int, int, int, tuple[int, ...]]]]:
    """(VfPoolTracesLength, the records newest first as (address, size, thread, frames))."""
    rec = target.profile.pool_trace
    base = nt_global(target, "VfPoolTraces")
    length = target.read_u32(nt_symbol(target, "VfPoolTracesLength"))
    if not base or not length:
        return length, []
    index = target.read_u32(nt_symbol(target, "VfPoolTracesIndex"))
    layout = struct_of(rec)
    stack = struct.Struct(f"<{POOL_TRACE_FRAMES}{'Q' if target.arch.ptr_size == 8 else 'I'}")
    rows = list(layout.iter_unpack(target.read(base, length * layout.size)))
    newest = index & (length - 1)
    ordered = rows[newest::-1] + rows[:newest:-1]
    return length, [(address, size, thread, tuple(f for f in stack.unpack(frames) if f))
                    for address, size, thread, frames in ordered if address]


def pool_log(target: "Target", address: int | None, quantity: int | None) -> PoolLog:
    length, raw = read_log(target)
    if address is not None:
        raw = [r for r in raw if r[0] <= address < r[0] + max(r[1], 1)]
    elif quantity is not None:
        raw = raw[:quantity]
    records = [TraceRecord(a, s, t, [(f, symbol_of(target, f)) for f in frames])
               for a, s, t, frames in raw]
    return PoolLog(length, address, quantity, records)


def summary(target: "Target", flags: int, image: str | None) -> VerifierSummary:
    stats = read_statistics(target)
    drivers = None
    if flags & 1:
        drivers = read_drivers(target, allocations=bool(flags & 2))
        if image is not None:
            drivers = [d for d in drivers if d.name.lower() == image.lower()
                       or d.name.lower().removesuffix(".sys") == image.lower()]
    return VerifierSummary(flags, stats["Level"], stats, drivers, bool(flags & 2))


# -- rendering --------------------------------------------------------------------------------
def _level_lines(result: VerifierSummary) -> list[str]:
    lines = ["", f"Verify Level {result.level:x} ... enabled options are:"]
    lines += [f"    {name}" for bit, name in OPTION_NAMES.items() if result.level & bit]
    lines += ["", "Summary of All Verifier Statistics", ""]
    s = result.statistics
    for item in STATISTICS:
        lines.append("" if item is None else f"{item[0]:<39}0x{s[item[1]]:x}")
    lines.append(f"Resource Allocations Failed Deliberately   "
                 f"0x{s['AllocationsFailedDeliberately']:x}")
    return lines


def _usage_lines(s: dict[str, int]) -> list[str]:
    lines = [""]
    for label, kind in (("paged", "Paged"), ("nonpaged", "NonPaged")):
        lines.append(f"{'Current ' + label + ' pool allocations':<39}"
                     f"0x{s[f'Current{kind}PoolAllocations']:x} for {s[f'{kind}Bytes']:08X} bytes")
        lines.append(f"{'Peak ' + label + ' pool allocations':<39}"
                     f"0x{s[f'Peak{kind}PoolAllocations']:x} for {s[f'Peak{kind}Bytes']:08X} bytes")
    return lines


def _driver_lines(arch: "Arch", d: DriverInfo, details: bool) -> list[str]:
    state = "Loaded" if d.loaded else "Unloaded"
    lines = [f"{arch.fmt_ptr(d.entry)} {state:<17}{d.current_bytes[0]:08x}       "
             f"{d.current_bytes[1]:08x}    {d.name}"]
    if not details:
        return lines
    for label, pair in (("Current Pool Allocations", d.current_allocations),
                        ("Current Pool Bytes", d.current_bytes),
                        ("Peak Pool Allocations", d.peak_allocations),
                        ("Peak Pool Bytes", d.peak_bytes)):
        lines.append(f"{label:<26}{pair[0]:08x}    {pair[1]:08x}")
    lines[1:1] = [""]
    lines += ["", "PoolAddress  SizeInBytes    Tag       CallersAddress"]
    lines += [f"{arch.fmt_ptr(a.address)}     0x{a.size:08x}     {display_tag(a.tag)}      "
              f"{arch.fmt_ptr(a.caller)}" for a in d.allocations]
    return lines


def _fault_injection_lines() -> list[str]:
    return [SECTION_RULE, "Fault injection trace log".ljust(48), SECTION_RULE, "",
            "Driver Verifier didn't inject any faults."]


def _irql_lines(arch: "Arch", quantity: int = DEFAULT_IRQL_RECORDS) -> list[str]:
    return [SECTION_RULE, "Track irql trace log".ljust(48), SECTION_RULE, "",
            f"Displaying most recent 0x{quantity:0{arch.hex_digits}x} entries from the IRQL "
            "transition log.", f"There are up to 0x{IRQL_LOG_ENTRIES:x} entries in the log."]


def render_summary(result: VerifierSummary, session: "Session") -> str:
    arch = session.target.arch
    lines = _level_lines(result)
    if result.drivers is not None:
        lines += _usage_lines(result.statistics)
        lines += ["", "Driver Verification List", "",
                  "Entry     State           NonPagedPool   PagedPool   Module", ""]
        for d in result.drivers:
            lines += _driver_lines(arch, d, result.details) + [""]
    if result.flags & 4:
        lines += ["", *_fault_injection_lines()]
    if result.flags & 8:
        lines += ["", *_irql_lines(arch)]
    return "\n".join(lines)


def render_log(result: PoolLog, session: "Session") -> str:
    arch = session.target.arch
    width = arch.hex_digits
    lines = ["", "Log of recent kernel pool Allocate and Free operations:", ""]
    if not result.length:
        return "\n".join([*lines, NO_LOG])
    lines += [f"There are up to 0x{result.length:x} entries in the log.", ""]
    if result.address is not None:
        lines.append(f"Parsing 0x{result.length:0{width}x} log entries, searching for address "
                     f"0x{arch.fmt_ptr(result.address)}.")
    else:
        shown = len(result.records) if result.quantity is None else result.quantity
        lines.append(f"Displaying the most recent 0x{shown:0{width}x} log entries.")
    lines += ["", ""]
    for r in result.records:
        lines += [SEPARATOR, f"Pool block {arch.fmt_ptr(r.address)}, Size "
                             f"{r.size:0{width}x}, Thread {arch.fmt_ptr(r.thread)}"]
        lines += [f"{arch.fmt_ptr(a)} {name}" for a, name in r.frames]
    if result.address is not None:
        lines.append(f"Parsed entry {result.length:0{width}x}/{result.length:0{width}x}...")
    lines.append("Finished parsing all pool tracking information.")
    return "\n".join(lines)


def render_empty(result: EmptyLog, session: "Session") -> str:
    if result.flags == 4:
        return "\n".join(["", *_fault_injection_lines()])
    if result.flags == 8:
        return "\n".join(["", *_irql_lines(session.target.arch)])
    return "\nThe log is empty."


def render_verifier(result: object, session: "Session") -> str:
    if isinstance(result, PoolLog):
        return render_log(result, session)
    if isinstance(result, EmptyLog):
        return render_empty(result, session)
    assert isinstance(result, VerifierSummary)
    return render_summary(result, session)


# -- the command ------------------------------------------------------------------------------
@command("!verifier", syntax="!verifier [Flags [Image | Quantity | Address]]",
         render=render_verifier, action_forms=("-disable",),
         help="Driver Verifier: level, options and statistics; with Flags 1 the verified "
              "drivers, 3 their outstanding pool allocations, 0xf the fault injection and IRQL "
              "logs too; `!verifier 0x80 Address` the pool Allocate/Free log records of the "
              "block holding Address (0x80 alone or with a Quantity: the most recent ones).\n"
              "`!verifier ?` shows the syntax; `!verifier -disable` turns the verifier off "
              "until the next boot (live machine only).")
def verifier(session: "Session", args: str) -> VerifierSummary | PoolLog | EmptyLog | str | None:
    target = session.target
    text = args.strip()
    if text == "?":
        return USAGE
    if text.lower() == "-disable":
        control = target.control
        if control is None:
            raise DebuggerError("!verifier -disable needs a live target")
        control.disable_verifier()
        return None
    flags, rest = 0, ""
    if text:
        leading = parse_leading(text, target, session.settings["radix"])
        flags, rest = leading.value, leading.rest.strip()
    if flags in QUANTITY_FLAGS:
        value = None
        if rest:
            value = parse_leading(rest, target, session.settings["radix"]).value
        if flags != LOG_FLAG:
            return EmptyLog(flags)
        # at or above MmSystemRangeStart a value is an address, below it a quantity
        if value is not None and value >= target.profile.system_range_start:
            return pool_log(target, value, None)
        return pool_log(target, None, value)
    return summary(target, flags, rest.split()[0] if rest else None)
