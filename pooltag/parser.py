"""Parser for the debugger's `pooltag.txt` format.

Real copies are hand-edited and break their own format in places (a missing binary field, an
unpadded three-letter tag, prose lines, a stray `<unknown>`), so parsing never fails: a line
that cannot be used becomes a warning and the rest of the file still loads. Descriptions lose
their indentation (`AfdE - afd.sys -     Afd endpoint structure`): the debugger's output in
formats.md shows them unindented, with inner runs of blanks kept.

Tags are kept as 4-character strings whose characters are the tag's byte values (latin-1
view), padded with blanks: `Irp ` is the bytes 49 72 70 20 whatever encoding the file used.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from os import PathLike

from .tags import TAG_LEN

UNKNOWN_BINARY = "<unknown>"

# `TAG - binary - description`: the binary may hold blanks (`nt!store or rdyboost.sys`,
# `win32k!CInputConfig::operator new`), the description may hold ` - ` itself.
_THREE_FIELDS = re.compile(r"(?P<tag>\S.*?)\s*-\s+(?P<binary>\S.*?)\s+-\s*(?P<desc>.*)")
# `TAG - description` (`ATmp - AppTag mount point`): no binary field.
_TWO_FIELDS = re.compile(r"(?P<tag>\S.*?)\s*-\s+(?P<desc>.*)")
_COMMENT = re.compile(r"(?i:rem)(\s|$)|//")


@dataclass(frozen=True, slots=True)
class PoolTagEntry:
    tag: str                 # 4 chars, blank padded; may hold the wildcards `?` and `*`
    binary: str | None       # None for `<unknown>` or a missing binary field
    description: str
    line: int = 0            # 1-based line in the source file, 0 for built-in entries

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.tag or "?" in self.tag


@dataclass(frozen=True, slots=True)
class ParseWarning:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


@dataclass(frozen=True, slots=True)
class ParsedFile:
    entries: tuple[PoolTagEntry, ...]
    warnings: tuple[ParseWarning, ...]
    encoding: str


def decode(data: bytes) -> tuple[str, str]:
    """Decode a pooltag file: UTF-16 or UTF-8 when marked or valid, else ANSI (cp1252).

    Bytes cp1252 leaves undefined (0x81, 0x8d, ...) fall back to latin-1 so nothing is lost.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    if data.isascii():
        return data.decode("ascii"), "ascii"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _tag_bytes(text: str, encoding: str) -> str | None:
    """The tag field as a latin-1 view of its bytes, or None when it is not 1-4 bytes."""
    try:
        raw = text.encode("latin-1" if encoding == "utf-16" else encoding)
    except UnicodeEncodeError:
        return None
    if not 0 < len(raw) <= TAG_LEN:
        return None
    return raw.decode("latin-1").ljust(TAG_LEN)


def _valid_wildcard(tag: str) -> bool:
    star = tag.find("*")
    return star < 0 or not tag[star + 1:].strip()


def parse_text(text: str, encoding: str = "utf-8") -> ParsedFile:
    """Parse decoded pooltag text; `encoding` says how tag characters map back to bytes."""
    entries: list[PoolTagEntry] = []
    warnings: list[ParseWarning] = []
    text = text.split("\x1a", 1)[0]          # DOS end-of-file: nothing after it counts
    # splitlines() would also split on \x1c-\x1e and \x85; only CR/LF end a line here.
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        line = raw.rstrip()
        if not line or _COMMENT.match(line):
            continue
        match = _THREE_FIELDS.fullmatch(line)
        binary: str | None = None
        if match:
            binary = match["binary"].strip()
            if binary.lower() == UNKNOWN_BINARY:
                binary = None
            description = match["desc"].strip()
        else:
            match = _TWO_FIELDS.fullmatch(line)
            if not match:
                warnings.append(ParseWarning(number, raw, "not a 'TAG - binary - description' line"))
                continue
            description = match["desc"].strip()
            warnings.append(ParseWarning(number, raw, "no binary field"))
        tag = _tag_bytes(match["tag"].rstrip(), encoding)
        if tag is None:
            warnings.append(ParseWarning(number, raw, "tag is not 1 to 4 bytes"))
            continue
        if not _valid_wildcard(tag):
            warnings.append(ParseWarning(number, raw, "'*' must end the tag"))
            continue
        entries.append(PoolTagEntry(tag, binary, description, number))
    return ParsedFile(tuple(entries), tuple(warnings), encoding)


def parse_bytes(data: bytes) -> ParsedFile:
    text, encoding = decode(data)
    return parse_text(text, encoding)


def parse_file(path: str | PathLike[str]) -> ParsedFile:
    """Parse a pooltag file from disk; OSError propagates to the caller."""
    with open(path, "rb") as f:
        return parse_bytes(f.read())
