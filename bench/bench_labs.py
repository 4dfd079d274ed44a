"""Time to open each lab: boot the scenario's machine and run its boot workload, as
`kdsim --scenario NAME` does before the first prompt.

Target: `fragmentation` at full scale (the seed's ~240,000 nonpaged allocations) under 5 s.
The scale the tests and the docs' transcripts use (0.25) is timed too.

Run from the repository root: python -m bench.bench_labs [seed]
"""
from __future__ import annotations

import sys

from bench.harness import print_machine, timed, verdict
from kdsim.machine import Machine
from kdsim.scenarios import SCENARIOS, boot, list_scenarios

SCALES = (1.0, 0.25)
TARGETS = {("fragmentation", 1.0): 5.0}


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print_machine()
    print(f"Opening each lab (seed {seed})")
    labs = [name for name, _ in list_scenarios() if SCENARIOS[name].lab is not None]
    print(f"{'lab':<22}{'scale':>6}{'seconds':>9}{'ticks':>10}{'nonpaged':>10}{'paged':>9}"
          "  (live blocks)")
    for name in labs:
        for scale in SCALES:
            opened = timed(lambda: boot(seed=seed, scenario=name, scale=scale))
            machine: Machine = opened.result
            nonpaged, paged, _, _ = machine.pool.tracker.totals()
            target = TARGETS.get((name, scale))
            print(f"{name:<22}{scale:>6g}{opened.best:>9.2f}{machine.workload.t:>10,}"
                  f"{nonpaged:>10,}{paged:>9,}"
                  + ("" if target is None else f"  {verdict(opened.best, '<', target, 's')}"))


if __name__ == "__main__":
    main()
