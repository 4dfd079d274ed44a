"""The allocator's invariants, checked by walking simulated memory after random operation
sequences (hypothesis), on both architectures."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdsim.arch import get_arch
from kdsim.bigpages import big_hash
from kdsim.bugcheck import BugCheck
from kdsim.layouts import PAGE_SIZE, tag_from_ulong, tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED, QUOTA, PoolSettings
from kdsim.scenarios import boot
from tests.support import big_page_vas, billed_process

ARCHES = ("x86", "x64")
TAGS = ("Aaaa", "Bbbb", "Cccc", "Dddd")


def walk_page(m: Machine, va: int) -> list[tuple[int, int, int, int, int]]:
    """(address, PreviousSize, BlockSize, PoolType, tag) of each chunk, walking the page from
    offset 0 through BlockSize; asserts the PreviousSize chain on the way."""
    c, G = m.pool.codec, m.arch.block
    page = m.memory.pages[va >> 12]
    chunks, off, prev = [], 0, 0
    while off < PAGE_SIZE:
        ulong1, tag = struct.unpack_from("<II", page, off)
        p, _, bs, ptype = c.unpack(ulong1)
        assert p == prev, f"PreviousSize mismatch at {va + off:#x}"
        assert bs > 0, f"zero BlockSize at {va + off:#x}"
        chunks.append((va + off, p, bs, ptype, tag))
        prev = bs
        off += bs * G
    assert off == PAGE_SIZE, f"walk of {va:#x} ran past the page"
    return chunks


def small_pool_pages(m: Machine) -> list[int]:
    """Pages the small-block allocator owns: single-page runs not in the big-page table (which
    also records the allocator's own tables, tagged Pool)."""
    out, big = [], big_page_vas(m.pool.big)
    for pp in (m.mm.nonpaged, m.mm.paged):
        for pos, n in pp.runs.items():
            va = pp.start + pos * PAGE_SIZE
            if n == 1 and va not in big:
                out.append(va)
    return out


def check_invariants(m: Machine, live: dict[int, tuple[int, int, int]]) -> None:
    # every small pool page walks cleanly; no two free neighbours
    for va in small_pool_pages(m):
        chunks = walk_page(m, va)
        for a, b in zip(chunks, chunks[1:]):
            assert not (a[3] == 0 and b[3] == 0), f"two free neighbours at {a[0]:#x}"
    # every live small block has an allocated header with its tag and size
    G = m.arch.block
    for addr, (key, charged, paged) in live.items():
        if addr % PAGE_SIZE:
            _, _, bs, ptype, tag = m.pool.header(addr - G)
            assert ptype & 2 and tag == key and bs * G == charged
            assert ptype & 1 == paged
    # the big-page table lists exactly the live big allocations
    big_live = {a: v for a, v in live.items() if a % PAGE_SIZE == 0}
    listed = {}
    tbl, n, esz = m.pool.big.table, m.pool.big.entries, m.pool.big.esize
    for i in range(n):
        va = m.pool.big._rptr(tbl + i * esz)
        if not va & 1 and m.pool.big.find(va)[0] != tag_to_ulong("Pool"):   # not the kernel's own
            listed[va] = m.pool.big.find(va)
    assert set(listed) == set(big_live)
    for va, (key, nbytes) in listed.items():
        assert key == big_live[va][0]
    # tracker totals equal the live allocations (per tag and pool)
    tr = m.pool.tracker
    for tag in TAGS:
        key = tag_to_ulong(tag)
        for paged in (0, 1):
            mine = [v for v in live.values() if v[0] == key and v[2] == paged]
            base = tr.table + tr.slot(key) * tr.entry_size
            allocs, frees, nb = tr.fields[paged]
            got_allocs = m.pool._r32(base + allocs) - m.pool._r32(base + frees)
            got_bytes = m.pool._rptr(base + nb)
            assert got_allocs == len(mine), (tag, paged)
            assert got_bytes == sum(v[1] for v in mine), (tag, paged)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.sampled_from((NONPAGED, PAGED)),
                  st.one_of(st.integers(1, 0x200), st.integers(1, 0x1000),
                            st.integers(0x1000, 0x6000)),
                  st.sampled_from(TAGS)),
        st.tuples(st.just("free"), st.integers(0, 10_000)),
        st.tuples(st.just("flush"),),
    ),
    min_size=1, max_size=250,
)


