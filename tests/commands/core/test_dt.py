"""`dt`: type and instance dumps of the pool structures, golden text from formats.md section 3."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from commands.core.dt import TypeDump
from commands.errors import DebuggerError
from commands.registry import lookup
from kdsim.arch import X64, X86
from kdsim.layouts import declared_slots, profile_for
from tests.support import FakeSession, build_target, call, lines

X86_HEADERS = {
    0x85246428: struct.pack("<II", 0x04400017, 0x6B636148),
    0x8628AFC0: struct.pack("<II", 0x04080008, 0xEE657645),
    0x91C26128: struct.pack("<II", 0x860F020C, 0x64636261),
}
X64_AAAA = 0xFFFFFA8000C41000
X64_PROC = 0xFFFFFA8000C42000


def members(text: str) -> str:
    """dt's member lines, written in the tests without their three leading blanks."""
    return "\n".join("   " + line for line in lines(text).splitlines())


@pytest.fixture
def x86() -> FakeSession:
    return FakeSession(build_target(X86, memory=tuple(X86_HEADERS.items())))


@pytest.fixture
def x64() -> FakeSession:
    return FakeSession(build_target(X64, memory=(
        (X64_AAAA, b"A" * 16),
        (X64_PROC, struct.pack("<IIQ", 0x02D00000, 0x636F7250, 0)),
        (X64_PROC + 0x100, struct.pack("<QIIQ", 0xFFFFFA8001234000, 0x20676942, 1, 0x3000)))))


# -- _POOL_HEADER -----------------------------------------------------------------------------
def test_type_dump_x86_without_module_prints_the_name(x86: FakeSession) -> None:
    assert call(x86, "dt _POOL_HEADER") == lines("""
        nt!_POOL_HEADER
           +0x000 PreviousSize     : Pos 0, 9 Bits
           +0x000 PoolIndex        : Pos 9, 7 Bits
           +0x002 BlockSize        : Pos 0, 9 Bits
           +0x002 PoolType         : Pos 9, 7 Bits
           +0x000 Ulong1           : Uint4B
           +0x004 PoolTag          : Uint4B
           +0x004 AllocatorBackTraceIndex : Uint2B
           +0x006 PoolTagHash      : Uint2B
        """)


def test_type_dump_x64_win7(x64: FakeSession) -> None:
    assert call(x64, "dt nt!_pool_header") == members("""
           +0x000 PreviousSize     : Pos 0, 8 Bits
           +0x000 PoolIndex        : Pos 8, 8 Bits
           +0x000 BlockSize        : Pos 16, 8 Bits
           +0x000 PoolType         : Pos 24, 8 Bits
           +0x000 Ulong1           : Uint4B
           +0x004 PoolTag          : Uint4B
           +0x008 ProcessBilled    : Ptr64 _EPROCESS
           +0x008 AllocatorBackTraceIndex : Uint2B
           +0x00a PoolTagHash      : Uint2B
        """)


@pytest.mark.parametrize("line, golden", [
    ("dt nt!_POOL_HEADER 85246428", """
        +0x000 PreviousSize     : 0y000010111 (0x17)
        +0x000 PoolIndex        : 0y0000000 (0)
        +0x002 BlockSize        : 0y001000000 (0x40)
        +0x002 PoolType         : 0y0000010 (0x2)
        +0x000 Ulong1           : 0x4400017
        +0x004 PoolTag          : 0x6b636148
        +0x004 AllocatorBackTraceIndex : 0x6148
        +0x006 PoolTagHash      : 0x6b63
        """),
    ("dt nt!_POOL_HEADER 8628afc0", """
        +0x000 PreviousSize     : 0y000001000 (0x8)
        +0x000 PoolIndex        : 0y0000000 (0)
        +0x002 BlockSize        : 0y000001000 (0x8)
        +0x002 PoolType         : 0y0000010 (0x2)
        +0x000 Ulong1           : 0x4080008
        +0x004 PoolTag          : 0xee657645
        +0x004 AllocatorBackTraceIndex : 0x7645
        +0x006 PoolTagHash      : 0xee65
        """),
    ("dt nt!_POOL_HEADER 0x91c26130-8", """
        +0x000 PreviousSize     : 0y000001100 (0xc)
        +0x000 PoolIndex        : 0y0000001 (0x1)
        +0x002 BlockSize        : 0y000001111 (0xf)
        +0x002 PoolType         : 0y1000011 (0x43)
        +0x000 Ulong1           : 0x860f020c
        +0x004 PoolTag          : 0x64636261
        +0x004 AllocatorBackTraceIndex : 0x6261
        +0x006 PoolTagHash      : 0x6463
        """),
])
def test_instance_dumps_x86(x86: FakeSession, line: str, golden: str) -> None:
    assert call(x86, line) == members(golden)


