"""Learner hints (commands/hints.py): the wrong-case tag and the decimal-looking number in
radix 16, each one line before the result, and none with `.settings set hints=off`."""
from __future__ import annotations

import pytest

from commands.testing import run

CASE = "tags are case-sensitive: did you mean 'Leak'?\n"


@pytest.fixture(scope="module")
def leak_session():
    from commands.dispatch import load_commands
    from commands.session import Session
    from kdsim.scenarios import boot
    load_commands()
    return Session(boot(seed=0, scenario="leak", scale=0.1).target())


def test_a_tag_in_the_wrong_case_gets_a_hint_line(leak_session) -> None:
    s = leak_session
    assert run(s, "!poolfind leak").startswith(CASE + "\nScanning large pool allocation table")
    assert run(s, "!poolused 4 leak").startswith(CASE + "   Sorting by  Paged Pool Consumed")
    assert run(s, "!poolused 4 LEA?").startswith(CASE)
    assert "case-sensitive" not in run(s, "!poolused 4 Leak")       # found as typed
    assert "case-sensitive" not in run(s, "!poolused 4 Zzzz")       # nothing near either
    run(s, ".settings set hints=off")
    try:
        assert "case-sensitive" not in run(s, "!poolfind leak")
    finally:
        run(s, ".settings set hints=on")


@pytest.mark.parametrize("expression,hint", [
    ("8554896/2214", "radix 16: 8554896 is read as hex (decimal 139806870); write 0n8554896 "
                     "for the decimal number\n"),
    ("10", "radix 16: 10 is read as hex (decimal 16); write 0n10 for the decimal number\n"),
    ("(100 - 4) * 2", "radix 16: 100 is read as hex (decimal 256); write 0n100 for the "
                      "decimal number\n"),
    ("9", ""), ("0x10", ""), ("0n10", ""), ("0n10+20", ""), ("1f", ""), ("86bda018+18", ""),
    ("nt!PoolHitTag+18", ""), ("fffff800`01234567", ""), ("00000000`12345678", ""),
])
def test_a_decimal_looking_number_in_radix_16_gets_a_reminder(leak_session, expression,
                                                              hint) -> None:
    out = run(leak_session, f"? {expression}")
    assert out.startswith(hint + "Evaluate expression: ")


def test_no_radix_reminder_in_radix_10_or_with_hints_off(leak_session) -> None:
    s = leak_session
    for setting, reset in (("radix=10", "radix=16"), ("hints=off", "hints=on")):
        run(s, f".settings set {setting}")
        try:
            assert run(s, "? 8554896").startswith("Evaluate expression: ")
        finally:
            run(s, f".settings set {reset}")
