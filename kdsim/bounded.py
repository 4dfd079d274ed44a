"""construct building blocks for files from strangers: every count and length is checked
before anything is allocated, and every field is read in time linear in its size.

A dump or a snapshot declares how many modules, symbols, pages or scheduled frees follow and
how long each name is.  construct's own VarInt, PascalString and PrefixedArray believe it: a
million-byte VarInt becomes a seven-million-bit integer a byte at a time (quadratic), and a
count of 2**32 loops until the stream runs dry, allocating as it goes.  These read and write
exactly the same bytes (`Number` is VarInt, `Signed` ZigZag, `Text` PascalString(VarInt,
"utf8"), `Counted` PrefixedArray, `Packed` a PrefixedArray of one struct format) but refuse
what the file cannot be: a number longer than a 64-bit value takes, a name longer than its
maximum, a count above its maximum or above what the bytes left in the stream could hold at
the fewest bytes an element takes.  Totals shared by a whole file (the symbols of all modules,
the pages of all runs) are drawn from a `Budget` passed to `parse_stream(..., budget=...)`.

A refusal is a `Refused` error whose `reason` is in the debugger's words, for the caller's
`the file is damaged (...)` line.
"""
from __future__ import annotations

import io
import struct
from typing import Any

from construct import (
    Construct, ConstructError, Container, IntegerError, ListContainer, Renamed,
    StringError, Struct,
)
from construct.core import stream_read, stream_write

__all__ = ["Refused", "Budget", "Number", "Signed", "Text", "Counted", "Packed", "Record",
           "budget_of", "least", "remaining", "NUMBER_BYTES"]

NUMBER_BYTES = 10             # a 64-bit value takes at most ten 7-bit groups


class Refused(ConstructError):
    """A declared count, size or value the file cannot hold; `reason` says which."""

    def __init__(self, reason: str, path: str | None = None):
        super().__init__(reason, path=path)
        self.reason = reason


class Budget:
    """What one file may still declare in all, by kind (`symbols`, `pages`...): each array
    drawing on a kind takes its count from the same allowance."""

    def __init__(self, **allowances: int):
        self.maxima = dict(allowances)
        self.left = dict(allowances)

    def draw(self, what: str, count: int) -> None:
        if what not in self.left:
            return
        if count > self.left[what]:
            raise Refused(f"more than {self.maxima[what]} {what}")
        self.left[what] -= count


def budget_of(context: Any) -> Budget | None:
    """The budget the parse was given (`parse_stream(stream, budget=...)`), if any."""
    found = context._params.get("budget") if context is not None else None
    return found if isinstance(found, Budget) else None


def remaining(stream: Any) -> int:
    """Bytes left in the stream: the reader's own count when it keeps one (the dump and
    snapshot readers know their body's size), else its length from the current position."""
    left = getattr(stream, "remaining", None)
    if left is not None:
        return int(left())
    here = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(here)
    return int(end - here)


def least(con: Construct) -> int:
    """The fewest bytes a value of `con` takes on disk: what a declared count is checked
    against."""
    if isinstance(con, Renamed):
        return least(con.subcon)
    if isinstance(con, Struct):
        return sum(least(sub) for sub in con.subcons)
    fewest = getattr(con, "least", None)
    return int(fewest) if fewest is not None else int(con.sizeof())


class _Number(Construct):
    """An unsigned LEB128 number, on disk exactly as construct's VarInt writes it, read
    seven bits at a time up to the ten groups a 64-bit value takes."""

    least = 1

    def _parse(self, stream, context, path):
        value = 0
        for shift in range(0, 7 * NUMBER_BYTES, 7):
            byte = stream_read(stream, 1, path)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if value >> 64:
                    break
                return value
        raise Refused("a number wider than 64 bits", path=path)

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, int) or not 0 <= obj < 1 << 64:
            raise IntegerError(f"{obj!r} is not an unsigned 64-bit number", path=path)
        data = bytearray()
        while obj > 0x7F:
            data.append(0x80 | obj & 0x7F)
            obj >>= 7
        data.append(obj)
        stream_write(stream, bytes(data), len(data), path)
        return obj


Number = _Number()


