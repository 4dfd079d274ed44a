"""The pool tracker: nt!PoolHitTag, read from memory, notes where that tag is counted."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import NONPAGED
from kdsim.tracker import POOL_HIT_TAG_NONE


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_tracker_notes_the_hit_tag_from_memory(arch):
    m = Machine(get_arch(arch), seed=1)
    hit = m.target().symbol("nt!PoolHitTag")
    assert m.target().read_u32(hit) == POOL_HIT_TAG_NONE
    m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Abcd"))
    assert m.pool.take_hit() is None
    m.memory.write(hit, tag_to_ulong("Abcd").to_bytes(4, "little"))
    p = m.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Abcd"), cpu=1, stack=(0x1234,))
    assert m.pool.take_hit() == (tag_to_ulong("Abcd"), 1, "ExAllocatePoolWithTag", 1, (0x1234,))
    assert m.pool.take_hit() is None
    m.pool.free(p, cpu=0, stack=(0x5678,))
    assert m.pool.take_hit() == (tag_to_ulong("Abcd"), -1, "ExFreePoolWithTag", 0, (0x5678,))
