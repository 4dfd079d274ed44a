"""Windows 7 SP1, x86 and x64: every structure the simulator writes and the debugger reads,
declared once with construct, and the two profiles built from them.

Offsets follow the Windows 7 SP1 public symbols where the research notes give them
(../shared/research/internals.md sections 2, 4, 6, 9, 10, 12).  The verifier structures:
`_VF_POOL_TRACE` (one record of the Allocate/Free log `nt!VfPoolTraces`, 0x40 bytes on x86,
0x80 on x64), `_MM_DRIVER_VERIFIER_DATA` (`nt!MmVerifierData`: the level and the statistics
`!verifier` prints), `_MI_VERIFIER_DRIVER_ENTRY` (one per verified driver, on
`nt!MiSuspectDriverList`) and the pool-tracking `_VI_POOL_ENTRY` table.  Two simplifications:
an x64 SLIST_HEADER (in the lookaside lists and the verifier's entries) keeps Depth/Sequence
in its first quadword and a plain pointer to the first entry in its second, and the pages of
`_VI_POOL_ENTRY`s are chained through `VI_POOL_PAGE_HEADER.NextPage` from `PoolPageHeaders`.
The special-pool header is the `_POOL_HEADER`-sized block at the start of a special-pool page
(internals.md 12.2).
"""
from __future__ import annotations

from typing import TypedDict

from construct import (
    Array, BitStruct, BitsInteger, ByteSwapped, Bytes, Construct, Default, Int8ul, Int16ul,
    Int32ul, Int32sl, Int64sl, Int64ul, Int8sl, Int16sl, Padding, Struct,
)

from ..arch import X64, X86
from .constants import FRAME_ARGS, POOL_SMALL_LISTS, POOL_TRACE_FRAMES
from .profile import Profile

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

# -- _KPRCB -----------------------------------------------------------------------------------
# Through ProcessorState.ContextFrame's stack, frame and instruction pointers, then the pool's
# per-processor lookaside arrays: a {P, L} pair of _GENERAL_LOOKASIDE_POOL pointers per block
# size, nonpaged then paged.  The sizes are those of the whole structure.
def _pp_lookaside(ptr: Construct) -> Construct:
    return Array(POOL_SMALL_LISTS, Struct("P" / ptr, "L" / ptr))


KPRCB_X86 = Struct(
    "MinorVersion" / Int16ul,
    "MajorVersion" / Int16ul,
    "CurrentThread" / Int32ul,
    "NextThread" / Int32ul,
    "IdleThread" / Int32ul,
    Padding(0x18 - 0x10 + 0xB4),     # ProcessorState at 0x18, ContextFrame.Ebp at +0xb4
    "Ebp" / Int32ul,
    "Eip" / Int32ul,
    "SegCs" / Int32ul,
    "EFlags" / Int32ul,
    "Esp" / Int32ul,
    Padding(0x5A0 - 0xE0),
    "PPNPagedLookasideList" / _pp_lookaside(Int32ul),
    "PPPagedLookasideList" / _pp_lookaside(Int32ul),
    Padding(0x3500 - 0x7A0),
)
KPRCB_X64 = Struct(
    "MxCsr" / Int32ul,
    "LegacyNumber" / Int8ul,
    "ReservedMustBeZero" / Int8ul,
    "InterruptRequest" / Int8ul,
    "IdleHalt" / Int8ul,
    "CurrentThread" / Int64ul,
    "NextThread" / Int64ul,
    "IdleThread" / Int64ul,
    Padding(0x40 - 0x20 + 0xE0 + 0x98),   # ProcessorState at 0x40, ContextFrame at +0xe0
    "Rsp" / Int64ul,
    "Rbp" / Int64ul,
    Padding(0xF8 - 0xA8),
    "Rip" / Int64ul,
    Padding(0x880 - 0x220),
    "PPNPagedLookasideList" / _pp_lookaside(Int64ul),
    "PPPagedLookasideList" / _pp_lookaside(Int64ul),
    Padding(0x4D00 - 0xC80),
)


def _stack_frame(ptr: Construct) -> Construct:
    """One frame of a stop stack: the caller's frame, the return address, the arguments (the
    x86 EBP frame; x64 is modelled the same way)."""
    return Struct("Next" / ptr, "ReturnAddress" / ptr, "Args" / Array(FRAME_ARGS, ptr))


# -- the clock ----------------------------------------------------------------------------------
# _KSYSTEM_TIME, as nt!KeTickCount holds the ticks since boot on both architectures: the low
# ULONG and the high part twice (written High2Time first, High1Time last, so that a reader
# that finds High1Time == High2Time knows the three agree).
KSYSTEM_TIME = Struct(
    "LowPart" / Int32ul,
    "High1Time" / Int32sl,
    "High2Time" / Int32sl,
)

