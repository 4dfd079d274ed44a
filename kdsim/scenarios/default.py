"""The default machine: Windows 7 SP1 a while after boot, nothing wrong with it, full size."""
from ..population import populate
from . import Phases, scenario


@scenario("default", "Windows 7 SP1 a while after boot: a healthy pool to explore", arch="x86")
def build(machine, scale: float) -> Phases:
    yield from populate(machine, scale)
