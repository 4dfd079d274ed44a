"""The default machine at full size, read through the debugger: hundreds of tags, the totals of
a real Windows 7 box, tags that churn, and lookaside lists that hit.  (Its pages walk cleanly:
tests/kdsim/test_pool.py.)"""
from __future__ import annotations

import re

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import PAGE_MASK
from kdsim.machine import Machine
from kdsim.population import TRAFFIC_WEIGHT, populate, traffic

ROW = re.compile(r"^ (.{4})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)",
                 re.M)


def rows(session: Session) -> dict[str, tuple[int, ...]]:
    """!poolused 1: tag -> (np allocs, frees, diff, used, paged allocs, frees, diff, used)."""
    out = run(session, "!poolused 1")
    return {m[1]: tuple(int(v) for v in m.groups()[1:]) for m in ROW.finditer(out)
            if m[1] != "TOTA"}


def vm_kb(session: Session, label: str) -> int:
    return int(re.search(rf"^\s*{label}:\s+\d+\s+\(\s*(\d+) Kb\)", run(session, "!vm"),
                         re.M)[1])


@pytest.mark.parametrize("arch, least", [("x86", 250), ("x64", 300)])
def test_poolused_lists_hundreds_of_tags_that_nearly_all_churn(booted, arch, least) -> None:
    tags = rows(Session(booted(arch).target()))
    assert len(tags) >= least
    freed = [t for t, r in tags.items() if r[1] or r[5]]
    assert len(freed) >= 0.8 * len(tags)


@pytest.mark.parametrize("arch, nonpaged_mb, paged_mb", [("x86", 20, 80), ("x64", 25, 100)])
def test_vm_shows_a_real_boxs_pool(booted, arch, nonpaged_mb, paged_mb) -> None:
    session = Session(booted(arch).target())
    assert vm_kb(session, "NonPagedPool Usage") >= nonpaged_mb * 1024
    assert vm_kb(session, "PagedPool Usage") >= paged_mb * 1024
    pools = [vm_kb(session, f"PagedPool {i} Usage") for i in range(5)]
    assert pools[0] == max(pools)                   # large allocations come from pool 0


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_lookaside_lists_hit(booted, arch) -> None:
    """The per-processor lists: a freed small block is soon taken again.  (The boot's own
    allocations, each a miss, keep the rate below a machine that has run for days.)"""
    pool = booted(arch).pool
    counts = []
    for per_cpu in pool.la:
        for lists in per_cpu:
            for by_size in lists:
                la = by_size[0]                          # the processor's own list
                fields = pool.la_head.unpack_from(pool.pages[la >> 12], la & PAGE_MASK)
                counts.append((fields[5], fields[6]))    # TotalAllocates, hits
    assert sum(h for _, h in counts) >= 0.35 * sum(a for a, _ in counts)


def test_traffic_weighs_the_same_whatever_the_scale() -> None:
    """Scenarios weigh their drivers against the background (leak's timer, lab files)."""
    for x64 in (False, True):
        assert sum(p.weight for p in traffic(x64)) == pytest.approx(TRAFFIC_WEIGHT)


def test_a_smaller_scale_boots_fewer_blocks_and_settles_less() -> None:
    small = Machine(get_arch("x86"), 7)
    phases = dict(populate(small, 0.1))
    full = dict(populate(Machine(get_arch("x86"), 7), 1.0))
    assert phases["boot objects"] < full["boot objects"] / 5
    assert phases["settling"] < full["settling"] / 5