# -- Driver Verifier and special pool ----------------------------------------------------------
class _VerifierStructures(TypedDict):
    pool_trace: Construct
    verifier_data: Construct
    driver_entry: Construct
    pool_page_header: Construct
    pool_entry: Construct
    special_header: Construct
    slist_header: Construct
    unicode_string: Construct


def _unicode_string(ptr: Construct) -> Construct:
    """_UNICODE_STRING: byte lengths and the buffer (x64 pads the lengths to the pointer)."""
    wide = ptr is Int64ul
    return Struct(
        "Length" / Int16ul * "Uint2B",
        "MaximumLength" / Int16ul * "Uint2B",
        *([Padding(4)] if wide else []),
        "Buffer" / ptr * f"Ptr{8 * ptr.sizeof()} Wchar",
    )


def _verifier(ptr: Construct) -> _VerifierStructures:
    """The verifier and special-pool structures of one pointer width (SIZE_T is as wide)."""
    wide = ptr is Int64ul
    size = ptr
    unicode_string = _unicode_string(ptr)
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
        "Ulong1" / Int32ul,              # bytes requested | SPECIAL_PAGED | fill byte << 16
        "PoolTag" / Int32ul,
        *([Padding(8)] if wide else []),
    )
    return _VerifierStructures(
        pool_trace=pool_trace, verifier_data=verifier_data, driver_entry=driver_entry,
        pool_page_header=pool_page_header, pool_entry=pool_entry,
        special_header=special_header, slist_header=slist_header, unicode_string=unicode_string)


# -- the stopped processor's register context ---------------------------------------------------
# _CONTEXT, as KPRCB.ProcessorState.ContextFrame holds it when a processor stops for the
# debugger (a bug check, a break-in, a breakpoint): what `r`, `@reg` and `k` read.  The
# _KPRCB declarations above name the same instruction, stack and frame pointer slots, so the
# two must agree (tests/kdsim/test_layouts.py).  Defaults are what a stopped kernel
# processor holds unless the stop says otherwise: CONTEXT_FULL (with floating point on x64),
# the kernel's selectors, interrupts enabled.  Floating-point and vector state are kept as
# bytes: nothing simulated uses them.
def _registers(names: str, width: Construct) -> list[Construct]:
    return [name / Default(width, 0) for name in names.split()]


def _bytes(size: int) -> Construct:
    return Default(Bytes(size), bytes(size))


CONTEXT_X86 = Struct(
    "ContextFlags" / Default(Int32ul, 0x10007),
    *_registers("Dr0 Dr1 Dr2 Dr3 Dr6 Dr7", Int32ul),
    "FloatSave" / _bytes(0x70),
    "SegGs" / Default(Int32ul, 0), "SegFs" / Default(Int32ul, 0x30),
    "SegEs" / Default(Int32ul, 0x23), "SegDs" / Default(Int32ul, 0x23),
    *_registers("Edi Esi Ebx Edx Ecx Eax Ebp Eip", Int32ul),
    "SegCs" / Default(Int32ul, 0x8), "EFlags" / Default(Int32ul, 0x246),
    "Esp" / Default(Int32ul, 0), "SegSs" / Default(Int32ul, 0x10),
    "ExtendedRegisters" / _bytes(0x200),
)
CONTEXT_X64 = Struct(
    *_registers("P1Home P2Home P3Home P4Home P5Home P6Home", Int64ul),
    "ContextFlags" / Default(Int32ul, 0x10000B), "MxCsr" / Default(Int32ul, 0x1F80),
    "SegCs" / Default(Int16ul, 0x10), "SegDs" / Default(Int16ul, 0x2B),
    "SegEs" / Default(Int16ul, 0x2B), "SegFs" / Default(Int16ul, 0x53),
    "SegGs" / Default(Int16ul, 0x2B), "SegSs" / Default(Int16ul, 0x18),
    "EFlags" / Default(Int32ul, 0x246),
    *_registers("Dr0 Dr1 Dr2 Dr3 Dr6 Dr7 Rax Rcx Rdx Rbx Rsp Rbp Rsi Rdi "
                "R8 R9 R10 R11 R12 R13 R14 R15 Rip", Int64ul),
    "FltSave" / _bytes(0x200),
    "VectorRegister" / _bytes(26 * 16),
    *_registers("VectorControl DebugControl LastBranchToRip LastBranchFromRip "
                "LastExceptionToRip LastExceptionFromRip", Int64ul),
)
CONTEXT_FRAME_X86 = 0x18                 # KPRCB.ProcessorState.ContextFrame
CONTEXT_FRAME_X64 = 0x40 + 0xE0
# where a bug check's code and first parameters are in the context KeBugCheckEx saves
BUGCHECK_REGISTERS_X86: tuple[str, ...] = ()
BUGCHECK_REGISTERS_X64 = ("Rcx", "Rdx", "R8", "R9")