def test_instance_dump_x64_overwritten_header(x64: FakeSession) -> None:
    assert call(x64, "dt nt!_POOL_HEADER fffffa80`00c41000") == members("""
        +0x000 PreviousSize     : 0y01000001 (0x41)
        +0x000 PoolIndex        : 0y01000001 (0x41)
        +0x000 BlockSize        : 0y01000001 (0x41)
        +0x000 PoolType         : 0y01000001 (0x41)
        +0x000 Ulong1           : 0x41414141
        +0x004 PoolTag          : 0x41414141
        +0x008 ProcessBilled    : 0x41414141`41414141 _EPROCESS
        +0x008 AllocatorBackTraceIndex : 0x4141
        +0x00a PoolTagHash      : 0x4141
        """)


def test_instance_dump_x64_null_process(x64: FakeSession) -> None:
    text = call(x64, "dt nt!_POOL_HEADER fffffa8000c42000")
    assert "   +0x000 BlockSize        : 0y11010000 (0xd0)" in text
    assert "   +0x000 Ulong1           : 0x2d00000" in text
    assert "   +0x008 ProcessBilled    : (null) \n" in text
    assert text.endswith("   +0x00a PoolTagHash      : 0")


def test_values_agree_with_the_construct_layouts(x86: FakeSession) -> None:
    parsed = profile_for(X86).pool_header.parse(X86_HEADERS[0x91C26128])
    slots = declared_slots(profile_for(X86).pool_header)
    text = call(x86, "dt nt!_POOL_HEADER 91c26128")
    for name in ("PreviousSize", "PoolIndex", "BlockSize", "PoolType"):
        value = getattr(parsed.Ulong1, name)
        assert f"{name:<16} : 0y{value:0{slots[name].bits}b} ({value:#x})" in text
    assert slots["BlockSize"].bit == 16


# -- other structures -------------------------------------------------------------------------
def test_descriptor_type_dumps(x86: FakeSession, x64: FakeSession) -> None:
    assert call(x86, "dt nt!_POOL_DESCRIPTOR") == members("""
        +0x000 PoolType         : _POOL_TYPE
        +0x004 PagedLock        : _KGUARDED_MUTEX
        +0x004 NonPagedLock     : Uint4B
        +0x040 RunningAllocs    : Int4B
        +0x044 RunningDeAllocs  : Int4B
        +0x048 TotalBigPages    : Int4B
        +0x04c ThreadsProcessingDeferrals : Int4B
        +0x050 TotalBytes       : Uint4B
        +0x080 PoolIndex        : Uint4B
        +0x0c0 TotalPages       : Int4B
        +0x100 PendingFrees     : Ptr32 Ptr32 Void
        +0x104 PendingFreeDepth : Int4B
        +0x140 ListHeads        : [512] _LIST_ENTRY
        """)
    assert call(x64, "dt nt!_POOL_DESCRIPTOR").splitlines()[-6:] == [
        "   +0x028 PendingFrees     : Ptr64 Ptr64 Void",
        "   +0x030 ThreadsProcessingDeferrals : Int4B",
        "   +0x034 PendingFreeDepth : Int4B",
        "   +0x038 TotalBytes       : Uint8B",
        "   +0x040 Spare0           : Uint8B",
        "   +0x048 ListHeads        : [256] _LIST_ENTRY",
    ]


def test_descriptor_instance_values(x86: FakeSession) -> None:
    desc = 0x8B100000
    data = bytearray(0x1140)
    struct.pack_into("<I", data, 0, 1)
    struct.pack_into("<i", data, 0x40, -3)
    struct.pack_into("<II", data, 0x140, 0x8B100140, 0x8B100140)
    x86.target.memory.map(desc, 0x2000)
    x86.target.write(desc, bytes(data))
    text = call(x86, "dt nt!_POOL_DESCRIPTOR 8b100000").splitlines()
    assert text[0] == "   +0x000 PoolType         : 1 ( PagedPool )"
    assert text[1] == "   +0x004 PagedLock        : _KGUARDED_MUTEX"
    assert text[3] == "   +0x040 RunningAllocs    : 0n-3"
    assert text[4] == "   +0x044 RunningDeAllocs  : 0n0"
    assert text[10] == "   +0x100 PendingFrees     : (null) "
    assert text[12] == "   +0x140 ListHeads        : [512] _LIST_ENTRY"


