"""Dump save and load speed in MB/s (target: at least 200 MB/s each way).

Boots an empty x64 machine, grows its paged pool to about 100 MB with big allocations whose
pages carry varied bytes, then saves and reloads it a few times and prints the best rate of
each, with the machine it ran on.

    python bench/bench_dump.py [--mb 100] [--repeat 3] [--dir DIR]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdsim.arch import get_arch  # noqa: E402
from kdsim.dump import load, save  # noqa: E402
from kdsim.layouts import tag_to_ulong  # noqa: E402
from kdsim.machine import Machine  # noqa: E402
from kdsim.pool import PAGED  # noqa: E402

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
        saves, loads = [], []
        for _ in range(args.repeat):
            if os.path.exists(path):
                os.unlink(path)       # time the write, not the truncation of the last file
            start = time.perf_counter()
            size = save(target, path)
            saves.append(size / (time.perf_counter() - start) / 1e6)
            start = time.perf_counter()
            loaded = load(path)
            loads.append(size / (time.perf_counter() - start) / 1e6)
        assert loaded.memory.pages == target.memory.pages

    print(f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"dump: {size / 1e6:.1f} MB, {len(target.memory.pages)} pages, "
          f"best of {args.repeat}")
    print(f"save: {max(saves):7.0f} MB/s   (runs: {', '.join(f'{r:.0f}' for r in saves)})")
    print(f"load: {max(loads):7.0f} MB/s   (runs: {', '.join(f'{r:.0f}' for r in loads)})")


if __name__ == "__main__":
    main()
