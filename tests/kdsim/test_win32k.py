"""win32k's catalogue is data: every entry is checked here, so a malformed one fails a test
and never a user's boot; the module and its stacks are on the machine."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.machine import Machine
from kdsim.modules import frames
from kdsim.sessionpool import SessionPools
from kdsim.win32k import TAGS, WIN32K_FUNCTIONS, WIN32K_SIZE, load_win32k, patterns


def test_every_catalogue_entry_is_well_formed():
    assert len({t[0] for t in TAGS}) == len(TAGS)
    for tag, routines, s86, s64, rng, count, share0, weight, life in TAGS:
        assert len(tag) == 4 and tag.isascii() and tag.isprintable(), tag
        for routine in routines:
            name, _, offset = routine.partition("+")
            assert name in WIN32K_FUNCTIONS and int(offset, 16) > 0, routine
        for sizes in (s86, s64):
            assert sizes and all(0 < s <= 0x10000 for s in sizes), tag
            if rng:
                assert len(sizes) == 2 and sizes[0] < sizes[1], tag
        assert count > 0 and 0 <= share0 <= 1 and weight > 0 and life > 0, tag
    assert all(0 < rva < WIN32K_SIZE for rva in WIN32K_FUNCTIONS.values())


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_win32k_is_a_module_and_every_stack_resolves_inside_it(arch):
    m = Machine(get_arch(arch), 0)
    m.pool.sessions = SessionPools(m)
    load_win32k(m)
    win32k = m.symbols.module("win32k.sys")
    assert win32k is not None and win32k.base == m.arch.win32k_base
    staying, moving = patterns(m, 1.0)
    for pattern in [p for p, _ in staying] + moving:
        stack = frames(m.symbols, pattern.frames)
        assert all(win32k.contains(ip) for ip in stack[:-1])
        syscall = m.symbols.module_at(stack[-1])
        assert syscall is not None and syscall.name == "nt"
    entry = "KiFastCallEntry" if arch == "x86" else "KiSystemServiceCopyEnd"
    assert all(p.frames[-1].startswith(f"nt!{entry}+") for p in moving)
