"""Driver Verifier in the simulator: settings in the real syntax, what it changes in the
allocator, the 0xC4 bug check of a zero-byte request, and its hand-packed records."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames, seed_modules
from kdsim.pool import PAGED
from kdsim.verifier import STANDARD_FLAGS, VerifierSettings, parse_settings


# -- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("/flags 1 /driver myfault.sys", VerifierSettings(1, ("myfault.sys",))),
    ("/FLAGS 0x9 /DRIVER a.sys b.sys", VerifierSettings(9, ("a.sys", "b.sys"))),
    ("/standard /all", VerifierSettings(STANDARD_FLAGS, (), True)),
    ("/driver x.sys", VerifierSettings(STANDARD_FLAGS, ("x.sys",))),
    ("/flags 1 /driver x.sys /verifystart", VerifierSettings(1, ("x.sys",), False, True)),
    ("/reset", VerifierSettings()),
])
def test_settings_use_the_verifier_syntax(text: str, expected: VerifierSettings) -> None:
    assert parse_settings(text) == expected


@pytest.mark.parametrize("text, message", [
    ("/flags", "/flags needs a value (e.g. /flags 0x9)"),
    ("/flags zz /driver a.sys", "invalid /flags value 'zz'"),
    ("/flags 0x1000 /driver a.sys", "unsupported /flags value '0x1000'"),
    ("/flags 1", "/flags needs the drivers to verify: /driver NAME ... or /all"),
    ("/driver", "/driver needs at least one driver name"),
    ("/flags 1 /driver a.sys /fast", "unknown option '/fast'"),
    ("/reset /flags 1", "/reset takes no other option"),
])
def test_bad_settings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_settings(text)
    assert str(caught.value) == message


# -- what the verifier changes ------------------------------------------------------------------
def test_verifier_turns_deferred_frees_and_lookasides_off() -> None:
    plain = Machine(get_arch("x86"), 1)
    verified = Machine(get_arch("x86"), 1, verifier="/flags 0x9 /driver myfault.sys")
    flags = verified.g.read_u32(verified.pool.sym_flags)
    assert plain.g.read_u32(plain.pool.sym_flags) == 0x200
    assert flags == 0x8 | 0x20
    assert not verified.pool.settings.deferred_frees
    la = verified.pool.la[0][0][0][0]
    assert verified.memory.read(la + verified.pool.o_la_depth, 2) == b"\0\0"
    level = verified.symbols.resolve("nt!MmVerifierData")
    assert verified.g.read_u32(level) == 9 and plain.g.read_u32(
        plain.symbols.resolve("nt!MmVerifierData")) == 0


def test_threads_are_thre_objects_in_nonpaged_pool() -> None:
    m = Machine(get_arch("x64"), 1, verifier="/flags 1 /driver myfault.sys")
    thread = m.verifier.current_thread(0)
    assert thread & 0xFFF == 0x60 or (thread - 0x60) & 0xF == 0
    header = thread - 0x60
    assert int.from_bytes(m.memory.read(header + 4, 4), "little") == tag_to_ulong("Thre") | 1 << 31


# -- 0xC4 ---------------------------------------------------------------------------------------
def test_a_zero_byte_allocation_by_a_verified_driver_is_c4_0() -> None:
    m = Machine(get_arch("x86"), 1, verifier="/flags 1 /driver DrvA.sys",
                modules=seed_modules("DrvA"))
    with pytest.raises(BugCheck) as caught:
        m.pool.allocate(PAGED, 0, tag_to_ulong("AAAA"), 0, frames(m.symbols, ("DrvA+0x10",)))
    assert (caught.value.code, caught.value.params) == (0xC4, (0, 0, PAGED, 0))


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_hand_packed_records_agree_with_the_declared_layouts(arch: str) -> None:
    """The log and the tracking table are written with struct on the hot path."""
    m = Machine(get_arch(arch), 1, verifier="/flags 0x8 /driver DrvA.sys")
    v, L = m.verifier, m.verifier.layouts
    frames_ = list(range(1, 14))
    assert v.record.pack(0x1000, 0x20, 0x3000, *frames_) == L.pool_trace.build(
        {"Address": 0x1000, "Size": 0x20, "Thread": 0x3000, "StackTrace": frames_})
    assert v.entry.pack(1, 2, 3, 4) == L.pool_entry.build(
        {"VirtualAddress": 1, "CallingAddress": 2, "NumberOfBytes": 3, "Tag": 4})
