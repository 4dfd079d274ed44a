"""`!poolval`: the verified layout (formats.md 5) on valid, corrupted and unreadable pages."""
from __future__ import annotations

import pytest
from hypothesis import assume, HealthCheck, given, settings
from hypothesis import strategies as st

from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.layouts import profile_for, tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import PoolSettings

TAGS = [(0x100, "Aaaa"), (0x80, "Bbbb"), (0x40, "Cccc"), (0x200, "Dddd"), (0x30, "Eeee")]


def build(arch: str) -> tuple[Session, list[int]]:
    m = Machine(get_arch(arch), 0, processors=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    blocks = [m.pool.allocate(0, n, tag_to_ulong(t)) for n, t in TAGS]
    return Session(m.target()), blocks


def test_valid_page_x86():
    session, _ = build("x86")
    assert run(session, "!poolval 8442ff80") == (
        "Pool page 8442ff80 region is Nonpaged pool\n"
        "\n"
        "Validating Pool headers for pool page: 8442f000\n"
        "\n"
        "Pool page [ 8442f000 ] is VALID.\n")


def test_header_overwritten_with_AAAA_x64():
    """The DebugPrivilege transcript's case: the page's first header is all 0x41."""
    session, blocks = build("x64")
    session.target.write(blocks[0] - 0x10, b"A" * 16)
    assert run(session, "!poolval fffffa8000c3f000") == (
        "Pool page fffffa8000c3f000 region is Nonpaged pool\n"
        "\n"
        "Validating Pool headers for pool page: fffffa8000c3f000\n"
        "\n"
        "Pool page [ fffffa8000c3f000 ] is INVALID.\n"
        "\n"
        "Analyzing linked list...\n"
        "[ fffffa8000c3f000 ]: invalid previous size [ 0x41 ] should be [ 0x0 ]\n"
        "[ fffffa8000c3f000 --> fffffa8000c3f110 (size = 0x110 bytes)]: Corrupt region\n"
        "\n"
        "\n"
        "Scanning for single bit errors...\n"
        "\n"
        "None found\n")


def test_unreadable_page_x64():
    session, _ = build("x64")
    assert run(session, "!poolval fffffa8000d00000") == (
        "Pool page fffffa8000d00000 region is Unknown\n"
        "\n"
        "Validating Pool headers for pool page: fffffa8000d00000\n"
        "\n"
        "Pool page [ fffffa8000d00000 ] is INVALID.\n"
        "\n"
        "Analyzing linked list...\n"
        "\n"
        "\n"
        "Scanning for single bit errors...\n"
        "\n"
        "None found\n")


def test_single_bit_error_and_a_walk_that_goes_on_x86():
    session, blocks = build("x86")
    cccc = blocks[2] - 8                     # PreviousSize 0x41 (Dddd) -> 0x43
    ulong1 = int.from_bytes(session.target.read(cccc, 4), "little") ^ 0x2
    session.target.write(cccc, ulong1.to_bytes(4, "little"))
    lines = run(session, "!poolval 8442f000").splitlines()
    assert lines[7:] == [
        "[ 8442ff30 ]: invalid previous size [ 0x43 ] should be [ 0x41 ]",
        "", "",
        "Scanning for single bit errors...",
        "",
        "[ 8442ff30 ]: single bit error in previous size [ 0x43 ] should be [ 0x41 ]"]


def test_levels_add_the_list_and_the_headers():
    session, _ = build("x86")
    one = run(session, "!poolval 8442f000 1").splitlines()
    assert one[4:] == ["Pool page [ 8442f000 ] is VALID.", "", "Analyzing linked list...", "",
                       "", "Scanning for single bit errors...", "", "None found"]
    two = run(session, "!poolval 8442f000 2").splitlines()
    assert two[len(one):] == [
        "",
        " 8442f000 size:  108 previous size:    0  (Allocated)  Aaaa",
        " 8442f108 size:  be8 previous size:  108  (Free)       ....",
        " 8442fcf0 size:   38 previous size:  be8  (Allocated)  Eeee",
        " 8442fd28 size:  208 previous size:   38  (Allocated)  Dddd",
        " 8442ff30 size:   48 previous size:  208  (Allocated)  Cccc",
        " 8442ff78 size:   88 previous size:   48  (Allocated)  Bbbb"]
    three = run(session, "!poolval 8442f000 3").splitlines()
    assert three[len(one) + 1:len(one) + 3] == [
        " 8442f000 size:  108 previous size:    0  (Allocated)  Aaaa",
        "    PreviousSize 0x0, PoolIndex 0x0, BlockSize 0x21, PoolType 0x2, PoolTag 0x61616141"]


def test_x64_full_headers_include_process_billed():
    session, _ = build("x64")
    assert run(session, "!poolval fffffa8000c3f000 3").splitlines()[-1] == (
        "    PreviousSize 0x5, PoolIndex 0x0, BlockSize 0x9, PoolType 0x2, PoolTag 0x62626242, "
        "ProcessBilled 0x0")


@pytest.mark.parametrize("args, error", [("zz", "Couldn't resolve error at 'zz'"),
                                         ("8442f000 (", "Numeric expression missing from '<EOL>'")])
def test_bad_arguments(args, error):
    session, _ = build("x86")
    assert run(session, f"!poolval {args}").strip() == error


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["x86", "x64"]),
       sizes=st.lists(st.integers(1, 0x600), min_size=2, max_size=40),
       frees=st.lists(st.integers(0, 39), max_size=15),
       pick=st.integers(0, 1000), bit=st.integers(0, 7))
def test_one_flipped_bit_in_a_previous_size_is_found(arch, sizes, frees, pick, bit):
    """Healthy pages are VALID; flip one bit of one live block's PreviousSize in memory and
    both `!poolval` and `!pool` name that header."""
    m = Machine(get_arch(arch), 0, processors=1,
                settings=PoolSettings(lookasides=False, deferred_frees=False))
    blocks = [m.pool.allocate(i % 2, n, tag_to_ulong("Prop")) for i, n in enumerate(sizes)]
    for i in sorted(set(frees)):
        if i < len(blocks) and blocks[i]:
            m.pool.free(blocks[i])
            blocks[i] = 0
    live = [b for b in blocks if b]
    assume(live)
    session = Session(m.target())
    for b in live:
        assert "is VALID." in run(session, f"!poolval {b:x}")
    victim = live[pick % len(live)]
    header = victim - m.arch.block
    ulong1 = int.from_bytes(session.target.read(header, 4), "little")
    old = ulong1 & profile_for(m.arch).codec.size_mask
    session.target.write(header, (ulong1 ^ (1 << bit)).to_bytes(4, "little"))
    width = m.arch.hex_digits
    check = run(session, f"!poolval {victim:x}")
    assert (f"[ {header:0{width}x} ]: invalid previous size [ 0x{old ^ (1 << bit):x} ] should be "
            f"[ 0x{old:x} ]") in check
    assert f"[ {header:0{width}x} ]: single bit error in previous size" in check
    pool = run(session, f"!pool {victim:x}")
    assert f"Bad previous allocation size @{header:0{width}x}, last size was {old:x}" in pool