def test_big_page_and_tracker_instances(x64: FakeSession) -> None:
    assert call(x64, "dt nt!_POOL_TRACKER_BIG_PAGES fffffa8000c42100") == members("""
        +0x000 Va               : 0xfffffa80`01234000 Void
        +0x008 Key              : 0x20676942
        +0x00c PoolType         : 0x1
        +0x010 NumberOfBytes    : 0x3000
        """)
    assert call(x64, "dt nt!_POOL_TRACKER_TABLE").splitlines() == [
        "   +0x000 Key              : Int4B",
        "   +0x004 NonPagedAllocs   : Int4B",
        "   +0x008 NonPagedFrees    : Int4B",
        "   +0x010 NonPagedBytes    : Uint8B",
        "   +0x018 PagedAllocs      : Uint4B",
        "   +0x01c PagedFrees       : Uint4B",
        "   +0x020 PagedBytes       : Uint8B",
    ]


def test_lookaside_type_and_list_entry_value(x64: FakeSession) -> None:
    text = call(x64, "dt nt!_GENERAL_LOOKASIDE_POOL").splitlines()
    assert text[0] == "   +0x000 ListHead         : _SLIST_HEADER"
    assert text[2] == "   +0x010 Depth            : Uint2B"
    assert "   +0x030 AllocateEx       : Ptr64     void* " in text
    assert "   +0x038 Free             : Ptr64     void " in text
    assert text[-1] == "   +0x058 Future           : [2] Uint4B"
    x64.target.write(X64_AAAA + 0x40, struct.pack("<QQ", X64_AAAA + 0x40, 0xFFFFFA8000C41840))
    value = call(x64, "dt nt!_GENERAL_LOOKASIDE_POOL fffffa8000c41000").splitlines()
    assert value[0] == "   +0x000 ListHead         : _SLIST_HEADER"
    assert value[2] == "   +0x010 Depth            : 0"
    assert value[-5] == ("   +0x040 ListEntry        : "
                         "_LIST_ENTRY [ 0xfffffa80`00c41040 - 0xfffffa80`00c41840 ]")


def test_pool_type_enum(x86: FakeSession) -> None:
    text = call(x86, "dt nt!_POOL_TYPE").splitlines()
    assert text[:2] == ["   NonPagedPool = 0n0", "   PagedPool = 0n1"]
    assert text[-1] == "   NonPagedPoolCacheAlignedMustSSession = 0n38"


# -- errors -----------------------------------------------------------------------------------
def test_unknown_types(x86: FakeSession) -> None:
    for name in ("nt!_FOO", "_FOO", "hal!_POOL_HEADER"):
        with pytest.raises(DebuggerError) as err:
            call(x86, f"dt {name}")
        assert err.value.message == f"Symbol {name} not found."


def test_unreadable_instance(x86: FakeSession) -> None:
    text = call(x86, "dt nt!_POOL_HEADER 1000").splitlines()
    assert text[0] == "   +0x000 PreviousSize     : ??"
    assert text[-1] == "Memory read error 00001000"


def test_bad_address_and_result_object(x86: FakeSession) -> None:
    with pytest.raises(DebuggerError, match="^Couldn't resolve error at 'foo'$"):
        call(x86, "dt nt!_POOL_HEADER foo")
    result = lookup("dt").func(x86, "nt!_POOL_HEADER 85246428")
    assert isinstance(result, TypeDump)
    assert (result.members[2].name, result.members[2].value) == ("BlockSize", "0y001000000 (0x40)")
    assert call(x86, "dt") == "dt [nt!]Type [Address]"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=30),
                 st.lists(st.sampled_from(["nt!", "_POOL_HEADER", "_POOL_DESCRIPTOR", "_pool_type",
                                           " ", "85246428", "poi", "(", ")", "-8", "_FOO", "!"]),
                          max_size=6).map("".join)))
def test_fuzz_dt_raises_only_debugger_errors(args: str) -> None:
    for session in (_FUZZ_X86, _FUZZ_X64):
        try:
            call(session, f"dt {args}")
        except DebuggerError:
            pass


_FUZZ_X86 = FakeSession(build_target(X86, memory=tuple(X86_HEADERS.items())))
_FUZZ_X64 = FakeSession(build_target(X64))


# -- options, fields and the structures besides the pool's ----------------------------------------
def test_verbose_type_dump(x86: FakeSession) -> None:
    assert call(x86, "dt -v nt!_LIST_ENTRY") == lines("""
        struct _LIST_ENTRY, 2 elements, 0x8 bytes
           +0x000 Flink            : Ptr32 to struct _LIST_ENTRY, 2 elements, 0x8 bytes
           +0x004 Blink            : Ptr32 to struct _LIST_ENTRY, 2 elements, 0x8 bytes
        """)
    text = call(x86, "dt -v nt!_POOL_HEADER").splitlines()
    assert text[:2] == ["struct _POOL_HEADER, 8 elements, 0x8 bytes",
                        "   +0x000 PreviousSize     : Bitfield Pos 0, 9 Bits"]
    text = call(x86, "dt -v nt!_POOL_DESCRIPTOR").splitlines()
    assert text[1] == "   +0x000 PoolType         : Enum _POOL_TYPE,  15 total enums"
    assert text[-1] == ("   +0x140 ListHeads        : [512] struct _LIST_ENTRY, 2 elements, "
                        "0x8 bytes")


