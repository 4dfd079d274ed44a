"""The session's pool snapshots: taken from memory, found by name or number, named with care,
kept within bounds, and told apart across boots."""
from __future__ import annotations

import pytest

from commands import poolsnapshots
from commands.errors import DebuggerError
from commands.poolsnapshots import PoolSnapshots, read_snapshot, read_tick
from commands.testing import blank_target
from kdsim.arch import get_arch
from kdsim.layouts import NONPAGED, tag_to_ulong
from kdsim.machine import Machine


def test_a_snapshot_is_read_from_memory() -> None:
    m = Machine(get_arch("x64"), 0)
    before = read_snapshot(m.target())
    m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Abcd"))
    m.pool.allocate(NONPAGED, 0x3000, tag_to_ulong("Big "))
    m.step(12)
    after = read_snapshot(m.target(), 4, "x", "saved", 2)
    assert (after.number, after.name, after.kind, after.boot, after.tick) == (4, "x", "saved",
                                                                              2, 12)
    nonpaged, paged = after.tags[tag_to_ulong("Abcd")]
    assert (nonpaged.outstanding, nonpaged.used, paged.outstanding) == (1, 0x50, 0)
    assert {e[1] for e in after.large - before.large} == {tag_to_ulong("Big ")}
    assert after.tracked is None and after.log_index is None        # the verifier is off
    assert not after.session_pool


def test_the_clock_is_nt_keticks_and_absent_without_it() -> None:
    m = Machine(get_arch("x86"), 0)
    m.step(3)
    assert read_tick(m.target()) == 3
    assert read_tick(blank_target()) is None


def test_snapshots_are_found_by_name_or_number() -> None:
    m = Machine(get_arch("x86"), 0)
    store = PoolSnapshots(m.target())
    store.take(m.target(), "saved", "Before")
    assert store.find("before").number == 1 and store.find("#0").kind == "session open"
    assert store.find("1").name == "Before"
    with pytest.raises(DebuggerError, match="No pool snapshot #7 "):
        store.find("#7")
    with pytest.raises(DebuggerError, match="No pool snapshot named 'after' "):
        store.find("after")


@pytest.mark.parametrize("name", ["1st", "-x", "a b", "x" * 33, "caf\u00e9", "before", "BEFORE"])
def test_names_are_words_not_numbers_and_not_taken(name: str) -> None:
    m = Machine(get_arch("x86"), 0)
    store = PoolSnapshots(m.target())
    store.take(m.target(), "saved", "before")
    with pytest.raises(DebuggerError):
        store.check_name(name)
    store.check_name("after_1.b-2")


def test_the_first_and_the_last_snapshots_are_kept(monkeypatch) -> None:
    monkeypatch.setattr(poolsnapshots, "MAX_SNAPSHOTS", 3)
    m = Machine(get_arch("x86"), 0)
    store = PoolSnapshots(m.target())
    for _ in range(4):
        store.take(m.target(), "saved")
    assert [s.number for s in store.snapshots] == [0, 3, 4]


def test_a_new_target_is_a_new_boot_and_a_blank_one_has_no_snapshot() -> None:
    m = Machine(get_arch("x86"), 0)
    store = PoolSnapshots(m.target())
    store.record(m.target(), "reboot")
    assert [s.boot for s in store.snapshots] == [0, 1]
    empty = PoolSnapshots(blank_target())
    empty.record(blank_target(), "break-in")
    assert empty.snapshots == []
