"""Session pool: each session's paged pool keeps the allocator's invariants (page walks, its
own tracker equal to its live blocks, its own big-page table), frees find their session by
address, what the pool keeps outside memory is derived again from memory, and the default
machine's win32k population is there, churning, in both sessions."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import PAGE_SIZE, field_path_offset, profile_for, tag_to_ulong
from kdsim.layouts.session import mm_session_space
from kdsim.machine import Machine
from kdsim.pool import PAGED, QUOTA, SESSION_PAGED, PoolSettings
from kdsim.scenarios import boot
from kdsim.sessionpool import INTERACTIVE, SessionPool, SessionPools
from kdsim.win32k import TAGS
from tests.kdsim.test_pool import walk_page
from tests.support import big_page_vas, billed_process

ARCHES = ("x86", "x64")
SESSION_TAGS = ("Gh05", "Usac", "Gla1")


def with_sessions(arch: str, **options) -> Machine:
    m = Machine(get_arch(arch), seed=1, **options)
    m.pool.sessions = SessionPools(m)
    return m


def small_pages(pool: SessionPool) -> list[int]:
    """The session's small-pool pages: single-page runs its big-page table does not list."""
    pages, big = pool.mm.paged, big_page_vas(pool.big)
    return [pages.start + pos * PAGE_SIZE for pos, n in pages.runs.items()
            if n == 1 and pages.start + pos * PAGE_SIZE not in big]


def on_lookasides(pool: SessionPool) -> set[int]:
    """The blocks (data addresses) the session's lookaside lists hold: freed, though their
    headers still say allocated."""
    held = set()
    for (la,) in (lists for lists in pool.la[0][1] if lists):
        a, _, c, *_ = pool.la_head.unpack_from(pool.pages[la >> 12], la & 0xFFF)
        top = a if pool.la_next_first else c
        while top:
            held.add(top)
            top = pool._rptr(top)
    return held


def check_session(m: Machine, pool: SessionPool, live: dict[int, tuple[int, int]]) -> None:
    """`live`: this session's blocks, address -> (tag, charged bytes)."""
    pool.flush_pending()
    G = m.arch.block
    walked: dict[int, tuple[int, int]] = {}
    held = on_lookasides(pool)
    for va in small_pages(pool):
        chunks = walk_page(m, va)
        for a, b in zip(chunks, chunks[1:]):
            assert not (a[3] == 0 and b[3] == 0), f"two free neighbours at {a[0]:#x}"
        for address, _, bs, ptype, tag in chunks:
            if ptype:
                assert ptype == SESSION_PAGED | 2, f"PoolType {ptype:#x} at {address:#x}"
                if address + G not in held:
                    walked[address + G] = (tag, bs * G)
    small = {a: v for a, v in live.items() if a % PAGE_SIZE}
    assert walked == small
    big = {a: v for a, v in live.items() if not a % PAGE_SIZE}
    assert {a: pool.big.find(a)[0] for a in big} == {a: v[0] for a, v in big.items()}
    assert pool.big.in_use == len(big)
    tracker = pool.tracker
    for tag in {v[0] for v in live.values()} | {tag_to_ulong(t) for t in SESSION_TAGS}:
        base = tracker.table + tracker.slot(tag) * tracker.entry_size
        allocs, frees, used = tracker.fields[1]
        mine = [v[1] for v in live.values() if v[0] == tag]
        assert pool._r32(base + allocs) - pool._r32(base + frees) == len(mine)
        assert pool._rptr(base + used) == sum(mine)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.sampled_from((0, INTERACTIVE)),
                  st.one_of(st.integers(1, 0x300), st.integers(1, 0x1000),
                            st.integers(0x1000, 0x5000)),
                  st.sampled_from(SESSION_TAGS)),
        st.tuples(st.just("free"), st.integers(0, 10_000)),
        st.tuples(st.just("global"), st.integers(1, 0x400)),
    ),
    min_size=1, max_size=200,
)


