"""`?` and `.formats`: golden text from the real transcripts in formats.md 1.2."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings, strategies as st

from commands.core.eval import Evaluation, hex_text, shown_as_32
from commands.errors import DebuggerError, ParseError
from kdsim.arch import X64, X86
from tests.support import FakeSession, build_target, call, lines


@pytest.fixture
def x86() -> FakeSession:
    return FakeSession(build_target(
        X86, modules=(("nt", "ntoskrnl.exe", 0x82A0F000, 0x400000,
                       {"PoolHitTag": 0x82B37DF4}),)))


@pytest.fixture
def x64() -> FakeSession:
    return FakeSession(build_target(
        X64, memory=((0x0000008EED57B108, (0x409).to_bytes(8, "little")),)))


@pytest.mark.parametrize("line, text", [
    ("? 86bda018+18", "Evaluate expression: -2034393040 = 86bda030"),
    ("? a00000-9fc000", "Evaluate expression: 16384 = 00004000"),
    ("? 0x1000+0x20", "Evaluate expression: 4128 = 00001020"),
    ("? nt!PoolHitTag", "Evaluate expression: -2102166028 = 82b37df4"),
    ("? 0`86bda018", "Evaluate expression: 2260574232 = 86bda018"),
    ("? 1`00000000", "Evaluate expression: 4294967296 = 00000001`00000000"),
    ("? -1", "Evaluate expression: -1 = ffffffff"),
])
def test_evaluate_x86(x86: FakeSession, line: str, text: str) -> None:
    assert call(x86, line) == text


@pytest.mark.parametrize("line, text", [
    ("? 800", "Evaluate expression: 2048 = 00000000`00000800"),
    ("? (0x88-0x70)/8", "Evaluate expression: 3 = 00000000`00000003"),
    ("? 0x10 + 0t10 + 0y10", "Evaluate expression: 26 = 00000000`0000001a"),
    ("? 0x1000+0x20", "Evaluate expression: 4128 = 00000000`00001020"),
    ("? poi(0000008e`ed57b108)", "Evaluate expression: 1033 = 00000000`00000409"),
    ("? by(0000008e`ed57b108)", "Evaluate expression: 9 = 00000000`00000009"),
    ("? poi(0000008e`ed57b108)==0x409", "Evaluate expression: 1 = 00000000`00000001"),
    ("? ffffcb0e`11386cb0", "Evaluate expression: -58213697819472 = ffffcb0e`11386cb0"),
])
def test_evaluate_x64(x64: FakeSession, line: str, text: str) -> None:
    assert call(x64, line) == text


def test_evaluate_uses_the_session_radix(x86: FakeSession) -> None:
    x86.settings["radix"] = 10
    assert call(x86, "? 100") == "Evaluate expression: 100 = 00000064"


def test_evaluate_result_is_data_for_json(x64: FakeSession) -> None:
    from commands.registry import lookup
    result = lookup("?").func(x64, "800")
    assert result == Evaluation(0x800, 2048, "00000000`00000800")


def test_bare_question_mark_lists_commands(x86: FakeSession) -> None:
    text = call(x86, "?")
    assert "? Expression" in text and ".formats Expression" in text


def test_evaluate_errors(x64: FakeSession) -> None:
    with pytest.raises(DebuggerError, match="^Couldn't resolve error at 'foo'$"):
        call(x64, "? foo")
    with pytest.raises(ParseError) as err:
        call(x64, "? 1+1)")
    assert err.value.lines("kd> ", "? 1+1)") == ["       ^ Extra character error in '? 1+1)'"]


def test_through_the_dispatcher_carets_land_under_the_offending_character() -> None:
    from commands.session import Session
    from commands.testing import run
    session = Session(build_target(X86))
    assert run(session, "? 1+1)") == "         ^ Extra character error in '? 1+1)'\n"
    assert run(session, "dd 1000 L1 x") == \
        "               ^ Extra character error in 'dd 1000 L1 x'\n"
    assert run(session, "? 0n10; ? foo") == \
        "Evaluate expression: 10 = 0000000a\nCouldn't resolve error at 'foo'\n"


def test_display_width_follows_sign_extension() -> None:
    assert shown_as_32(0xFFFFFFFF86BDA030, X86)
    assert shown_as_32(0x0000000086BDA030, X86)
    assert not shown_as_32(0xFFFFFFFE86BDA030, X86)
    assert not shown_as_32(0x800, X64)
    assert hex_text(0xFFFFFFFF86BDA030, X86) == "86bda030"


# -- .formats ---------------------------------------------------------------------------------
@pytest.fixture
def timezone(monkeypatch: pytest.MonkeyPatch):
    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()
    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_formats_x86(x86: FakeSession, timezone) -> None:
    timezone("Asia/Kolkata")            # the write-up's 16:30:49 is 11:00:49 UTC
    assert call(x86, ".formats 64636261") == lines("""
        Evaluate expression:
          Hex:     64636261
          Decimal: 1684234849
          Octal:   14430661141
          Binary:  01100100 01100011 01100010 01100001
          Chars:   dcba
          Time:    Tue May 16 16:30:49 2023
          Float:   low 1.6778e+022 high 0
          Double:  8.32123e-315
        """)


def test_formats_x64(x64: FakeSession, timezone) -> None:
    timezone("America/Los_Angeles")
    assert call(x64, ".formats 57724231h") == lines("""
        Evaluate expression:
          Hex:     00000000`57724231
          Decimal: 1467105841
          Decimal (unsigned) : 1467105841
          Octal:   0000000000012734441061
          Binary:  00000000 00000000 00000000 00000000 01010111 01110010 01000010 00110001
          Chars:   ....WrB1
          Time:    Tue Jun 28 02:24:01 2016
          Float:   low 2.66366e+014 high 0
          Double:  7.24847e-315
        """)


def test_formats_of_a_negative_value(x64: FakeSession) -> None:
    text = call(x64, ".formats -1")
    assert "  Decimal: -1\n  Decimal (unsigned) : 18446744073709551615" in text
    assert "  Time:    ***** Invalid" in text


def test_formats_needs_an_expression(x64: FakeSession) -> None:
    with pytest.raises(DebuggerError, match="^Numeric expression missing from '<EOL>'$"):
        call(x64, ".formats")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_fuzz_commands_raise_only_debugger_errors(text: str) -> None:
    for session in (_FUZZ_X86, _FUZZ_X64):
        for name in ("?", ".formats"):
            try:
                call(session, f"{name} {text}")
            except DebuggerError:
                pass


_FUZZ_X86 = FakeSession(build_target(X86))
_FUZZ_X64 = FakeSession(build_target(X64))