# -- objects: the object manager's headers, processes, threads, loaded modules, files ------------
# Declared at the Windows 7 SP1 public-symbol offsets and sizes of each architecture, with the
# fields the simulator fills or the debugger reads; the bytes between are padding (zero unless
# the kernel's code would write them, which the model does not).  Each field carries the type
# name `dt` prints for it (construct's docs), so the debugger shows what the symbols say.
Field = tuple[int, int, str, Construct, str]          # x86 offset, x64 offset, name, type, dt type


def _laid_out(wide: bool, size: tuple[int, int], *fields: Field) -> Construct:
    """A structure of `size` (x86, x64) holding `fields` at their offsets on this architecture,
    padding in between."""
    placed = sorted((f64 if wide else f86, name, con, shown)
                    for f86, f64, name, con, shown in fields)
    subcons: list[Construct] = []
    pos = 0
    for offset, name, con, shown in placed:
        if offset < pos:
            raise ValueError(f"{name} at {offset:#x} overlaps the field before it")
        if offset > pos:
            subcons.append(Padding(offset - pos))
        subcons.append(name / con * shown)
        pos = offset + con.sizeof()
    total = size[1] if wide else size[0]
    if total < pos:
        raise ValueError(f"fields end at {pos:#x}, past the size {total:#x}")
    if total > pos:
        subcons.append(Padding(total - pos))
    return Struct(*subcons)


class _ObjectStructures(TypedDict):
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


