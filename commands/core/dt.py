"""`dt`: the structures kdsim keeps in memory laid out as the real `dt` prints them (formats.md
section 3): the pool structures, the object manager's (`_EPROCESS`, `_LIST_ENTRY`,
`_UNICODE_STRING` ...) and a stopped processor's `_CONTEXT`.

    dt [-v] [-r[N]] [-b] [nt!]Type [Address] [Field ...]

`-v` adds each type's size and element count, `-r[N]` expands embedded structures N levels
(default and at most 9), `-b` expands them all; Fields (`*` wildcards) show only those
members.  An embedded `_UNICODE_STRING` shows its text, as kd does.

Offsets, widths and bit positions come from the construct declarations of the target's profile
(kdsim/layouts).  This module adds only what `dt` shows that those declarations do not hold:
union members that overlay declared fields (`Ulong1`, `PoolTagHash`, `NonPagedLock`...), the
type names `dt` prints, and the storage unit of each bitfield (x86 `_POOL_HEADER` packs
USHORTs, so `BlockSize` is `+0x002 Pos 0`; Win7 x64 packs one ULONG, so it is `+0x000 Pos 16`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kdsim.layouts import TYPE_NAMES, declared_slots, profile_for
from kdsim.target import MemoryFault

from ..errors import DebuggerError, couldnt_resolve
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


# the _CONTEXT areas the layout keeps as bytes, by the types dt names them with
_CONTEXT_AREAS = {"FloatSave": "_FLOATING_SAVE_AREA", "ExtendedRegisters": "[512] UChar",
                  "FltSave": "_XSAVE_FORMAT", "VectorRegister": "[26] _M128A"}


def _context(arch: "Arch") -> TypeSpec:
    layout = profile_for(arch).context
    return TypeSpec("context", tuple(Decl(sub.name, _CONTEXT_AREAS.get(sub.name, ""))
                                     for sub in layout.subcons if sub.name))


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
    "_CONTEXT": _context,
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
    depth: int = 0                 # inside how many embedded structures (-r, -b)


@dataclass
class TypeDump:
    type_name: str                 # nt!_POOL_HEADER
    show_name: bool                # typed without a module: dt prints the name first
    address: int | None
    members: list[Member] = field(default_factory=list)
    enum: list[tuple[str, int]] = field(default_factory=list)
    unreadable: bool = False
    summary: str | None = None     # -v: `struct _X, N elements, 0xN bytes`
    text: str | None = None        # a _UNICODE_STRING instance: its text, quoted


@dataclass(frozen=True)
class FieldLine:
    """A Decl resolved against the layout: where its bytes are and how to show them."""

    offset: int
    size: int
    type: str
    pos: int | None = None         # bitfield position inside its unit
    bits: int = 0


def _lines(spec: TypeSpec, profile: "Profile") -> list[tuple[Decl, FieldLine]]:
    slots = declared_slots(getattr(profile, spec.layout))
    out = []
    for decl in spec.decls:
        if decl.at is not None:
            offset, size = decl.at
            out.append((decl, FieldLine(offset, size, decl.type or _uint(size))))
            continue
        slot = slots[decl.alias or decl.name]
        if decl.unit:
            unit_bits = 8 * decl.unit
            offset = slot.bit // unit_bits * decl.unit
            pos = slot.bit % unit_bits
            line = FieldLine(offset, decl.unit, f"Pos {pos}, {slot.bits} Bits", pos, slot.bits)
        else:
            kind = decl.type or _uint(slot.size)
            if slot.count is not None:
                kind = f"[{slot.count}] {kind}"
            line = FieldLine(slot.offset, slot.size, kind)
        out.append((decl, line))
    return out


def _uint(size: int) -> str:
    return f"Uint{size}B"


def known_type(name: str) -> str | None:
    """The canonical name of a type `dt` knows (`nt!_pool_header` -> `_POOL_HEADER`)."""
    module, bang, type_name = name.rpartition("!")
    canonical = type_name.upper()
    if (canonical in TYPES or canonical in ENUMS) and (not bang or module.lower() == "nt"):
        return canonical
    return None


def find_type(name: str) -> tuple[str, bool]:
    """The canonical name of a type `dt` knows and whether it was typed with its module."""
    canonical = known_type(name)
    if canonical is None:
        raise DebuggerError(f"Symbol {name} not found.")
    return canonical, "!" in name


def _spec(target: "Target", canonical: str) -> tuple[TypeSpec, int]:
    spec = TYPES[canonical](target.arch)
    return spec, getattr(target.profile, spec.layout).sizeof()


def type_size(target: "Target", name: str) -> int:
    """sizeof(Type) for a structure `dt` knows (an enum is a ULONG); couldn't-resolve else."""
    canonical = known_type(name)
    if canonical is None:
        raise couldnt_resolve(f"{name})")
    return 4 if canonical in ENUMS else _spec(target, canonical)[1]


