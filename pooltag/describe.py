"""The tag description texts the pool commands print, exactly.

Only `!pool` and `!poolused` print descriptions; `!poolfind` and `!verifier` print bare tags.
"""
from __future__ import annotations

from .db import TagDatabase
from .tags import TAG_LEN, TagLike, display_tag, normalize_tag, printable


def pool_description(db: TagDatabase, tag: TagLike) -> str:
    """`!pool`'s line under the `*` entry (no newline): two TABs, then
    `Pooltag Irp  : I/O request packets (IRPs)` (4-char tag, `, Binary : <bin>` when the
    binary is known) or `Owning component : Unknown (update pooltag.txt)`."""
    entry = db.lookup(tag)
    if entry is None:
        return "\t\tOwning component : Unknown (update pooltag.txt)"
    binary = f", Binary : {entry.binary}" if entry.binary else ""
    return f"\t\tPooltag {display_tag(tag)} : {entry.description}{binary}"


def _quoted_unknown(tag: TagLike) -> str:
    """The tag as the UNKNOWN message quotes it: a C string printed with %4s, so a NUL ends it
    and the rest right-justifies (`rx\\0\\0` -> `'  rx'`), while trailing blanks stay (`'AGP '`)."""
    return printable(normalize_tag(tag).split("\0", 1)[0]).rjust(TAG_LEN)


def poolused_description(db: TagDatabase, tag: TagLike) -> str:
    """`!poolused`'s description column: `<desc> , Binary: <bin>`, `<desc> ` (trailing blank
    when the binary is unknown) or `UNKNOWN pooltag '<tag>', please update pooltag.txt`.

    The old layout appends it right after the last number; the new one puts a TAB before it.
    """
    entry = db.lookup(tag)
    if entry is None:
        return f"UNKNOWN pooltag '{_quoted_unknown(tag)}', please update pooltag.txt"
    if entry.binary:
        return f"{entry.description} , Binary: {entry.binary}"
    return f"{entry.description} "