def _objects(ptr: Construct) -> _ObjectStructures:
    """The object structures of one pointer width (SIZE_T and ULONG_PTR are as wide)."""
    wide = ptr is Int64ul
    P = ptr.sizeof()
    VOID, ULONG_PTR = f"Ptr{8 * P} Void", f"Uint{P}B"
    SINT_PTR = Int64sl if wide else Int32sl

    def ptr_to(name: str) -> str:
        return f"Ptr{8 * P} {name}"

    def at(size: tuple[int, int], *fields: Field) -> Construct:
        return _laid_out(wide, size, *fields)

    list_entry = Struct("Flink" / ptr * ptr_to("_LIST_ENTRY"),
                        "Blink" / ptr * ptr_to("_LIST_ENTRY"))
    unicode_string = _unicode_string(ptr)
    client_id = Struct("UniqueProcess" / ptr * VOID, "UniqueThread" / ptr * VOID)
    large = Int64sl
    dispatcher_header = at(
        (0x10, 0x18),
        (0x0, 0x0, "Type", Int8ul, "UChar"),
        (0x1, 0x1, "Abandoned", Int8ul, "UChar"),
        (0x2, 0x2, "Size", Int8ul, "UChar"),
        (0x3, 0x3, "DpcActive", Int8ul, "UChar"),
        (0x4, 0x4, "SignalState", Int32sl, "Int4B"),
        (0x8, 0x8, "WaitListHead", list_entry, "_LIST_ENTRY"),
    )
    object_header = at(
        (0x20, 0x38),
        (0x0, 0x0, "PointerCount", SINT_PTR, f"Int{P}B"),
        (0x4, 0x8, "HandleCount", SINT_PTR, f"Int{P}B"),
        (0x8, 0x10, "Lock", ptr, "_EX_PUSH_LOCK"),
        (0xC, 0x18, "TypeIndex", Int8ul, "UChar"),
        (0xD, 0x19, "TraceFlags", Int8ul, "UChar"),
        (0xE, 0x1A, "InfoMask", Int8ul, "UChar"),
        (0xF, 0x1B, "Flags", Int8ul, "UChar"),
        (0x10, 0x20, "ObjectCreateInfo", ptr, ptr_to("_OBJECT_CREATE_INFORMATION")),
        (0x14, 0x28, "SecurityDescriptor", ptr, VOID),
        (0x18, 0x30, "Body", Int64ul, "_QUAD"),
    )
    object_header_quota_info = at(
        (0x10, 0x20),
        (0x0, 0x0, "PagedPoolCharge", Int32ul, "Uint4B"),
        (0x4, 0x4, "NonPagedPoolCharge", Int32ul, "Uint4B"),
        (0x8, 0x8, "SecurityDescriptorCharge", Int32ul, "Uint4B"),
        (0xC, 0x10, "SecurityDescriptorQuotaBlock", ptr, VOID),
    )
    object_header_name_info = at(
        (0x10, 0x20),
        (0x0, 0x0, "Directory", ptr, ptr_to("_OBJECT_DIRECTORY")),
        (0x4, 0x8, "Name", unicode_string, "_UNICODE_STRING"),
        (0xC, 0x18, "ReferenceCount", Int32sl, "Int4B"),
    )
    object_header_creator_info = at(
        (0x10, 0x20),
        (0x0, 0x0, "TypeList", list_entry, "_LIST_ENTRY"),
        (0x8, 0x10, "CreatorUniqueProcess", ptr, VOID),
        (0xC, 0x18, "CreatorBackTraceIndex", Int16ul, "Uint2B"),
    )
    object_type = at(
        (0x88, 0xD0),
        (0x0, 0x0, "TypeList", list_entry, "_LIST_ENTRY"),
        (0x8, 0x10, "Name", unicode_string, "_UNICODE_STRING"),
        (0x10, 0x20, "DefaultObject", ptr, VOID),
        (0x14, 0x28, "Index", Int8ul, "UChar"),
        (0x18, 0x2C, "TotalNumberOfObjects", Int32ul, "Uint4B"),
        (0x1C, 0x30, "TotalNumberOfHandles", Int32ul, "Uint4B"),
        (0x20, 0x34, "HighWaterNumberOfObjects", Int32ul, "Uint4B"),
        (0x24, 0x38, "HighWaterNumberOfHandles", Int32ul, "Uint4B"),
        (0x28, 0x40, "TypeInfo", Bytes(0x70 if wide else 0x50), "_OBJECT_TYPE_INITIALIZER"),
        (0x78, 0xB0, "TypeLock", ptr, "_EX_PUSH_LOCK"),
        (0x7C, 0xB8, "Key", Int32ul, "Uint4B"),
        (0x80, 0xC0, "CallbackList", list_entry, "_LIST_ENTRY"),
    )
    kprocess = at(
        (0x98, 0x160),
        (0x0, 0x0, "Header", dispatcher_header, "_DISPATCHER_HEADER"),
        (0x10, 0x18, "ProfileListHead", list_entry, "_LIST_ENTRY"),
        (0x18, 0x28, "DirectoryTableBase", ptr, ULONG_PTR),
        (0x2C, 0x30, "ThreadListHead", list_entry, "_LIST_ENTRY"),
        (0x44, 0x70, "ReadyListHead", list_entry, "_LIST_ENTRY"),
        (0x60, 0xB4, "BasePriority", Int8sl, "Char"),
        (0x61, 0xB5, "QuantumReset", Int8sl, "Char"),
        (0x78, 0xE0, "ProcessListEntry", list_entry, "_LIST_ENTRY"),
        (0x80, 0xF0, "CycleTime", Int64ul, "Uint8B"),
        (0x88, 0xF8, "KernelTime", Int32ul, "Uint4B"),
        (0x8C, 0xFC, "UserTime", Int32ul, "Uint4B"),
    )
    mmsupport = at(
        (0x6C, 0x88),
        (0xC, 0x18, "WorkingSetExpansionLinks", list_entry, "_LIST_ENTRY"),
        (0x30, 0x44, "MinimumWorkingSetSize", Int32ul, "Uint4B"),
        (0x34, 0x48, "WorkingSetSize", Int32ul, "Uint4B"),
        (0x38, 0x4C, "WorkingSetPrivateSize", Int32ul, "Uint4B"),
        (0x3C, 0x50, "MaximumWorkingSetSize", Int32ul, "Uint4B"),
        (0x4C, 0x60, "PeakWorkingSetSize", Int32ul, "Uint4B"),
        (0x5C, 0x74, "PageFaultCount", Int32ul, "Uint4B"),
    )
    eprocess = at(
        (0x2C0, 0x4D0),
        (0x0, 0x0, "Pcb", kprocess, "_KPROCESS"),
        (0x98, 0x160, "ProcessLock", ptr, "_EX_PUSH_LOCK"),
        (0xA0, 0x168, "CreateTime", large, "_LARGE_INTEGER"),
        (0xA8, 0x170, "ExitTime", large, "_LARGE_INTEGER"),
        (0xB0, 0x178, "RundownProtect", ptr, "_EX_RUNDOWN_REF"),
        (0xB4, 0x180, "UniqueProcessId", ptr, VOID),
        (0xB8, 0x188, "ActiveProcessLinks", list_entry, "_LIST_ENTRY"),
        (0xC0, 0x198, "ProcessQuotaUsage", Array(2, ptr), ULONG_PTR),
        (0xC8, 0x1A8, "ProcessQuotaPeak", Array(2, ptr), ULONG_PTR),
        (0xD0, 0x1B8, "CommitCharge", ptr, ULONG_PTR),
        (0xD4, 0x1C0, "QuotaBlock", ptr, ptr_to("_EPROCESS_QUOTA_BLOCK")),
        (0xDC, 0x1D0, "PeakVirtualSize", ptr, ULONG_PTR),
        (0xE0, 0x1D8, "VirtualSize", ptr, ULONG_PTR),
        (0xE4, 0x1E0, "SessionProcessLinks", list_entry, "_LIST_ENTRY"),
        (0xEC, 0x1F0, "DebugPort", ptr, VOID),
        (0xF4, 0x200, "ObjectTable", ptr, ptr_to("_HANDLE_TABLE")),
        (0xF8, 0x208, "Token", ptr, "_EX_FAST_REF"),
        (0xFC, 0x210, "WorkingSetPage", ptr, ULONG_PTR),
        (0x118, 0x248, "NumberOfPrivatePages", ptr, ULONG_PTR),
        (0x120, 0x258, "Win32Process", ptr, VOID),
        (0x124, 0x260, "Job", ptr, ptr_to("_EJOB")),
        (0x128, 0x268, "SectionObject", ptr, VOID),
        (0x12C, 0x270, "SectionBaseAddress", ptr, VOID),
        (0x130, 0x278, "Cookie", Int32ul, "Uint4B"),
        (0x13C, 0x288, "Win32WindowStation", ptr, VOID),
        (0x140, 0x290, "InheritedFromUniqueProcessId", ptr, VOID),
        (0x150, 0x2B0, "DeviceMap", ptr, VOID),
        (0x168, 0x2D8, "Session", ptr, VOID),
        (0x16C, 0x2E0, "ImageFileName", Array(15, Int8ul), "UChar"),
        (0x17B, 0x2EF, "PriorityClass", Int8ul, "UChar"),
        (0x188, 0x308, "ThreadListHead", list_entry, "_LIST_ENTRY"),
        (0x198, 0x328, "ActiveThreads", Int32ul, "Uint4B"),
        (0x1A8, 0x338, "Peb", ptr, ptr_to("_PEB")),
        (0x1E0, 0x378, "CommitChargeLimit", ptr, ULONG_PTR),
        (0x1E4, 0x380, "CommitChargePeak", ptr, ULONG_PTR),
        (0x1F0, 0x398, "Vm", mmsupport, "_MMSUPPORT"),
        (0x25C, 0x420, "MmProcessLinks", list_entry, "_LIST_ENTRY"),
        (0x26C, 0x43C, "Flags2", Int32ul, "Uint4B"),
        (0x270, 0x440, "Flags", Int32ul, "Uint4B"),
        (0x274, 0x444, "ExitStatus", Int32sl, "Int4B"),
        (0x2B4, 0x4BC, "ActiveThreadsHighWatermark", Int32ul, "Uint4B"),
    )
    kapc_state = at(                       # as much of it as KTHREAD's ApcStateFill keeps
        (0x17, 0x2B),
        (0x0, 0x0, "ApcListHead", Array(2, list_entry), "_LIST_ENTRY"),
        (0x10, 0x20, "Process", ptr, ptr_to("_KPROCESS")),
    )
    kthread = at(
        (0x200, 0x360),
        (0x0, 0x0, "Header", dispatcher_header, "_DISPATCHER_HEADER"),
        (0x10, 0x18, "CycleTime", Int64ul, "Uint8B"),
        (0x28, 0x28, "InitialStack", ptr, VOID),
        (0x2C, 0x30, "StackLimit", ptr, VOID),
        (0x30, 0x38, "KernelStack", ptr, VOID),
        (0x39, 0x49, "Running", Int8ul, "UChar"),
        (0x40, 0x50, "ApcState", kapc_state, "_KAPC_STATE"),
        (0x57, 0x7B, "Priority", Int8sl, "Char"),
        (0x64, 0x134, "ContextSwitches", Int32ul, "Uint4B"),
        (0x68, 0x164, "State", Int8ul, "UChar"),
        (0x6B, 0x167, "WaitMode", Int8sl, "Char"),
        (0x80, 0x194, "WaitTime", Int32ul, "Uint4B"),
        (0x88, 0xB8, "Teb", ptr, VOID),
        (0x135, 0x1F1, "BasePriority", Int8sl, "Char"),
        (0x150, 0x210, "Process", ptr, ptr_to("_KPROCESS")),
        (0x187, 0x26B, "WaitReason", Int8ul, "UChar"),
        (0x18C, 0x270, "Win32Thread", ptr, VOID),
        (0x190, 0x278, "StackBase", ptr, VOID),
        (0x198, 0x284, "KernelTime", Int32ul, "Uint4B"),
        (0x1C4, 0x2D4, "UserTime", Int32ul, "Uint4B"),
        (0x1E0, 0x2F8, "ThreadListEntry", list_entry, "_LIST_ENTRY"),
    )
    ethread = at(
        (0x2B8, 0x498),
        (0x0, 0x0, "Tcb", kthread, "_KTHREAD"),
        (0x200, 0x360, "CreateTime", large, "_LARGE_INTEGER"),
        (0x208, 0x368, "ExitTime", large, "_LARGE_INTEGER"),
        (0x210, 0x378, "ExitStatus", Int32sl, "Int4B"),
        (0x218, 0x388, "StartAddress", ptr, VOID),
        (0x22C, 0x3B0, "Cid", client_id, "_CLIENT_ID"),
        (0x24C, 0x3E8, "IrpList", list_entry, "_LIST_ENTRY"),
        (0x260, 0x410, "Win32StartAddress", ptr, VOID),
        (0x268, 0x420, "ThreadListEntry", list_entry, "_LIST_ENTRY"),
        (0x270, 0x430, "RundownProtect", ptr, "_EX_RUNDOWN_REF"),
        (0x280, 0x448, "CrossThreadFlags", Int32ul, "Uint4B"),
    )
    ldr_entry = at(                                    # _KLDR_DATA_TABLE_ENTRY
        (0x4C, 0x90),
        (0x0, 0x0, "InLoadOrderLinks", list_entry, "_LIST_ENTRY"),
        (0x8, 0x10, "ExceptionTable", ptr, VOID),
        (0xC, 0x18, "ExceptionTableSize", Int32ul, "Uint4B"),
        (0x10, 0x20, "GpValue", ptr, VOID),
        (0x14, 0x28, "NonPagedDebugInfo", ptr, ptr_to("_NON_PAGED_DEBUG_INFO")),
        (0x18, 0x30, "DllBase", ptr, VOID),
        (0x1C, 0x38, "EntryPoint", ptr, VOID),
        (0x20, 0x40, "SizeOfImage", Int32ul, "Uint4B"),
        (0x24, 0x48, "FullDllName", unicode_string, "_UNICODE_STRING"),
        (0x2C, 0x58, "BaseDllName", unicode_string, "_UNICODE_STRING"),
        (0x34, 0x68, "Flags", Int32ul, "Uint4B"),
        (0x38, 0x6C, "LoadCount", Int16ul, "Uint2B"),
        (0x3A, 0x6E, "__Unused5", Int16ul, "Uint2B"),
        (0x3C, 0x70, "SectionPointer", ptr, VOID),
        (0x40, 0x78, "CheckSum", Int32ul, "Uint4B"),
        (0x44, 0x80, "LoadedImports", ptr, VOID),
        (0x48, 0x88, "PatchInformation", ptr, VOID),
    )
    file_object = at(
        (0x80, 0xD8),
        (0x0, 0x0, "Type", Int16sl, "Int2B"),
        (0x2, 0x2, "Size", Int16sl, "Int2B"),
        (0x4, 0x8, "DeviceObject", ptr, ptr_to("_DEVICE_OBJECT")),
        (0x8, 0x10, "Vpb", ptr, ptr_to("_VPB")),
        (0xC, 0x18, "FsContext", ptr, VOID),
        (0x10, 0x20, "FsContext2", ptr, VOID),
        (0x14, 0x28, "SectionObjectPointer", ptr, ptr_to("_SECTION_OBJECT_POINTERS")),
        (0x18, 0x30, "PrivateCacheMap", ptr, VOID),
        (0x1C, 0x38, "FinalStatus", Int32sl, "Int4B"),
        (0x20, 0x40, "RelatedFileObject", ptr, ptr_to("_FILE_OBJECT")),
        (0x24, 0x48, "LockOperation", Int8ul, "UChar"),
        (0x25, 0x49, "DeletePending", Int8ul, "UChar"),
        (0x26, 0x4A, "ReadAccess", Int8ul, "UChar"),
        (0x27, 0x4B, "WriteAccess", Int8ul, "UChar"),
        (0x28, 0x4C, "DeleteAccess", Int8ul, "UChar"),
        (0x29, 0x4D, "SharedRead", Int8ul, "UChar"),
        (0x2A, 0x4E, "SharedWrite", Int8ul, "UChar"),
        (0x2B, 0x4F, "SharedDelete", Int8ul, "UChar"),
        (0x2C, 0x50, "Flags", Int32ul, "Uint4B"),
        (0x30, 0x58, "FileName", unicode_string, "_UNICODE_STRING"),
        (0x38, 0x68, "CurrentByteOffset", large, "_LARGE_INTEGER"),
        (0x40, 0x70, "Waiters", Int32ul, "Uint4B"),
        (0x44, 0x74, "Busy", Int32ul, "Uint4B"),
        (0x48, 0x78, "LastLock", ptr, VOID),
        (0x4C, 0x80, "Lock", dispatcher_header, "_KEVENT"),
        (0x5C, 0x98, "Event", dispatcher_header, "_KEVENT"),
        (0x6C, 0xB0, "CompletionContext", ptr, ptr_to("_IO_COMPLETION_CONTEXT")),
        (0x70, 0xB8, "IrpListLock", ptr, ULONG_PTR),
        (0x74, 0xC0, "IrpList", list_entry, "_LIST_ENTRY"),
        (0x7C, 0xD0, "FileObjectExtension", ptr, VOID),
    )
    device_object = at(
        (0xB8, 0x150),
        (0x0, 0x0, "Type", Int16sl, "Int2B"),
        (0x2, 0x2, "Size", Int16ul, "Uint2B"),
        (0x4, 0x4, "ReferenceCount", Int32sl, "Int4B"),
        (0x8, 0x8, "DriverObject", ptr, ptr_to("_DRIVER_OBJECT")),
        (0xC, 0x10, "NextDevice", ptr, ptr_to("_DEVICE_OBJECT")),
        (0x1C, 0x30, "Flags", Int32ul, "Uint4B"),
        (0x20, 0x34, "Characteristics", Int32ul, "Uint4B"),
        (0x28, 0x40, "DeviceExtension", ptr, VOID),
        (0x2C, 0x48, "DeviceType", Int32ul, "Uint4B"),
        (0x30, 0x4C, "StackSize", Int8sl, "Char"),
    )
    driver_object = at(
        (0xA8, 0x150),
        (0x0, 0x0, "Type", Int16sl, "Int2B"),
        (0x2, 0x2, "Size", Int16sl, "Int2B"),
        (0x4, 0x8, "DeviceObject", ptr, ptr_to("_DEVICE_OBJECT")),
        (0x8, 0x10, "Flags", Int32ul, "Uint4B"),
        (0xC, 0x18, "DriverStart", ptr, VOID),
        (0x10, 0x20, "DriverSize", Int32ul, "Uint4B"),
        (0x14, 0x28, "DriverSection", ptr, VOID),
        (0x1C, 0x38, "DriverName", unicode_string, "_UNICODE_STRING"),
    )
    handle_table = at(
        (0x3C, 0x68),
        (0x0, 0x0, "TableCode", ptr, ULONG_PTR),
        (0x4, 0x8, "QuotaProcess", ptr, ptr_to("_EPROCESS")),
        (0x8, 0x10, "UniqueProcessId", ptr, VOID),
        (0x10, 0x20, "HandleTableList", list_entry, "_LIST_ENTRY"),
        (0x28, 0x48, "FirstFreeHandle", Int32ul, "Uint4B"),
        (0x30, 0x58, "HandleCount", Int32ul, "Uint4B"),
        (0x34, 0x5C, "NextHandleNeedingPool", Int32ul, "Uint4B"),
        (0x38, 0x60, "HandleCountHighWatermark", Int32ul, "Uint4B"),
    )
    token = at(
        (0x1E0, 0x310),
        (0x0, 0x0, "TokenSource", Bytes(0x10), "_TOKEN_SOURCE"),
        (0x10, 0x10, "TokenId", Int64ul, "_LUID"),
        (0x18, 0x18, "AuthenticationId", Int64ul, "_LUID"),
        (0x20, 0x20, "ParentTokenId", Int64ul, "_LUID"),
        (0x74, 0x74, "SessionId", Int32ul, "Uint4B"),
        (0x78, 0x78, "UserAndGroupCount", Int32ul, "Uint4B"),
        (0xA4, 0xB8, "TokenType", Int32sl, "_TOKEN_TYPE"),
        (0xA8, 0xBC, "ImpersonationLevel", Int32sl, "_SECURITY_IMPERSONATION_LEVEL"),
        (0xAC, 0xC0, "TokenFlags", Int32ul, "Uint4B"),
    )
    return _ObjectStructures(
        list_entry=list_entry, client_id=client_id, dispatcher_header=dispatcher_header,
        object_header=object_header, object_header_quota_info=object_header_quota_info,
        object_header_name_info=object_header_name_info,
        object_header_creator_info=object_header_creator_info, object_type=object_type,
        kprocess=kprocess, eprocess=eprocess, kthread=kthread, ethread=ethread,
        ldr_entry=ldr_entry, file_object=file_object, device_object=device_object,
        driver_object=driver_object, handle_table=handle_table, token=token)


