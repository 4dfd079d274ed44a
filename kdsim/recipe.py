"""What decides a machine: its scenario, arch, seed, scale, processors and the verifier
settings it booted with.

Machines are deterministic, so a recipe names exactly one booted machine: the boot cache is
keyed by it (kdsim/bootcache.py), and a snapshot rebuilds a machine's object graph from it
before loading its memory and state (kdsim/snapshot.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .arch import get_arch
from .verifier import VerifierSettings, as_settings

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine
    from .scenarios import Scenario


@dataclass(frozen=True)
class Recipe:
    scenario: str
    arch: str
    seed: int
    scale: float
    processors: int
    verifier: VerifierSettings          # the settings the machine booted with

    @classmethod
    def of(cls, machine: "Machine") -> "Recipe":
        return cls(machine.scenario, machine.arch.name, machine.seed, machine.scale,
                   machine.processors, machine.verifier.settings)

    @classmethod
    def for_scenario(cls, scenario: str | None = None, arch: str | None = None, seed: int = 0,
                     scale: float = 1.0, verifier: "VerifierSettings | str | None" = None
                     ) -> "Recipe":
        """The recipe `scenarios.boot` boots from these options (the scenario's defaults
        filled in); ValueError for an unknown scenario, arch or verifier syntax."""
        from .machine import DEFAULT_PROCESSORS
        from .scenarios import get_scenario
        spec = get_scenario(scenario or "default")
        options = spec.options
        return cls(spec.name, get_arch(arch or spec.arch).name, seed, scale,
                   options.get("processors", DEFAULT_PROCESSORS),
                   as_settings(options.get("verifier") if verifier is None else verifier))

    def spec(self) -> "Scenario":
        from .scenarios import get_scenario
        return get_scenario(self.scenario)

    def machine(self) -> "Machine":
        """The machine powered on, its activities set up, no tick of its boot run."""
        spec = self.spec()
        machine = spec.machine(self.arch, self.seed, self.scale, processors=self.processors,
                               verifier=self.verifier)
        spec.assemble(machine)
        return machine