def field_line(target: "Target", type_name: str, name: str) -> FieldLine:
    """Where member `name` of a structure `dt` knows is, and its type."""
    canonical = known_type(type_name)
    if canonical is None or canonical in ENUMS:
        raise couldnt_resolve(type_name)
    spec, _ = _spec(target, canonical)
    for decl, line in _lines(spec, target.profile):
        if decl.name.lower() == name.lower():
            return line
    raise DebuggerError(f"{name} is not a member of {canonical}")


def _element(kind: str) -> str:
    """The structure or type name inside `[512] _LIST_ENTRY`."""
    return re.sub(r"^\[\d+\] ", "", kind)


def _summary(target: "Target", canonical: str) -> str:
    spec, size = _spec(target, canonical)
    return f"struct {canonical}, {len(spec.decls)} elements, {size:#x} bytes"


def _verbose_type(target: "Target", line: FieldLine) -> str:
    """A member's type as `dt -v` describes it."""
    if line.pos is not None:
        return f"Bitfield {line.type}"
    inner = _element(line.type)
    count = line.type[:len(line.type) - len(inner)]
    if inner in TYPES:
        return f"{count}{_summary(target, inner)}"
    if inner in ENUMS:
        return f"{count}Enum {inner},  {len(ENUMS[inner])} total enums"
    pointer = re.match(r"^(Ptr\d+) (_\w+)$", inner)
    if pointer is not None and pointer.group(2) in TYPES:
        return f"{count}{pointer.group(1)} to {_summary(target, pointer.group(2))}"
    return line.type


def _selected(name: str, fields: tuple[str, ...]) -> bool:
    return not fields or any(_wildcard(f).match(name) for f in fields)


def _wildcard(text: str) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else re.escape(c) for c in text)
    return re.compile(f"{body}\\Z", re.IGNORECASE)


def is_field(target: "Target", type_name: str, text: str) -> bool:
    """Whether `text` names (or, with `*`, matches) a member of the type."""
    canonical = known_type(type_name)
    if canonical is None or canonical in ENUMS:
        return False
    spec, _ = _spec(target, canonical)
    pattern = _wildcard(text)
    return any(pattern.match(decl.name) for decl in spec.decls)


def type_dump(target: "Target", name: str, address: int | None, *, depth: int = 0,
              verbose: bool = False, fields: tuple[str, ...] = ()) -> TypeDump:
    """`dt` of a type or an instance; `depth`: how many levels of embedded structures to
    expand; `fields`: only these members (wildcards allowed)."""
    canonical, qualified = find_type(name)
    result = TypeDump(f"nt!{canonical}", not qualified, address)
    if canonical in ENUMS:
        result.enum = [(label, value) for value, label in ENUMS[canonical].items()]
        return result
    if verbose:
        result.summary = _summary(target, canonical)
    _, size = _spec(target, canonical)
    raw = _read(target, address, size)
    result.unreadable = address is not None and raw is None
    result.members = _members(target, canonical, address, raw, depth, 0, verbose, fields)
    if canonical == "_UNICODE_STRING" and raw is not None:
        result.text = _unicode(target, raw)
    return result


def _members(target: "Target", canonical: str, address: int | None, raw: bytes | None,
             depth: int, level: int, verbose: bool, fields: tuple[str, ...]) -> list[Member]:
    spec, _ = _spec(target, canonical)
    out: list[Member] = []
    for decl, line in _lines(spec, target.profile):
        if level == 0 and not _selected(decl.name, fields):
            continue
        member = Member(line.offset, decl.name,
                        _verbose_type(target, line) if verbose else line.type, depth=level)
        if address is not None:
            member.value = "??" if raw is None else _value(
                target, line, raw[line.offset:line.offset + line.size])
        out.append(member)
        inner = _element(line.type)
        if depth > 0 and line.pos is None and inner in TYPES:
            _, inner_size = _spec(target, inner)
            at = None if address is None else address + line.offset
            inner_raw = None if raw is None else raw[line.offset:line.offset + inner_size]
            out += _members(target, inner, at, inner_raw, depth - 1, level + 1, verbose, ())
    return out