# -- the stop stacks ----------------------------------------------------------------------------
# The frames of each routine that raises bug checks, by logical name, as `Function+0xoffset`,
# and the debugger break the stop adds on top of them.
ROUTINES_X86 = {
    "ExAllocatePoolWithTag": "ExAllocatePoolWithTag+0x4f1",
    "ExFreePoolWithTag": "ExFreePoolWithTag+0x1b1",
    "MmAccessFault": "MmAccessFault+0x10c6",
    "KiPageFault": "KiTrap0E+0xdc",
    "MmFreeSpecialPool": "MmFreeSpecialPool+0x15c",
    "VerifierExAllocatePoolWithTag": "VerifierExAllocatePoolWithTag+0x21",
    "VerifierFreePoolWithTag": "VerifierFreePoolWithTag+0x1d",
    "MmUnloadSystemImage": "MmUnloadSystemImage+0x1d0",
    "IopUnloadDriver": "IopUnloadDriver+0x2a6",
}
ROUTINES_X64 = {
    "ExAllocatePoolWithTag": "ExAllocatePoolWithTag+0x5d3",
    "ExFreePoolWithTag": "ExFreePoolWithTag+0x780",
    "MmAccessFault": "MmAccessFault+0x1f2d",
    "KiPageFault": "KiPageFault+0x16e",
    "MmFreeSpecialPool": "MmFreeSpecialPool+0x2a4",
    "VerifierExAllocatePoolWithTag": "VerifierExAllocatePoolWithTag+0x45",
    "VerifierFreePoolWithTag": "VerifierFreePoolWithTag+0x30",
    "MmUnloadSystemImage": "MmUnloadSystemImage+0x2e0",
    "IopUnloadDriver": "IopUnloadDriver+0x3f1",
}

