"""Special pool: one allocation per page against a guard page, the pattern checked on free,
freed pages no-access in a FIFO, fallback to normal pool, and the bug checks of its faults."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import PAGE_SIZE, tag_to_ulong
from kdsim.machine import Machine
from kdsim.memory import MemoryFault
from kdsim.mm import DEFAULT_MEMORY
from kdsim.modules import frames, seed_modules
from kdsim.pool import NONPAGED, PAGED

TAG = tag_to_ulong("AAAA")


def machine(arch: str = "x86", flags: str = "0x1", extra: str = "", **kwargs) -> Machine:
    return Machine(get_arch(arch), 7, verifier=f"/flags {flags} /driver DrvA.sys {extra}",
                   modules=seed_modules("DrvA", "DrvB"), **kwargs)


def driver_stack(m: Machine, driver: str = "DrvA") -> tuple[int, ...]:
    return frames(m.symbols, (f"{driver}+0x1a2b", "nt!IofCallDriver+0x63"))


def store_ip(m: Machine, where: str = "DrvA+0x1c00") -> int:
    return frames(m.symbols, (where,))[0]


def alloc(m: Machine, nbytes: int, pool_type: int = NONPAGED, driver: str = "DrvA") -> int:
    return m.pool.allocate(pool_type, nbytes, TAG, 0, driver_stack(m, driver))


def counter(m: Machine, name: str) -> int:
    return m.mm.get(name)


# -- layout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, nbytes, offset", [
    ("x86", 4, 0xFF8), ("x86", 8, 0xFF8), ("x86", 16, 0xFF0), ("x86", 500, 0xE08),
    ("x64", 0x3C, 0xFC0), ("x64", 0x34, 0xFC0), ("x64", 0x18, 0xFE0), ("x64", 500, 0xE00),
])
def test_data_ends_at_the_page_end_aligned_to_the_block(arch: str, nbytes: int,
                                                        offset: int) -> None:
    # the observed placements of internals.md 12.2 (AV-2009, MS-VERIFIER-EXT)
    m = machine(arch)
    address = alloc(m, nbytes)
    start = m.mm.get("MmSpecialPoolStart")
    assert start <= address < m.mm.get("MmSpecialPoolEnd")
    assert address & 0xFFF == offset


def test_header_pattern_and_guard_page() -> None:
    m = machine("x64")
    address = alloc(m, 0x30, PAGED)
    page = address & ~0xFFF
    ulong1, tag = (int.from_bytes(m.memory.read(page + i, 4), "little") for i in (0, 4))
    fill = (ulong1 >> 16) & 0xFF
    assert ulong1 & 0x7FFF == 0x30 and ulong1 & 0x8000          # bytes requested, paged
    assert tag == TAG
    assert m.memory.read(page + 16, address - page - 16) == bytes([fill]) * (address - page - 16)
    assert m.memory.is_noaccess(page + PAGE_SIZE)
    with pytest.raises(MemoryFault):
        m.memory.read(page + PAGE_SIZE, 1)


def test_verify_start_puts_the_data_at_the_page_start_and_the_header_at_its_end() -> None:
    m = machine("x86", extra="/verifystart")
    address = alloc(m, 100)
    assert address & 0xFFF == 0
    assert int.from_bytes(m.memory.read(address + PAGE_SIZE - 8, 4), "little") & 0x7FFF == 100
    assert m.memory.is_noaccess(address - PAGE_SIZE)
    m.pool.free(address, 0, 0, driver_stack(m))
    assert m.memory.is_noaccess(address)


def test_only_the_verified_driver_and_small_requests_go_to_special_pool() -> None:
    m = machine("x86")
    start, end = m.mm.get("MmSpecialPoolStart"), m.mm.get("MmSpecialPoolEnd")
    assert not start <= alloc(m, 64, driver="DrvB") < end
    assert not start <= alloc(m, 0x2000) < end                    # big: normal pool
    assert start <= alloc(m, 0xFF0) < end


# -- counters, FIFO, fallback -----------------------------------------------------------------
def test_counters_follow_allocations_and_frees() -> None:
    m = machine("x86")
    in_use, free_ptes = counter(m, "MmSpecialPagesInUse"), counter(m, "MmFreeSpecialNonPagedPtes")
    available = counter(m, "MmAvailablePages")
    blocks = [alloc(m, 40) for _ in range(3)]
    assert counter(m, "MmSpecialPagesInUse") == in_use + 3
    assert counter(m, "MmFreeSpecialNonPagedPtes") == free_ptes - 6
    assert counter(m, "MmAvailablePages") == available - 3
    for b in blocks:
        m.pool.free(b, 0, 0, driver_stack(m))
    assert counter(m, "MmSpecialPagesInUse") == in_use
    assert counter(m, "MmFreeSpecialNonPagedPtes") == free_ptes


def test_freed_pages_stay_no_access_and_are_reused_last() -> None:
    small = dataclasses.replace(DEFAULT_MEMORY["x86"], special_max_pages=3)
    m = machine("x86", memory=small)
    first = [alloc(m, 40) for _ in range(3)]
    m.pool.free(first[0], 0, 0, driver_stack(m))
    assert m.memory.is_noaccess(first[0])
    again = alloc(m, 40)
    assert again == first[0]                  # the only free pair: the FIFO's head
    m.pool.free(first[1], 0, 0, driver_stack(m))
    m.pool.free(first[2], 0, 0, driver_stack(m))
    assert alloc(m, 40) == first[1]           # freed earlier, handed out earlier


def test_exhausted_special_pool_falls_back_to_normal_pool_silently() -> None:
    small = dataclasses.replace(DEFAULT_MEMORY["x86"], special_max_pages=2)
    m = machine("x86", memory=small)
    end = m.mm.get("MmSpecialPoolEnd")
    inside = [alloc(m, 40) for _ in range(2)]
    fallback = alloc(m, 40)
    assert all(a < end for a in inside)
    assert m.mm.nonpaged.contains(fallback)
    m.pool.free(fallback, 0, 0, driver_stack(m))


# -- checks on free: 0xC1 ---------------------------------------------------------------------
def c1(m: Machine, address: int) -> BugCheck:
    with pytest.raises(BugCheck) as caught:
        m.pool.free(address, 0, 0, driver_stack(m))
    assert caught.value.code == 0xC1
    return caught.value


def test_double_free_is_0xc1_0x20() -> None:
    m = machine("x86")
    address = alloc(m, 40)
    m.pool.free(address, 0, 0, driver_stack(m))
    assert c1(m, address).params == (address, 0, 0, 0x20)


def test_freeing_a_wrong_address_is_0xc1_0x21_or_0x22() -> None:
    m = machine("x86")
    address = alloc(m, 40)                    # data at page + 0xFD8
    assert c1(m, address + 8).params == (address + 8, 40, 0x20, 0x21)
    assert c1(m, address - 8).params == (address - 8, 40, 0x30, 0x22)


def test_writing_into_the_slop_is_caught_at_free_0x24() -> None:
    m = machine("x64")
    address = alloc(m, 0x31)                  # data at page + 0xFC0, 0xF bytes of slop
    m.driver_write(address + 0x31, b"\x00", store_ip(m), driver_stack(m))
    bc = c1(m, address)
    fill = bc.params[2]
    assert bc.params == (address, address + 0x31, fill, 0x24)


def test_corruption_before_the_data_is_0xc1_0x23() -> None:
    m = machine("x86")
    address = alloc(m, 40)
    m.memory.write(address - 4, b"\x00")
    bc = c1(m, address)
    assert (bc.params[:2], bc.params[3]) == ((address, address - 4), 0x23)


# -- faults: KeBugCheck2's rewrite of 0x50 ----------------------------------------------------
def fault(m: Machine, address: int, where: str) -> BugCheck:
    with pytest.raises(BugCheck) as caught:
        m.driver_write(address, b"x", store_ip(m, where), driver_stack(m))
    return caught.value


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_writing_past_the_end_faults_at_the_guard_page(arch: str) -> None:
    m = machine(arch)
    address = alloc(m, 500)
    guard = (address | 0xFFF) + 1
    with pytest.raises(BugCheck) as caught:
        m.driver_write(address, b"F" * 600, store_ip(m), driver_stack(m))
    assert (caught.value.code, caught.value.params) == (0xD6, (guard, 1, store_ip(m), 0))
    assert m.memory.read(address, 500) == b"F" * 500          # the bytes before it landed
    assert fault(m, guard, "nt!ExFreePoolWithTag+0x10").code == 0xCD   # kernel code


def test_touching_freed_special_pool_is_0xd5_from_a_driver_and_0xcc_from_the_kernel() -> None:
    m = machine("x86")
    address = alloc(m, 40)
    m.pool.free(address, 0, 0, driver_stack(m))
    assert fault(m, address, "DrvA+0x1c00").code == 0xD5
    assert fault(m, address, "nt!ExFreePoolWithTag+0x10").code == 0xCC


def test_outside_special_pool_a_fault_stays_0x50() -> None:
    m = machine("x86")
    assert fault(m, 0x1000, "DrvA+0x1c00").code == 0x50


# -- the property -----------------------------------------------------------------------------
ops = st.lists(st.one_of(
    st.tuples(st.just("alloc"), st.integers(1, 0xFE0), st.booleans()),
    st.tuples(st.just("free"), st.integers(0, 40)),
    st.tuples(st.just("write"), st.integers(0, 40), st.integers(0, 0x1100)),
), max_size=40)


@settings(max_examples=40, deadline=None)
@given(ops=ops, arch=st.sampled_from(["x86", "x64"]))
def test_overruns_under_special_pool_never_corrupt_a_neighbour_silently(ops, arch) -> None:
    """Random allocate/free/overrun sequences by a verified driver: every write either stays
    inside its own page (and anything it spoiled is found at that block's free, 0xC1) or is
    stopped at the faulting store; a neighbour's bytes never change."""
    m = machine(arch)
    live: dict[int, tuple[int, bytes]] = {}            # address -> (size, the driver's data)
    order: list[int] = []
    ip, stack = store_ip(m), driver_stack(m)
    for op in ops:
        if op[0] == "alloc":
            address = alloc(m, op[1], PAGED if op[2] else NONPAGED)
            data = bytes((address + i) & 0xFF for i in range(op[1]))
            m.driver_write(address, data, ip, stack)
            live[address] = (op[1], data)
            order.append(address)
        elif op[0] == "free" and order:
            address = order.pop(op[1] % len(order))
            size, _ = live.pop(address)
            page = address & ~0xFFF
            fill = m.memory.read(page + 2, 1)[0]      # the pattern byte, in the header
            left = page + PAGE_SIZE - address - size
            slop = m.memory.read(address + size, left) if left else b""
            if slop != bytes([fill]) * len(slop):     # the write went past the data
                assert c1(m, address).params[3] == 0x24
                return
            m.pool.free(address, 0, 0, stack)
        elif op[0] == "write" and order:
            address = order[op[1] % len(order)]
            size, data = live[address]
            n = op[2]
            try:
                m.driver_write(address, bytes([0x5A]) * n, ip, stack)
            except BugCheck as bc:
                page_end = (address | 0xFFF) + 1
                assert address + n > page_end            # it left the page...
                assert (bc.code, bc.params[0]) == (0xD6, page_end)   # ...and stopped there
                return
            live[address] = (size, (bytes([0x5A]) * n + data[n:])[:size])
        for address, (size, data) in live.items():    # no neighbour changed
            assert m.memory.read(address, size) == data
