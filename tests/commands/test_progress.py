"""Progress on a cold boot: the boot reports its phases and ticks, a terminal shows them as a
bar, a pipe shows nothing, and Ctrl+C stops the boot with status 130."""
from __future__ import annotations

import os
import select
import sys
import time

import pytest

from commands.progress import boot_progress
from kdsim.scenarios import boot, get_scenario
from tests.support import ROOT



def test_the_boot_reports_every_tick_of_its_phases():
    reports: list[tuple[str, int, int]] = []
    machine = boot("x86", 2, "fragmentation", scale=0.05,
                             progress=lambda *r: reports.append(r))
    plain = boot("x86", 2, "fragmentation", scale=0.05)
    assert machine.memory.pages == plain.memory.pages and machine.workload.t == plain.workload.t
    total = machine.workload.t
    assert [r[2] for r in reports] == [total] * len(reports)
    done = [r[1] for r in reports]
    assert done == sorted(done) and done[-1] == total
    assert [p for p, _, _ in reports if p not in ("boot objects", "settling", "session pool",
                                                  "load peak", "after the peak")] == []
    phases = get_scenario("fragmentation").assemble(
        get_scenario("fragmentation").machine("x86", 2, 0.05))
    assert [p for p, _ in phases] == ["boot objects", "settling", "session pool", "load peak",
                                      "after the peak"]
    assert sum(t for _, t in phases) == total


def test_no_bar_when_not_enabled():
    with boot_progress("leak", enabled=False) as progress:
        assert progress is None


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_ctrl_c_on_a_terminal_stops_the_boot_with_status_130(tmp_path):
    import pty
    pid, fd = pty.fork()
    if pid == 0:                                              # the child: kdsim on a terminal
        os.chdir(ROOT)
        os.environ["KDSIM_CACHE"] = str(tmp_path / "cache")
        os.execv(sys.executable, [sys.executable, "-m", "commands.cli", "--scenario",
                                  "fragmentation", "--scale", "0.5", "-c", "q"])
    screen = b""
    pressed = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:                                       # the child has exited
            break
        if not data:
            break
        screen += data
        if b"\x1b[6n" in data:                                # a cursor position request
            os.write(fd, b"\x1b[1;1R")
        if not pressed and b"%" in screen:
            os.write(fd, b"\x03")
            pressed = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert pressed and b"Booting fragmentation" in screen and b"boot objects: " in screen
    assert os.waitstatus_to_exitcode(status) == 130
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert b"Traceback" not in screen
