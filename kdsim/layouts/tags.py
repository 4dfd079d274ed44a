"""A pool tag as memory holds it: four bytes, also read as a little-endian ULONG.

`'Irp '` is the bytes 49 72 70 20 and the ULONG 0x20707249.  As text, a tag is a 4-character
str whose characters are its byte values (latin-1), blank padded.  This pair is the one
conversion the simulator, the debugger and the tag database (pooltag) use.
"""
from __future__ import annotations

from .constants import PROTECTED_POOL, TAG_LEN


def tag_to_ulong(tag: str) -> int:
    """The ULONG of a tag as displayed (`'Irp'` -> 0x20707249): blank padded, cut to four."""
    return int.from_bytes(tag.encode("latin-1")[:TAG_LEN].ljust(TAG_LEN, b" "), "little")


def tag_from_ulong(value: int) -> str:
    """The four characters of a stored tag, the protected bit stripped."""
    return (value & 0xFFFFFFFF & ~PROTECTED_POOL).to_bytes(TAG_LEN, "little").decode("latin-1")
