"""The machine's clock in memory: nt!KeTickCount, a _KSYSTEM_TIME of the workload's ticks, the
last nt global published (so no address published before it moves)."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.layouts import profile_for
from kdsim.machine import Machine


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_ke_tick_count_holds_the_ticks_run(arch: str) -> None:
    m = Machine(get_arch(arch), 0)
    at = m.symbols.resolve("nt!KeTickCount")
    layout = profile_for(m.arch).system_time
    assert layout.sizeof() == 12
    assert at == max(a for a in m.nt.symbols.values() if m.g.base <= a < m.g.end)
    m.step(1234)
    assert layout.parse(m.memory.read(at, 12)).LowPart == 1234
    m.workload.t = (5 << 32) + 7                      # past 2**32: the high part, twice
    m.step(0)
    time = layout.parse(m.memory.read(at, 12))
    assert (time.LowPart, time.High1Time, time.High2Time) == (7, 5, 5)
