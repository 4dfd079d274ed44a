"""The debugger's one doorway into the simulator besides `Target` and the layouts.

* `Control`: the actions that change a live machine (`g`, `.reboot`, `.verifier`, `!verifier
  -disable`, PoolHitTag breaks).  A live target carries one (`Target.control`, implemented by
  kdsim/live.py); a dump carries None, and the commands answer with kd's refusal.  Register
  writes will join it here.
* How the debugger gets a target: `open_machine` boots a scenario (from the boot cache when it
  holds it), `open_snapshot` resumes a snapshot, `open_dump` loads a dump file, `save_dump`
  writes one; `list_scenarios` and `scenario_lab` describe the scenarios; `register_lab` and
  `check_lab` read a lab file (kdsim/labfile.py).
* The simulator's facts the debugger shows as data: Driver Verifier settings (verifier.exe's
  syntax and option names), the dump banners, and OS errors in kd's words (`win32_error`).

Commands import nothing else from kdsim but `kdsim.target`, `kdsim.arch` and `kdsim.layouts`
(tests/test_architecture.py).
"""
from __future__ import annotations

import os
from typing import Callable, Protocol

from .bootcache import open_scenario
from .dump import DUMP_TYPE_BANNERS, DumpCreateError, DumpError, load
from .dump import save as save_dump
from .files import (
    FileTooLarge, NewFile, NotRegularFile, cannot_create, read_regular, win32_error,
)
from .labfile import LabFileError
from .labfile import load as check_lab
from .live import LiveControl, MachineStopped, RunResult, Stop
from .scenarios import Lab, Progress, get_scenario, list_scenarios, open_lab
from .snapshot import SnapshotError
from .snapshot import load as load_snapshot
from .snapshot import save as write_snapshot
from .target import Target
from .version import version
from .verifier import FLAG_NAMES, POOL_TRACKING, VerifierSettings, parse_settings

__all__ = ["Control", "RunResult", "Stop", "MachineStopped", "open_machine", "open_dump",
           "open_snapshot", "save_snapshot", "save_dump", "SnapshotError", "Progress", "version",
           "list_scenarios", "scenario_lab", "Lab", "LabFileError", "check_lab", "register_lab",
           "VerifierSettings", "parse_settings",
           "FLAG_NAMES", "POOL_TRACKING", "DUMP_TYPE_BANNERS", "DumpError", "DumpCreateError",
           "read_regular", "NewFile", "NotRegularFile", "FileTooLarge", "win32_error",
           "cannot_create"]


class Control(Protocol):
    """What the debugger may do to a live machine."""

    def run(self, ticks: int, interrupted: Callable[[], bool]) -> RunResult:
        """Let the machine run up to `ticks` ticks, calling `interrupted` now and then (True:
        break in now).  The stop is recorded in memory; the result says which it was and on
        what processor.  MachineStopped if the machine has already bug-checked."""
        ...

    def reboot(self, progress: Progress | None = None) -> Target:
        """Boot the machine again (same scenario, arch, seed and scale) with the pending
        Driver Verifier settings, from the boot cache when it holds that machine (a cold boot
        reports to `progress`); the new machine's target."""
        ...

    def verifier_settings(self) -> VerifierSettings:
        """The Driver Verifier settings the machine booted with."""
        ...

    def pending_verifier(self) -> VerifierSettings:
        """The settings the next boot will use (`.verifier` without arguments)."""
        ...

    def set_pending_verifier(self, settings: VerifierSettings) -> None:
        """`.verifier /flags ...`: settings for the next boot."""
        ...

    def disable_verifier(self) -> None:
        """`!verifier -disable`: verify no new allocation until the next boot."""
        ...


def open_machine(*, scenario: str | None = None, arch: str | None = None, seed: int = 0,
                 scale: float = 1.0, verifier: VerifierSettings | str | None = None,
                 use_cache: bool = True, progress: Progress | None = None) -> Target:
    """Boot a scenario (the default machine if None) on its own arch unless `arch` is given;
    `verifier` replaces the scenario's Driver Verifier settings.  The boot cache answers when
    it holds that machine (unless `use_cache` is False); a cold boot reports to `progress`.
    ValueError for an unknown scenario or bad settings."""
    options: dict[str, object] = {"scenario": scenario, "arch": arch, "seed": seed,
                                  "scale": scale}
    if verifier is not None:
        options["verifier"] = verifier
    return open_scenario(options, use_cache=use_cache, progress=progress).target()


def open_snapshot(path: str | os.PathLike[str]) -> Target:
    """The live target of a snapshot file; SnapshotError says why it cannot be opened."""
    return load_snapshot(path).target()


def save_snapshot(control: Control, path: str, overwrite: bool) -> int:
    """`.snapshot`: write the live machine behind `control` as it stands, for `kdsim --resume`;
    the bytes written.  SnapshotError says why it could not be written.  (A function beside
    the protocol rather than a method of it: the snapshot format reads the whole simulator,
    which the machine's own control must not import.)"""
    if not isinstance(control, LiveControl):
        raise SnapshotError("a snapshot needs a simulated live machine")
    return write_snapshot(control.machine, path, overwrite=overwrite)


def open_dump(path: str | os.PathLike[str]) -> Target:
    """The target of a dump file; DumpError says why it cannot be opened."""
    return load(path)


def register_lab(path: str | os.PathLike[str]) -> str:
    """`kdsim --lab FILE`: check the lab file and make it a scenario; its name.  LabFileError
    (one line: FILE:LINE: key: message) when it cannot be used: nothing boots."""
    return open_lab(path).name


def scenario_lab(name: str, seed: int = 0) -> Lab | None:
    """The lab of a scenario for a seed's machine (None if it has none); ValueError if there
    is no such scenario."""
    return get_scenario(name).lab_of(seed)
