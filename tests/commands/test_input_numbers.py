"""Numbers and search patterns as a stranger types them: only ASCII digits are digits, numbers
and argument numbers are bounded, and an over-long search pattern is refused at once."""
from __future__ import annotations

import time

import pytest

from commands.expr import MASK64, decimal, evaluate64, parse_number
from commands.errors import DebuggerError
from commands.ext.poolfind import MAX_ARGUMENTS, USAGE
from commands.session import Session
from commands.testing import blank_target, run
from kdsim.scenarios import Lab, boot, scenario
from pooltag import tag_matches
from pooltag.tags import simplify_pattern

UNICODE_DIGITS = ["\u00b2", "\u0663", "\uff11", "\u09e7", "\U0001d7d9"]   # ² ٣ １ ১ 𝟙


@pytest.fixture
def session(booted) -> Session:
    """The default x86 machine, shared read-only (tests/conftest.py)."""
    return Session(booted("x86").target())


# -- numbers in expressions -------------------------------------------------------------------
@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_only_ascii_digits_are_digits(digit):
    assert decimal(digit) is None and decimal("1" + digit) is None
    for radix in (2, 8, 10, 16):
        assert parse_number(digit, radix) is None
        assert parse_number("0x" + digit, radix) is None


def test_decimal_counts():
    assert [decimal(t) for t in ("0", "7", "007", "123456789")] == [0, 7, 7, 123456789]
    assert [decimal(t) for t in ("", " 1", "1_0", "+1", "1234567890", "9" * 5000)] == [None] * 6
    assert decimal("0" * 5000 + "3") == 3


@pytest.mark.parametrize("prefix, digit", [("0n", "9"), ("0x", "f"), ("0t", "7"), ("0y", "1"),
                                           ("", "f")])
def test_long_numbers_overflow_in_the_debuggers_words(prefix, digit):
    word = prefix + digit * 5000
    assert parse_number(word, 16) == (MASK64 + 1, False)
    with pytest.raises(DebuggerError) as err:
        evaluate64(word, blank_target("x64"))
    assert err.value.message == f"Overflow error at '{word}'"


def test_leading_zeros_do_not_count():
    assert parse_number("0n" + "0" * 5000 + "42", 16) == (42, False)
    assert parse_number("0" * 5000 + "ffffffffffffffff", 16) == (MASK64, False)
    assert parse_number("0n18446744073709551615", 16) == (MASK64, False)
    assert parse_number("0n18446744073709551616", 16) == (MASK64 + 1, False)


def test_evaluate_command_with_thousands_of_digits(session):
    out = run(session, "? 0n" + "9" * 5000)
    assert out.startswith("Overflow error at '0n999") and "internal" not in out.lower()
    assert run(session, "? 0n" + "0" * 5000 + "10") == "Evaluate expression: 10 = 0000000a\n"


@pytest.mark.parametrize("line", [f"? {d}" for d in UNICODE_DIGITS]
                         + [f"db {d}" for d in UNICODE_DIGITS] + ["dd 0 L\u00b2", "k \u00b2"])
def test_unicode_digits_in_commands_are_clean_errors(session, line):
    out = run(session, line)
    assert out and "Internal error" not in out


# -- !poolfind ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    "File \u00b2", "File \u0663", "0x\u00b2", "0x\u0663", "0x", "0x 1", "0x1_0",
    "0x" + "f" * 5000, "AAAAA*", "*A*B*C*D*E", "A" * 1_000_000, "A*" + "A" * 1_000_000,
    "-tag " + "A" * 1_000_000, '"' + "A" * 1_000_000 + '"', "Irp " + "1" * (MAX_ARGUMENTS + 1),
], ids=lambda args: f"{args[:12]!r}+{len(args)}")
def test_poolfind_refuses_what_is_no_tag_at_once(session, args):
    start = time.perf_counter()
    assert run(session, f"!poolfind {args}") == USAGE + "\n"
    assert time.perf_counter() - start < 0.5


def test_poolfind_still_takes_tags_values_and_pool_types(session):
    assert "for Tag: Irp" in run(session, "!poolfind Irp 0")
    assert "Searching Paged pool" in run(session, "!poolfind Irp 01")
    assert "for Tag: Irp " in run(session, "!poolfind 0x20707249")
    assert "for Tag: *I*r*p*" in run(session, "!poolfind *I*r*p***")


def test_star_runs_match_as_one_star():
    assert simplify_pattern("A***b*") == "A*b*"
    assert simplify_pattern("ABCDE*") is None and simplify_pattern("ABCD*") == "ABCD*"
    assert tag_matches("*" * 100_000 + "p", "Irp ") is False
    assert tag_matches("*" * 100_000 + "p*", "Irp ") is True
    assert tag_matches("I" * 100_000, "Irp ") is False


def test_poolused_with_a_huge_pattern_is_quick(session):
    start = time.perf_counter()
    for pattern in ("*" * 100_000 + "~", "A*" * 100_000, "\u00b2" * 100_000):
        out = run(session, f"!poolused 2 {pattern}")
        assert " TOTAL           0        0         0        0" in out
    assert time.perf_counter() - start < 2.0


# -- .hint N --------------------------------------------------------------------------------------
scenario("test-numbers-lab", "an empty machine with a lab", arch="x86",
         lab=Lab(title="T", briefing="T", hints=("one", "two"), answers=("x",),
                 question="x"))(lambda machine, scale: None)


@pytest.mark.parametrize("arg", UNICODE_DIGITS + ["0", "3", "9" * 5000, "-1", "1.0"],
                         ids=lambda arg: f"{arg[:12]!r}+{len(arg)}")
def test_hint_number_is_ascii_and_bounded(arg):
    session = Session(boot("x86", 3, "test-numbers-lab").target())
    assert run(session, ".hint").startswith("Hint 1 of 2")
    assert run(session, f".hint {arg}") == "There are 2 hints: .hint N takes N from 1 to 2.\n"
    assert run(session, ".hint 01").startswith("Hint 1 of 2")


# -- $$>a< arguments ------------------------------------------------------------------------------
def test_script_argument_numbers_are_bounded(tmp_path):
    session = Session(blank_target("x86"))
    path = tmp_path / "args.txt"
    huge = "9" * 5000
    path.write_text(".echo ${$arg1} ${$arg" + huge + "} ${$arg\u0663} ${$arg0} ${$arg001}\n")
    assert run(session, f"$$>a<{path} first") == (
        "first ${$arg" + huge + "} ${$arg\u0663} ${$arg0} first\n")
