"""The control surface of a live machine: what `g`, `.reboot`, `.verifier` and `!verifier
-disable` do to it (the protocol is `kdsim.control.Control`; a dump has no control at all).

Every action leaves its trace where the debugger reads it: a run ends with the machine's stop
recorded in memory (a break-in, the tag tracker's DbgBreakPoint for nt!PoolHitTag, or the bug
check), so the debugger prints what it finds there, as it would on a real target.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine, Progress
    from .target import Target
    from .verifier import VerifierSettings

CHUNK = 1000                          # ticks between looks at the interrupt check


class Stop(Enum):
    """Why a run ended."""

    BREAK_IN = "break-in"             # its ticks ran out, or the user broke in
    POOL_HIT = "pool-hit"             # nt!PoolHitTag: DbgBreakPoint in the tag tracker
    BUGCHECK = "bugcheck"             # the machine bug-checked


@dataclass(frozen=True)
class RunResult:
    stop: Stop
    processor: int                    # the processor the debugger is now on


class MachineStopped(Exception):
    """The machine has bug-checked: it cannot run until it boots again."""


class LiveControl:
    """`kdsim.control.Control` over a simulated Machine."""

    def __init__(self, machine: "Machine"):
        self.machine = machine

    def run(self, ticks: int, interrupted: Callable[[], bool]) -> RunResult:
        """Run up to `ticks` ticks, looking at `interrupted` every CHUNK ticks; stops early at
        a PoolHitTag hit or a bug check.  MachineStopped if it had already bug-checked."""
        m = self.machine
        if m.crash is not None:
            raise MachineStopped
        hit = None
        m.pool.rescan_lists()              # ListHeads the debugger wrote are seen, as in Windows
        while ticks and m.crash is None and hit is None and not interrupted():
            run = min(ticks, CHUNK)
            m.step(run)
            ticks -= run
            hit = m.pool.take_hit()
        if m.crash is not None:
            return RunResult(Stop.BUGCHECK, m.g.read_u32(m.stops.sym_owner))
        if hit is not None:
            _, sign, routine, cpu, stack = hit
            m.stops.record_hit(cpu, m.current_thread(cpu), routine, sign, stack)
            return RunResult(Stop.POOL_HIT, cpu)
        m.stops.record_break(0)
        return RunResult(Stop.BREAK_IN, 0)

    def reboot(self, progress: "Progress | None" = None) -> "Target":
        return self.machine.reboot(progress).target()

    def verifier_settings(self) -> "VerifierSettings":
        return self.machine.verifier.settings

    def pending_verifier(self) -> "VerifierSettings":
        return self.machine.verifier.pending

    def set_pending_verifier(self, settings: "VerifierSettings") -> None:
        self.machine.verifier.pending = settings

    def disable_verifier(self) -> None:
        self.machine.verifier.disable()
