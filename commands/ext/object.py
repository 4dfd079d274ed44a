"""`!object Address`: an object's header as the object manager keeps it before its body.

    kd> !object fffffa8004e4b060
    Object: fffffa8004e4b060  Type: (fffffa8003c4ff30) Process
        ObjectHeader: fffffa8004e4b030 (new version)
        HandleCount: 4  PointerCount: 82
        Directory Object: 00000000  Name: myfault

The header is `_OBJECT_HEADER.Body` bytes before the body; its TypeIndex indexes
nt!ObTypeIndexTable, whose entry is the type object and names the type; a name comes from
the name information header before it, when the header's InfoMask says there is one.
Object directories (`!object \\Driver`) are not modelled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.target import MemoryFault

from ..errors import DebuggerError
from ..expr import evaluate
from ..objread import object_type_name, read_field, read_unicode
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

NAME_INFO = 0x2                    # _OBJECT_HEADER.InfoMask: a name information header
CREATOR_INFO = 0x1                 # ... a creator information header (nearest the header)


@dataclass
class ObjectInfo:
    address: int
    type_object: int
    type_name: str
    header: int
    handles: int
    pointers: int
    directory: int | None          # with a name information header: its directory and name
    name: str


def _hex(target: "Target", value: int) -> str:
    return f"{value:0{target.arch.hex_digits}x}"


def render_object(result: ObjectInfo, session: "Session") -> str:
    t = session.target
    lines = [f"Object: {_hex(t, result.address)}  Type: ({_hex(t, result.type_object)}) "
             f"{result.type_name}",
             f"    ObjectHeader: {_hex(t, result.header)} (new version)",
             f"    HandleCount: {result.handles}  PointerCount: {result.pointers}"]
    if result.directory is not None:
        lines.append(f"    Directory Object: {_hex(t, result.directory)}  Name: {result.name}")
    return "\n".join(lines)


def object_info(target: "Target", address: int) -> ObjectInfo:
    found = object_type_name(target, address)
    if found is None:
        raise DebuggerError(f"Object {_hex(target, address)} has no readable object header "
                            f"of a known type")
    header, type_object, type_name = found
    profile = target.profile
    try:
        handles = read_field(target, "object_header", header, "HandleCount")
        pointers = read_field(target, "object_header", header, "PointerCount")
        mask = read_field(target, "object_header", header, "InfoMask")
        directory, name = None, ""
        if mask & NAME_INFO:
            size = profile.object_header_name_info.sizeof()
            info = header - size - (profile.object_header_creator_info.sizeof()
                                    if mask & CREATOR_INFO else 0)
            directory = read_field(target, "object_header_name_info", info, "Directory")
            name = read_unicode(target, info + profile.offset("object_header_name_info",
                                                              "Name"))
    except MemoryFault:
        raise DebuggerError(f"Memory read error {_hex(target, header)}") from None
    bits = 8 * target.arch.ptr_size
    signed = (lambda v: v - (1 << bits) if v >> (bits - 1) else v)   # noqa: E731
    return ObjectInfo(address, type_object, type_name, header, signed(handles),
                      signed(pointers), directory, name)


@command("!object", syntax="!object Address", render=render_object,
         help="Decode an object's header: its type, header address, handle and pointer counts "
              "and name.")
def object_command(session: "Session", args: str) -> ObjectInfo:
    text = args.strip()
    if not text:
        raise DebuggerError("Usage: !object Address (object directories are not modelled)")
    if text.startswith("\\"):
        raise DebuggerError(f"!object {text}: object directories are not modelled by kdsim; "
                            "give an object's address")
    target = session.target
    return object_info(target, evaluate(text, target, session.settings["radix"]))
