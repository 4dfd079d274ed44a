"""Driver Verifier and special pool structures, declared once with construct.

Names, fields and sizes follow the Windows 7 public symbols: `_VF_POOL_TRACE` (one record of
the Allocate/Free log `nt!VfPoolTraces`, 0x40 bytes on x86, 0x80 on x64),
`_MM_DRIVER_VERIFIER_DATA` (`nt!MmVerifierData`: the level and the statistics `!verifier`
prints), `_MI_VERIFIER_DRIVER_ENTRY` (one per verified driver, on `nt!MiSuspectDriverList`) and
the pool-tracking `_VI_POOL_ENTRY` table.  Two simplifications, as for the lookaside SLISTs in
layouts.py: an x64 SLIST_HEADER keeps Depth/Sequence in its first quadword and a plain
pointer to the first entry in its second, and the pages of `_VI_POOL_ENTRY`s are chained
through `VI_POOL_PAGE_HEADER.NextPage` from `PoolPageHeaders`.  The special-pool header is the
`_POOL_HEADER`-sized block at the start of a special-pool page (internals.md 12.2).
"""
from __future__ import annotations

from dataclasses import dataclass

from construct import Array, Construct, Int16ul, Int32ul, Int64ul, Padding, Struct

from .arch import Arch
from .layouts import field_offsets

POOL_TRACE_FRAMES = 13               # StackTrace[13]
VERIFIER_ENTRY_SIGNATURE = 0x98761940
VI_VERIFYING_DIRECTLY = 0x1


def _words(ptr: Construct, size: Construct) -> dict[str, Construct]:
    """The structures of one pointer width."""
    wide = ptr is Int64ul
    unicode_string = Struct(
        "Length" / Int16ul,
        "MaximumLength" / Int16ul,
        *([Padding(4)] if wide else []),
        "Buffer" / ptr,
    )
    slist_header = (Struct("Alignment" / Int64ul, "NextEntry" / Int64ul) if wide else
                    Struct("Next" / Int32ul, "Depth" / Int16ul, "Sequence" / Int16ul))
    pool_trace = Struct(
        "Address" / ptr,
        "Size" / size,
        "Thread" / ptr,
        "StackTrace" / Array(POOL_TRACE_FRAMES, ptr),
    )
    verifier_data = Struct(
        "Level" / Int32ul,
        "RaiseIrqls" / Int32ul,
        "AcquireSpinLocks" / Int32ul,
        "SynchronizeExecutions" / Int32ul,
        "AllocationsAttempted" / Int32ul,
        "AllocationsSucceeded" / Int32ul,
        "AllocationsSucceededSpecialPool" / Int32ul,
        "AllocationsWithNoTag" / Int32ul,
        "TrimRequests" / Int32ul,
        "Trims" / Int32ul,
        "AllocationsFailed" / Int32ul,
        "AllocationsFailedDeliberately" / Int32ul,
        "Loads" / Int32ul,
        "Unloads" / Int32ul,
        "UnTrackedPool" / Int32ul,
        "UserTrims" / Int32ul,
        "CurrentPagedPoolAllocations" / Int32ul,
        "CurrentNonPagedPoolAllocations" / Int32ul,
        "PeakPagedPoolAllocations" / Int32ul,
        "PeakNonPagedPoolAllocations" / Int32ul,
        "PagedBytes" / size,
        "NonPagedBytes" / size,
        "PeakPagedBytes" / size,
        "PeakNonPagedBytes" / size,
        "BurstAllocationsFailedDeliberately" / Int32ul,
        "SessionTrims" / Int32ul,
        "OptionChanges" / Int32ul,
        "VerifyMode" / Int32ul,
        "PreviousBucketName" / unicode_string,
        "ActivityCounter" / Int32ul,
        "PreviousActivityCounter" / Int32ul,
        "WorkerTrimRequests" / Int32ul,
        *([Padding(4)] if wide else []),
    )
    driver_entry = Struct(
        "Links" / Struct("Flink" / ptr, "Blink" / ptr),
        "Loads" / Int32ul,
        "Unloads" / Int32ul,
        "BaseName" / unicode_string,
        "StartAddress" / ptr,
        "EndAddress" / ptr,
        "Flags" / Int32ul,
        *([Padding(4)] if wide else []),
        "Signature" / size,
        *([Padding(8)] if wide else []),
        "PoolPageHeaders" / slist_header,
        "PoolTrackers" / slist_header,
        "CurrentPagedPoolAllocations" / Int32ul,
        "CurrentNonPagedPoolAllocations" / Int32ul,
        "PeakPagedPoolAllocations" / Int32ul,
        "PeakNonPagedPoolAllocations" / Int32ul,
        "PagedBytes" / size,
        "NonPagedBytes" / size,
        "PeakPagedBytes" / size,
        "PeakNonPagedBytes" / size,
    )
    pool_page_header = Struct(
        "NextPage" / ptr,
        "VerifierEntry" / ptr,
        "Signature" / size,
    )
    pool_entry = Struct(
        "VirtualAddress" / ptr,
        "CallingAddress" / ptr,
        "NumberOfBytes" / size,
        "Tag" / size,
    )
    special_header = Struct(
        "Ulong1" / Int32ul,              # bytes requested | 0x8000 paged | fill byte << 16
        "PoolTag" / Int32ul,
        *([Padding(8)] if wide else []),
    )
    return {"pool_trace": pool_trace, "verifier_data": verifier_data,
            "driver_entry": driver_entry, "pool_page_header": pool_page_header,
            "pool_entry": pool_entry, "special_header": special_header,
            "slist_header": slist_header, "unicode_string": unicode_string}


@dataclass(frozen=True)
class VerifierLayouts:
    pool_trace: Construct
    verifier_data: Construct
    driver_entry: Construct
    pool_page_header: Construct
    pool_entry: Construct
    special_header: Construct
    slist_header: Construct
    unicode_string: Construct

    def offset(self, struct_name: str, path: str) -> int:
        """Offset of a field; `BaseName.Buffer` reaches into a nested structure."""
        con = getattr(self, struct_name)
        total = 0
        for name in path.split("."):
            total += field_offsets(con)[name]
            con = next(sub for sub in con.subcons if sub.name == name).subcon
        return total


VERIFIER_LAYOUTS: dict[str, VerifierLayouts] = {
    "x86": VerifierLayouts(**_words(Int32ul, Int32ul)),
    "x64": VerifierLayouts(**_words(Int64ul, Int64ul)),
}


def verifier_layouts_for(arch: Arch) -> VerifierLayouts:
    return VERIFIER_LAYOUTS[arch.name]
