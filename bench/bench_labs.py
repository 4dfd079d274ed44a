"""Time to open each lab: boot the scenario's machine and run its boot workload, as
`kdsim --scenario NAME` does before the first prompt.

Target: `fragmentation` at full scale (the seed's ~240,000 nonpaged allocations) under 5 s.
The scale the tests and the docs' transcripts use (0.25) is timed too.

Run: python bench/bench_labs.py [seed]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine_info import describe  # noqa: E402
from kdsim.machine import Machine  # noqa: E402
from kdsim.scenarios import SCENARIOS, boot, list_scenarios  # noqa: E402

SCALES = (1.0, 0.25)
TARGETS = {("fragmentation", 1.0): 5.0}


def open_lab(name: str, seed: int, scale: float) -> tuple[float, Machine]:
    start = time.perf_counter()
    machine = boot(seed=seed, scenario=name, scale=scale)
    return time.perf_counter() - start, machine


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print(f"Opening each lab (seed {seed}) on {describe()}")
    labs = [name for name, _ in list_scenarios() if SCENARIOS[name].lab is not None]
    print(f"{'lab':<22}{'scale':>6}{'seconds':>9}{'ticks':>10}{'nonpaged':>10}{'paged':>9}"
          "  (live blocks)")
    for name in labs:
        for scale in SCALES:
            seconds, machine = open_lab(name, seed, scale)
            nonpaged, paged, _, _ = machine.pool.tracker.totals()
            target = TARGETS.get((name, scale))
            verdict = "" if target is None else (
                f"  target under {target:g} s: {'met' if seconds < target else 'MISSED'}")
            print(f"{name:<22}{scale:>6g}{seconds:>9.2f}{machine.workload.t:>10,}"
                  f"{nonpaged:>10,}{paged:>9,}{verdict}")


if __name__ == "__main__":
    main()
