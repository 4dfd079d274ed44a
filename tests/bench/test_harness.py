"""bench/: the harness on trivial workloads, the reference allocator against kdsim's, and every
benchmark module importable (none is run here)."""
from __future__ import annotations

import importlib
import itertools

import pytest

from bench.bench_allocator import mixed_workload, run_mixed
from bench.harness import (
    Timing, describe, peak_rss_mb, ratio, ratio_text, timed, timed_rounds, verdict,
)
from bench.reference_allocator import Corrupt, ReferencePool, walk_page
from kdsim.arch import get_arch
from kdsim.layouts import IN_USE, PAGE_SIZE, profile_for, tag_to_ulong
from kdsim.machine import Machine

BENCHMARKS = ("bench_allocator", "bench_cli", "bench_dump", "bench_labs",
              "bench_pool_commands", "bench_poolused_vm", "bench_streaming")


def ticking(step: float = 1.0):
    """A fake clock that advances `step` at each reading."""
    counter = itertools.count()
    return lambda: next(counter) * step


# -- harness ----------------------------------------------------------------------------------
def test_timing_statistics():
    t = Timing((3.0, 1.0, 2.0, 10.0))
    assert (t.best, t.median, t.mean, t.worst) == (1.0, 2.5, 4.0, 10.0)
    assert t.summary() == "best 1.00 s, median 2.50 s of 4 runs"
    assert Timing((0.123,)).summary() == "0.12 s"


def test_timed_counts_runs_not_warmup_and_keeps_the_last_result():
    calls: list[int] = []

    def call() -> int:
        calls.append(len(calls))
        return len(calls)

    t = timed(call, 3, warmup=2, clock=ticking())
    assert len(calls) == 5 and t.runs == (1.0, 1.0, 1.0) and t.result == 5


def test_timed_rounds_alternate_and_leave_setup_untimed():
    order: list[str] = []
    clock = ticking(0.5)

    def job(name: str):
        def setup() -> str:
            order.append(f"setup {name}")
            return name

        def run(subject: str) -> str:
            order.append(subject)
            return subject.upper()
        return setup, run

    a, b = timed_rounds([job("a"), job("b")], 2, clock)
    assert order == ["setup a", "a", "setup b", "b"] * 2
    assert a.runs == b.runs == (0.5, 0.5) and (a.result, b.result) == ("A", "B")
    with pytest.raises(ValueError):
        timed_rounds([job("a")], 0)


def test_ratio_and_verdict():
    assert ratio(150.0, 400.0) == 0.375
    assert ratio_text("allocator ops/s", 150, "reference ops/s", 400) == \
        "allocator ops/s is 0.38× reference ops/s"
    assert verdict(4.2, "<", 5, "s") == "target < 5 s: met"
    assert verdict(5.0, "<", 5, "s") == "target < 5 s: missed"
    assert verdict(0.6, "≥", 0.6) == "target ≥ 0.6: met"
    assert verdict(3.1, "≤", 3) == "target ≤ 3: missed"
    assert verdict(250, ">", 200, "MB/s") == "target > 200 MB/s: met"
    with pytest.raises(ValueError):
        verdict(1, "=", 1)


def test_machine_description_and_peak_memory():
    assert "CPUs, Python 3." in describe()
    assert peak_rss_mb() > 1


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_modules_import(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main) and f"python -m bench.{name}" in (module.__doc__ or "")


# -- the reference allocator ---------------------------------------------------------------------
def headers(page: bytearray, arch) -> list[tuple[int, int, int]]:
    """A page's headers; tags only of blocks in use (a free chunk's tag field may hold a stale
    link, and links into ListHeads differ between two machines)."""
    c = profile_for(arch).codec
    return [(off, ulong1, tag if (ulong1 >> c.type_shift) & IN_USE else 0)
            for off, ulong1, tag in walk_page(page, arch.block_shift, c.size_mask)]


@pytest.mark.parametrize("arch_name", ["x86", "x64"])
def test_reference_makes_kdsims_decisions(arch_name):
    """Same operations, same addresses, same headers in every pool page: the reference does
    the allocator's job (lookasides, pending frees, splits, coalescing, page release)."""
    arch = get_arch(arch_name)
    work = mixed_workload(2500)
    machine = Machine(arch, seed=1)
    kd_calls: list[int] = []

    def kd_alloc(*args):
        kd_calls.append(machine.pool.allocate(*args))
        return kd_calls[-1]

    kd_live = run_mixed(kd_alloc, machine.pool.free, work, live_target=400)
    # the first two operations open a nonpaged and a paged page: the pools' first free pages
    ref = ReferencePool(arch, machine.processors, machine.settings.paged_pools,
                        kd_calls[0] & -PAGE_SIZE, kd_calls[1] & -PAGE_SIZE)
    ref_calls: list[int] = []

    def ref_alloc(*args):
        ref_calls.append(ref.allocate(*args))
        return ref_calls[-1]

    ref_live = run_mixed(ref_alloc, ref.free, work, live_target=400)
    assert ref_calls == kd_calls and ref_live == kd_live
    compared = 0
    for va, page in ref.pool_pages():
        assert headers(page, arch) == headers(machine.memory.pages[va // PAGE_SIZE], arch)
        compared += 1
    census = ref.verify()
    assert census.pages == compared > 10 and census.free > 0
    assert census.tracked_live == len(ref_live) <= census.in_use


def test_reference_self_checks():
    ref = ReferencePool(get_arch("x86"), 2, 4)
    blocks = [ref.allocate(0, 0x100, tag_to_ulong("Abcd")) for _ in range(40)]
    for a in blocks[:33]:                     # the 33rd free flushes the first 32 to ListHeads
        ref.free(a)
    with pytest.raises(Corrupt, match="double free"):
        ref.free(blocks[30])                  # its page still holds live blocks
    census = ref.verify()
    assert census.tracked_live == 7 and census.in_use == 8     # and the pending 33rd
    page = bytearray(ref.pages[blocks[-1] // PAGE_SIZE])
    page[0] |= 1                              # the first header claims a previous block
    with pytest.raises(Corrupt):
        walk_page(page, 3, 0x1FF)
    ref.u32.pack_into(ref.pages[ref.sym_hit // PAGE_SIZE], ref.sym_hit % PAGE_SIZE,
                      tag_to_ulong("Abcd"))
    ref.allocate(1, 0x20, tag_to_ulong("Abcd"), cpu=1)
    assert ref.hit == tag_to_ulong("Abcd")
    with pytest.raises(ValueError):
        ref.allocate(0, 0x2000, tag_to_ulong("Big "))
