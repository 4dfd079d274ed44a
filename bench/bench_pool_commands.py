"""Timing of `!pool` and `!poolfind` at the scale of the first seed case.

Builds an x86 machine holding about 240,000 live nonpaged and 200,000 live paged blocks (the
`!poolused` TOTAL line of seeds/000) with the tag mix of the default machine, plus the 23 large
`Leak` blocks of seeds/001, then measures:

* `!pool` on random pool addresses (target: under 5 ms each);
* `!poolfind` in each pool, against a plain `bytes.find` loop over the same pool pages
  (target: at most 3 times the find loop).

Run: `python bench/bench_pool_commands.py [--seed N]`.  Not part of the test suite.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commands.poolread import PoolReader  # noqa: E402
from commands.session import Session  # noqa: E402
from commands.testing import run  # noqa: E402
from kdsim.arch import get_arch  # noqa: E402
from kdsim.layouts import tag_to_ulong  # noqa: E402
from kdsim.machine import Machine  # noqa: E402
from kdsim.population import STAYING, TRAFFIC  # noqa: E402

NONPAGED_LIVE, PAGED_LIVE = 240_000, 200_000
LEAKS = 23                       # seeds/001: 23 large Leak blocks of 0xfa000 bytes
PROTECTED = 0x80000000


def tag_mix() -> dict[int, list[tuple[int, tuple[int, ...], bool, float]]]:
    """Per pool: (tag key, x86 sizes, sizes are a range, weight), in the proportions of the
    default machine's population (kdsim/population.py)."""
    mix: dict[int, list[tuple[int, tuple[int, ...], bool, float]]] = {0: [], 1: []}
    for _drv, tag, pool, sizes, _s64, ranged, count, protected, _frames in STAYING:
        mix[pool].append((tag_to_ulong(tag) | (PROTECTED if protected else 0), sizes, ranged,
                          float(count)))
    for _drv, tag, pool, sizes, _s64, ranged, weight, _life, _frames in TRAFFIC:
        mix[pool].append((tag_to_ulong(tag), sizes, ranged, weight * 500))
    return mix


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build(seed: int) -> tuple[Machine, list[int]]:
    """Allocate a fifth more than the live target and free a random fifth, so pages are
    fragmented the way a machine that has run a while is; then the seed's large leaks."""
    rng = random.Random(seed)
    m = Machine(get_arch("x86"), seed)
    live: list[int] = []
    for pool, count in ((0, NONPAGED_LIVE), (1, PAGED_LIVE)):
        kinds = tag_mix()[pool]
        weights = [k[3] for k in kinds]
        blocks = []
        for key, sizes, ranged, _w in rng.choices(kinds, weights, k=count * 6 // 5):
            size = rng.randint(*sizes) if ranged else rng.choice(sizes)
            address = m.pool.allocate(pool, min(size, 0xFF0), key,
                                      cpu=rng.randrange(m.processors))
            if address:
                blocks.append(address)
        rng.shuffle(blocks)
        extra = len(blocks) - count
        for address in blocks[:extra]:
            m.pool.free(address, cpu=rng.randrange(m.processors))
        live += blocks[extra:]
    for _ in range(LEAKS):
        m.pool.allocate(1, 0xFA000, tag_to_ulong("Leak"))
    return m, live


def find_loop(chunks: list[bytes], needle: bytes) -> int:
    hits = 0
    for data in chunks:
        at = data.find(needle)
        while at >= 0:
            hits += 1
            at = data.find(needle, at + 1)
    return hits


def pool_chunks(session: Session, pool: int) -> tuple[list[bytes], int]:
    """The bytes of every readable page of one pool, as `!poolfind` scans them."""
    reader = PoolReader(session.target)
    ranges = reader.ranges()
    start, end = ranges.paged if pool else ranges.nonpaged
    chunks = [session.target.read(run_va, size) for run_va, size in reader.valid_runs(start, end)]
    return chunks, sum(len(c) for c in chunks)


def best_of(n: int, func) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=300, help="!pool addresses to time")
    args = parser.parse_args()

    print(f"platform : {platform.platform()}")
    print(f"cpu      : {cpu_name()} ({platform.machine()})")
    print(f"python   : {platform.python_implementation()} {platform.python_version()}")
    t = time.perf_counter()
    m, live = build(args.seed)
    print(f"machine  : x86 seed {args.seed}, {len(live)} live blocks "
          f"({NONPAGED_LIVE} nonpaged + {PAGED_LIVE} paged asked), "
          f"{len(m.memory.pages)} mapped pages, built in {time.perf_counter() - t:.1f} s")
    session = Session(m.target())

    run(session, "!pool 0")                       # load the commands before timing
    rng = random.Random(args.seed)
    times = []
    for address in rng.sample(live, args.samples):
        t = time.perf_counter()
        run(session, f"!pool {address + 4:x}")
        times.append((time.perf_counter() - t) * 1000)
    print(f"\n!pool ({args.samples} addresses): median {statistics.median(times):.2f} ms, "
          f"mean {statistics.fmean(times):.2f} ms, max {max(times):.2f} ms (target < 5 ms)")

    print()
    # the seed's search, a tag of the I/O traffic, and the most numerous tag of each pool
    for pool, tag in ((1, "Leak"), (0, "Irp "), (0, "Vad "), (1, "CM31")):
        chunks, size = pool_chunks(session, pool)
        needle = tag.encode()
        baseline = best_of(3, lambda: find_loop(chunks, needle))
        command = best_of(3, lambda: run(session, f"!poolfind {tag.strip()} {pool}"))
        rows = run(session, f"!poolfind {tag.strip()} {pool}").count("\n*")
        print(f"!poolfind {tag.strip()} {pool}: {rows} blocks in {size >> 20} MB of "
              f"{'paged' if pool else 'nonpaged'} pool: {command * 1000:.0f} ms; "
              f"bytes.find loop {baseline * 1000:.0f} ms; ratio {command / baseline:.2f} "
              f"(target <= 3)")


if __name__ == "__main__":
    main()
