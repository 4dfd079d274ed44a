"""From a construct declaration to the offsets, bit positions and `struct` formats that code
reading or writing many structures uses instead of parsing each one.

The declarations stay the one description of a layout: `dt` shows them (`declared_slots`),
the allocator's hot path packs the same bits (`HeaderCodec`, `field_run`) and the debugger
reads whole tables at once (`struct_of`); tests/kdsim/test_layouts.py proves both ways agree.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from construct import Array, Construct, FormatField, Renamed, Struct, Transformed

_OFFSET_CACHE: dict[int, dict[str, int]] = {}


def field_offsets(con: Construct) -> dict[str, int]:
    """Offsets of a flat Struct's named fields (construct has no offsetof)."""
    found = _OFFSET_CACHE.get(id(con))
    if found is None:
        found, pos = {}, 0
        for sub in con.subcons:
            if sub.name:
                found[sub.name] = pos
            pos += sub.sizeof()
        _OFFSET_CACHE[id(con)] = found
    return found


def field_path_offset(con: Construct, path: str) -> int:
    """Offset of a field; `BaseName.Buffer` reaches into a nested structure."""
    total = 0
    for name in path.split("."):
        total += field_offsets(con)[name]
        con = next(sub for sub in con.subcons if sub.name == name).subcon
    return total


_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


def field_run(con: Construct, names: tuple[str, ...]) -> tuple[struct.Struct, dict[str, int]]:
    """A struct.Struct over the named fields of a flat Struct, laid out at their offsets from
    the first of them (padding in between), and each name's index in what it unpacks: the hot
    path reads and writes several fields with one call, and the layout stays declared once."""
    offsets = field_offsets(con)
    sizes = {sub.name: sub.sizeof() for sub in con.subcons if sub.name}
    ordered = sorted(names, key=offsets.__getitem__)
    fmt, pos = "<", offsets[ordered[0]]
    for name in ordered:
        if offsets[name] > pos:
            fmt += f"{offsets[name] - pos}x"
        fmt += _FORMATS[sizes[name]]
        pos = offsets[name] + sizes[name]
    return struct.Struct(fmt), {name: i for i, name in enumerate(ordered)}


def struct_of(con: Construct) -> struct.Struct:
    """A flat construct Struct of little-endian integers, padding and byte strings as a
    `struct.Struct`, for reading whole tables at once with `iter_unpack`."""
    codes = []
    for sub in con.subcons:
        size = sub.sizeof()
        if sub.name is None:
            codes.append(f"{size}x")
        elif isinstance(sub.subcon, FormatField):
            codes.append(sub.subcon.fmtstr[-1])
        else:
            codes.append(f"{size}s")
    return struct.Struct("<" + "".join(codes))


@dataclass(frozen=True)
class Slot:
    """Where a declared field lives: byte offset and size, or an absolute bit range."""

    offset: int
    size: int
    bit: int                       # absolute bit offset (offset * 8 for a whole field)
    bits: int
    count: int | None = None       # element count of an Array


def declared_slots(con: Construct) -> dict[str, Slot]:
    """Every named field of a flat Struct, including the bitfields of a byte-swapped BitStruct
    (its first field holds the most significant bits of the little-endian integer)."""
    slots: dict[str, Slot] = {}
    pos = 0
    for sub in con.subcons:
        size = sub.sizeof()
        inner = sub
        while isinstance(inner, Renamed):       # a name, and a dt type in its docs
            inner = inner.subcon
        bitfields = _bitfields(inner)
        if bitfields is not None:
            top = size * 8
            for bitfield in bitfields.subcons:
                width = bitfield.sizeof()
                top -= width
                slots[bitfield.name] = Slot(pos, size, pos * 8 + top, width)
        if sub.name:
            count = inner.count if isinstance(inner, Array) else None
            slots[sub.name] = Slot(pos, size, pos * 8, size * 8, count)
        pos += size
    return slots


def _bitfields(con: Construct) -> Struct | None:
    """The Struct inside ByteSwapped(BitStruct(...)), i.e. Transformed(Transformed(Struct))."""
    inner = getattr(getattr(con, "subcon", None), "subcon", None)
    if isinstance(con, Transformed) and isinstance(inner, Struct):
        return inner
    return None


class HeaderCodec:
    """The _POOL_HEADER's first ULONG (PreviousSize, PoolIndex, BlockSize, PoolType) packed by
    hand for the allocator's hot path, at the bit positions the declaration gives.  The hot
    paths shift BlockSize by 16 inline (it opens the ULONG's high half in both Windows 7
    layouts); the codec refuses a declaration where it does not."""

    __slots__ = ("idx_shift", "bs_shift", "type_shift", "size_mask", "field_mask", "keep_type")

    def __init__(self, pool_header: Construct):
        slots = declared_slots(pool_header)
        prev, index, size, kind = (slots[name] for name in
                                   ("PreviousSize", "PoolIndex", "BlockSize", "PoolType"))
        if (prev.bit, prev.bits, size.bit) != (0, size.bits, 16) or index.bits != kind.bits \
                or kind.bit + kind.bits > 32:
            raise ValueError("HeaderCodec needs PreviousSize at bit 0, BlockSize as wide at bit "
                             "16, PoolIndex as wide as PoolType, all in the first ULONG")
        self.idx_shift = index.bit
        self.bs_shift = size.bit
        self.type_shift = kind.bit
        self.size_mask = (1 << size.bits) - 1
        self.field_mask = (1 << kind.bits) - 1
        self.keep_type = (1 << self.type_shift) - 1     # every field but PoolType

    def pack(self, prev: int, index: int, block_size: int, pool_type: int) -> int:
        return (prev | index << self.idx_shift | block_size << self.bs_shift
                | pool_type << self.type_shift)

    def unpack(self, ulong1: int) -> tuple[int, int, int, int]:
        sm, fm = self.size_mask, self.field_mask
        return (ulong1 & sm, (ulong1 >> self.idx_shift) & fm,
                (ulong1 >> self.bs_shift) & sm, (ulong1 >> self.type_shift) & fm)
