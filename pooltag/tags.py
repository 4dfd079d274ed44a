"""What a pool tag is: four bytes in memory order, also read as a little-endian ULONG.

`'Irp '` is the bytes 49 72 70 20 and the ULONG 0x20707249; driver source writes it reversed
as the multi-char constant `' prI'`. Bit 31 of the ULONG is PROTECTED_POOL: the kernel strips
it before comparing tags, so every lookup here strips it too. In this package a tag is a
4-character str whose characters are its byte values (latin-1 view), blank padded.  The
conversions between the two views are the layouts' (kdsim/layouts/tags.py), shared with the
simulator and the debugger.
"""
from __future__ import annotations

import re
from functools import lru_cache

from kdsim.layouts.constants import PROTECTED_POOL, TAG_LEN
from kdsim.layouts.tags import tag_from_ulong, tag_to_ulong

__all__ = [
    "PROTECTED_POOL", "TAG_LEN", "TagLike", "compile_pattern", "display_tag", "normalize_pattern",
    "normalize_tag", "printable", "printable_bytes", "simplify_pattern", "tag_from_ulong",
    "tag_matches", "tag_to_ulong",
]

TagLike = str | bytes | int


def normalize_tag(tag: TagLike) -> str:
    """A tag given as display text, 4 memory bytes or a ULONG, as a 4-char str.

    Short text is blank padded (`'Irp'` -> `'Irp '`); the protected bit is stripped.
    Raises ValueError for text longer than 4 characters or outside latin-1.
    """
    if isinstance(tag, int):
        return tag_from_ulong(tag)
    if isinstance(tag, (bytes, bytearray)):
        if len(tag) != TAG_LEN:
            raise ValueError(f"a pool tag is {TAG_LEN} bytes, got {len(tag)}")
        return tag_from_ulong(int.from_bytes(tag, "little"))
    if len(tag) > TAG_LEN:
        raise ValueError(f"a pool tag is at most {TAG_LEN} characters: {tag!r}")
    return tag_from_ulong(tag_to_ulong(tag))


_SHOWN = bytes(c if 0x20 <= c <= 0x7E else 0x2E for c in range(256))


def printable_bytes(raw: bytes) -> str:
    """Bytes outside printable ASCII shown as `.`, as the debugger's tag columns do."""
    return raw.translate(_SHOWN).decode("ascii")


def printable(text: str) -> str:
    """`printable_bytes` for a tag held as text (characters beyond one byte become `.`)."""
    return printable_bytes(bytes(ord(c) if ord(c) < 256 else 0 for c in text))


def display_tag(tag: TagLike) -> str:
    """The tag as the tag columns print it (`Vad `, `rx..`)."""
    return printable(normalize_tag(tag))


def normalize_pattern(pattern: str) -> str:
    """Padding rules for a tag pattern: blanks after a `*` are padding (`'Bu* '` = `'Bu*'`);
    a pattern without `*` is blank padded to 4 characters like a tag."""
    return pattern.rstrip(" ") if "*" in pattern else pattern.ljust(TAG_LEN)


_STAR_RUN = re.compile(r"\*{2,}")


def simplify_pattern(pattern: str) -> str | None:
    """A typed pattern normalized, each run of `*` written once (it matches the same tags),
    or None when it can match no tag: more than TAG_LEN characters besides `*`.  What is
    left is at most `*a*b*c*d*`, so matching it never backtracks for long."""
    simple = _STAR_RUN.sub("*", normalize_pattern(pattern))
    return None if len(simple) - simple.count("*") > TAG_LEN else simple


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`?` matches one character, `*` any run; everything else, `[` included, is literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                   for c in normalize_pattern(pattern))
    return re.compile(body, re.DOTALL)


def tag_matches(pattern: str, tag: TagLike) -> bool:
    """Whether a tag matches a pooltag.txt wildcard entry or a `!poolused`/`!poolfind`
    TagString (`Mm*`, `CM??`, `Irp`). Case-sensitive, as the debugger is."""
    simple = simplify_pattern(pattern)
    return (simple is not None
            and compile_pattern(simple).fullmatch(normalize_tag(tag)) is not None)
