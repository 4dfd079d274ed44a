"""The default machine: Windows 7 SP1 a while after boot, nothing wrong with it."""
from ..population import populate
from . import scenario


@scenario("default", "Windows 7 SP1 a while after boot: a healthy pool to explore", arch="x86")
def build(machine, scale: float) -> None:
    populate(machine, 0.6 * scale)
