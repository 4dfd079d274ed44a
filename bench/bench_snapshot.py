"""Opening a lab cold and warm (issue 10): `kdsim --scenario NAME -c q` as a user runs it, with
an empty boot cache (cold: boot, then store the snapshot) and with the entry in place (warm).

Targets: fragmentation warm at most 15 % of cold and at most 1 s; every lab warm at most 1 s.
Wall time is what the user waits; CPU time (user + system of the kdsim process) is printed
beside it, since other processes on a shared machine stretch the wall time.  The snapshot's
own save and load, in process, are timed too.

Run from the repository root: python -m bench.bench_snapshot [warm runs]
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import print_machine, ratio, ratio_text, timed, verdict
from kdsim import snapshot
from kdsim.scenarios import SCENARIOS, boot, list_scenarios

ROOT = Path(__file__).resolve().parent.parent
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
    print_machine()
    print(f"{'lab':<22}{'cold wall':>10}{'cpu':>7}{'warm wall':>11}{'cpu':>7}{'warm/cold':>11}"
          f"  (seconds, warm: best of {warm_runs})")
    labs = [name for name, _ in list_scenarios() if SCENARIOS[name].lab is not None]
    verdicts = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in labs:
            cache = Path(scratch) / name
            cold = open_lab(name, cache)
            warm = best([open_lab(name, cache) for _ in range(warm_runs)])
            print(f"{name:<22}{cold[0]:>10.2f}{cold[1]:>7.2f}{warm[0]:>11.2f}{warm[1]:>7.2f}"
                  f"{ratio(warm[0], cold[0]):>10.0%}")
            verdicts.append(f"{name} warm {warm[0]:.2f} s: {verdict(warm[0], '≤', WARM_LIMIT, 's')}")
            if name == "fragmentation":
                uncached = open_lab(name, cache, "--no-cache")
                print(f"{'  (--no-cache)':<22}{uncached[0]:>10.2f}{uncached[1]:>7.2f}")
                verdicts.append(f"fragmentation: {ratio_text('warm', warm[0], 'cold', cold[0])}; "
                                f"{verdict(ratio(warm[0], cold[0]), '≤', WARM_SHARE)}")
        machine = boot(scenario="fragmentation")
        path = Path(scratch) / "fragmentation.kdsnap"
        saved = timed(lambda: snapshot.save(machine, path))
        loaded = timed(lambda: snapshot.load(path))
        print(f"fragmentation snapshot: {len(machine.memory.pages) * 4096 / 1e6:.0f} MB of "
              f"memory in {saved.result / 1e6:.1f} MB, saved in {saved.summary()}, "
              f"loaded in {loaded.summary()}")
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