def test_recursion_expands_embedded_structures(x86: FakeSession, x64: FakeSession) -> None:
    assert call(x86, "dt -r nt!_POOL_DESCRIPTOR").splitlines()[-3:] == [
        "   +0x140 ListHeads        : [512] _LIST_ENTRY",
        "      +0x000 Flink            : Ptr32 _LIST_ENTRY",
        "      +0x004 Blink            : Ptr32 _LIST_ENTRY"]
    assert call(x86, "dt -r1 nt!_POOL_DESCRIPTOR") == call(x86, "dt -b nt!_POOL_DESCRIPTOR")
    x64.target.write(X64_AAAA + 0x40, struct.pack("<QQ", X64_AAAA + 0x40, 0xFFFFFA8000C41840))
    text = call(x64, "dt -r1 nt!_GENERAL_LOOKASIDE_POOL fffffa8000c41000").splitlines()
    at = text.index("   +0x040 ListEntry        : "
                    "_LIST_ENTRY [ 0xfffffa80`00c41040 - 0xfffffa80`00c41840 ]")
    assert text[at + 1:at + 3] == ["      +0x000 Flink            : 0xfffffa80`00c41040 _LIST_ENTRY",
                                   "      +0x008 Blink            : 0xfffffa80`00c41840 _LIST_ENTRY"]


def test_fields_select_members(x86: FakeSession) -> None:
    assert call(x86, "dt nt!_POOL_HEADER 85246428 PoolTag BlockSize") == members("""
        +0x002 BlockSize        : 0y001000000 (0x40)
        +0x004 PoolTag          : 0x6b636148
        """)
    assert call(x86, "dt nt!_POOL_HEADER Pool*") == members("""
        +0x000 PoolIndex        : Pos 9, 7 Bits
        +0x002 PoolType         : Pos 9, 7 Bits
        +0x004 PoolTag          : Uint4B
        +0x006 PoolTagHash      : Uint2B
        """)
    assert call(x86, "dt nt!_POOL_HEADER 85246428 pooltag") == members("""
        +0x004 PoolTag          : 0x6b636148
        """)


def test_unicode_string_and_context(x64: FakeSession) -> None:
    text = "\\Driver\\myfault".encode("utf-16-le")
    x64.target.write(X64_AAAA, struct.pack("<HHIQ", len(text), len(text) + 2, 0,
                                           X64_AAAA + 0x20) + bytes(16) + text)
    assert call(x64, "dt nt!_UNICODE_STRING fffffa8000c41000").splitlines() == [
        ' "\\Driver\\myfault"',
        "   +0x000 Length           : 0x1e",
        "   +0x002 MaximumLength    : 0x20",
        '   +0x008 Buffer           : 0xfffffa80`00c41020  "\\Driver\\myfault"']
    context = call(x64, "dt nt!_CONTEXT").splitlines()
    assert "   +0x098 Rsp              : Uint8B" in context
    assert "   +0x0f8 Rip              : Uint8B" in context
    assert "   +0x100 FltSave          : _XSAVE_FORMAT" in context


@pytest.mark.parametrize("line,message", [
    ("dt -x nt!_POOL_HEADER", "Unknown dt option -x (kdsim's dt takes -v, -r[N], -b)"),
    ("dt -r0 nt!_POOL_HEADER", "Unknown dt option -r0 (kdsim's dt takes -v, -r[N], -b)"),
    ("dt nt!_POOL_HEADER foo PoolTag", "Couldn't resolve error at 'foo'"),
])
def test_option_errors(x86: FakeSession, line: str, message: str) -> None:
    with pytest.raises(DebuggerError) as err:
        call(x86, line)
    assert err.value.message == message
    assert call(x86, "dt -v") == "dt [nt!]Type [Address]"


def test_object_structures_show_their_arrays_and_names(booted) -> None:
    from commands.session import Session
    from commands.testing import run
    session = Session(booted("x86").target())
    assert run(session, "dt nt!_EPROCESS poi(nt!PsInitialSystemProcess) ImageFileName "
                        "ProcessQuotaUsage") == (
        "   +0x0c0 ProcessQuotaUsage : [2] Uint4B\n"
        '   +0x16c ImageFileName    : [15]  "System"\n')
    assert run(session, "dt nt!_EPROCESS ImageFileName") == (
        "   +0x16c ImageFileName    : [15] UChar\n")
