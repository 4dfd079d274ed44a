"""`vertarget`: the Windows 7 SP1 build line, processors, kernel base, time and uptime."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Callable

import pytest

from commands.core.version import render_version, target_version
from commands.session import Session
from commands.testing import blank_target, run
from kdsim.machine import Machine


@pytest.mark.parametrize("arch,line,build,base", [
    ("x86", "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x86 compatible",
     "Built by: 7601.17514.x86fre.win7sp1_rtm.101119-1850", "Kernel base = 0x82a0f000"),
    ("x64", "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x64",
     "Built by: 7601.17514.amd64fre.win7sp1_rtm.101119-1850",
     "Kernel base = 0xfffff800`01409000"),
])
def test_vertarget_layout(booted: Callable[[str], Machine], arch: str, line: str, build: str,
                          base: str) -> None:
    machine = booted(arch)
    session = Session(machine.target())
    when = datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=timezone.utc)
    text = render_version(target_version(session.target, when), session)
    ticks = machine.workload.t
    ms = ticks * 156250 // 10_000
    uptime = (f"{ms // 86_400_000} days {ms // 3_600_000 % 24}:{ms // 60_000 % 60:02d}:"
              f"{ms // 1000 % 60:02d}.{ms % 1000:03d}")
    module_list = machine.arch.fmt_addr(machine.nt.symbols["PsLoadedModuleList"])
    assert text.splitlines() == [
        line, "Product: WinNt, suite: TerminalServer SingleUserTS", build, "Machine Name:",
        f"{base} PsLoadedModuleList = 0x{module_list}",
        "Debug session time: Wed Mar  4 05:06:07.089 2026 (UTC + 0:00)",
        f"System Uptime: {uptime}"]


def test_vertarget_runs_with_the_current_time(booted: Callable[[str], Machine]) -> None:
    text = run(Session(booted("x64").target()), "vertarget").splitlines()
    assert re.fullmatch(r"Debug session time: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{3} \d{4} "
                        r"\(UTC \+ 0:00\)", text[5])


def test_a_target_without_clock_or_processor_count(session: Session) -> None:
    text = run(session, "vertarget").splitlines()
    assert text[0].endswith(" UP Free x86 compatible")
    assert len(text) == 6            # no uptime without nt!KeTickCount
    assert text[4] == "Kernel base = 0x82a0f000"
