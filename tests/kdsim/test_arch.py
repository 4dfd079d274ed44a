"""The architectures' address spaces: Windows 7 x86 dynamic system VA keeps every region apart
(pools, images, kernel stacks, special pool, session space), and the default machines' pool
pages lie where Windows 7 puts them, none at XP's static addresses."""
from __future__ import annotations

import pytest

from kdsim.arch import ARCHES
from kdsim.layouts import PAGE_SIZE
from kdsim.scenarios import boot
from kdsim.sessionpool import SESSIONS
from kdsim.idle import IDLE_SLOT
from kdsim.processes import KERNEL_STACK, STACK_SLOTS, STACKS
from kdsim.win32k import WIN32K_SIZE


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_regions_do_not_overlap(name):
    m = boot(name, seed=1, scale=0.05)
    a = m.arch
    P = a.ptr_size
    regions = [("nonpaged", m.mm.nonpaged.start, m.mm.nonpaged.end),
               ("paged", m.mm.paged.start, m.mm.paged.end),
               ("special", m.mm.get("MmSpecialPoolStart"), m.mm.get("MmSpecialPoolEnd")),
               ("sessions", a.session_start, a.session_start + SESSIONS * a.session_stride),
               ("win32k", a.win32k_base, a.win32k_base + WIN32K_SIZE),
               ("idle stacks", STACKS[P] - m.processors * IDLE_SLOT[P], STACKS[P]),
               ("stacks", STACKS[P], STACKS[P] + STACK_SLOTS[P] * (KERNEL_STACK[P] + PAGE_SIZE))]
    regions += [(mod.name, mod.base, mod.base + mod.size) for mod in m.symbols.modules
                if mod.name != "win32k"]
    ordered = sorted(regions, key=lambda r: r[1])
    for (n1, _, end), (n2, start, _) in zip(ordered, ordered[1:]):
        assert end <= start, f"{n1} overlaps {n2}"


def test_x86_pool_is_in_windows_7_dynamic_system_va():
    m = boot("x86", seed=1)
    pages = [vpn * PAGE_SIZE for vpn in m.memory.pages]
    for pool, (low, high) in (("nonpaged", (0x84000000, 0x8B000000)),
                              ("paged", (0x90000000, 0xA0000000))):
        mine = getattr(m.mm, pool)
        used = [p for p in pages if mine.contains(p)]
        assert used and all(low <= p < high for p in used), pool
    assert not any(0xE1000000 <= p < 0xF0000000 or 0xF8000000 <= p < 0xFC000000 for p in pages)
