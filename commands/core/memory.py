"""Display and edit memory: `db dw dd dc dq dp dps dds dqs d`, `eb ew ed eq`.

Lines are laid out as the real debugger lays them out (formats.md 1.6): the address (x64 with a
backtick), two blanks, the values, and for `db`/`dc` two blanks and the characters; a short last
line keeps the character column in place.  An unreadable element prints as question marks of
its width, so a guard page shows as `??` rather than stopping the dump.

A range is `Address`, `Address L[?|-]Count` (elements) or `Address EndAddress` (inclusive).
Without `L?` a range is limited to 256 MB, as in the real debugger.  With no address a dump
continues where the previous one in this session stopped.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.target import MemoryFault

from ..errors import ParseError, memory_access, numeric_missing
from ..expr import evaluate, parse_leading
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

DEFAULT_BYTES = 0x80
RANGE_LIMIT = 0x10000000           # 256 MB, lifted by `L?`


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
    rows: list[MemoryRow]


# Where the next argument-less dump starts, and in which format, per session.
_CURSOR: "weakref.WeakKeyDictionary[Session, tuple[int, str]]" = weakref.WeakKeyDictionary()


def read_elements(target: "Target", address: int, unit: int, count: int) -> list[int | None]:
    """`count` little-endian elements from `address`; an unreadable one is None."""
    try:
        data = target.read(address, unit * count)
    except MemoryFault:
        values: list[int | None] = []
        for i in range(count):
            try:
                values.append(int.from_bytes(target.read(address + i * unit, unit), "little"))
            except MemoryFault:
                values.append(None)
        return values
    return [int.from_bytes(data[i:i + unit], "little") for i in range(0, len(data), unit)]


def dump(target: "Target", fmt: DumpFormat, address: int, count: int) -> MemoryDump:
    arch = target.arch
    unit, per_line = fmt.size(arch), fmt.per_line(arch)
    rows = []
    for first in range(0, count, per_line):
        at = (address + first * unit) & arch.ptr_mask
        values = read_elements(target, at, unit, min(per_line, count - first))
        symbol = None
        if fmt.symbols and values[0] is not None:
            symbol = target.symbolize(values[0])
        rows.append(MemoryRow(at, values, symbol))
    return MemoryDump(fmt.name, unit, rows)


def render_dump(result: MemoryDump, session: "Session") -> str:
    arch = session.target.arch
    fmt = FORMATS[result.format]
    per_line = fmt.per_line(arch)
    lines = []
    for row in result.rows:
        cells = [_cell(value, result.unit) for value in row.values]
        if fmt.name == "db":
            body = "".join(("" if i == 0 else "-" if i == 8 else " ") + cell
                           for i, cell in enumerate(cells))
        else:
            body = " ".join(cells)
        if fmt.chars:
            width = per_line * (2 * result.unit + 1) - 1
            body = f"{body:<{width}}  {_chars(row.values, result.unit)}"
        elif row.symbol:
            body += f" {row.symbol}"
        lines.append(f"{arch.fmt_addr(row.address)}  {body}")
    return "\n".join(lines)


def _cell(value: int | None, unit: int) -> str:
    if unit == 8:
        if value is None:
            return "????????`????????"
        return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"
    if value is None:
        return "??" * unit
    return f"{value:0{2 * unit}x}"


def _chars(values: list[int | None], unit: int) -> str:
    out = []
    for value in values:
        if value is None:
            out.append("?" * unit)
            continue
        out.extend(chr(b) if 0x20 <= b < 0x7F else "." for b in value.to_bytes(unit, "little"))
    return "".join(out)


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
