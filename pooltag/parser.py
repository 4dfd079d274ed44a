"""Parser for the debugger's `pooltag.txt` format.

Real copies are hand-edited and break their own format in places (a missing binary field, an
unpadded three-letter tag, prose lines, a stray `<unknown>`), so parsing never fails: a line
that cannot be used becomes a warning and the rest of the file still loads. Descriptions lose
their indentation (`Abcd - a.sys -     indented words`): the debugger's output in
formats.md shows them unindented, with inner runs of blanks kept.

Tags are kept as 4-character strings whose characters are the tag's byte values (latin-1
view), padded with blanks: `Irp ` is the bytes 49 72 70 20 whatever encoding the file used.

The file comes from the user, so reading it is bounded: only a regular file is opened (a FIFO,
a device or a directory is refused before any read), at most MAX_FILE_BYTES are read, a line
longer than MAX_LINE_CHARS is skipped with a warning, and each line is split in one pass (no
backtracking regular expression: a long line of blanks used to cost quadratic time).
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from os import PathLike

from kdsim.files import FileTooLarge, NotRegularFile, read_regular

from .tags import TAG_LEN

UNKNOWN_BINARY = "<unknown>"
# The shipped file is about 265 KB with lines under 170 characters; these leave it room to
# grow four times while keeping a hostile file's parse under half a second.
MAX_FILE_BYTES = 1024 * 1024
MAX_LINE_CHARS = 1024
_WARNING_TEXT = 80                 # how much of an over-long line a warning keeps

_COMMENT = re.compile(r"(?i:rem)(\s|$)|//")
_LINE_END = re.compile(r"\r\n|\r|\n")


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


class UnusableFile(Exception):
    """A pooltag file refused as a whole (`reason` is one line, worded like strerror):
    not a regular file, or larger than MAX_FILE_BYTES."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(data: bytes) -> tuple[str, str]:
    """Decode a pooltag file: UTF-16 or UTF-8 when marked or valid, else ANSI (cp1252).

    A file with a BOM is read in its encoding whatever follows (an odd trailing byte or a bad
    sequence becomes U+FFFD, whose line then warns); bytes cp1252 leaves undefined (0x81,
    0x8d, ...) fall back to latin-1 so nothing is lost.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16"
    if data.startswith(codecs.BOM_UTF8):
        return data.decode("utf-8-sig", errors="replace"), "utf-8"
    if data.isascii():
        return data.decode("ascii"), "ascii"
    try:
        return data.decode("utf-8"), "utf-8"
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


def split_fields(line: str) -> tuple[str, str | None, str] | None:
    r"""`TAG - binary - description` as (tag, binary, description), binary None when the
    line has only `TAG - description`; None when it has no `TAG - ` at all.  `line` has no
    trailing blanks.

    The grammar is that of `(\S.*?)\s*-\s+(\S.*?)\s+-\s*(.*)` with lazy fields, so the binary
    may hold blanks (`nt!store or rdyboost.sys`) and the description ` - `: the tag ends at
    the first `-` followed by a blank, the binary at the next `-` preceded by one.  Each
    `-` is looked at once.
    """
    if not line or line[0].isspace():
        return None
    end = len(line)
    dash = line.find("-", 1)
    while dash >= 0 and not (dash + 1 < end and line[dash + 1].isspace()):
        dash = line.find("-", dash + 1)
    if dash < 0:
        return None
    tag = line[:dash].rstrip()
    binary_at = end - len(line[dash + 1:].lstrip())
    second = line.find("-", binary_at + 2)
    while second >= 0 and not line[second - 1].isspace():
        second = line.find("-", second + 1)
    if second < 0:
        return tag, None, line[binary_at:].strip()
    return tag, line[binary_at:second].strip(), line[second + 1:].strip()


def parse_text(text: str, encoding: str = "utf-8") -> ParsedFile:
    """Parse decoded pooltag text; `encoding` says how tag characters map back to bytes."""
    entries: list[PoolTagEntry] = []
    warnings: list[ParseWarning] = []
    text = text.split("\x1a", 1)[0]          # DOS end-of-file: nothing after it counts
    # splitlines() would also split on \x1c-\x1e and \x85; only CR/LF end a line here.
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.rstrip()
        if not line or _COMMENT.match(line):
            continue
        if len(line) > MAX_LINE_CHARS:
            warnings.append(ParseWarning(number, raw[:_WARNING_TEXT],
                                         f"line longer than {MAX_LINE_CHARS} characters"))
            continue
        fields = split_fields(line)
        if fields is None:
            warnings.append(ParseWarning(number, raw, "not a 'TAG - binary - description' line"))
            continue
        tag_text, binary, description = fields
        if binary is None:
            warnings.append(ParseWarning(number, raw, "no binary field"))
        elif binary.lower() == UNKNOWN_BINARY:
            binary = None
        tag = _tag_bytes(tag_text, encoding)
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


def read_bounded(path: str | PathLike[str]) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES (kdsim.files.read_regular: a FIFO
    never waits for a writer and a device is never read).  OSError when it cannot be opened
    (ValueError for a NUL in the name), UnusableFile when it is no regular file or too large.
    """
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except NotRegularFile as exc:
        raise UnusableFile("Is a directory" if exc.directory else "Not a regular file") from None
    except FileTooLarge:
        raise UnusableFile(f"File too large (over {MAX_FILE_BYTES} bytes)") from None


def parse_file(path: str | PathLike[str]) -> ParsedFile:
    """Parse a pooltag file from disk; OSError, ValueError and UnusableFile propagate."""
    return parse_bytes(read_bounded(path))
