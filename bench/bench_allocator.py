"""Allocator benchmarks (issues 2 and 10): time and peak memory to build a machine at the first
seed case's scale (~240,000 live nonpaged and ~200,000 live paged allocations), mixed
allocate/free operations per second against the pure-Python reference
(bench/reference_allocator.py) in the same run, and time to boot the default machine.

Run from the repository root: python -m bench.bench_allocator [--quick] [--repeats N]
"""
from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from typing import Callable

from bench.bench_boot import CPU_TARGET
from bench.harness import (
    peak_rss_mb, print_machine, ratio, ratio_text, timed, timed_rounds, verdict,
)
from bench.reference_allocator import ReferencePool
from kdsim.arch import get_arch
from kdsim.layouts import PAGE_SIZE
from kdsim.machine import Machine
from kdsim.population import staying, traffic
from kdsim.layouts import tag_to_ulong

MIXED_OPS = 200_000
MIXED_LIVE = 20_000            # blocks held before frees begin
RATIO_TARGET = 0.6             # allocator ops/s over the reference's (issue 10)
from kdsim.scenarios import boot


@dataclass(frozen=True)
class Mixed:
    """A mixed workload, drawn before timing: per operation a size, a coin and a pick."""

    sizes: list[int]
    coin: list[float]
    picks: list[int]
    tags: list[int]


def mixed_workload(ops: int = MIXED_OPS) -> Mixed:
    """Random allocate/free sizes from lookaside-sized to nearly a page, six tags."""
    rng = random.Random(5)
    tags = [tag_to_ulong(t) for t in ("Irp ", "File", "Mdl ", "CM31", "Ntfx", "Even")]
    sizes = [rng.choice((0x38, 0x40, 0x94, 0xB0, 0x100, 0x200, 0x3A0, 0x800, 0xF18))
             for _ in range(ops)]
    coin = [rng.random() for _ in range(ops)]
    picks = [rng.randrange(1 << 30) for _ in range(ops)]
    return Mixed(sizes, coin, picks, tags)


def run_mixed(alloc: Callable[[int, int, int, int], int], free: Callable[[int, int, int], None],
              work: Mixed, live_target: int = MIXED_LIVE) -> list[int]:
    """Allocate until `live_target` blocks are live, then allocate or free a random live
    block at even odds; alternate pools and CPUs.  Returns the live blocks."""
    sizes, coin, picks, tags = work.sizes, work.coin, work.picks, work.tags
    live: list[int] = []
    for i in range(len(sizes)):
        if len(live) < live_target or coin[i] < 0.5:
            live.append(alloc(i & 1, sizes[i], tags[i % 6], i & 1))
        else:
            j = picks[i] % len(live)
            live[j], live[-1] = live[-1], live[j]
            free(live.pop(), 0, i & 1)
    return live


def mixed_vs_reference(arch: str, repeats: int) -> None:
    """kdsim's allocator and the reference on the same workload, alternating, CPU time."""
    work = mixed_workload()
    shape = Machine(get_arch(arch), seed=1)

    def on_allocator(m: Machine) -> None:
        run_mixed(m.pool.allocate, m.pool.free, work)

    def on_reference(ref: ReferencePool) -> tuple[ReferencePool, int]:
        return ref, len(run_mixed(ref.allocate, ref.free, work))

    kd, ref = timed_rounds([
        (lambda: Machine(get_arch(arch), seed=1), on_allocator),
        (lambda: ReferencePool(get_arch(arch), shape.processors, shape.settings.paged_pools),
         on_reference),
    ], repeats, clock=time.process_time)
    kd_ops, ref_ops = len(work.sizes) / kd.best, len(work.sizes) / ref.best
    pool, live = ref.result
    census = pool.verify()
    check = "ok" if census.tracked_live == live else f"FAILED ({census.tracked_live} tracked)"
    print(f"{arch}: mixed workload, {len(work.sizes):,} allocate/free operations around "
          f"{MIXED_LIVE:,} live blocks, best of {repeats} runs each (CPU time):")
    print(f"  allocator {kd_ops:,.0f} ops/s; reference {ref_ops:,.0f} ops/s "
          f"(reference self-check: {census.pages:,} pages tiled by their headers, "
          f"{live:,} live blocks tracked: {check})")
    print(f"  {ratio_text('allocator ops/s', kd_ops, 'reference ops/s', ref_ops)}; "
          f"{verdict(ratio(kd_ops, ref_ops), '≥', RATIO_TARGET)}")


def seed_scale(quick: bool) -> tuple[float, int, int, int, int]:
    """Build the first seed case's scale on x86: the default population scaled to ~240k
    nonpaged and ~200k paged live blocks, interleaved with traffic.  Returns (seconds,
    nonpaged and paged live blocks, nonpaged and paged pool bytes)."""
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
    elapsed = timed(lambda: m.step(int(sum(want.values()) / 0.8))).best
    np_live, p_live, _, _ = m.pool.tracker.totals()
    np_bytes = m.mm.get("MmAllocatedNonPagedPool") * PAGE_SIZE
    p_bytes = m.mm.get("MmPagedPoolCommit") * PAGE_SIZE
    return elapsed, np_live, p_live, np_bytes, p_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seed scale at 1/10")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timing")
    args = parser.parse_args()
    print_machine()
    # first, so that the process's peak memory is this build's
    secs, np_live, p_live, np_bytes, p_bytes = seed_scale(args.quick)
    peak = peak_rss_mb()
    limit = 3 * (np_bytes + p_bytes) / 2**20 + 200
    print(f"x86 seed scale{' (quick: 1/10)' if args.quick else ''}: {np_live:,} nonpaged + "
          f"{p_live:,} paged live blocks, pool {np_bytes / 2**20:.0f} MB + "
          f"{p_bytes / 2**20:.0f} MB, built in {secs:.2f} s; {verdict(secs, '<', 5, 's')}")
    print(f"  peak memory {peak:.0f} MB; {verdict(peak, '<', round(limit), 'MB')} "
          "(3 × pool + 200 MB)")
    for arch in ("x86", "x64"):
        mixed_vs_reference(arch, args.repeats)
        booted = timed(lambda: boot(arch, seed=1), args.repeats)
        print(f"{arch}: default machine created in {booted.summary()}; "
              f"{verdict(booted.best, '<', CPU_TARGET, 's')} (full size: bench/bench_boot.py)")


if __name__ == "__main__":
    main()