def run_ops(m: Machine, sequence, live: dict) -> None:
    for op in sequence:
        if op[0] == "alloc":
            _, ptype, size, tag = op
            key = tag_to_ulong(tag)
            addr = m.pool.allocate(ptype, size, key, cpu=len(live) % m.processors)
            assert addr, "allocation failed"
            if addr % PAGE_SIZE:
                charged = m.arch.block_size(size) * m.arch.block
            else:
                charged = -(-size // PAGE_SIZE) * PAGE_SIZE
            assert addr not in live
            live[addr] = (key, charged, ptype)
        elif op[0] == "free" and live:
            addr = sorted(live)[op[1] % len(live)]
            m.pool.free(addr, cpu=op[1] % m.processors)
            del live[addr]
        elif op[0] == "flush":
            m.pool.flush_pending()


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=ops)
def test_random_sequences_keep_invariants(arch, sequence):
    m = Machine(get_arch(arch), seed=1)
    live: dict[int, tuple[int, int, int]] = {}
    run_ops(m, sequence, live)
    check_invariants(m, live)


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=ops)
def test_freeing_everything_returns_counters(arch, sequence):
    """Without lookasides and deferred frees every freed page goes back: the pool ends where it
    started, in the MM counters, the descriptors and the tracker."""
    m = Machine(get_arch(arch), seed=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    m.pool.disable_lookasides()
    names = ("MmAllocatedNonPagedPool", "MmPagedPoolCommit", "MmAvailablePages",
             "MmTotalCommittedPages", "MmResidentAvailablePages")
    before = {n: m.mm.get(n) for n in names}
    live: dict[int, tuple[int, int, int]] = {}
    run_ops(m, sequence, live)
    for addr in sorted(live):
        m.pool.free(addr)
    live.clear()
    check_invariants(m, live)
    assert {n: m.mm.get(n) for n in names} == before
    assert small_pool_pages(m) == []
    for d in [m.pool.descriptors[0], *m.pool.paged_desc]:
        assert m.pool._r32(d.addr + m.pool.o_total_pages) == 0
        assert m.pool._r32(d.addr + m.pool.o_total_big) == 0


QUOTA_OWNER = {"x86": 0x8507A030, "x64": 0xFFFFFA8001A3B060}


def _tracked(m: Machine, tag: str, paged: int) -> tuple[int, int]:
    """(outstanding allocations, bytes) of `tag` in the tracker."""
    tr = m.pool.tracker
    base = tr.table + tr.slot(tag_to_ulong(tag)) * tr.entry_size
    allocs, frees, nb = tr.fields[paged]
    return m.pool._r32(base + allocs) - m.pool._r32(base + frees), m.pool._rptr(base + nb)


@pytest.mark.parametrize("nbytes", [1, 0x3C, 0x5C, 0x60, 0x1F4, 0xF00, 0xFE0])
@pytest.mark.parametrize("pool_type", [NONPAGED, PAGED])
def test_an_x86_quota_block_holds_the_request_and_the_billed_process_after_it(pool_type, nbytes):
    """x86 ExAllocatePoolWithQuotaTag grows the request by a pointer: the EPROCESS goes in the
    block's last ULONG, past the caller's bytes, and the tracker counts the grown block."""
    m = Machine(get_arch("x86"), seed=1, settings=PoolSettings(lookasides=False))
    owner = billed_process(m, QUOTA_OWNER["x86"])
    address = m.pool.allocate(pool_type | QUOTA, nbytes, tag_to_ulong("Quot"), process=owner)
    _, _, bs, ptype, _ = m.pool.header(address - 8)
    assert ptype & QUOTA and bs * 8 >= 8 + nbytes + 4
    assert bs == m.arch.block_size(nbytes + 4)
    m.memory.write(address, b"\xaa" * nbytes)                   # the caller fills its bytes
    end = address - 8 + bs * 8
    assert m.memory.read(end - 4, 4) == owner.to_bytes(4, "little")
    assert m.memory.read(address, nbytes) == b"\xaa" * nbytes
    assert _tracked(m, "Quot", pool_type & PAGED) == (1, bs * 8)


@pytest.mark.parametrize("nbytes", [0xFED, 0xFF0, 0xFF4, 0xFF5])
def test_an_x86_quota_request_too_big_for_a_page_with_the_pointer_is_not_charged(nbytes):
    """Past PAGE_SIZE - header - pointer the quota bit is dropped; a grown request past the
    small-block limit is a large allocation, which no quota is charged for either."""
    m = Machine(get_arch("x86"), seed=1)
    address = m.pool.allocate(NONPAGED | QUOTA, nbytes, tag_to_ulong("Quot"),
                              process=billed_process(m, QUOTA_OWNER["x86"]))
    assert address % PAGE_SIZE == 0
    assert m.pool.big.find(address)[0] == tag_to_ulong("Quot")


def test_an_x86_quota_request_with_no_process_to_charge_is_a_plain_block() -> None:
    m = Machine(get_arch("x86"), seed=1, settings=PoolSettings(lookasides=False))
    address = m.pool.allocate(NONPAGED | QUOTA, 0x60, tag_to_ulong("Quot"))
    _, _, bs, ptype, _ = m.pool.header(address - 8)
    assert not ptype & QUOTA and bs * 8 == 0x68


@pytest.mark.parametrize("pool_type", [NONPAGED, PAGED])
def test_an_x64_quota_block_keeps_its_size_and_the_process_in_the_header(pool_type):
    m = Machine(get_arch("x64"), seed=1, settings=PoolSettings(lookasides=False))
    owner = billed_process(m, QUOTA_OWNER["x64"])
    address = m.pool.allocate(pool_type | QUOTA, 0x60, tag_to_ulong("Quot"), process=owner)
    _, _, bs, ptype, _ = m.pool.header(address - 16)
    assert ptype & QUOTA and bs * 16 == 0x70
    assert m.memory.read(address - 8, 8) == owner.to_bytes(8, "little")     # ProcessBilled
    assert _tracked(m, "Quot", pool_type & PAGED) == (1, 0x70)


@pytest.mark.parametrize("arch", ARCHES)
def test_split_rule_front_then_back(arch):
    """A fresh page gives its front to the first allocation; later ones come from the end of
    the remainder, downwards: [A][free ...][C][B]."""
    m = Machine(get_arch(arch), seed=1, settings=PoolSettings(lookasides=False))
    G = m.arch.block
    a = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Aaaa"))
    b = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Bbbb"))
    c = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Cccc"))
    page = a - G
    assert page % PAGE_SIZE == 0
    chunk = m.arch.block_size(0x100) * G
    assert b - G == page + PAGE_SIZE - chunk
    assert c - G == page + PAGE_SIZE - 2 * chunk
    tags = [tag_from_ulong(t) for *_, t in walk_page(m, page)]
    assert tags[0] == "Aaaa" and tags[-2:] == ["Cccc", "Bbbb"]


@pytest.mark.parametrize("arch", ARCHES)
def test_fragmentation_emerges_from_f18_pattern(arch):
    """The first seed case in miniature: a 0xF18-byte block takes a fresh page, a small block
    lands in the remainder, the big one is freed: the page stays with one small block."""
    m = Machine(get_arch(arch), seed=1, settings=PoolSettings(deferred_frees=False))
    big = m.pool.allocate(NONPAGED, 0xF18 - m.arch.block, tag_to_ulong("MmCm"))
    small = m.pool.allocate(NONPAGED, 0x10, tag_to_ulong("ReEv"))
    assert big >> 12 == small >> 12
    m.pool.free(big)
    chunks = walk_page(m, big & ~0xFFF)
    states = [(ptype != 0, tag_from_ulong(tag)) for _, _, _, ptype, tag in chunks]
    assert states[0] == (False, "MmCm")
    assert (True, "ReEv") in states
    assert m.mm.get("MmAllocatedNonPagedPool") >= 1


@pytest.mark.parametrize("arch", ARCHES)
def test_double_free_is_bad_pool_caller_7(arch):
    m = Machine(get_arch(arch), seed=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    m.pool.disable_lookasides()
    p = m.pool.allocate(NONPAGED, 0x300, tag_to_ulong("Aaaa"))
    keep = m.pool.allocate(NONPAGED, 0x300, tag_to_ulong("Bbbb"))
    m.pool.free(p)
    with pytest.raises(BugCheck) as err:
        m.pool.free(p)
    assert err.value.code == 0xC2 and err.value.params[0] == 7
    assert err.value.params[3] == p & m.arch.ptr_mask
    assert keep


@pytest.mark.parametrize("arch", ARCHES)
def test_overwritten_next_header_is_bad_pool_header_20(arch):
    """An overrun that rewrites the next chunk's header is caught when the overrun block is
    freed: BlockSize no longer equals the neighbour's PreviousSize."""
    m = Machine(get_arch(arch), seed=1, settings=PoolSettings(lookasides=False))
    G = m.arch.block
    a = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Aaaa"))
    b = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Bbbb"))      # sits at the page end
    c = m.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Cccc"))      # just before b
    assert b == c + m.arch.block_size(0x100) * G                         # b follows c
    m.memory.write(b - G, b"\x41" * 8)                                    # smash b's header
    with pytest.raises(BugCheck) as err:
        m.pool.free(c)
    assert err.value.code == 0x19 and err.value.params[0] == 0x20
    assert err.value.params[1] == (c - G) & m.arch.ptr_mask
    assert a


@pytest.mark.parametrize("arch", ARCHES)
def test_corrupted_free_list_link_is_bad_pool_header_3(arch):
    m = Machine(get_arch(arch), seed=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    m.pool.disable_lookasides()
    G = m.arch.block
    blocks = [m.pool.allocate(NONPAGED, 0x80, tag_to_ulong("Aaaa")) for _ in range(6)]
    m.pool.free(blocks[2])                  # a free chunk between two live ones
    m.memory.write(blocks[2], b"\x00" * m.arch.ptr_size)  # its Flink
    with pytest.raises(BugCheck) as err:
        for _ in range(200):
            m.pool.allocate(NONPAGED, 0x80, tag_to_ulong("Bbbb"))
    assert err.value.code in (0x19, 0xC5)
    if err.value.code == 0x19:
        assert err.value.params[0] == 3
    assert G


@pytest.mark.parametrize("arch", ARCHES)
def test_pool_exhaustion_counts_failures(arch):
    from dataclasses import replace
    from kdsim.mm import DEFAULT_MEMORY
    cfg = replace(DEFAULT_MEMORY[arch], nonpaged_max_pages=80)
    m = Machine(get_arch(arch), seed=1, memory=cfg)
    got = [m.pool.allocate(NONPAGED, 0x800, tag_to_ulong("Aaaa")) for _ in range(400)]
    assert 0 in got
    assert m.mm.get("ExPoolFailures") == got.count(0)
    assert m.mm.get("MmAllocatedNonPagedPool") <= 80


@pytest.mark.parametrize("arch", ARCHES)
def test_big_allocations_pack_two_per_2mb_like_the_seed(arch):
    """0xfa000-byte paged allocations never straddle a 2 MB boundary (seeds/001 addresses)."""
    m = Machine(get_arch(arch), seed=1)
    got = [m.pool.allocate(PAGED, 0xFA000, tag_to_ulong("Leak")) for _ in range(6)]
    offsets = sorted((a - got[0]) % 0x200000 for a in got)
    assert set(offsets) == {0, 0xFA000}
    assert all(m.pool.big.find(a)[1] == 0xFA000 for a in got)


@pytest.mark.parametrize("arch", ARCHES)
def test_default_machine_is_deterministic_and_healthy(arch, booted):
    a = booted(arch)                                  # boot(arch, seed=7), at full size
    b = boot(arch, seed=7)
    assert a.memory.pages.keys() == b.memory.pages.keys()
    assert all(a.memory.pages[k] == b.memory.pages[k] for k in a.memory.pages)
    assert a.crash is None
    for va in small_pool_pages(a):
        walk_page(a, va)
    c = boot(arch, seed=8, scale=0.1)
    assert any(a.memory.pages.get(k) != v for k, v in c.memory.pages.items())


def test_big_page_table_grows_and_keeps_every_entry():
    """A full table doubles (as it does past a quarter full with long probe runs); every
    allocation, and the table's own Pool entry, is in the new table nt!PoolBigPageTable names."""
    m = Machine(get_arch("x64"), seed=1)
    big = m.pool.big
    first_table, first_entries = big.table, big.entries
    got = [m.pool.allocate(NONPAGED, 0x1000, tag_to_ulong("Bigg")) for _ in range(first_entries)]
    assert big.entries > first_entries and big.table != first_table
    target = m.target()
    assert target.global_ptr("PoolBigPageTable") == big.table
    assert target.global_ptr("PoolBigPageTableSize") == big.entries
    assert all(big.find(a)[0] == tag_to_ulong("Bigg") for a in got)
    assert big.find(big.table)[0] == tag_to_ulong("Pool")
    assert (big.find(first_table) or (0,))[0] != tag_to_ulong("Pool")     # freed (maybe reused)
    for a in got[::2]:
        m.pool.free(a)
    assert all(big.find(a) is None for a in got[::2])
    assert all(big.find(a) is not None for a in got[1::2])


def _quota_usage(m: Machine, process: int) -> tuple[list[int], list[int]]:
    """EPROCESS.ProcessQuotaUsage and ProcessQuotaPeak: [nonpaged, paged] each."""
    L, P = m.pool.layouts, m.arch.ptr_size
    return tuple([int.from_bytes(m.memory.read(process + L.offset("eprocess", name) + i * P, P),
                                 "little") for i in (0, 1)]
                 for name in ("ProcessQuotaUsage", "ProcessQuotaPeak"))     # type: ignore


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("pool_type", [NONPAGED, PAGED])
def test_quota_is_charged_to_the_process_and_returned_by_the_free(arch, pool_type):
    """PsChargeProcessPoolQuota at the allocation (the block's bytes, header included), and
    PsReturnPoolQuota at the free, to EPROCESS.ProcessQuotaUsage[PsNonPagedPool 0 /
    PsPagedPool 1]; the peak stays."""
    m = Machine(get_arch(arch), seed=1)
    owner = billed_process(m, QUOTA_OWNER[arch])
    blocks = [m.pool.allocate(pool_type | QUOTA, 0x60, tag_to_ulong("Quot"), process=owner)
              for _ in range(3)]
    charged = 3 * m.pool.header(blocks[0] - m.arch.block)[2] * m.arch.block
    usage, peak = _quota_usage(m, owner)
    assert usage[pool_type & PAGED] == peak[pool_type & PAGED] == charged
    assert usage[1 - (pool_type & PAGED)] == 0
    for block in blocks:
        m.pool.free(block)
    usage, peak = _quota_usage(m, owner)
    assert usage == [0, 0] and peak[pool_type & PAGED] == charged


@pytest.mark.parametrize("arch", ARCHES)
def test_a_billed_process_pointer_overwritten_stops_the_free(arch):
    """Windows 7 keeps the billed EPROCESS unencoded (x64: the header's ProcessBilled; x86: the
    block's last ULONG) and checks only that it is a process object: anything else is
    BAD_POOL_CALLER 0xD (the block, its tag, the pointer)."""
    m = Machine(get_arch(arch), seed=1, settings=PoolSettings(lookasides=False))
    owner = billed_process(m, QUOTA_OWNER[arch])
    victim = m.pool.allocate(NONPAGED | QUOTA, 0x60, tag_to_ulong("Quot"), process=owner)
    other = m.pool.allocate(NONPAGED, 0x60, tag_to_ulong("Othr"))       # not a process
    G, P = m.arch.block, m.arch.ptr_size
    bs = m.pool.header(victim - G)[2]
    slot = victim - G + 8 if P == 8 else victim - G + bs * G - 4
    m.memory.write(slot, other.to_bytes(P, "little"))
    with pytest.raises(BugCheck) as stop:
        m.pool.free(victim)
    assert (stop.value.code, *stop.value.params) == (0xC2, 0xD, victim, tag_to_ulong("Quot"),
                                                     other)


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_big_page_probes_scan_as_one_entry_at_a_time_would(arch, data):
    """The table is scanned a page at a time in C (kdsim/bigpages.py `_first`); on any table
    contents -- free and live entries, duplicates, odd addresses -- it finds the same slot as
    a walk entry by entry from the hash slot, wrapping once."""
    m = Machine(get_arch(arch), seed=1)
    big = m.pool.big
    P = m.arch.ptr_size
    pool_lo = m.mm.nonpaged.start
    values = st.one_of(st.integers(0, 0x400).map(lambda n: pool_lo + n * PAGE_SIZE),
                       st.integers(0, 0x400).map(lambda n: pool_lo + n * PAGE_SIZE | 1),
                       st.integers(0, (1 << (8 * P)) - 1))
    for slot, value in data.draw(st.dictionaries(st.integers(0, big.entries - 1), values,
                                                 max_size=300)).items():
        m.memory.write(big.table + slot * big.esize, value.to_bytes(P, "little"))

    def walk(start: int, match) -> int | None:
        for k in range(big.entries):
            slot = (start + k) % big.entries
            if match(big._rptr(big.table + slot * big.esize)):
                return slot
        return None

    for va in data.draw(st.lists(values, min_size=1, max_size=20)):
        start = big_hash(va, big.entries - 1)
        assert big._slot_of(va) == walk(start, lambda v: v == va)
        free = big._first(start, big.entries, None)
        free = free if free is not None else big._first(0, start, None)
        assert free == walk(start, lambda v: v & 1)