def run_ops(m: Machine, sequence, live: list[dict[int, tuple[int, int]]]) -> None:
    sessions = m.pool.sessions
    assert sessions is not None
    for op in sequence:
        if op[0] == "alloc":
            _, sid, size, tag = op
            sessions.current = sid
            address = m.pool.allocate(SESSION_PAGED, size, tag_to_ulong(tag))
            assert sessions.pools[sid].mm.paged.contains(address)
            charged = (m.arch.block_size(size) * m.arch.block if address % PAGE_SIZE
                       else -(-size // PAGE_SIZE) * PAGE_SIZE)
            live[sid][address] = (tag_to_ulong(tag), charged)
        elif op[0] == "free":
            blocks = sorted((a, sid) for sid in range(len(live)) for a in live[sid])
            if blocks:
                address, sid = blocks[op[1] % len(blocks)]
                m.pool.free(address)                    # the kernel's free finds the session
                del live[sid][address]
        else:                                           # the system's paged pool, beside
            assert not sessions.owns(m.pool.allocate(PAGED, op[1], tag_to_ulong("Xxxx")))


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=ops)
def test_random_sequences_keep_each_sessions_invariants(arch, sequence):
    m = with_sessions(arch)
    live: list[dict[int, tuple[int, int]]] = [{}, {}]
    run_ops(m, sequence, live)
    assert m.pool.sessions is not None
    for sid, pool in enumerate(m.pool.sessions.pools):
        check_session(m, pool, live[sid])


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=ops)
def test_freeing_everything_returns_the_session_commit(arch, sequence):
    m = with_sessions(arch, settings=PoolSettings(lookasides=False, deferred_frees=False))
    names = ("MmSessionCommit", "MmTotalCommittedPages")
    before = {n: m.mm.get(n) for n in names}
    live: list[dict[int, tuple[int, int]]] = [{}, {}]
    run_ops(m, [op for op in sequence if op[0] != "global"], live)
    for blocks in live:
        for address in sorted(blocks):
            m.pool.free(address)
        blocks.clear()
    assert {n: m.mm.get(n) for n in names} == before
    assert m.pool.sessions is not None
    for pool in m.pool.sessions.pools:
        check_session(m, pool, {})
        assert small_pages(pool) == []
        assert pool._r32(pool.paged_desc[0].addr + pool.o_total_pages) == 0


@pytest.mark.parametrize("arch", ARCHES)
def test_reload_derives_the_same_state_from_memory(arch):
    m = boot(arch, seed=2, scale=0.2)
    assert m.pool.sessions is not None
    for pool in m.pool.sessions.pools:
        pages = (pool.mm.paged, pool.mm.nonpaged)
        state = ([(p.runs, bytes(p.used), p.in_use) for p in pages], pool.paged_desc[0].bitmap,
                 pool.big.table, pool.big.entries, pool.big.in_use)
        for p in pages:
            p.runs, p.in_use = {}, 0
        pool.big.in_use = 0
        pool.paged_desc[0].bitmap = 0
        pool.reload()
        assert ([(p.runs, bytes(p.used), p.in_use) for p in pages], pool.paged_desc[0].bitmap,
                pool.big.table, pool.big.entries, pool.big.in_use) == state


def test_session_structures_are_on_the_session_list_in_memory():
    m = with_sessions("x64")
    layout = mm_session_space(profile_for(m.arch))
    link = field_path_offset(layout, "WsListEntry")
    head = m.symbols.resolve("nt!MiSessionWsList")
    entry, ids = m.g.read_ptr(head), []
    while entry != head:
        ids.append(m.g.read_u32(entry - link + field_path_offset(layout, "SessionId")))
        entry = m.g.read_ptr(entry)
    assert ids == [0, 1]
    current = m.g.read_ptr(m.symbols.resolve("nt!MmSessionSpace"))
    assert m.pool.sessions is not None
    assert current == m.pool.sessions.pools[INTERACTIVE].space
    descriptor = current + field_path_offset(layout, "PagedPool")
    assert m.g.read_u32(descriptor) == SESSION_PAGED             # PagedPoolSession


@pytest.mark.parametrize("arch", ARCHES)
def test_a_free_outside_every_pool_is_still_a_bad_caller(arch):
    m = with_sessions(arch)
    assert m.pool.sessions is not None
    with pytest.raises(BugCheck) as stop:
        m.pool.free(m.pool.sessions.end + 0x100)
    assert (stop.value.code, stop.value.params[0]) == (0xC2, 0x42)


