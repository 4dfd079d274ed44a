"""Display and edit memory: `db dw dd dc dq dp dps dds dqs d`, `eb ew ed eq`.

Lines are laid out as the real debugger lays them out (formats.md 1.6): the address (x64 with a
backtick), two blanks, the values, and for `db`/`dc` two blanks and the characters; a short last
line keeps the character column in place.  An unreadable element prints as question marks of
its width, so a guard page shows as `??` rather than stopping the dump.

A range is `Address`, `Address L[?|-]Count` (elements) or `Address EndAddress` (inclusive).
With no address a dump continues where the previous one in this session stopped.

Range limit, as the real debugger applies it (its documentation of address ranges: ranges are
limited to 256 MB because a larger one is most likely a typing mistake, and `L?` lifts the
limit).  Assumed here: the limit is on the range's size in bytes (Count x element size, or
End - Address + 1), a size of exactly 256 MB (0x10000000 bytes) is accepted, anything above it
is the caret error `Range error in '<command>'` under the range, and `L?` accepts any count.

A dump's rows are not built up front: `MemoryRows` reads the target block by block while the
rows are printed (text or JSON), so `dd <pool> L?1000000` takes the memory of one block and
Ctrl+C stops it at once; an unreadable page reads as `??` without a fault per element.
"""
from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from kdsim.layouts import PAGE_SIZE
from kdsim.target import MemoryFault

from ..errors import ParseError, memory_access, numeric_missing
from ..expr import evaluate, parse_leading
from ..registry import command
from ..render import Rows

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

DEFAULT_BYTES = 0x80
RANGE_LIMIT = 0x10000000           # 256 MB, lifted by `L?`
BLOCK_BYTES = 0x10000              # read from the target at a time while rows are printed
_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class DumpFormat:
    name: str
    unit: int                      # bytes per element; 0: pointer-sized
    chars: bool = False            # db, dc: character column
    symbols: bool = False          # dps, dds, dqs: one element per line with its symbol

    def size(self, arch: "Arch") -> int:
        return self.unit or arch.ptr_size

    def per_line(self, arch: "Arch") -> int:
        return 1 if self.symbols else 16 // self.size(arch)


FORMATS = {f.name: f for f in (
    DumpFormat("db", 1, chars=True), DumpFormat("dw", 2), DumpFormat("dd", 4),
    DumpFormat("dc", 4, chars=True), DumpFormat("dq", 8), DumpFormat("dp", 0),
    DumpFormat("dps", 0, symbols=True), DumpFormat("dds", 4, symbols=True),
    DumpFormat("dqs", 8, symbols=True),
)}


@dataclass
class MemoryRow:
    address: int
    values: list[int | None]       # one per element; None: unreadable
    symbol: str | None = None      # dps: what the value points into


@dataclass
class MemoryDump:
    format: str
    unit: int
    rows: Rows[MemoryRow]


# Where the next argument-less dump starts, and in which format, per session.
_CURSOR: "weakref.WeakKeyDictionary[Session, tuple[int, str]]" = weakref.WeakKeyDictionary()


