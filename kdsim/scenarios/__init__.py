"""Scenarios: named, seeded machines. Each lab registers itself here with `@scenario`.

A scenario's build function plays drivers on the machine (kdsim/workload.py); whatever the
lab is about must come out of the allocator, never be written into memory by the scenario.
Booting a machine is this package's job (`boot`); the machine remembers its scenario, so that
a reboot boots it the same way.  A build sets up activities and yields `(phase, ticks)` wherever
the boot workload runs, so the same function boots a machine (`Scenario.boot`, with progress),
and sets up a machine's activities without playing them (`Scenario.assemble`: a snapshot
restores the rest).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..arch import get_arch
from ..machine import Machine

Phases = Iterator[tuple[str, int]]            # (what the boot is doing, ticks it runs)
# (machine, scale: 1.0 = the lab's full size); a build without a boot workload returns None
Build = Callable[[Machine, float], "Phases | None"]
Progress = Callable[[str, int, int], None]    # (phase, ticks done, ticks in all)
PROGRESS_TICKS = 2000                         # ticks between two progress reports


@dataclass(frozen=True)
class Lab:
    """The teaching layer of a scenario: what `.lab`, `.hint` and `.check` say."""

    title: str
    briefing: str
    hints: tuple[str, ...]
    answers: tuple[str, ...]          # accepted by `.check`, compared case-insensitively
    question: str                     # what `.check ANSWER` is asked about
    solution: str = ""                # solution command file name, beside the scenario module


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    arch: str                                  # the architecture it is built for by default
    build: Build                               # adds activities, yields the boot's ticks
    options: dict = field(default_factory=dict)   # Machine constructor overrides
    lab: Lab | None = None

    def machine(self, arch: str | None = None, seed: int = 0, scale: float = 1.0,
                **options: Any) -> Machine:
        """A machine of this scenario, powered on, with no activity and no tick run yet."""
        kwargs = {**self.options, **options}
        machine = Machine(get_arch(arch or self.arch), seed, scenario=self.name, **kwargs)
        machine.scale = scale
        machine.booted_by = self
        return machine

    def boot(self, arch: str | None = None, seed: int = 0, scale: float = 1.0,
             progress: Progress | None = None, **options: Any) -> Machine:
        """Boot the machine and play its boot workload, reporting each phase to `progress`."""
        machine = self.machine(arch, seed, scale, **options)
        total = done = 0
        if progress is not None:          # the plan, from a machine that is only assembled
            total = sum(ticks for _, ticks in
                        self.assemble(self.machine(arch, seed, scale, **options)))
        for phase, ticks in self.build(machine, scale) or ():
            if progress is None:
                machine.step(ticks)
                continue
            end = done + ticks
            while done < end:
                run = min(PROGRESS_TICKS, end - done)
                machine.step(run)
                done += run
                progress(phase, done, total)
        return machine

    def assemble(self, machine: Machine) -> list[tuple[str, int]]:
        """Set up the scenario's activities on `machine` without running a tick; returns the
        phases its boot would run.  What else the build does to the machine (tour's start
        routine allocates) is overwritten when a snapshot is loaded into it."""
        return list(self.build(machine, machine.scale) or ())


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, description: str, arch: str = "x86", lab: Lab | None = None,
             **options) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        SCENARIOS[name] = Scenario(name, description, arch, build, options, lab)
        return build
    return register


def _load() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def get_scenario(name: str) -> Scenario:
    _load()
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario '{name}' (see --list-scenarios)") from None


def boot(arch: str | None = None, seed: int = 0, scenario: str | None = None,
         scale: float = 1.0, **options: Any) -> Machine:
    """Boot a machine and run its scenario (the default Windows 7 machine if none); options
    are Machine constructor arguments (verifier=, processors=, ...)."""
    return get_scenario(scenario or "default").boot(arch, seed, scale, **options)


def list_scenarios() -> list[tuple[str, str]]:
    _load()
    return [(s.name, s.description) for s in SCENARIOS.values()]
