"""Kernel structure layouts, declared once with construct.

`dt`, the dump file and the tests parse with these declarations; the allocator's hot path packs
the same bits by hand (`HeaderCodec`) and tests/test_layouts.py proves the two agree.  Offsets
follow the Windows 7 SP1 public symbols where the research notes give them
(../shared/research/internals.md sections 2, 4, 6, 9, 10).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from construct import (
    Array, BitStruct, BitsInteger, ByteSwapped, Bytes, Construct, Int16ul, Int32ul, Int64ul,
    Int8ul, Padding, Struct,
)

from .arch import Arch

# -- _POOL_HEADER ---------------------------------------------------------------------------
# x86: one little-endian ULONG of 9/7/9/7 bits, then the tag.  BitStruct reads most significant
# bits first, so the fields appear in reverse inside a byte-swapped BitStruct.
_ULONG1_X86 = ByteSwapped(BitStruct(
    "PoolType" / BitsInteger(7),
    "BlockSize" / BitsInteger(9),
    "PoolIndex" / BitsInteger(7),
    "PreviousSize" / BitsInteger(9),
))
POOL_HEADER_X86 = Struct(
    "Ulong1" / _ULONG1_X86,
    "PoolTag" / Int32ul,
)
POOL_HEADER_X64 = Struct(
    "PreviousSize" / Int8ul,
    "PoolIndex" / Int8ul,
    "BlockSize" / Int8ul,
    "PoolType" / Int8ul,
    "PoolTag" / Int32ul,
    "ProcessBilled" / Int64ul,
)

# -- _POOL_TRACKER_TABLE (what !poolused reads) ---------------------------------------------
POOL_TRACKER_TABLE_X86 = Struct(
    "Key" / Int32ul,
    "NonPagedAllocs" / Int32ul,
    "NonPagedFrees" / Int32ul,
    "NonPagedBytes" / Int32ul,
    "PagedAllocs" / Int32ul,
    "PagedFrees" / Int32ul,
    "PagedBytes" / Int32ul,
)
POOL_TRACKER_TABLE_X64 = Struct(
    "Key" / Int32ul,
    "NonPagedAllocs" / Int32ul,
    "NonPagedFrees" / Int32ul,
    Padding(4),
    "NonPagedBytes" / Int64ul,
    "PagedAllocs" / Int32ul,
    "PagedFrees" / Int32ul,
    "PagedBytes" / Int64ul,
)

# -- _POOL_TRACKER_BIG_PAGES (what !poolfind scans first) -------------------------------------
POOL_TRACKER_BIG_PAGES_X86 = Struct(
    "Va" / Int32ul,
    "Key" / Int32ul,
    "PoolType" / Int32ul,
    "NumberOfBytes" / Int32ul,
)
POOL_TRACKER_BIG_PAGES_X64 = Struct(
    "Va" / Int64ul,
    "Key" / Int32ul,
    "PoolType" / Int32ul,
    "NumberOfBytes" / Int64ul,
)

# -- _POOL_DESCRIPTOR -------------------------------------------------------------------------
# x86: Win7 SP1 offsets; x64: the Vista x64 order (Win7 x64 was not checked), ListHeads at 0x48.
POOL_DESCRIPTOR_X86 = Struct(
    "PoolType" / Int32ul,
    "PagedLock" / Bytes(0x3C),
    "RunningAllocs" / Int32ul,
    "RunningDeAllocs" / Int32ul,
    "TotalBigPages" / Int32ul,
    "ThreadsProcessingDeferrals" / Int32ul,
    "TotalBytes" / Int32ul,
    Padding(0x2C),
    "PoolIndex" / Int32ul,
    Padding(0x3C),
    "TotalPages" / Int32ul,
    Padding(0x3C),
    "PendingFrees" / Int32ul,
    "PendingFreeDepth" / Int32ul,
    Padding(0x38),
    "ListHeads" / Array(512, Struct("Flink" / Int32ul, "Blink" / Int32ul)),
)
POOL_DESCRIPTOR_X64 = Struct(
    "PoolType" / Int32ul,
    "PoolIndex" / Int32ul,
    "RunningAllocs" / Int32ul,
    "RunningDeAllocs" / Int32ul,
    "TotalPages" / Int32ul,
    "TotalBigPages" / Int32ul,
    "Threshold" / Int32ul,
    Padding(4),
    "LockAddress" / Int64ul,
    "PendingFrees" / Int64ul,
    "ThreadsProcessingDeferrals" / Int32ul,
    "PendingFreeDepth" / Int32ul,
    "TotalBytes" / Int64ul,
    "Spare0" / Int64ul,
    "ListHeads" / Array(256, Struct("Flink" / Int64ul, "Blink" / Int64ul)),
)

# -- _GENERAL_LOOKASIDE_POOL (one per block size, a P list per CPU and a shared L list) -------
# The x64 SLIST_HEADER packs Depth/Sequence and a shifted NextEntry into two quadwords; we keep
# Depth and Sequence in the first and a plain NextEntry pointer in the second.
GENERAL_LOOKASIDE_POOL_X86 = Struct(
    "Next" / Int32ul,
    "ListDepth" / Int16ul,
    "Sequence" / Int16ul,
    "Depth" / Int16ul,
    "MaximumDepth" / Int16ul,
    "TotalAllocates" / Int32ul,
    "AllocateHits" / Int32ul,
    "TotalFrees" / Int32ul,
    "FreeHits" / Int32ul,
    "Type" / Int32ul,
    "Tag" / Int32ul,
    "Size" / Int32ul,
    "AllocateEx" / Int32ul,
    "FreeEx" / Int32ul,
    "ListEntry" / Bytes(8),
    "LastTotalAllocates" / Int32ul,
    "LastAllocateHits" / Int32ul,
    "Future" / Bytes(8),
)
GENERAL_LOOKASIDE_POOL_X64 = Struct(
    "ListDepth" / Int16ul,
    "Sequence" / Int16ul,
    Padding(4),
    "Next" / Int64ul,
    "Depth" / Int16ul,
    "MaximumDepth" / Int16ul,
    "TotalAllocates" / Int32ul,
    "AllocateHits" / Int32ul,
    "TotalFrees" / Int32ul,
    "FreeHits" / Int32ul,
    "Type" / Int32ul,
    "Tag" / Int32ul,
    "Size" / Int32ul,
    "AllocateEx" / Int64ul,
    "FreeEx" / Int64ul,
    "ListEntry" / Bytes(16),
    "LastTotalAllocates" / Int32ul,
    "LastAllocateHits" / Int32ul,
    "Future" / Bytes(8),
)


@dataclass(frozen=True)
class Layouts:
    """The structure set of one architecture, with field offsets for hand-packed access."""

    pool_header: Construct
    tracker: Construct
    big_page: Construct
    descriptor: Construct
    lookaside: Construct

    def offset(self, struct_name: str, field: str) -> int:
        return field_offsets(getattr(self, struct_name))[field]


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


LAYOUTS: dict[str, Layouts] = {
    "x86": Layouts(POOL_HEADER_X86, POOL_TRACKER_TABLE_X86, POOL_TRACKER_BIG_PAGES_X86,
                   POOL_DESCRIPTOR_X86, GENERAL_LOOKASIDE_POOL_X86),
    "x64": Layouts(POOL_HEADER_X64, POOL_TRACKER_TABLE_X64, POOL_TRACKER_BIG_PAGES_X64,
                   POOL_DESCRIPTOR_X64, GENERAL_LOOKASIDE_POOL_X64),
}


def layouts_for(arch: Arch) -> Layouts:
    return LAYOUTS[arch.name]


class HeaderCodec:
    """Hand-packed _POOL_HEADER first ULONG for the allocator's hot path."""

    __slots__ = ("idx_shift", "bs_shift", "type_shift", "size_mask", "field_mask", "keep_type")

    def __init__(self, arch: Arch):
        self.idx_shift = arch.size_bits
        self.bs_shift = 16
        self.type_shift = 16 + arch.size_bits
        self.size_mask = (1 << arch.size_bits) - 1
        self.field_mask = (1 << arch.index_bits) - 1
        self.keep_type = (1 << self.type_shift) - 1     # every field but PoolType

    def pack(self, prev: int, index: int, block_size: int, pool_type: int) -> int:
        return (prev | index << self.idx_shift | block_size << self.bs_shift
                | pool_type << self.type_shift)

    def unpack(self, ulong1: int) -> tuple[int, int, int, int]:
        sm, fm = self.size_mask, self.field_mask
        return (ulong1 & sm, (ulong1 >> self.idx_shift) & fm,
                (ulong1 >> self.bs_shift) & sm, (ulong1 >> self.type_shift) & fm)


U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
U16 = struct.Struct("<H")
