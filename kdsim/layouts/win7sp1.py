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
    Array, BitStruct, BitsInteger, ByteSwapped, Bytes, Construct, Default, Int8ul, Int16ul, Int32ul,
    Int32sl, Int64ul, Padding, Struct,
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


def _verifier(ptr: Construct) -> _VerifierStructures:
    """The verifier and special-pool structures of one pointer width (SIZE_T is as wide)."""
    wide = ptr is Int64ul
    size = ptr
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
    lookaside=GENERAL_LOOKASIDE_POOL_X86, **_verifier(Int32ul),
    kprcb=KPRCB_X86, stack_frame=_stack_frame(Int32ul), system_time=KSYSTEM_TIME,
    context_registers=("Eip", "Esp", "Ebp"), routines=ROUTINES_X86,
    context=CONTEXT_X86, context_frame=CONTEXT_FRAME_X86,
    bugcheck_registers=BUGCHECK_REGISTERS_X86,
    break_frames=("RtlpBreakWithStatusInstruction", "KiBugCheckDebugBreak+0x1c",
                  "KeBugCheck2+0x68b", "KeBugCheckEx+0x1e"),
    thread_object_size=0x2B0, thread_body_offset=0x30,
    system_range_start=0x80000000,
)
WIN7SP1_X64 = Profile(
    name="win7sp1-x64", title="Windows 7 SP1 x64", arch=X64,
    pool_header=POOL_HEADER_X64, tracker=POOL_TRACKER_TABLE_X64,
    big_page=POOL_TRACKER_BIG_PAGES_X64, descriptor=POOL_DESCRIPTOR_X64,
    lookaside=GENERAL_LOOKASIDE_POOL_X64, **_verifier(Int64ul),
    kprcb=KPRCB_X64, stack_frame=_stack_frame(Int64ul), system_time=KSYSTEM_TIME,
    context_registers=("Rip", "Rsp", "Rbp"), routines=ROUTINES_X64,
    context=CONTEXT_X64, context_frame=CONTEXT_FRAME_X64,
    bugcheck_registers=BUGCHECK_REGISTERS_X64,
    break_frames=("RtlpBreakWithStatusInstruction", "KiBugCheckDebugBreak+0x12",
                  "KeBugCheck2+0x71e", "KeBugCheckEx+0x104"),
    thread_object_size=0x4F0, thread_body_offset=0x60,
    system_range_start=0xFFFF080000000000,
)