def read_elements(target: "Target", address: int, unit: int, count: int) -> list[int | None]:
    """`count` little-endian elements from `address`, wrapping at the top of the address
    space; an element with a byte on an unreadable page is None."""
    mask, size = target.arch.ptr_mask, unit * count
    if address + size - 1 <= mask:
        try:
            return _unpack(target.read(address, size), unit)
        except MemoryFault:
            pass
    data, bad = bytearray(size), []
    offset = 0
    while offset < size:                   # page by page: a page is readable or it is not
        va = (address + offset) & mask
        piece = min(size - offset, PAGE_SIZE - va % PAGE_SIZE)
        try:
            data[offset:offset + piece] = target.read(va, piece)
        except MemoryFault:
            bad.append((offset, offset + piece))
        offset += piece
    values = _unpack(data, unit)
    for lo, hi in bad:
        values[lo // unit:(hi - 1) // unit + 1] = [None] * ((hi - 1) // unit + 1 - lo // unit)
    return values


def _unpack(data: bytes | bytearray, unit: int) -> list[int | None]:
    return list(struct.unpack(f"<{len(data) // unit}{_CODES[unit]}", data))


class MemoryRows(Rows[MemoryRow]):
    """The rows of `count` elements from `address`, read from the target as they are
    iterated (a block at a time) or indexed."""

    def __init__(self, target: "Target", fmt: DumpFormat, address: int, count: int):
        super().__init__()
        self.target, self.fmt, self.address, self.count = target, fmt, address, count
        self.unit, self.per_line = fmt.size(target.arch), fmt.per_line(target.arch)

    def __getitem__(self, index: int) -> MemoryRow:
        first = index * self.per_line
        if not 0 <= first < self.count:
            raise IndexError(index)
        return next(self._rows(first, min(self.per_line, self.count - first)))

    def __iter__(self) -> Iterator[MemoryRow]:
        block = max(BLOCK_BYTES // (self.unit * self.per_line), 1) * self.per_line
        for first in range(0, self.count, block):
            yield from self._rows(first, min(block, self.count - first))

    def _rows(self, first: int, count: int) -> Iterator[MemoryRow]:
        """The rows of elements first .. first + count (a whole number of rows, or the
        last, short one)."""
        target, unit, per_line = self.target, self.unit, self.per_line
        mask = target.arch.ptr_mask
        address = self.address + first * unit
        values = read_elements(target, address & mask, unit, count)
        for i in range(0, count, per_line):
            row = values[i:i + per_line]
            symbol = None
            if self.fmt.symbols and row[0] is not None:
                symbol = target.symbolize(row[0])
            yield MemoryRow((address + i * unit) & mask, row, symbol)


def dump(target: "Target", fmt: DumpFormat, address: int, count: int) -> MemoryDump:
    """A dump whose rows are read when they are printed."""
    return MemoryDump(fmt.name, fmt.size(target.arch), MemoryRows(target, fmt, address, count))


def render_dump(result: MemoryDump, session: "Session") -> Iterator[str]:
    arch = session.target.arch
    fmt = FORMATS[result.format]
    unit, per_line = result.unit, fmt.per_line(arch)
    full = _full_row(fmt.name, unit, per_line)
    width = per_line * (2 * unit + 1) - 1
    unreadable = _body(fmt, [None] * per_line, unit, width)     # a row of an unmapped page
    for row in result.rows:
        values = row.values
        if len(values) < per_line:
            body = _body(fmt, values, unit, width)
        elif full is not None and None not in values:
            body = full % tuple(values)
            if fmt.chars:
                body = f"{body}  {_chars(values, unit)}"
        elif values.count(None) == per_line:
            body = unreadable
        else:
            body = _body(fmt, values, unit, width)
        if row.symbol:
            body += f" {row.symbol}"
        yield f"{arch.fmt_addr(row.address)}  {body}"


def _body(fmt: DumpFormat, values: list[int | None], unit: int, width: int) -> str:
    """A row's values, and its characters padded to their column for db and dc."""
    cells = [_cell(value, unit) for value in values]
    if fmt.name == "db":
        body = "".join(("" if i == 0 else "-" if i == 8 else " ") + cell
                       for i, cell in enumerate(cells))
    else:
        body = " ".join(cells)
    return f"{body:<{width}}  {_chars(values, unit)}" if fmt.chars else body


def _full_row(name: str, unit: int, per_line: int) -> str | None:
    """A %-format for a whole readable row (None for quad words, printed in two halves)."""
    if unit == 8:
        return None
    cell = f"%0{2 * unit}x"
    if name == "db":
        return " ".join([cell] * 8) + "-" + " ".join([cell] * 8)
    return " ".join([cell] * per_line)


def _cell(value: int | None, unit: int) -> str:
    if unit == 8:
        if value is None:
            return "????????`????????"
        return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"
    if value is None:
        return "??" * unit
    return f"{value:0{2 * unit}x}"


_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else ord(".") for b in range(256))


def _chars(values: list[int | None], unit: int) -> str:
    if None not in values:
        data = struct.pack(f"<{len(values)}{_CODES[unit]}", *values)
        return data.translate(_PRINTABLE).decode("ascii")
    return "".join("?" * unit if value is None
                   else value.to_bytes(unit, "little").translate(_PRINTABLE).decode("ascii")
                   for value in values)


def parse_range(session: "Session", args: str, unit: int) -> tuple[int, int]:
    """(start address, element count) from `Address [L[?|-]Count | EndAddress]`."""
    target, radix = session.target, session.settings["radix"]
    lead = parse_leading(args, target, radix)
    start, rest = lead.value, lead.rest
    if not rest:
        return start, DEFAULT_BYTES // unit
    column = lead.end
    if rest[0] in "lL":
        text, offset = rest[1:], lead.end + 1
        limited = not text.startswith("?")
        if not limited:
            text, offset = text[1:], offset + 1
        backwards = text.startswith("-")
        if backwards:
            text, offset = text[1:], offset + 1
        count = evaluate(text, target, radix, offset=offset)
        if backwards:
            start = (start - count * unit) & target.arch.ptr_mask
    else:
        end = evaluate(rest, target, radix, offset=lead.end)
        if end < start:
            raise ParseError("Range", column)
        count = (end - start) // unit + 1
        limited = True
    if limited and count * unit > RANGE_LIMIT:
        raise ParseError("Range", column)
    return start, count


def display(session: "Session", args: str, name: str) -> MemoryDump:
    """One display command; no arguments continue from where the last dump stopped."""
    target = session.target
    if args.strip():
        fmt = FORMATS[name] if name != "d" else FORMATS[_CURSOR.get(session, (0, "db"))[1]]
        start, count = parse_range(session, args, fmt.size(target.arch))
    else:
        cursor = _CURSOR.get(session)
        if cursor is None:
            raise numeric_missing("")
        fmt = FORMATS[cursor[1] if name == "d" else name]
        start, count = cursor[0], DEFAULT_BYTES // fmt.size(target.arch)
    result = dump(target, fmt, start, count)
    _CURSOR[session] = ((start + count * fmt.size(target.arch)) & target.arch.ptr_mask, fmt.name)
    return result


_RANGE = "[Address [L[?|-]Count | EndAddress]]"
_DISPLAY_HELP = {
    "db": "Display bytes and their characters (default 128 bytes).",
    "dw": "Display words (default 64).",
    "dd": "Display double words (default 32).",
    "dc": "Display double words and their characters (default 32).",
    "dq": "Display quad words (default 16).",
    "dp": "Display pointer-sized values (default 128 bytes).",
    "dps": "Display pointer-sized values and the symbols they point to, one per line.",
    "dds": "Display double words and the symbols they point to, one per line.",
    "dqs": "Display quad words and the symbols they point to, one per line.",
    "d": "Display memory in the format of the last display command (db at first).",
}


def _register_display(name: str) -> None:
    def run(session: "Session", args: str) -> MemoryDump:
        return display(session, args, name)

    run.__name__ = f"display_{name}"
    command(name, syntax=f"{name} {_RANGE}", help=_DISPLAY_HELP[name], render=render_dump)(run)


for _name in _DISPLAY_HELP:
    _register_display(_name)


# -- edit -------------------------------------------------------------------------------------
def enter(session: "Session", args: str, unit: int) -> None:
    """Write each value (its low `unit` bytes) at consecutive elements from the address; a
    write that reaches an unwritable page stops there with the element's address."""
    target, radix = session.target, session.settings["radix"]
    lead = parse_leading(args, target, radix)
    values = []
    rest = lead.rest
    while rest:
        item = parse_leading(rest, target, radix)
        values.append(item.value64 & ((1 << (8 * unit)) - 1))
        rest = item.rest
    if not values:
        raise numeric_missing("")
    for i, value in enumerate(values):
        address = (lead.value + i * unit) & target.arch.ptr_mask
        try:
            target.write(address, value.to_bytes(unit, "little"))
        except MemoryFault:
            raise memory_access(target.arch.fmt_addr(address)) from None


_EDITS = {"eb": (1, "bytes"), "ew": (2, "words"), "ed": (4, "double words"),
          "eq": (8, "quad words")}


def _register_edit(name: str, unit: int, what: str) -> None:
    def run(session: "Session", args: str) -> None:
        enter(session, args, unit)

    run.__name__ = f"enter_{name}"
    command(name, syntax=f"{name} Address Value [Value ...]",
            help=f"Write {what} to memory, one value after another from Address.")(run)


for _name, (_unit, _what) in _EDITS.items():
    _register_edit(_name, _unit, _what)
