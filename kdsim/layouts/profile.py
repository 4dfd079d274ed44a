"""A profile: everything about one Windows version on one architecture that the simulator
writes and the debugger reads, in one object.

Structures are construct declarations; the rest are the few facts of the version that are not
structures (routine offsets on the stop stacks, MmSystemRangeStart, the thread object's size).
A later Windows version is a new Profile, not edits scattered over the tree.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from construct import Array, Construct

from ..arch import Arch
from .packing import HeaderCodec, field_path_offset


# the object structures by their symbol names, and the Profile field that declares each
TYPE_NAMES = {
    "_LIST_ENTRY": "list_entry", "_UNICODE_STRING": "unicode_string", "_CLIENT_ID": "client_id",
    "_DISPATCHER_HEADER": "dispatcher_header", "_OBJECT_HEADER": "object_header",
    "_OBJECT_HEADER_QUOTA_INFO": "object_header_quota_info",
    "_OBJECT_HEADER_NAME_INFO": "object_header_name_info",
    "_OBJECT_HEADER_CREATOR_INFO": "object_header_creator_info",
    "_OBJECT_TYPE": "object_type", "_KPROCESS": "kprocess", "_EPROCESS": "eprocess",
    "_KTHREAD": "kthread", "_ETHREAD": "ethread", "_KLDR_DATA_TABLE_ENTRY": "ldr_entry",
    "_FILE_OBJECT": "file_object", "_DEVICE_OBJECT": "device_object",
    "_DRIVER_OBJECT": "driver_object", "_HANDLE_TABLE": "handle_table", "_TOKEN": "token",
}


@dataclass(frozen=True, eq=False)
class Profile:
    name: str                       # as dumps record it: "win7sp1-x64"
    title: str                      # "Windows 7 SP1 x64"
    arch: Arch
    # the pool: _POOL_HEADER, _POOL_TRACKER_TABLE, _POOL_TRACKER_BIG_PAGES,
    # _POOL_DESCRIPTOR, _GENERAL_LOOKASIDE_POOL
    pool_header: Construct
    tracker: Construct
    big_page: Construct
    descriptor: Construct
    lookaside: Construct
    # Driver Verifier and special pool: _VF_POOL_TRACE, _MM_DRIVER_VERIFIER_DATA,
    # _MI_VERIFIER_DRIVER_ENTRY, VI_POOL_PAGE_HEADER, _VI_POOL_ENTRY, the special-pool header
    pool_trace: Construct
    verifier_data: Construct
    driver_entry: Construct
    pool_page_header: Construct
    pool_entry: Construct
    special_header: Construct
    slist_header: Construct
    unicode_string: Construct
    # processors and stops: _KPRCB (through the pool lookaside arrays) and one stack frame
    kprcb: Construct
    stack_frame: Construct
    system_time: Construct                      # _KSYSTEM_TIME: nt!KeTickCount
    context_registers: tuple[str, str, str]     # instruction, stack, frame pointer in _KPRCB
    context: Construct                          # _CONTEXT of a stopped processor
    context_frame: int                          # its offset in _KPRCB (ProcessorState)
    bugcheck_registers: tuple[str, ...]         # hold a bug check's code and parameters
    routines: Mapping[str, str]                 # logical routine -> `Function+0xoffset`
    break_frames: tuple[str, ...]               # the debugger break on top of a stop
    # the object manager: _LIST_ENTRY, _CLIENT_ID, _DISPATCHER_HEADER, _OBJECT_HEADER and the
    # optional headers before it, _OBJECT_TYPE, _KPROCESS/_EPROCESS, _KTHREAD/_ETHREAD,
    # _KLDR_DATA_TABLE_ENTRY, _FILE_OBJECT, _DEVICE_OBJECT, _DRIVER_OBJECT, _HANDLE_TABLE, _TOKEN
    list_entry: Construct
    client_id: Construct
    dispatcher_header: Construct
    object_header: Construct
    object_header_quota_info: Construct
    object_header_name_info: Construct
    object_header_creator_info: Construct
    object_type: Construct
    kprocess: Construct
    eprocess: Construct
    kthread: Construct
    ethread: Construct
    ldr_entry: Construct
    file_object: Construct
    device_object: Construct
    driver_object: Construct
    handle_table: Construct
    token: Construct
    # the address space
    system_range_start: int                     # MmSystemRangeStart

    def offset(self, struct_name: str, path: str) -> int:
        """Offset of a field of one of the structures; `BaseName.Buffer` reaches into a
        nested structure."""
        return field_path_offset(getattr(self, struct_name), path)

    @property
    def types(self) -> dict[str, Construct]:
        """The declared structures by the names the symbols give them (`dt nt!_EPROCESS`)."""
        return {name: getattr(self, attr) for name, attr in TYPE_NAMES.items()}

    @property
    def body_offset(self) -> int:
        """_OBJECT_HEADER.Body: where an object's body starts after its header."""
        return self.offset("object_header", "Body")

    @property
    def thread_object_size(self) -> int:
        """The pool request for a thread object: quota information, header, ETHREAD."""
        return (self.object_header_quota_info.sizeof() + self.body_offset
                + self.ethread.sizeof())

    @property
    def thread_body_offset(self) -> int:
        """ETHREAD from its pool header (the ...030 / ...060 thread addresses)."""
        return (self.arch.block + self.object_header_quota_info.sizeof() + self.body_offset)

    @cached_property
    def codec(self) -> HeaderCodec:
        """The hand-packed _POOL_HEADER bits, derived from `pool_header`."""
        return HeaderCodec(self.pool_header)

    @property
    def list_heads(self) -> int:
        """Entries of a descriptor's ListHeads: one free list per block size of a page."""
        heads = next(sub for sub in self.descriptor.subcons if sub.name == "ListHeads").subcon
        assert isinstance(heads, Array)
        return int(heads.count)
