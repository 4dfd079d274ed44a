"""Scenarios: named, seeded machines. Each lab registers itself here with `@scenario`.

A scenario's build function plays drivers on the machine (kdsim/workload.py); whatever the
lab is about must come out of the allocator, never be written into memory by the scenario.
Booting a machine is this package's job (`boot`); the machine remembers its scenario, so that
a reboot boots it the same way.  A build sets up activities and yields `(phase, ticks)` wherever
the boot workload runs, so the same function boots a machine (`Scenario.boot`, with progress),
and sets up a machine's activities without playing them (`Scenario.assemble`: a snapshot
restores the rest).

Labs are data: a lab file (kdsim/labfile.py) becomes a scenario here (`lab_scenario`).  The
package's own `*.toml` files are registered with its modules; `--scenario NAME` also finds
`NAME.toml` in the directories of KDSIM_LABS (`os.pathsep`-separated), and `kdsim --lab FILE`
opens any file (`open_lab`).  A Python module remains the way to write behaviour a file cannot
express (a driver's timer, a request path several drivers share).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import labfile
from ..arch import get_arch
from ..machine import Machine, Progress
from ..mm import DEFAULT_MEMORY

Phases = Iterator[tuple[str, int]]            # (what the boot is doing, ticks it runs)
# (machine, scale: 1.0 = the lab's full size); a build without a boot workload returns None
Build = Callable[[Machine, float], "Phases | None"]
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
    commands: tuple[str, ...] = ()    # a lab file's solution, as commands
    kind: str = ""                    # what the answer names: "driver", "tag" or ""
    drivers: tuple[str, ...] = ()     # the lab's driver names and images (for `.check`)
    tags: tuple[str, ...] = ()        # the tags its drivers use (for `.check`)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    arch: str                                  # the architecture it is built for by default
    build: Build                               # adds activities, yields the boot's ticks
    options: dict = field(default_factory=dict)   # Machine constructor overrides
    lab: Lab | None = None
    source: str = ""                           # a lab file's sha256 (the boot cache's key)
    variants: tuple[Lab, ...] = ()             # a lab file's variants: the seed picks one

    def lab_of(self, seed: int = 0) -> Lab | None:
        """The lab a machine of this seed is about: its own variant when the lab has some."""
        return self.variants[seed % len(self.variants)] if self.variants else self.lab

    def machine(self, arch: str | None = None, seed: int = 0, scale: float = 1.0,
                **options: Any) -> Machine:
        """A machine of this scenario, powered on, with no activity and no tick run yet."""
        kwargs = {**self.options, **options}
        chosen = get_arch(arch or self.arch)
        pages = kwargs.pop("nonpaged_pool_pages", None)
        if pages is not None:                  # a lab small enough to exhaust
            kwargs["memory"] = dataclasses.replace(DEFAULT_MEMORY[chosen.name],
                                                   nonpaged_max_pages=pages)
        machine = Machine(chosen, seed, scenario=self.name, **kwargs)
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


LABS_ENV = "KDSIM_LABS"
PACKAGE = Path(__file__).resolve().parent
_loaded = False


def _teaching(checked: dict[str, Any]) -> Lab:
    """The teaching layer of one checked lab document (one variant)."""
    data = checked["lab"]
    drivers = tuple(n for d in checked["drivers"] for n in (d["name"], d["image"]))
    tags = tuple(dict.fromkeys(e["tag"] for d in checked["drivers"] for e in d["allocates"]))
    return Lab(data["title"], data["briefing"], data["hints"], data["answers"],
               data["question"], solution=data["solution_file"], commands=data["solution"],
               kind=data["kind"], drivers=drivers, tags=tags)


def lab_scenario(lab: labfile.LabFile) -> Scenario:
    """The scenario a checked lab file describes."""
    return Scenario(lab.name, lab.lab["description"], lab.lab["arch"], labfile.build_for(lab),
                    labfile.options_of(lab), _teaching(lab.data), lab.digest,
                    tuple(_teaching(one) for one in lab.variants))


def open_lab(path: str | os.PathLike[str]) -> Scenario:
    """Read, check and register the lab file at `path` under its stem (replacing a scenario
    of that name in this process); LabFileError says what is wrong with it.  The package's
    own scenarios are registered first, so a file of the same name replaces them, not the
    other way round."""
    _load()
    found = lab_scenario(labfile.load(path))
    SCENARIOS[found.name] = found
    return found


def lab_directories() -> list[Path]:
    """The directories KDSIM_LABS names, in order."""
    return [Path(p) for p in os.environ.get(LABS_ENV, "").split(os.pathsep) if p.strip()]


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for path in sorted(PACKAGE.glob("*" + labfile.SUFFIX)):
        open_lab(path)


def get_scenario(name: str) -> Scenario:
    _load()
    found = SCENARIOS.get(name)
    if found is None:
        for folder in lab_directories():
            path = folder / (name + labfile.SUFFIX)
            if path.is_file():
                return open_lab(path)
        raise ValueError(f"unknown scenario '{name}' (see --list-scenarios)")
    return found


def boot(arch: str | None = None, seed: int = 0, scenario: str | None = None,
         scale: float = 1.0, **options: Any) -> Machine:
    """Boot a machine and run its scenario (the default Windows 7 machine if none); options
    are Machine constructor arguments (verifier=, processors=, ...)."""
    return get_scenario(scenario or "default").boot(arch, seed, scale, **options)


def list_scenarios() -> list[tuple[str, str]]:
    """Every scenario: the package's, then the lab files of KDSIM_LABS (a file that does not
    check is left out here; opening it says why)."""
    _load()
    for folder in lab_directories():
        for path in sorted(folder.glob("*" + labfile.SUFFIX)) if folder.is_dir() else ():
            name = path.name[:-len(labfile.SUFFIX)]
            if name not in SCENARIOS:
                try:
                    open_lab(path)
                except labfile.LabFileError:
                    continue
    return [(s.name, s.description) for s in SCENARIOS.values()]
