"""Allocator benchmarks (issue 2): mixed-workload operations per second, time to boot the
default machine, and time and peak memory to build a machine at the first seed case's scale
(~240,000 live nonpaged and ~200,000 live paged allocations).

Run: python bench/bench_allocator.py [--quick]
"""
from __future__ import annotations

import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine_info import describe  # noqa: E402
from kdsim.arch import PAGE_SIZE, get_arch  # noqa: E402
from kdsim.machine import Machine  # noqa: E402
from kdsim.population import staying, traffic  # noqa: E402
from kdsim.scenarios import boot  # noqa: E402
from kdsim.tracker import tag_key  # noqa: E402


def mixed_ops_per_second(arch: str, ops: int = 200_000) -> float:
    """Random allocate/free around 20,000 live blocks, sizes from lookaside-sized to big."""
    m = Machine(get_arch(arch), seed=1)
    rng = random.Random(5)
    tags = [tag_key(t) for t in ("Irp ", "File", "Mdl ", "CM31", "Ntfx", "Even")]
    sizes = [rng.choice((0x38, 0x40, 0x94, 0xB0, 0x100, 0x200, 0x3A0, 0x800, 0xF18))
             for _ in range(ops)]
    coin = [rng.random() for _ in range(ops)]
    picks = [rng.randrange(1 << 30) for _ in range(ops)]
    alloc, free = m.pool.allocate, m.pool.free
    live: list[int] = []
    start = time.process_time()
    for i in range(ops):
        if len(live) < 20_000 or coin[i] < 0.5:
            live.append(alloc(i & 1, sizes[i], tags[i % 6], i & 1))
        else:
            j = picks[i] % len(live)
            live[j], live[-1] = live[-1], live[j]
            free(live.pop(), 0, i & 1)
    return ops / (time.process_time() - start)


def default_create_seconds(arch: str) -> float:
    start = time.perf_counter()
    boot(arch, seed=1)
    return time.perf_counter() - start


def seed_scale(quick: bool) -> tuple[float, int, int, int, int, float]:
    """Build the first seed case's scale on x86: the default population scaled to ~240k
    nonpaged and ~200k paged live blocks, interleaved with traffic."""
    factor = 0.1 if quick else 1.0
    m = Machine(get_arch("x86"), seed=1)
    wl = m.workload
    stay = staying(False)
    np_total = sum(n for p, n in stay if not p.pool_type & 1)
    p_total = sum(n for p, n in stay if p.pool_type & 1)
    want = {0: 240_000 * factor, 1: 200_000 * factor}
    moving = traffic(False)
    tw = sum(p.weight for p in moving)
    for pat, n in stay:
        pat.weight = n * want[pat.pool_type & 1] / (np_total if not pat.pool_type & 1 else p_total)
    total = sum(p.weight for p, _ in stay)
    for pat, _ in stay:
        pat.weight = pat.weight / total * tw * 4
    wl.add(*moving, *(p for p, _ in stay))
    start = time.perf_counter()
    m.step(int(sum(want.values()) / 0.8))
    elapsed = time.perf_counter() - start
    np_live, p_live, _, _ = m.pool.tracker.totals()
    live = {0: np_live, 1: p_live}
    np_bytes = m.mm.get("MmAllocatedNonPagedPool") * PAGE_SIZE
    p_bytes = m.mm.get("MmPagedPoolCommit") * PAGE_SIZE
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return elapsed, live[0], live[1], np_bytes, p_bytes, peak_mb


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"machine: {describe()}")
    for arch in ("x86", "x64"):
        print(f"{arch}: mixed workload {mixed_ops_per_second(arch):,.0f} allocate/free ops per "
              f"second (target >= 150,000)")
        print(f"{arch}: default machine created in {default_create_seconds(arch):.2f} s "
              f"(target < 1 s)")
    secs, np_live, p_live, np_bytes, p_bytes, peak = seed_scale(quick)
    pool_mb = (np_bytes + p_bytes) / 2**20
    print(f"x86 seed scale{' (quick: 1/10)' if quick else ''}: {np_live:,} nonpaged + "
          f"{p_live:,} paged live blocks, pool {np_bytes / 2**20:.0f} MB + "
          f"{p_bytes / 2**20:.0f} MB, built in {secs:.2f} s (target < 5 s); peak memory "
          f"{peak:.0f} MB (target < {3 * pool_mb + 200:.0f} MB = 3 x pool + 200 MB)")


if __name__ == "__main__":
    main()
