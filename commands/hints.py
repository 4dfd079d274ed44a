"""Learner hints: one extra line where what was typed probably means something else.

Each is off with `.settings set hints=off`.  Two today:

* a tag typed in the wrong case (`!poolfind leak`): tags are case-sensitive, so nothing
  matches; when a live tag (nt!PoolTrackTable) matches the pattern with case ignored, the
  line names it;
* a decimal-looking number read in radix 16 (`? 8554896/2214`): when the radix is 16 and the
  expression is arithmetic on such numbers only (decimal digits, blanks, + - * / % and
  parentheses: no prefix such as 0x or 0n, no hex letter, no symbol or register, which say
  the radix was meant) and one of its numbers is 10 or more, the line says how the first
  such number was read and how to write it in decimal.  One-digit numbers read the same in
  both radixes.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

SETTING = "hints"
DECIMAL_ARITHMETIC = re.compile(r"[\d\s+\-*/%()]+")     # an expression of decimal-looking numbers
MAX_SUGGESTIONS = 3
MAX_PATTERN = 16                # longer than any tag pattern worth a suggestion


def enabled(session: "Session") -> bool:
    """Whether the session's `hints` setting is on (a session without it gives none)."""
    return bool(session.settings.get(SETTING, False))


def _pattern(tag: str, flags: int = 0) -> re.Pattern[str]:
    """A tag pattern (`*` any run, `?` one character) as a regular expression."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in tag)
    return re.compile(body, flags | re.S)


def tag_case(session: "Session", typed: str) -> str:
    """The hint for a tag pattern that matches no live tag as typed but some with case
    ignored; '' otherwise."""
    typed = typed.rstrip()
    if (not enabled(session) or not typed or len(typed) > MAX_PATTERN
            or typed.lower() == typed.upper()):
        return ""
    live = session.known_tags()
    if any(_pattern(typed).fullmatch(tag) for tag in live):
        return ""
    near = [tag for tag in live if _pattern(typed, re.I).fullmatch(tag)][:MAX_SUGGESTIONS]
    if not near:
        return ""
    return ("tags are case-sensitive: did you mean " +
            " or ".join(f"'{tag}'" for tag in near) + "?")


def radix(session: "Session", expression: str) -> str:
    """The reminder for a decimal-looking number read in radix 16; '' when none applies."""
    if (not enabled(session) or session.settings.get("radix") != 16
            or not DECIMAL_ARITHMETIC.fullmatch(expression)):
        return ""
    for digits in re.findall(r"\d+", expression):
        if int(digits) >= 10:
            return (f"radix 16: {digits} is read as hex (decimal {int(digits, 16)}); write "
                    f"0n{digits.lstrip('0') or '0'} for the decimal number")
    return ""


def say(session: "Session", hint: str) -> None:
    """Print a hint line (before the command's result), if there is one."""
    if hint:
        session.write(hint + "\n")