def _read(target: "Target", address: int | None, size: int) -> bytes | None:
    if address is None:
        return None
    try:
        return target.read(address, size)
    except MemoryFault:
        return None


def _unicode(target: "Target", raw: bytes) -> str:
    """The text of a _UNICODE_STRING (its bytes in `raw`) in quotes, as dt shows it; what
    cannot be read shows as empty quotes."""
    layout = target.profile.unicode_string
    string = layout.parse(raw[:layout.sizeof()])
    try:
        data = target.read(string.Buffer, min(string.Length, MAX_STRING) & ~1)
    except MemoryFault:
        return '""'
    return '"' + data.decode("utf-16-le", "replace") + '"'


def _value(target: "Target", line: FieldLine, data: bytes) -> str:
    arch = target.arch
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
    if kind == "_UNICODE_STRING":
        return f"_UNICODE_STRING {_unicode(target, data)}"
    characters = re.fullmatch(r"\[(\d+)\] UChar", kind)
    if characters is not None:         # a name kept as bytes: ImageFileName
        text = data.split(b"\0", 1)[0].decode("latin-1")
        return f'[{characters.group(1)}]  "{text}"'

    return kind                    # embedded structures and arrays show their type


def _hex(value: int) -> str:
    return f"{value:#x}" if value else "0"


def render_type(result: TypeDump, session: "Session") -> str:
    lines = [result.type_name] if result.show_name else []
    if result.summary is not None:
        lines.append(result.summary)
    if result.text is not None:
        lines.append(f" {result.text}")
    lines += [f"   {label} = 0n{value}" for label, value in result.enum]
    for m in result.members:
        shown = m.type if m.value is None else m.value
        if m.name == "Buffer" and result.text is not None and m.depth == 0:
            shown += f"  {result.text}"
        lines.append(f"{'   ' * (m.depth + 1)}+{m.offset:#05x} {m.name:<16} : {shown}")
    if result.unreadable:
        lines.append(f"Memory read error {session.target.arch.fmt_addr(result.address or 0)}")
    return "\n".join(lines)


USAGE = "dt [nt!]Type [Address]"
MAX_DEPTH = 9                      # -r takes one digit
MAX_STRING = 0x200                 # bytes of a _UNICODE_STRING's text dt shows


@dataclass(frozen=True)
class _Options:
    verbose: bool = False
    depth: int = 0


def _options(words: list[str]) -> tuple[_Options, int]:
    """dt's leading options and how many words they took."""
    verbose, depth, taken = False, 0, 0
    for word in words:
        if not word.startswith("-"):
            break
        flag = word[1:]
        if flag == "v":
            verbose = True
        elif flag == "b":
            depth = MAX_DEPTH
        elif re.fullmatch(r"r[1-9]?", flag):
            depth = int(flag[1:] or MAX_DEPTH)
        else:
            raise DebuggerError(f"Unknown dt option {word} (kdsim's dt takes -v, -r[N], -b)")
        taken += 1
    return _Options(verbose, depth), taken


@command("dt", syntax="dt [-v] [-r[N]] [-b] [nt!]Type [Address] [Field ...]",
         render=render_type,
         help="Display a structure's layout, or its fields at Address.\n"
              "-v sizes, -r[N] embedded structures N levels deep, -b all of them; Fields "
              "(* wildcards) show only those members.\n"
              "Types: " + ", ".join([*TYPES, *ENUMS]) + ".")
def display_type(session: "Session", args: str) -> TypeDump | str:
    words = [(m.group(), m.start()) for m in re.finditer(r"\S+", args)]
    options, taken = _options([w for w, _ in words])
    words = words[taken:]
    if not words:
        return USAGE
    type_name = words[0][0]
    find_type(type_name)
    rest = words[1:]
    fields: list[str] = []
    while rest and is_field(session.target, type_name, rest[-1][0]):
        fields.insert(0, rest.pop()[0])
    address = None
    if rest:
        start = rest[0][1]
        end = rest[-1][1] + len(rest[-1][0])
        address = evaluate(args[start:end], session.target, session.settings["radix"],
                           offset=start)
    return type_dump(session.target, type_name, address, depth=options.depth,
                     verbose=options.verbose, fields=tuple(fields))