@pytest.mark.parametrize("arch", ARCHES)
def test_the_default_machine_has_win32k_churning_in_both_sessions(arch):
    m = boot(arch, seed=5)
    assert m.symbols.module("win32k") is not None
    sessions = m.pool.sessions
    assert sessions is not None
    used = []
    for pool in sessions.pools:
        tracker = pool.tracker
        counts = {}
        for tag, *_ in TAGS:
            base = tracker.table + tracker.slot(tag_to_ulong(tag)) * tracker.entry_size
            allocs, frees, nbytes = tracker.fields[1]
            counts[tag] = (pool._r32(base + allocs), pool._r32(base + frees),
                           pool._rptr(base + nbytes))
        churning = [tag for tag, (a, f, _) in counts.items() if a > f > 0]
        assert len(churning) >= 0.8 * len(counts), counts   # freeing, and blocks outstanding
        used.append(sum(b for *_, b in counts.values()))
        live = {}
        pool.flush_pending()
        held = on_lookasides(pool)
        assert held                                   # win32k's small blocks come back there
        for va in small_pages(pool):
            for address, _, bs, ptype, tag in walk_page(m, va):
                if ptype and address + m.arch.block not in held:
                    live[address + m.arch.block] = (tag, bs * m.arch.block)
        for b in range(pool.big.entries):
            va = pool._rptr(pool.big.table + b * pool.big.esize)
            if not va & 1:
                key, nbytes = pool.big.find(va)
                live[va] = (key, -(-nbytes // PAGE_SIZE) * PAGE_SIZE)
        check_session(m, pool, live)
    assert used[INTERACTIVE] > 3 * used[0] > 0                    # the user's session holds most


@pytest.mark.parametrize("arch, count", [("x86", 25), ("x64", 21)])
def test_small_session_blocks_go_back_to_the_sessions_own_lookasides(arch, count):
    """_MM_SESSION_SPACE.Lookaside[count]: one PagedPoolSession list per BlockSize, shared by
    the processors; a freed block of a listed size is pushed there and the next request of
    its size, on any processor, pops it; a larger block goes back to ListHeads."""
    m = with_sessions(arch, processors=2)
    assert m.pool.sessions is not None
    pool = m.pool.sessions.pools[INTERACTIVE]
    layout = mm_session_space(profile_for(m.arch))
    first = pool.space + field_path_offset(layout, "Lookaside")
    G = m.arch.block
    for i in (0, count - 1):
        la = first + i * 0x80
        assert pool._r32(la + pool.o_la_type) == SESSION_PAGED
        assert pool._r32(la + pool.o_la_size) == (i + 1) * G
        assert pool._r32(la + pool.o_la_tag) == tag_to_ulong("Pool")
        assert pool._r16(la + pool.o_la_depth) == 2
    size = count * G - G                                   # BlockSize `count`
    tag = tag_to_ulong("Usac")
    block = m.pool.allocate(SESSION_PAGED, size, tag, cpu=0)
    m.pool.free(block, tag, cpu=0)
    assert on_lookasides(pool) == {block}
    assert pool._r32(first + (count - 1) * 0x80 + pool.o_la_total_free) == 1
    assert m.pool.allocate(SESSION_PAGED, size, tag, cpu=1) == block       # shared list
    bigger = m.pool.allocate(SESSION_PAGED, size + G, tag)
    m.pool.free(bigger, tag)
    assert on_lookasides(pool) == set()


def test_the_verifier_turns_the_session_lookasides_off_too():
    m = with_sessions("x86", verifier="/flags 0x9 /driver myfault.sys")
    assert m.pool.sessions is not None
    pool = m.pool.sessions.pools[0]
    first = pool.space + field_path_offset(mm_session_space(profile_for(m.arch)), "Lookaside")
    assert pool._r16(first + pool.o_la_depth) == 0
    block = m.pool.allocate(SESSION_PAGED, 0x20, tag_to_ulong("Usac"))
    m.pool.free(block)
    assert on_lookasides(pool) == set()


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_pool_hit_tag_counts_session_allocations_and_frees(arch):
    """nt!PoolHitTag is checked for session pool too (the session's tracker reports the hit
    where the kernel's does), with the routine and caller of the session request."""
    m = with_sessions(arch)
    hit = m.target().symbol("nt!PoolHitTag")
    m.memory.write(hit, tag_to_ulong("Gla5").to_bytes(4, "little"))
    p = m.pool.allocate(SESSION_PAGED, 0x60, tag_to_ulong("Gla5"), cpu=1, stack=(0x1234,))
    assert m.pool.sessions.owns(p)
    assert m.pool.take_hit() == (tag_to_ulong("Gla5"), 1, "ExAllocatePoolWithTag", 1, (0x1234,))
    m.pool.free(p, cpu=0, stack=(0x5678,))
    assert m.pool.take_hit() == (tag_to_ulong("Gla5"), -1, "ExFreePoolWithTag", 0, (0x5678,))
    m.pool.allocate(SESSION_PAGED, 0x60, tag_to_ulong("Gla4"))
    assert m.pool.take_hit() is None


def test_an_x86_session_quota_block_holds_the_request_and_the_billed_process_after_it():
    """ExAllocatePoolWithQuotaTag grows an x86 request by the EPROCESS pointer whatever the
    pool, session pool included; the process is charged and the free returns the charge."""
    m = with_sessions("x86")
    owner = billed_process(m, 0x8507A030)
    address = m.pool.allocate(SESSION_PAGED | QUOTA, 0x5C, tag_to_ulong("Usqt"), process=owner)
    assert m.pool.sessions.owns(address)
    m.memory.write(address, b"\xaa" * 0x5C)
    pool = m.pool.sessions.pool_at(address)
    _, _, bs, ptype, _ = pool.header(address - 8)
    assert ptype & QUOTA and bs * 8 == 0x68
    assert m.memory.read(address - 8 + 0x68 - 4, 4) == owner.to_bytes(4, "little")
    assert m.memory.read(address, 0x5C) == b"\xaa" * 0x5C
    usage = owner + m.pool.layouts.offset("eprocess", "ProcessQuotaUsage") + 4   # PsPagedPool
    assert int.from_bytes(m.memory.read(usage, 4), "little") == 0x68
    m.pool.free(address)
    assert int.from_bytes(m.memory.read(usage, 4), "little") == 0
