"""The MASM evaluator: numbers, symbols, operators, sign extension and the real error texts."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from commands.errors import DebuggerError, ParseError
from commands.expr import (evaluate, evaluate64, parse_leading, parse_number,
                           sign_extend32)
from kdsim.arch import X64, X86
from kdsim.target import Target
from tests.support import build_target


# -- the targets of this file -----------------------------------------------------------------
X86_NT = 0x82A0F000
X86_TAG = 0x82B37DF4                       # nt!PoolHitTag in the PoolHitTag write-up
X86_DATA = 0x8627E780


@pytest.fixture
def x86() -> Target:
    return build_target(
        X86,
        modules=(("nt", "ntoskrnl.exe", X86_NT, 0x400000,
                  {"PoolHitTag": X86_TAG, "ExFreePoolWithTag": X86_NT + 0x1234}),
                 ("myfault", "myfault.sys", 0x8B200000, 0x8000, {})),
        memory=((X86_TAG, b"abcd"),
                (X86_DATA, bytes.fromhex("40000804 457665ee 18a0bd86 00000000"))))


@pytest.fixture
def x64() -> Target:
    return build_target(
        X64,
        modules=(("nt", "ntoskrnl.exe", 0xFFFFF80001409000, 0x600000,
                  {"PoolHitTag": 0xFFFFF80001609DF4}),),
        memory=((0x0000008EED57B108, (0x409).to_bytes(8, "little")),
                (0xFFFFFA8000C01000, (0xFFFFFA8000C01000).to_bytes(8, "little"))))


# -- numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("0x1000+0x20", 0x1020), ("a", 0xA), ("0xa", 0xA), ("0x", 0), ("0X4aB3", 0x4AB3),
    ("0n10", 10), ("0t10", 8), ("0y10", 2), ("4ab3h", 0x4AB3), ("ah", 0xA), ("1ah", 0x1A),
    ("1`", 1), ("1`1", 0x11), ("fffff8a0`06a00000", 0xFFFFF8A006A00000),
    ("'dcba'", 0x64636261), ("'A'", 0x41),
])
def test_numbers(x64: Target, text: str, value: int) -> None:
    assert evaluate64(text, x64) == value


def test_radix_applies_to_unprefixed_numbers_only(x86: Target) -> None:
    assert evaluate64("10", x86, radix=10) == 10
    assert evaluate64("10", x86, radix=8) == 8
    assert evaluate64("0x10", x86, radix=10) == 16
    assert evaluate64("10h", x86, radix=10) == 16
    with pytest.raises(DebuggerError, match="Couldn't resolve error at 'abcd'"):
        evaluate64("abcd", x86, radix=10)


def test_parse_number_rejects_non_numbers() -> None:
    assert parse_number("1_000", 16) is None          # Python's int() would accept it
    assert parse_number("`1", 16) is None
    assert parse_number("nt", 16) is None
    assert parse_number("0x`10", 16) == (0x10, True)


def test_x86_constants_are_sign_extended_unless_backticked(x86: Target) -> None:
    assert evaluate64("80000000", x86) == 0xFFFFFFFF80000000
    assert evaluate64("0`80000000", x86) == 0x80000000
    assert evaluate64("00000000EEAA1122", x86) == 0xFFFFFFFFEEAA1122
    assert evaluate64("7fffffff+1", x86) == 0x80000000            # results are not extended
    assert sign_extend32(0x12345678) == 0x12345678


def test_x64_constants_are_not_sign_extended(x64: Target) -> None:
    assert evaluate64("80000000", x64) == 0x80000000
    assert evaluate64("0xaaaaaaaa*0x18", x64) == 0xFFFFFFFF0


# -- symbols ----------------------------------------------------------------------------------
def test_symbols_modules_and_offsets(x86: Target) -> None:
    assert evaluate("nt!PoolHitTag", x86) == X86_TAG
    assert evaluate("PoolHitTag", x86) == X86_TAG
    assert evaluate("nt!poolhittag+8", x86) == X86_TAG + 8
    assert evaluate("nt", x86) == X86_NT
    assert evaluate("myfault+0x11f6", x86) == 0x8B2011F6
    assert evaluate("myfault.sys", x86) == 0x8B200000
    assert evaluate("!PoolHitTag", x86) == X86_TAG


def test_x86_addresses_are_sign_extended_but_evaluate_masks_them(x86: Target) -> None:
    assert evaluate64("nt!PoolHitTag", x86) == 0xFFFFFFFF00000000 | X86_TAG
    assert evaluate("nt!PoolHitTag", x86) == X86_TAG


def test_a_word_that_reads_as_hex_is_a_number(x86: Target) -> None:
    x86.symbols.module("nt").add("abcd", 0x82A10000)
    assert evaluate("abcd", x86) == 0xABCD
    assert evaluate("!abcd", x86) == 0x82A10000


# -- operators --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3", 7), ("(1+1) * 2", 4), ("1 + (1 * 2)", 3), ("1 + 2 * 3 + 4", 11),
    ("1 + 2 * 3 / 4", 2), ("7 % 4", 3), ("7 mod 4", 3), ("1 or 2", 3), ("2 and 6", 2),
    ("6 xor 3", 5), ("6 ^ 3", 5), ("6 & 3", 2), ("6 | 1", 7), ("1 << 4", 0x10),
    ("0x100 >> 4", 0x10), ("-8 >>> 2", 0xFFFFFFFFFFFFFFFE), ("-8 >> 3", 0x1FFFFFFFFFFFFFFF),
    ("-1", 0xFFFFFFFFFFFFFFFF), ("+1", 1), ("+-1", 0xFFFFFFFFFFFFFFFF), ("--1", 1),
    ("not 0", 1), ("not 5", 0), ("hi 12345678", 0x1234), ("low 12345678", 0x5678),
    ("3 = 3", 1), ("3 == 4", 0), ("3 != 4", 1), ("3 < 4", 1), ("3 >= 4", 0), ("1+1 == 2", 1),
    ("a00000-9fc000", 0x4000), ("(0x88-0x70)/8", 3), ("0x10 + 0t10 + 0y10", 26),
    ("ffffac983ca17910-(0xaaaaaaaa*0x18)", 0xFFFFAC883CA17920),
])
def test_operators(x64: Target, text: str, value: int) -> None:
    assert evaluate64(text, x64) == value


def test_memory_operators(x64: Target, x86: Target) -> None:
    assert evaluate64("poi(0000008e`ed57b108)", x64) == 0x409
    assert evaluate64("by(0000008e`ed57b108)", x64) == 9
    assert evaluate64("wo(0000008e`ed57b108)", x64) == 0x409
    assert evaluate64("poi(0000008e`ed57b108)==0x409", x64) == 1
    assert evaluate64("poi poi fffffa80`00c01000", x64) == 0xFFFFFA8000C01000
    assert evaluate64("dwo(nt!PoolHitTag)", x86) == 0x64636261
    assert evaluate64("qwo(8627e780)", x86) == 0xEE65764504080040
    # an x86 pointer read through poi is sign-extended like any x86 address
    assert evaluate64("poi(8627e788)", x86) == 0xFFFFFFFF86BDA018
    assert evaluate("poi(8627e788)+18", x86) == 0x86BDA030


# -- errors (ChaosDbg's DbgEng-checked table, formats.md 1.3) ---------------------------------
@pytest.mark.parametrize("text, message", [
    ("foo", "Couldn't resolve error at 'foo'"),
    ("ntdll!1", "Couldn't resolve error at 'ntdll!1'"),
    ("!1", "Couldn't resolve error at '!1'"),
    ("`1", "Syntax error at '`1'"),
    ("(1+1", "Syntax error at '<EOL>'"),
    ("1+", "Numeric expression missing from '<EOL>'"),
    ("1*", "Numeric expression missing from '<EOL>'"),
    ("*1", "Numeric expression missing from '*1'"),
    ("", "Numeric expression missing from '<EOL>'"),
    ("@foo", "Bad register error at '@foo'"),
    ("@rcx", "Bad register error at '@rcx'"),
    ("rcx", "Bad register error at 'rcx'"),
    ("poi 1", "Memory access error at '1'"),
    ("poi(1)+2", "Memory access error at ')+2'"),
    ("foo + 1", "Couldn't resolve error at 'foo + 1'"),
    ("1 + foo", "Couldn't resolve error at 'foo'"),
    ("foo + (1", "Couldn't resolve error at 'foo + (1'"),
    ("1/0", "Divide by zero error at '0'"),
    ("12g", "Syntax error at '12g'"),
    ("10000000000000000", "Overflow error at '10000000000000000'"),
])
def test_error_texts(x64: Target, text: str, message: str) -> None:
    with pytest.raises(DebuggerError) as err:
        evaluate64(text, x64)
    assert err.value.message == message
    assert not isinstance(err.value, ParseError)


def test_extra_characters_are_a_caret_error(x64: Target) -> None:
    with pytest.raises(ParseError) as err:
        evaluate64("1+1)", x64)
    assert (err.value.kind, err.value.column) == ("Extra character", 3)
    with pytest.raises(ParseError) as err:
        evaluate("1 2", x64, offset=10)
    assert err.value.column == 12


# -- splitting arguments ----------------------------------------------------------------------
def test_parse_leading_stops_where_the_expression_cannot_continue(x86: Target) -> None:
    lead = parse_leading("nt!PoolHitTag + 8 L20", x86)
    assert (lead.value, lead.rest, lead.end) == (X86_TAG + 8, "L20", 18)
    assert parse_leading("  1000 2000", x86).rest == "2000"
    assert parse_leading("1000 -8 2", x86)[:2] == (0xFF8, "2")     # blanks around operators
    assert parse_leading("1000 and 3 x", x86)[:2] == (0, "x")


def test_unresolved_symbol_quote_ends_with_the_expression(x86: Target) -> None:
    # formats.md 1.3: dd KiGlobalTimerResolutionRequests L1
    with pytest.raises(DebuggerError) as err:
        parse_leading("KiGlobalTimerResolutionRequests L1", x86)
    assert err.value.message == "Couldn't resolve error at 'KiGlobalTimerResolutionRequests '"


def test_deep_nesting_is_refused_without_recursion_error(x86: Target) -> None:
    assert evaluate("1|2^3&4==5<<6+7*(" * 60 + "1" + ")" * 60, x86) >= 0
    with pytest.raises(DebuggerError, match="Syntax error"):
        evaluate("(" * 500 + "1" + ")" * 500, x86)


# -- fuzz: nothing but the debugger's own errors ----------------------------------------------
_PIECES = st.sampled_from([
    "poi", "by", "wo", "dwo", "qwo", "not", "hi", "low", "and", "or", "xor", "mod", "nt!",
    "PoolHitTag", "nt", "myfault", "0x", "0n", "0t", "0y", "`", "'", "(", ")", "@", "$", "!",
    "+", "-", "*", "/", "%", "<<", ">>>", ">>", "=", "==", "!=", "<", ">", "&", "|", "^", " ",
    "8627e780", "ffffffff", "1", "0", "h", "L20", ".", "~", "\t", "?", '"',
])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=16).map("".join)),
       st.sampled_from([8, 10, 16]))
def test_fuzz_only_debugger_errors(text: str, radix: int) -> None:
    for target in (_FUZZ_X86, _FUZZ_X64):
        for parse in (evaluate, evaluate64, parse_leading):
            try:
                parse(text, target, radix)
            except DebuggerError:
                pass


_FUZZ_X86 = build_target(X86, modules=(("nt", "ntoskrnl.exe", X86_NT, 0x400000,
                                        {"PoolHitTag": X86_TAG}),),
                         memory=((X86_DATA, bytes(range(32))),))
_FUZZ_X64 = build_target(X64, memory=((0xFFFFFA8000C01000, bytes(16)),))
