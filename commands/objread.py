"""Reading the object manager's structures through the target: fields by their declared
names, the process list, a process's threads, object headers and their types.

Every walk is the debugger's: it follows the links in memory (nt!PsActiveProcessHead, a
process's ThreadListHead, nt!PsLoadedModuleList) and stops at a link it cannot read, at a
link back to an entry already seen, or after MAX_ENTRIES, as the real extensions cap theirs;
the reason it stopped is kept so the command can say it (`Memory read error 8a1b2c30`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from construct import Array

from kdsim.layouts import field_path_offset
from kdsim.target import MemoryFault

if TYPE_CHECKING:  # pragma: no cover
    from construct import Construct

    from kdsim.target import Target

MAX_ENTRIES = 0x10000               # the longest list a walk follows
PROCESS_TYPE, THREAD_TYPE = 3, 6    # _DISPATCHER_HEADER.Type of a process and a thread
IN_SESSION = 0x10000                # EPROCESS.Flags.ProcessInSession
TICK_100NS = 156250                 # the clock tick KeTickCount counts, in 100 ns units


def _leaf(con: "Construct", path: str) -> "Construct":
    for name in path.split("."):
        con = next(sub for sub in con.subcons if sub.name == name)
        while hasattr(con, "subcon") and not isinstance(con, Array):
            con = con.subcon
    return con


def read_field(target: "Target", struct_name: str, base: int, path: str) -> int:
    """An integer field of a declared structure at `base` (`Pcb.DirectoryTableBase`)."""
    layout = getattr(target.profile, struct_name)
    offset = field_path_offset(layout, path)
    size = _leaf(layout, path).sizeof()
    return int.from_bytes(target.read(base + offset, size), "little")


def read_bytes(target: "Target", struct_name: str, base: int, path: str) -> bytes:
    layout = getattr(target.profile, struct_name)
    offset = field_path_offset(layout, path)
    return target.read(base + offset, _leaf(layout, path).sizeof())


def unicode_at(target: "Target", address: int, limit: int = 0x200) -> str:
    """The text of the _UNICODE_STRING at `address` (its first `limit` bytes); MemoryFault
    when the string or its buffer cannot be read."""
    layout = target.profile.unicode_string
    string = layout.parse(target.read(address, layout.sizeof()))
    if not string.Length:
        return ""
    return target.read(string.Buffer, min(string.Length, limit) & ~1).decode(
        "utf-16-le", "replace")


def read_unicode(target: "Target", address: int, limit: int = 0x200) -> str:
    """`unicode_at`, '' when it cannot be read."""
    try:
        return unicode_at(target, address, limit)
    except MemoryFault:
        return ""


@dataclass
class Walk:
    """The entries a list walk reached (each minus the link's offset), and where it stopped
    early: the address it could not read, or None."""

    entries: list[int] = field(default_factory=list)
    bad_link: int | None = None


def walk(target: "Target", head: int, link_offset: int) -> Walk:
    """Follow the Flinks of the list at `head`, each entry `link_offset` into its structure."""
    result = Walk()
    seen: set[int] = set()
    at = head
    while len(result.entries) < MAX_ENTRIES:
        try:
            at = target.read_ptr(at)
        except MemoryFault:
            result.bad_link = at
            break
        if at == head or at in seen:
            break
        seen.add(at)
        if not target.is_valid(at):
            result.bad_link = at
            break
        result.entries.append(at - link_offset)
    return result


def processes(target: "Target") -> Walk:
    """The EPROCESS of every process on nt!PsActiveProcessHead."""
    head = target.resolve("nt!PsActiveProcessHead")
    if head is None:
        return Walk()
    return walk(target, head, target.profile.offset("eprocess", "ActiveProcessLinks"))


def threads(target: "Target", process: int) -> Walk:
    """The ETHREAD of every thread on the process's ThreadListHead."""
    profile = target.profile
    return walk(target, process + profile.offset("eprocess", "ThreadListHead"),
                profile.offset("ethread", "ThreadListEntry"))


def is_process(target: "Target", address: int) -> bool:
    try:
        return read_field(target, "eprocess", address, "Pcb.Header.Type") == PROCESS_TYPE
    except MemoryFault:
        return False


def is_thread(target: "Target", address: int) -> bool:
    try:
        return read_field(target, "ethread", address, "Tcb.Header.Type") == THREAD_TYPE
    except MemoryFault:
        return False


def image_name(target: "Target", process: int) -> str:
    """EPROCESS.ImageFileName, up to its NUL."""
    try:
        raw = read_bytes(target, "eprocess", process, "ImageFileName")
    except MemoryFault:
        return ""
    return raw.split(b"\0", 1)[0].decode("latin-1")


def session_id(target: "Target", process: int) -> int | None:
    """The session of a process in one (its token's SessionId); None for System's."""
    try:
        if not read_field(target, "eprocess", process, "Flags") & IN_SESSION:
            return None
        token = read_field(target, "eprocess", process, "Token") & ~(
            0x7 if target.arch.ptr_size == 4 else 0xF)
        return read_field(target, "token", token, "SessionId") if token else None
    except MemoryFault:
        return None


def object_type_name(target: "Target", body: int) -> tuple[int, int, str] | None:
    """(the header's address, its type object, the type's name) of the object whose body is
    at `body`; None when the header or its type cannot be read."""
    profile = target.profile
    header = body - profile.body_offset
    table = target.resolve("nt!ObTypeIndexTable")
    try:
        index = read_field(target, "object_header", header, "TypeIndex")
        if table is None:
            return None
        type_object = target.read_ptr(table + index * target.arch.ptr_size)
        name = read_unicode(target, type_object + profile.offset("object_type", "Name"))
    except MemoryFault:
        return None
    return (header, type_object, name) if name else None


def ticks_text(ticks: int) -> str:
    """Clock ticks as kd's hh:mm:ss.mmm."""
    ms = ticks * TICK_100NS // 10_000
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"
