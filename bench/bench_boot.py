"""Cold boot of every machine the package ships: the default machine and each lab, on both
architectures, at full size: CPU and wall seconds, ticks played, peak memory, and what `!vm`
would count in the pools.  Each boot runs in a process of its own, so that its peak memory is
its own (ru_maxrss of that process) and no boot warms another.

Targets: the default machine boots in < 8 s of CPU on either arch (the `booted` test fixture
boots both; the boot cache is what makes opening fast), in < 3 × its pool + 200 MB.

Run from the repository root: python -m bench.bench_boot [--scale S] [--seed N]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from bench.harness import print_machine, verdict
from kdsim.layouts import PAGE_SIZE
from kdsim.scenarios import SCENARIOS, boot, list_scenarios

ARCHES = ("x86", "x64")
CPU_TARGET = 8.0                 # seconds, the default machine
MB = 1 << 20


def measure(name: str, arch: str, scale: float, seed: int) -> dict[str, float]:
    """Boot one machine in this process; its figures."""
    wall, cpu = time.perf_counter(), time.process_time()
    machine = boot(arch, seed, name, scale)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    mm = machine.mm
    return {"cpu": cpu, "wall": wall, "ticks": machine.workload.t,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "nonpaged": mm.get("MmAllocatedNonPagedPool") * PAGE_SIZE / MB,
            "paged": mm.get("MmPagedPoolCommit") * PAGE_SIZE / MB}


def in_child(name: str, arch: str, scale: float, seed: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.bench_boot", "--one", name, arch,
                          "--scale", str(scale), "--seed", str(seed)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("SCENARIO", "ARCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, arch = args.one
        print(json.dumps(measure(name, arch, args.scale, args.seed)))
        return
    print_machine()
    print(f"Cold boot at scale {args.scale:g}, seed {args.seed}, one process each")
    print(f"{'machine':<22}{'arch':>5}{'CPU s':>8}{'wall s':>8}{'ticks':>10}{'peak MB':>9}"
          f"{'NP MB':>7}{'P MB':>7}")
    names = ["default"] + [n for n, _ in list_scenarios()
                           if SCENARIOS[n].lab is not None and n != "default"]
    for name in names:
        for arch in ARCHES:
            r = in_child(name, arch, args.scale, args.seed)
            line = (f"{name:<22}{arch:>5}{r['cpu']:>8.2f}{r['wall']:>8.2f}{r['ticks']:>10,}"
                    f"{r['peak']:>9.0f}{r['nonpaged']:>7.1f}{r['paged']:>7.1f}")
            if name == "default":
                pool = r["nonpaged"] + r["paged"]
                line += (f"  {verdict(r['cpu'], '<', CPU_TARGET, 's')}; "
                         f"{verdict(r['peak'], '<', round(3 * pool + 200), 'MB')}")
            print(line)


if __name__ == "__main__":
    main()
