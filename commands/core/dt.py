"""`dt`: the pool structures laid out as the real `dt` prints them (formats.md section 3).

Offsets, widths and bit positions come from the construct declarations of the target's profile
(kdsim/layouts).  This module adds only what `dt` shows that those declarations do not hold:
union members that overlay declared fields (`Ulong1`, `PoolTagHash`, `NonPagedLock`...), the
type names `dt` prints, and the storage unit of each bitfield (x86 `_POOL_HEADER` packs
USHORTs, so `BlockSize` is `+0x002 Pos 0`; Win7 x64 packs one ULONG, so it is `+0x000 Pos 16`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kdsim.layouts import TYPE_NAMES, declared_slots, profile_for
from kdsim.target import MemoryFault

from ..errors import DebuggerError
from ..expr import evaluate
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.layouts import Profile
    from kdsim.target import Target

    from ..session import Session

POOL_TYPES = {
    0: "NonPagedPool", 1: "PagedPool", 2: "NonPagedPoolMustSucceed", 3: "DontUseThisType",
    4: "NonPagedPoolCacheAligned", 5: "PagedPoolCacheAligned",
    6: "NonPagedPoolCacheAlignedMustS", 7: "MaxPoolType", 32: "NonPagedPoolSession",
    33: "PagedPoolSession", 34: "NonPagedPoolMustSucceedSession", 35: "DontUseThisTypeSession",
    36: "NonPagedPoolCacheAlignedSession", 37: "PagedPoolCacheAlignedSession",
    38: "NonPagedPoolCacheAlignedMustSSession",
}
ENUMS = {"_POOL_TYPE": POOL_TYPES}


# -- what dt shows ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decl:
    """One line of dt output: a declared field, or a union member the layout does not declare
    (`at` gives its offset and size, `alias` names the declared field it overlays)."""

    name: str
    type: str = ""                 # "": Uint<n>B from the size
    at: tuple[int, int] | None = None
    alias: str | None = None
    unit: int = 0                  # a bitfield stored in a `unit`-byte integer


@dataclass(frozen=True)
class TypeSpec:
    layout: str                    # attribute of kdsim.layouts.Profile
    decls: tuple[Decl, ...]


def _ptr(arch: "Arch", to: str) -> str:
    return f"Ptr{8 * arch.ptr_size} {to}"


def _pool_header(arch: "Arch") -> TypeSpec:
    unit = 2 if arch.ptr_size == 4 else 4
    bitfields = tuple(Decl(name, unit=unit)
                      for name in ("PreviousSize", "PoolIndex", "BlockSize", "PoolType"))
    rest: tuple[Decl, ...]
    if arch.ptr_size == 4:
        rest = (Decl("Ulong1"), Decl("PoolTag"),
                Decl("AllocatorBackTraceIndex", "Uint2B", at=(4, 2)),
                Decl("PoolTagHash", "Uint2B", at=(6, 2)))
    else:
        rest = (Decl("Ulong1", "Uint4B", at=(0, 4)), Decl("PoolTag"),
                Decl("ProcessBilled", _ptr(arch, "_EPROCESS")),
                Decl("AllocatorBackTraceIndex", "Uint2B", at=(8, 2)),
                Decl("PoolTagHash", "Uint2B", at=(0xA, 2)))
    return TypeSpec("pool_header", bitfields + rest)


def _tracker(arch: "Arch") -> TypeSpec:
    return TypeSpec("tracker", (
        Decl("Key", "Int4B"), Decl("NonPagedAllocs", "Int4B"), Decl("NonPagedFrees", "Int4B"),
        Decl("NonPagedBytes"), Decl("PagedAllocs"), Decl("PagedFrees"), Decl("PagedBytes")))


def _big_page(arch: "Arch") -> TypeSpec:
    return TypeSpec("big_page", (
        Decl("Va", _ptr(arch, "Void")), Decl("Key"), Decl("PoolType"), Decl("NumberOfBytes")))


def _descriptor(arch: "Arch") -> TypeSpec:
    if arch.ptr_size == 4:
        return TypeSpec("descriptor", (
            Decl("PoolType", "_POOL_TYPE"), Decl("PagedLock", "_KGUARDED_MUTEX"),
            Decl("NonPagedLock", "Uint4B", at=(4, 4)), Decl("RunningAllocs", "Int4B"),
            Decl("RunningDeAllocs", "Int4B"), Decl("TotalBigPages", "Int4B"),
            Decl("ThreadsProcessingDeferrals", "Int4B"), Decl("TotalBytes"),
            Decl("PoolIndex"), Decl("TotalPages", "Int4B"),
            Decl("PendingFrees", _ptr(arch, _ptr(arch, "Void"))),
            Decl("PendingFreeDepth", "Int4B"), Decl("ListHeads", "_LIST_ENTRY")))
    return TypeSpec("descriptor", (
        Decl("PoolType", "_POOL_TYPE"), Decl("PoolIndex"), Decl("RunningAllocs", "Int4B"),
        Decl("RunningDeAllocs", "Int4B"), Decl("TotalPages", "Int4B"),
        Decl("TotalBigPages", "Int4B"), Decl("Threshold"),
        Decl("LockAddress", _ptr(arch, "Void")),
        Decl("PendingFrees", _ptr(arch, _ptr(arch, "Void"))),
        Decl("ThreadsProcessingDeferrals", "Int4B"), Decl("PendingFreeDepth", "Int4B"),
        Decl("TotalBytes"), Decl("Spare0"), Decl("ListHeads", "_LIST_ENTRY")))


def _lookaside(arch: "Arch") -> TypeSpec:
    p = arch.ptr_size
    return TypeSpec("lookaside", (
        Decl("ListHead", "_SLIST_HEADER", at=(0, 2 * p)),
        Decl("SingleListHead", "_SINGLE_LIST_ENTRY", at=(0, p)),
        Decl("Depth"), Decl("MaximumDepth"), Decl("TotalAllocates"),
        Decl("AllocateMisses", alias="AllocateHits"), Decl("AllocateHits"),
        Decl("TotalFrees"), Decl("FreeMisses", alias="FreeHits"), Decl("FreeHits"),
        Decl("Type", "_POOL_TYPE"), Decl("Tag"), Decl("Size"),
        Decl("AllocateEx", f"Ptr{8 * p}     void* "),
        Decl("Allocate", f"Ptr{8 * p}     void* ", alias="AllocateEx"),
        Decl("FreeEx", f"Ptr{8 * p}     void "),
        Decl("Free", f"Ptr{8 * p}     void ", alias="FreeEx"),
        Decl("ListEntry", "_LIST_ENTRY"), Decl("LastTotalAllocates"),
        Decl("LastAllocateMisses", alias="LastAllocateHits"), Decl("LastAllocateHits"),
        Decl("Future", "[2] Uint4B")))


def _declared(type_name: str) -> Callable[["Arch"], TypeSpec]:
    """An object-manager structure as its declaration has it: each field's dt type is in its
    construct docs (kdsim/layouts/win7sp1.py)."""
    layout = TYPE_NAMES[type_name]

    def spec(arch: "Arch") -> TypeSpec:
        con = getattr(profile_for(arch), layout)
        return TypeSpec(layout, tuple(Decl(sub.name, sub.docs or "")
                                      for sub in con.subcons if sub.name))
    return spec


TYPES: dict[str, Callable[["Arch"], TypeSpec]] = {
    "_POOL_HEADER": _pool_header,
    "_POOL_TRACKER_TABLE": _tracker,
    "_POOL_TRACKER_BIG_PAGES": _big_page,
    "_POOL_DESCRIPTOR": _descriptor,
    "_GENERAL_LOOKASIDE_POOL": _lookaside,
    **{name: _declared(name) for name in TYPE_NAMES},
}


# -- result -------------------------------------------------------------------------------------
@dataclass
class Member:
    offset: int
    name: str
    type: str                      # as the type dump prints it
    value: str | None = None       # as an instance dump prints it; "??" when unreadable


@dataclass
class TypeDump:
    type_name: str                 # nt!_POOL_HEADER
    show_name: bool                # typed without a module: dt prints the name first
    address: int | None
    members: list[Member] = field(default_factory=list)
    enum: list[tuple[str, int]] = field(default_factory=list)
    unreadable: bool = False


@dataclass(frozen=True)
class _Line:
    """A Decl resolved against the layout: where its bytes are and how to show them."""

    offset: int
    size: int
    type: str
    pos: int | None = None         # bitfield position inside its unit
    bits: int = 0


def _lines(spec: TypeSpec, profile: "Profile") -> list[tuple[Decl, _Line]]:
    slots = declared_slots(getattr(profile, spec.layout))
    out = []
    for decl in spec.decls:
        if decl.at is not None:
            offset, size = decl.at
            out.append((decl, _Line(offset, size, decl.type or _uint(size))))
            continue
        slot = slots[decl.alias or decl.name]
        if decl.unit:
            unit_bits = 8 * decl.unit
            offset = slot.bit // unit_bits * decl.unit
            pos = slot.bit % unit_bits
            line = _Line(offset, decl.unit, f"Pos {pos}, {slot.bits} Bits", pos, slot.bits)
        else:
            kind = decl.type or _uint(slot.size)
            if slot.count is not None:
                kind = f"[{slot.count}] {kind}"
            line = _Line(slot.offset, slot.size, kind)
        out.append((decl, line))
    return out


def _uint(size: int) -> str:
    return f"Uint{size}B"


def find_type(name: str) -> tuple[str, bool]:
    """The canonical name of a type `dt` knows (`nt!_pool_header` -> `_POOL_HEADER`) and
    whether it was typed with its module."""
    module, bang, type_name = name.rpartition("!")
    canonical = type_name.upper()
    if (canonical in TYPES or canonical in ENUMS) and (not bang or module.lower() == "nt"):
        return canonical, bool(bang)
    raise DebuggerError(f"Symbol {name} not found.")


def type_dump(target: "Target", name: str, address: int | None) -> TypeDump:
    canonical, qualified = find_type(name)
    result = TypeDump(f"nt!{canonical}", not qualified, address)
    if canonical in ENUMS:
        result.enum = [(label, value) for value, label in ENUMS[canonical].items()]
        return result
    arch = target.arch
    spec = TYPES[canonical](arch)
    raw = _read(target, address, getattr(target.profile, spec.layout).sizeof())
    result.unreadable = address is not None and raw is None
    for decl, line in _lines(spec, target.profile):
        member = Member(line.offset, decl.name, line.type)
        if address is not None:
            member.value = "??" if raw is None else _value(
                line, raw[line.offset:line.offset + line.size], arch)
        result.members.append(member)
    return result


def _read(target: "Target", address: int | None, size: int) -> bytes | None:
    if address is None:
        return None
    try:
        return target.read(address, size)
    except MemoryFault:
        return None


def _value(line: _Line, data: bytes, arch: "Arch") -> str:
    value = int.from_bytes(data, "little")
    kind = line.type
    if line.pos is not None:
        value = (value >> line.pos) & ((1 << line.bits) - 1)
        return f"0y{value:0{line.bits}b} ({_hex(value)})"
    if kind.startswith("Int"):
        top = 1 << (8 * line.size - 1)
        return f"0n{value - 2 * top if value & top else value}"
    if kind.startswith("Uint"):
        return _hex(value)
    if kind in ENUMS:
        label = ENUMS[kind].get(value)
        return f"{value} ( {label} )" if label else str(value)
    if kind.startswith("Ptr"):
        if value == 0:
            return "(null) "
        pointee = kind.split(None, 1)[1]
        suffix = f" {pointee}" if pointee == "Void" or pointee.startswith("_") else ""
        return f"0x{arch.fmt_addr(value)}{suffix}"
    if kind == "_LIST_ENTRY":
        p = arch.ptr_size
        flink, blink = (int.from_bytes(data[i:i + p], "little") for i in (0, p))
        return f"_LIST_ENTRY [ 0x{arch.fmt_addr(flink)} - 0x{arch.fmt_addr(blink)} ]"
    return kind                    # embedded structures and arrays show their type


def _hex(value: int) -> str:
    return f"{value:#x}" if value else "0"


def render_type(result: TypeDump, session: "Session") -> str:
    lines = [result.type_name] if result.show_name else []
    lines += [f"   {label} = 0n{value}" for label, value in result.enum]
    for m in result.members:
        shown = m.type if m.value is None else m.value
        lines.append(f"   +{m.offset:#05x} {m.name:<16} : {shown}")
    if result.unreadable:
        lines.append(f"Memory read error {session.target.arch.fmt_addr(result.address or 0)}")
    return "\n".join(lines)


@command("dt", syntax="dt [nt!]Type [Address]", render=render_type,
         help="Display a pool structure's layout, or its fields at Address.\n"
              "Types: " + ", ".join([*TYPES, *ENUMS]) + ".")
def display_type(session: "Session", args: str) -> TypeDump | str:
    parts = args.split(None, 1)
    if not parts:
        return "dt [nt!]Type [Address]"
    find_type(parts[0])
    address = None
    if len(parts) == 2:
        address = evaluate(parts[1], session.target, session.settings["radix"],
                           offset=args.index(parts[1], len(parts[0])))
    return type_dump(session.target, parts[0], address)
