"""`vertarget`: the target's Windows version, processors, kernel base and uptime.

Every machine kdsim simulates is Windows 7 SP1 (build 7601.17514, the SP1 release build);
the processor count is nt!KeNumberProcessors and the uptime nt!KeTickCount, both read from
memory, so a dump says what its machine said.  Layout of the Win7-era debugger:

    Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x64
    Product: WinNt, suite: TerminalServer SingleUserTS
    Built by: 7601.17514.amd64fre.win7sp1_rtm.101119-1850
    Machine Name:
    Kernel base = 0xfffff800`01409000 PsLoadedModuleList = 0xfffff800`0164ee90
    Debug session time: Mon Nov 30 02:39:31.123 2026 (UTC + 0:00)
    System Uptime: 0 days 0:05:12.480
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from kdsim.target import MemoryFault

from ..objread import TICK_100NS
from ..poolsnapshots import read_tick
from ..registry import command
from ..target_cmds import BUILD

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

BUILD_LAB = "17514"                     # Windows 7 SP1's release build
BUILD_TAG = "win7sp1_rtm.101119-1850"


@dataclass
class TargetVersion:
    processors: int
    x64: bool
    kernel_base: int
    module_list: int | None             # nt!PsLoadedModuleList
    session_time: str                   # `Mon Nov 30 02:39:31.123 2026 (UTC + 0:00)`
    uptime_ms: int | None               # None: the target has no readable clock


def _processors(target: "Target") -> int:
    at = target.resolve("nt!KeNumberProcessors")
    try:
        return target.read_u32(at) if at is not None else target.processors
    except MemoryFault:
        return target.processors


def target_version(target: "Target", now: datetime) -> TargetVersion:
    nt = target.symbols.module("nt")
    tick = read_tick(target)
    return TargetVersion(
        _processors(target), target.arch.ptr_size == 8, nt.base if nt is not None else 0,
        target.resolve("nt!PsLoadedModuleList"), _session_time(now),
        None if tick is None else tick * TICK_100NS // 10_000)


def _session_time(when: datetime) -> str:
    """kd's time of day, in UTC."""
    utc = when.astimezone(timezone.utc)
    return (f"{utc:%a %b} {utc.day:2d} {utc:%H:%M:%S}.{utc.microsecond // 1000:03d} "
            f"{utc:%Y} (UTC + 0:00)")


def _uptime(ms: int) -> str:
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days} days {hours}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def render_version(result: TargetVersion, session: "Session") -> str:
    fmt = session.target.arch.fmt_addr
    mp = f"MP ({result.processors} procs)" if result.processors > 1 else "UP"
    arch, build_arch = ("x64", "amd64fre") if result.x64 else ("x86 compatible", "x86fre")
    base = f"Kernel base = 0x{fmt(result.kernel_base)}"
    if result.module_list is not None:
        base += f" PsLoadedModuleList = 0x{fmt(result.module_list)}"
    lines = [f"Windows 7 Kernel Version {BUILD} (Service Pack 1) {mp} Free {arch}",
             "Product: WinNt, suite: TerminalServer SingleUserTS",
             f"Built by: {BUILD}.{BUILD_LAB}.{build_arch}.{BUILD_TAG}",
             "Machine Name:", base,
             f"Debug session time: {result.session_time}"]
    if result.uptime_ms is not None:
        lines.append(f"System Uptime: {_uptime(result.uptime_ms)}")
    return "\n".join(lines)


@command("vertarget", syntax="vertarget", render=render_version,
         help="Show the target's Windows version, processors, kernel base and uptime.")
def vertarget(session: "Session", args: str) -> TargetVersion:
    return target_version(session.target, datetime.now(timezone.utc))
