"""`??`: the C++ expressions people use with pool structures, over the types `dt` knows.

    ?? sizeof(nt!_POOL_HEADER)                     unsigned int64 0x10
    ?? ((nt!_POOL_HEADER*)0xfffffa8004a1e000)->PoolTag
                                                   unsigned long 0x6b61654c
    ?? #FIELD_OFFSET(nt!_POOL_HEADER, PoolTag)     long 0n4
    ?? @rip                                        unsigned int64 0xfffff800`01488a10

The value prints after its C++ type as the C++ evaluator prints it: unsigned in hex, signed
in decimal with `0n`, a pointer as `Type * 0x...`, an enumerator by name.  Numbers in a
C++ expression are decimal unless written `0x...`.  Anything else is outside kdsim's subset
and says so (`dx` is out of scope).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.target import MemoryFault

from ..context import read_register, register_names
from ..errors import DebuggerError, couldnt_resolve, memory_access, syntax_error_at
from ..registry import command
from .dt import ENUMS, field_line, find_type, type_size

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session

_TYPE = r"\s*((?:\w+!)?\w+)\s*"
_SIZEOF = re.compile(rf"^sizeof\s*\({_TYPE}\)$")
_OFFSET = re.compile(rf"^#FIELD_OFFSET\s*\({_TYPE},\s*(\w+)\s*\)$", re.IGNORECASE)
_MEMBER = re.compile(rf"^\(\s*\({_TYPE}\*\s*\)\s*(\w+)\s*\)\s*->\s*(\w+)$")
_REGISTER = re.compile(r"^@(\w+)$")
_INTEGER = {1: "char", 2: "short", 4: "long", 8: "int64"}
SUBSET = ("kdsim's ?? takes sizeof(Type), ((Type*)Address)->Field, "
          "#FIELD_OFFSET(Type, Field) and @Register")


@dataclass(frozen=True)
class CppValue:
    type: str          # as the C++ evaluator names it: "unsigned long", "_POOL_TYPE"
    shown: str         # the value as it prints it


def render_value(result: CppValue, session: "Session") -> str:
    return f"{result.type} {result.shown}"


def _hex(value: int) -> str:
    return f"{value:#x}" if value else "0"


def _unsigned(ptr_size: int, value: int) -> CppValue:
    return CppValue("unsigned int64" if ptr_size == 8 else "unsigned int", _hex(value))


def _number(text: str) -> int | None:
    """A C++ integer literal: decimal, or hex with 0x."""
    low = text.lower()
    if low.startswith("0x") and len(low) > 2 and all(c in "0123456789abcdef" for c in low[2:]):
        return int(low[2:], 16)
    return int(low) if low.isascii() and low.isdigit() else None


def evaluate_cpp(session: "Session", text: str) -> CppValue:
    target = session.target
    arch = target.arch
    if (match := _SIZEOF.match(text)) is not None:
        return _unsigned(arch.ptr_size, type_size(target, match.group(1)))
    if (match := _OFFSET.match(text)) is not None:
        line = field_line(target, match.group(1), match.group(2))
        return CppValue("long", f"0n{line.offset}")
    if (match := _REGISTER.match(text)) is not None:
        name = match.group(1)
        value = read_register(target, session.processor, name)
        if value is None:
            raise DebuggerError(f"Bad register error at '{text}'")
        bits = register_names(arch)[name.lower()].bits
        kind = "unsigned int64" if bits == 64 else "unsigned int"
        return CppValue(kind, _hex(value) if bits < 64 else f"0x{arch.fmt_addr(value)}")
    if (match := _MEMBER.match(text)) is not None:
        type_name, address_text, field = match.groups()
        address = _number(address_text)
        if address is None:
            raise couldnt_resolve(address_text + text[match.end(2):])
        return _member(session, type_name, address & arch.ptr_mask, field, text)
    raise DebuggerError(SUBSET)


def _member(session: "Session", type_name: str, address: int, field: str,
            text: str) -> CppValue:
    target = session.target
    arch = target.arch
    line = field_line(target, type_name, field)
    kind = line.type
    if not kind.startswith(("Ptr", "Int", "Uint", "Pos")) and kind not in ENUMS:
        raise DebuggerError(f"{field} is a {kind}: kdsim's ?? shows scalar fields (dt shows "
                            f"the rest)")
    try:
        data = target.read(address + line.offset, line.size)
    except MemoryFault:
        raise memory_access(text[text.index(")->"):]) from None
    value = int.from_bytes(data, "little")
    if line.pos is not None:
        value = (value >> line.pos) & ((1 << line.bits) - 1)
    if kind.startswith("Ptr"):
        pointee = kind.split(None, 1)[1].strip()
        return CppValue(f"{'void' if pointee == 'Void' else 'struct ' + pointee} *",
                        f"0x{arch.fmt_addr(value)}")
    if kind in ENUMS:
        label = ENUMS[kind].get(value)
        return CppValue(kind, f"{label} (0n{value})" if label else f"0n{value}")
    if kind.startswith("Int"):
        top = 1 << (8 * line.size - 1)
        return CppValue(_INTEGER[line.size], f"0n{value - 2 * top if value & top else value}")
    return CppValue(f"unsigned {_INTEGER[line.size]}", _hex(value))


@command("??", syntax="?? C++Expression", render=render_value,
         help=f"Evaluate a C++ expression over the structures dt knows.\n{SUBSET}.")
def evaluate_command(session: "Session", args: str) -> CppValue:
    text = args.strip()
    if not text:
        raise syntax_error_at("")
    return evaluate_cpp(session, text)