class _Signed(Construct):
    """A signed 64-bit number, ZigZag-encoded as construct's ZigZag writes it."""

    least = 1

    def _parse(self, stream, context, path):
        value = Number._parse(stream, context, path)
        return value >> 1 if not value & 1 else -(value >> 1) - 1

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, int) or not -(1 << 63) <= obj < 1 << 63:
            raise IntegerError(f"{obj!r} is not a signed 64-bit number", path=path)
        Number._build(2 * obj if obj >= 0 else -2 * obj - 1, stream, context, path)
        return obj


Signed = _Signed()


class Text(Construct):
    """A UTF-8 string after its length in bytes (a `Number`): PascalString(VarInt, "utf8")
    on disk, at most `most` bytes."""

    least = 1

    def __init__(self, most: int, what: str):
        super().__init__()
        self.most = most
        self.what = what

    def _parse(self, stream, context, path):
        size = Number._parse(stream, context, path)
        if size > self.most:
            raise Refused(f"a {self.what} of {size} bytes, longer than {self.most}", path=path)
        data = stream_read(stream, size, path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(f"a {self.what} that is not UTF-8", path=path) from None

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, str):
            raise StringError(f"{obj!r} is not a string", path=path)
        data = obj.encode("utf-8")
        if len(data) > self.most:
            raise StringError(f"a {self.what} of {len(data)} bytes, longer than {self.most}",
                              path=path)
        Number._build(len(data), stream, context, path)
        stream_write(stream, data, len(data), path)
        return obj


def _count(stream: Any, context: Any, path: str, count_field: Construct, what: str, most: int,
           size: int, draws: str | None) -> int:
    """A declared count of `what`, once it is within `most`, within what the bytes left could
    hold at `size` bytes each, and within the budget's allowance `draws` (`what` if None)."""
    count = count_field._parsereport(stream, context, path)
    if count > most:
        raise Refused(f"{count} {what}, more than {most}", path=path)
    left = remaining(stream)
    if count * size > left:
        raise Refused(f"{count} {what} cannot fit in the {left} bytes left", path=path)
    budget = budget_of(context)
    if budget is not None:
        budget.draw(draws or what, count)
    return int(count)


class Counted(Construct):
    """`PrefixedArray(count, subcon)` on disk; the count is checked (`_count`) before any
    element is read."""

    def __init__(self, subcon: Construct, what: str, most: int, count: Construct = Number,
                 draws: str | None = None):
        super().__init__()
        self.subcon = subcon
        self.what = what
        self.most = most
        self.count = count
        self.draws = draws
        self.least = least(count)
        self.each = least(subcon)

    def _parse(self, stream, context, path):
        n = _count(stream, context, path, self.count, self.what, self.most, self.each,
                   self.draws)
        parse = self.subcon._parsereport
        return ListContainer([parse(stream, context, path) for _ in range(n)])

    def _build(self, obj, stream, context, path):
        self.count._build(len(obj), stream, context, path)
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj


class Packed(Construct):
    """A count then that many values of one struct format: on disk exactly
    `PrefixedArray(count, <format field>)`, moved with one struct call instead of construct's
    per-element path (such lists run to thousands)."""

    def __init__(self, fmt: str, what: str, most: int, count: Construct = Number,
                 draws: str | None = None):
        super().__init__()
        self.fmt = fmt
        self.size = struct.calcsize("<" + fmt)
        self.what = what
        self.most = most
        self.count = count
        self.draws = draws
        self.least = least(count)

    def _parse(self, stream, context, path):
        n = _count(stream, context, path, self.count, self.what, self.most, self.size,
                   self.draws)
        return ListContainer(struct.unpack(f"<{n}{self.fmt}",
                                           stream_read(stream, n * self.size, path)))

    def _build(self, obj, stream, context, path):
        try:
            data = struct.pack(f"<{len(obj)}{self.fmt}", *obj)
        except struct.error as exc:
            raise IntegerError(f"cannot pack {self.fmt} values: {exc}", path=path) from None
        self.count._build(len(obj), stream, context, path)
        stream_write(stream, data, len(data), path)
        return obj


class Record(Struct):
    """A Struct whose fields refer to none of the others (no `this`), parsed without a
    context of its own: the arrays of small records (symbols) run to thousands, and
    construct's per-struct context costs more than the fields."""

    def _parse(self, stream, context, path):
        return Container([(sub.name, sub._parsereport(stream, context, path))
                          for sub in self.subcons])

