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
    # objects and the address space
    thread_object_size: int                     # the request for a thread object
    thread_body_offset: int                     # ETHREAD from its pool header
    system_range_start: int                     # MmSystemRangeStart

    def offset(self, struct_name: str, path: str) -> int:
        """Offset of a field of one of the structures; `BaseName.Buffer` reaches into a
        nested structure."""
        return field_path_offset(getattr(self, struct_name), path)

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
