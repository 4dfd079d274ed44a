"""Learner hints: one extra line where what was typed probably means something else.

Each is off with `.settings set hints=off`.  Two today:

* a tag typed in the wrong case (`!poolfind leak`): tags are case-sensitive, so nothing
  matches; when a live tag (nt!PoolTrackTable) matches the pattern with case ignored, the
  line names it;
* a decimal-looking number read in radix 16 (`? 8554896/2214`): when the radix is 16 and the
  expression holds a number with no prefix (0x, 0n, 0t, 0y), made only of decimal digits,
  whose value read as decimal is 10 or more, the line says how it was read and how to write
  it in decimal.  One-digit numbers read the same in both radixes.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

SETTING = "hints"
# a run of decimal digits that is a whole number: not part of a symbol, a 0x-style prefix,
# a hex number with letters, or a 64-bit value written with a backtick
DECIMAL_LOOKING = re.compile(r"(?<![\w`!$@.])\d+(?![\w`])")
MAX_SUGGESTIONS = 3


def enabled(session: "Session") -> bool:
    return bool(session.settings.get(SETTING, True))


def _pattern(tag: str, flags: int = 0) -> re.Pattern[str]:
    """A tag pattern (`*` any run, `?` one character) as a regular expression."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in tag)
    return re.compile(body, flags | re.S)


def tag_case(session: "Session", typed: str) -> str:
    """The hint for a tag pattern that matches no live tag as typed but some with case
    ignored; '' otherwise."""
    typed = typed.rstrip()
    if not enabled(session) or not typed or typed.lower() == typed.upper():
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
    if not enabled(session) or session.settings.get("radix") != 16:
        return ""
    for found in DECIMAL_LOOKING.finditer(expression):
        digits = found[0]
        if int(digits) >= 10:
            return (f"radix 16: {digits} is read as hex (decimal {int(digits, 16)}); write "
                    f"0n{digits.lstrip('0') or '0'} for the decimal number")
    return ""


def say(session: "Session", hint: str) -> None:
    """Print a hint line (before the command's result), if there is one."""
    if hint:
        session.write(hint + "\n")
