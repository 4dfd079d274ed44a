"""Opening a lab cold and warm (issue 10): `kdsim --scenario NAME -c q` as a user runs it, with
an empty boot cache (cold: boot, then store the snapshot) and with the entry in place (warm).

Targets: fragmentation warm at most 15 % of cold and at most 1 s; every lab warm at most 1 s.
Wall time is what the user waits; CPU time (user + system of the kdsim process) is printed
beside it, since other processes on a shared machine stretch the wall time.  The snapshot's
own save and load, in process, are timed too.

Run: python bench/bench_snapshot.py [warm runs]
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine_info import describe  # noqa: E402
from kdsim import snapshot  # noqa: E402
from kdsim.machine import Machine  # noqa: E402
from kdsim.scenarios import SCENARIOS, list_scenarios  # noqa: E402

WARM_LIMIT = 1.0              # seconds
WARM_SHARE = 0.15             # of the cold open


def open_lab(name: str, cache: Path, *extra: str) -> tuple[float, float]:
    """(wall, CPU) seconds of `kdsim --scenario NAME -c q`."""
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT), "KDSIM_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "commands", "--scenario", name, *extra, "-c", "q"],
                   env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    warm_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"machine: {describe()}")
    print(f"{'lab':<22}{'cold wall':>10}{'cpu':>7}{'warm wall':>11}{'cpu':>7}{'warm/cold':>11}"
          "  (seconds, warm: best of " f"{warm_runs})")
    labs = [name for name, _ in list_scenarios() if SCENARIOS[name].lab is not None]
    verdicts = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in labs:
            cache = Path(scratch) / name
            cold = open_lab(name, cache)
            warm = best([open_lab(name, cache) for _ in range(warm_runs)])
            share = warm[0] / cold[0]
            print(f"{name:<22}{cold[0]:>10.2f}{cold[1]:>7.2f}{warm[0]:>11.2f}{warm[1]:>7.2f}"
                  f"{share:>10.0%}")
            verdicts.append((f"{name} warm <= {WARM_LIMIT:g} s", warm[0] <= WARM_LIMIT))
            if name == "fragmentation":
                uncached = open_lab(name, cache, "--no-cache")
                print(f"{'  (--no-cache)':<22}{uncached[0]:>10.2f}{uncached[1]:>7.2f}")
                verdicts.append((f"fragmentation warm <= {WARM_SHARE:.0%} of cold",
                                 share <= WARM_SHARE))
        machine = boot(scenario="fragmentation")
        path = Path(scratch) / "fragmentation.kdsnap"
        start = time.perf_counter()
        size = snapshot.save(machine, path)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        snapshot.load(path)
        loaded = time.perf_counter() - start
        print(f"fragmentation snapshot: {len(machine.memory.pages) * 4096 / 1e6:.0f} MB of "
              f"memory in {size / 1e6:.1f} MB, saved in {saved:.2f} s, loaded in {loaded:.2f} s")
    for what, met in verdicts:
        print(f"target {what}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