# -- the profiles -------------------------------------------------------------------------------
WIN7SP1_X86 = Profile(
    name="win7sp1-x86", title="Windows 7 SP1 x86", arch=X86,
    pool_header=POOL_HEADER_X86, tracker=POOL_TRACKER_TABLE_X86,
    big_page=POOL_TRACKER_BIG_PAGES_X86, descriptor=POOL_DESCRIPTOR_X86,
    lookaside=GENERAL_LOOKASIDE_POOL_X86, **_verifier(Int32ul), **_objects(Int32ul),
    kprcb=KPRCB_X86, stack_frame=_stack_frame(Int32ul), system_time=KSYSTEM_TIME,
    context_registers=("Eip", "Esp", "Ebp"), routines=ROUTINES_X86,
    context=CONTEXT_X86, context_frame=CONTEXT_FRAME_X86,
    bugcheck_registers=BUGCHECK_REGISTERS_X86,
    break_frames=("RtlpBreakWithStatusInstruction", "KiBugCheckDebugBreak+0x1c",
                  "KeBugCheck2+0x68b", "KeBugCheckEx+0x1e"),
    system_range_start=0x80000000,
)
WIN7SP1_X64 = Profile(
    name="win7sp1-x64", title="Windows 7 SP1 x64", arch=X64,
    pool_header=POOL_HEADER_X64, tracker=POOL_TRACKER_TABLE_X64,
    big_page=POOL_TRACKER_BIG_PAGES_X64, descriptor=POOL_DESCRIPTOR_X64,
    lookaside=GENERAL_LOOKASIDE_POOL_X64, **_verifier(Int64ul), **_objects(Int64ul),
    kprcb=KPRCB_X64, stack_frame=_stack_frame(Int64ul), system_time=KSYSTEM_TIME,
    context_registers=("Rip", "Rsp", "Rbp"), routines=ROUTINES_X64,
    context=CONTEXT_X64, context_frame=CONTEXT_FRAME_X64,
    bugcheck_registers=BUGCHECK_REGISTERS_X64,
    break_frames=("RtlpBreakWithStatusInstruction", "KiBugCheckDebugBreak+0x12",
                  "KeBugCheck2+0x71e", "KeBugCheckEx+0x104"),
    system_range_start=0xFFFF080000000000,
)
