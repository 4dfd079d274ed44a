"""Where freed blocks are kept, read from memory (commands/freelists.py): the lookaside lists in
the order `!lookaside` lists them, the blocks they and the deferred-free lists hold, the
ListHeads entry of a free chunk, and walks that end on a corrupted link."""
from __future__ import annotations

from commands.ext.lookaside import pool_lookasides
from commands.freelists import (LIST_HEADS, LOOKASIDE, PENDING, cached_blocks, descriptors,
                                list_heads_holder, lookaside_lists)
from commands.poolread import PoolReader
from kdsim.arch import get_arch
from kdsim.layouts import POOL_SMALL_LISTS, tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import PoolSettings


def _machine(lookasides: bool, deferred: bool) -> Machine:
    return Machine(get_arch("x64"), 0, processors=2,
                   settings=PoolSettings(lookasides=lookasides, deferred_frees=deferred))


def test_lookaside_lists_are_the_ones_lookaside_lists() -> None:
    target = _machine(True, False).target()
    lists = lookaside_lists(target)
    assert len(lists) == 2 * POOL_SMALL_LISTS * 3               # shared, then two processors'
    assert [la.address for la in lists] == pool_lookasides(target, per_processor=True)
    assert [la.cpu for la in lists[::POOL_SMALL_LISTS]] == [None, None, 0, 0, 1, 1]
    assert [d.name for d in descriptors(target)] == [
        "nt!NonPagedPoolDescriptor", *(f"nt!ExpPagedPoolDescriptor[{i}]" for i in range(5))]


def test_freed_blocks_are_found_on_their_lists() -> None:
    m = _machine(True, False)
    kept = m.pool.allocate(0, 0x40, tag_to_ulong("Keep"))
    gone = m.pool.allocate(0, 0x40, tag_to_ulong("Gone"), cpu=1)
    m.pool.free(gone, cpu=1)
    held = cached_blocks(m.target())
    assert kept not in held and held[gone].kind == LOOKASIDE
    assert held[gone].lookaside is not None and held[gone].lookaside.cpu == 1
    assert held[gone].describe(16) == (
        "on processor 1's nonpaged lookaside list for 0x50-byte blocks (entry 1 of 1)")
    m = _machine(False, True)
    gone = m.pool.allocate(1, 0x40, tag_to_ulong("Gone"))
    m.pool.free(gone)
    assert cached_blocks(m.target())[gone].kind == PENDING


def test_a_free_chunk_is_found_on_its_list_heads_entry_and_a_loop_ends() -> None:
    m = _machine(False, False)
    target = m.target()
    block = m.pool.allocate(0, 0x40, tag_to_ulong("Keep"))
    reader = PoolReader(target)
    page = block & ~0xFFF
    free = next(h for h in reader.walk(page, reader.read_page(page)).headers if not h.pool_type)
    holder = list_heads_holder(target, free)
    assert holder is not None and holder.kind == LIST_HEADS
    assert holder.index == free.block_size - 1 and holder.position == 1
    # the chunk's Flink pointing at itself: the walk stops at its bound, not in a loop
    entry = free.address + free.unit
    target.write(entry, entry.to_bytes(8, "little"))
    looped = list_heads_holder(target, free)
    assert looped is not None and looped.position == 1 and looped.length > 1000
