"""Dump save and load speed in MB/s (target: at least 200 MB/s each way).

Boots an empty x64 machine, grows its paged pool to about 100 MB with big allocations whose
pages carry varied bytes, then saves and reloads it a few times and prints the best rate of
each, with the machine it ran on.

Run from the repository root: python -m bench.bench_dump [--mb 100] [--repeat 3] [--dir DIR]
"""
from __future__ import annotations

import argparse
import os
import tempfile

from bench.harness import print_machine, timed_rounds, verdict
from kdsim.arch import get_arch
from kdsim.dump import load, save
from kdsim.machine import Machine
from kdsim.pool import PAGED
from kdsim.target import Target
from kdsim.layouts import tag_to_ulong

BLOCK = 0x10000          # 64 KB per big allocation


def grown_machine(megabytes: int) -> Machine:
    machine = Machine(get_arch("x64"), seed=1)
    tag = tag_to_ulong("Bnch")
    pattern = bytes(range(256)) * (BLOCK // 256)
    while len(machine.memory.pages) * 4096 < megabytes << 20:
        address = machine.pool.allocate(PAGED, BLOCK, tag)
        if not address:
            break
        machine.memory.write(address, pattern)
    return machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="pool to grow, in MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--dir", default=None, help="where to write the dump (default: temp)")
    args = parser.parse_args()

    target = grown_machine(args.mb).target()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "bench.dmp")

        def fresh_path() -> str:
            if os.path.exists(path):
                os.unlink(path)       # time the write, not the truncation of the last file
            return path

        saves, loads = timed_rounds([(fresh_path, lambda p: save(target, p)),
                                     (lambda: path, load)], args.repeat)
        size: int = saves.result
        loaded: Target = loads.result
        assert loaded.memory.pages == target.memory.pages

    save_rates = [size / s / 1e6 for s in saves.runs]
    load_rates = [size / s / 1e6 for s in loads.runs]
    print_machine()
    print(f"dump: {size / 1e6:.1f} MB, {len(target.memory.pages)} pages, "
          f"best of {args.repeat}")
    for what, rates in (("save", save_rates), ("load", load_rates)):
        print(f"{what}: {max(rates):7.0f} MB/s   (runs: {', '.join(f'{r:.0f}' for r in rates)}); "
              f"{verdict(max(rates), '≥', 200, 'MB/s')}")


if __name__ == "__main__":
    main()
