"""Memory display and edit commands: golden text from the real dumps in formats.md 1.6.

Each real sample is replayed by writing the bytes it shows at the address it shows, then
checking the command prints the sample back character for character."""
from __future__ import annotations

import io
import json
import signal
import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

import commands.core.memory as memory
from commands.core.memory import MemoryDump, parse_range
from commands.errors import DebuggerError, ParseError
from commands.session import Session
from commands.dispatch import execute
from commands.testing import run
from kdsim.arch import X64, X86
from tests.support import FakeSession, build_target, call, lines


def sample_memory(golden: str) -> tuple[int, bytes]:
    """The start address and bytes a db/dd/dq sample shows (little-endian elements)."""
    data = bytearray()
    start = None
    for line in golden.splitlines():
        address, _, rest = line.partition("  ")
        start = int(address.replace("`", ""), 16) if start is None else start
        hex_part = rest[:47] if "-" in rest[:48] else rest
        for cell in hex_part.replace("-", " ").split():
            digits = cell.replace("`", "")
            data += int(digits, 16).to_bytes(len(digits) // 2, "little")
    assert start is not None
    return start, bytes(data)


DB_X64 = lines("""
    ffffac88`3ca17920  00 00 00 00 00 00 00 00-70 83 2e 38 88 ac ff ff  ........p..8....
    ffffac88`3ca17930  00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00  ................
    ffffac88`3ca17940  40 8c 8f 44 88 ac ff ff-00 00 00 00 00 00 00 00  @..D............
    ffffac88`3ca17950  00 00 00 00 00 00 00 00-d0 83 2e 38 88 ac ff ff  ...........8....
    ffffac88`3ca17960  00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00  ................
    ffffac88`3ca17970  e0 85 2e 38 88 ac ff ff-00 00 00 00 00 00 00 00  ...8............
    ffffac88`3ca17980  00 00 00 00 00 00 00 00-90 84 2e 38 88 ac ff ff  ...........8....
    ffffac88`3ca17990  00 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00  ................
    """)
DQ_X64 = lines("""
    fffff901`400d0000  00000000`2e0502fa 00000000`00000000
    fffff901`400d0010  00000000`00000000 00000000`00000000
    fffff901`400d0020  00000000`2e0502fa 00000000`00000000
    fffff901`400d0030  00000000`00000000 00000001`00000e30
    fffff901`400d0040  00000000`00000e30 fffff901`400d0260
    fffff901`400d0050  fffff901`400d0260 00001d78`00000e30
    fffff901`400d0060  00010000`00000003 00000000`00000000
    fffff901`400d0070  00000000`04800200 00000000`00000000
    """)
DB_UNMAPPED_X64 = "\n".join(
    f"ffffffff`{0x90 + 16 * i:08x}  ?? ?? ?? ?? ?? ?? ?? ??-?? ?? ?? ?? ?? ?? ?? ??  "
    "????????????????" for i in range(8))
DD_X86 = lines("""
    8627e780  04080040 ee657645 00000000 00000040
    8627e790  00000000 00000000 00000001 00000001
    8627e7a0  00000000 0008000c 8637f940 00000000
    """)
NT_X64 = 0xFFFFF8046F400000


@pytest.fixture
def x64() -> FakeSession:
    return FakeSession(build_target(
        X64,
        modules=(("nt", "ntoskrnl.exe", NT_X64, 0x1000000,
                  {"ZwWriteFile": 0xFFFFF8046F42E550, "ExFreePoolWithTag": 0xFFFFF8046FAAD110}),),
        memory=(sample_memory(DB_X64), sample_memory(DQ_X64),
                (0xFFFFF804789A2030, (0xFFFFF8046F42E550).to_bytes(8, "little")),
                (0xFFFFF804789A2060, (0xFFFFF8046FAAD110).to_bytes(8, "little")))))


@pytest.fixture
def x86() -> FakeSession:
    return FakeSession(build_target(
        X86,
        modules=(("nt", "ntoskrnl.exe", 0x82A0F000, 0x400000,
                  {"PoolHitTag": 0x82B37DF4, "ExFreePoolWithTag": 0x82B5A000}),),
        memory=(sample_memory(DD_X86), (0x820F2BA4, b"Abc "), (0x82B37DF4, bytes(4)),
                (0x8B000FF8, bytes(range(8))), (0x8B002000, bytes(16))),
        noaccess=(0x8B003000,)))


# -- real samples -----------------------------------------------------------------------------
def test_db_x64_sample_and_expression_address(x64: FakeSession) -> None:
    assert call(x64, "db ffffac983ca17910-(0xaaaaaaaa*0x18)") == DB_X64


def test_dq_x64_sample(x64: FakeSession) -> None:
    assert call(x64, "dq fffff901400d0000") == DQ_X64


def test_db_unmapped_x64_sample(x64: FakeSession) -> None:
    assert call(x64, "db ffffffff00000090") == DB_UNMAPPED_X64


def test_dps_x64_sample(x64: FakeSession) -> None:
    assert call(x64, "dps fffff804`789a2030 l1") == \
        "fffff804`789a2030  fffff804`6f42e550 nt!ZwWriteFile"
    assert call(x64, "dps fffff804`789a2060 l1") == \
        "fffff804`789a2060  fffff804`6faad110 nt!ExFreePoolWithTag"


def test_dd_x86_sample(x86: FakeSession) -> None:
    assert call(x86, "dd 8627e780 Lc") == DD_X86
    assert call(x86, "dd 8627e780").splitlines()[:3] == DD_X86.splitlines()
    assert len(call(x86, "dd 8627e780").splitlines()) == 8          # 32 dwords by default


def test_ed_then_dd_as_in_the_poolhittag_write_up(x86: FakeSession) -> None:
    assert call(x86, "ed nt!PoolHitTag 'dcba'") == ""
    assert call(x86, "dd nt!PoolHitTag l1") == "82b37df4  64636261"


def test_db_short_line_keeps_the_character_column(x86: FakeSession) -> None:
    # docs sample `db nt!poolhittag L4` (the docs copy lost the padding)
    assert call(x86, "db 820f2ba4 L4") == "820f2ba4  41 62 63 20" + " " * 36 + "  Abc "


# -- layouts ----------------------------------------------------------------------------------
def test_dw_dc_dp_layouts(x86: FakeSession, x64: FakeSession) -> None:
    assert call(x86, "dw 8627e780 L9") == lines("""
        8627e780  0040 0408 7645 ee65 0000 0000 0040 0000
        8627e790  0000
        """)
    assert call(x86, "dc 8627e780 L6") == lines("""
        8627e780  04080040 ee657645 00000000 00000040  @...Eve.....@...
        8627e790  00000000 00000000                    ........
        """)
    assert call(x86, "dp 8627e780 L2") == "8627e780  04080040 ee657645"
    assert call(x64, "dp fffff901400d0040 L2") == \
        "fffff901`400d0040  00000000`00000e30 fffff901`400d0260"
    assert call(x86, "dq 8627e780 L1") == "8627e780  ee657645`04080040"


def test_dps_x86_one_pointer_per_line_with_symbols(x86: FakeSession) -> None:
    call(x86, "ed 8627e7a0 82b5a010 82b37df4")
    assert call(x86, "dds 8627e79c L3") == lines("""
        8627e79c  00000001
        8627e7a0  82b5a010 nt!ExFreePoolWithTag+0x10
        8627e7a4  82b37df4 nt!PoolHitTag
        """)
    assert call(x86, "dps 8627e7a4 L1") == "8627e7a4  82b37df4 nt!PoolHitTag"


def test_unreadable_elements_across_a_page_end(x86: FakeSession) -> None:
    assert call(x86, "db 8b000ff8 L10") == \
        "8b000ff8  00 01 02 03 04 05 06 07-?? ?? ?? ?? ?? ?? ?? ??  ........????????"
    assert call(x86, "dd 8b000ff8 L4") == "8b000ff8  03020100 07060504 ???????? ????????"
    assert call(x86, "dc 8b000ffc L2") == \
        "8b000ffc  07060504 ????????                    ....????"
    assert call(x86, "dq 8b000ff8 L2") == "8b000ff8  07060504`03020100 ????????`????????"
    assert call(x86, "dw 8b002ffe L2") == "8b002ffe  0000 ????"   # a guard page follows


# -- ranges -----------------------------------------------------------------------------------
def test_range_forms(x86: FakeSession) -> None:
    assert call(x86, "dd 8627e780 8627e78b") == "8627e780  04080040 ee657645 00000000"
    assert call(x86, "db 8627e784 8627e787").startswith("8627e784  45 76 65 ee  ")
    assert call(x86, "dd 8627e790 L-2") == "8627e788  00000000 00000040"
    assert call(x86, "dd 8627e780 L0n2") == "8627e780  04080040 ee657645"
    assert call(x86, "dd 8627e780 l 1") == "8627e780  04080040"
    assert call(x86, "dd 8627e780 L0") == ""


def test_range_errors(x86: FakeSession) -> None:
    with pytest.raises(ParseError) as err:
        call(x86, "db 1000 L10000001")
    assert (err.value.kind, err.value.column) == ("Range", 5)
    with pytest.raises(ParseError) as err:
        call(x86, "db 2000 1000")
    assert err.value.kind == "Range"
    with pytest.raises(ParseError) as err:
        call(x86, "dd 8627e780 L2 x")
    assert (err.value.kind, err.value.column) == ("Extra character", 12)
    assert parse_range(x86, "1000 L?10000001", 1) == (0x1000, 0x10000001)   # L? lifts the limit
    with pytest.raises(DebuggerError, match="^Couldn't resolve error at 'Foo '$"):
        call(x86, "dd Foo L1")


def test_display_continues_where_the_last_one_stopped(x86: FakeSession) -> None:
    with pytest.raises(DebuggerError, match="^Numeric expression missing from '<EOL>'$"):
        call(x86, "dd")
    call(x86, "dd 8627e780 L2")
    assert call(x86, "dd").splitlines()[0] == "8627e788  00000000 00000040 00000000 00000000"
    call(x86, "db 8627e780 L4")
    assert call(x86, "d").splitlines()[0].startswith("8627e784  45 76 65 ee")
    assert call(x86, "d 8627e780 L1") == "8627e780  40" + " " * 45 + "  @"


def test_dump_result_is_data(x86: FakeSession) -> None:
    from commands.registry import lookup
    result = lookup("dd").func(x86, "8627e780 L1")
    assert isinstance(result, MemoryDump)
    assert (result.format, result.unit, result.rows[0].values) == ("dd", 4, [0x04080040])


def test_a_range_wraps_at_the_top_of_the_address_space() -> None:
    session = FakeSession(build_target(X86, memory=((0, bytes(range(8))),)))
    assert call(session, "dd fffffff8 L4") == "fffffff8  ???????? ???????? 03020100 07060504"
    assert call(session, "db ffffffff L2").startswith("ffffffff  ?? 00  ")


# -- streaming --------------------------------------------------------------------------------
class Sink(io.TextIOBase):
    """An output that keeps only what a test asks for: the line count and the last text."""

    def __init__(self) -> None:
        self.lines = 0
        self.last = ""

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.last = text
        return len(text)


def _pool_session(booted, sink: io.TextIOBase) -> Session:
    return Session(booted("x86").target(), stdout=sink)


def test_a_long_range_streams_in_flat_memory(booted) -> None:
    """0x20000 dwords (32,768 rows) built whole took 12 MB; streamed, about half a MB."""
    sink = Sink()
    session = _pool_session(booted, sink)
    run(session, "dd 84400000 L1")                    # commands loaded before measuring
    session.stdout = sink
    tracemalloc.start()
    try:
        assert execute(session, "dd 84400000 L?20000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sink.lines == 0x20000 // 4
    assert peak < 2 << 20, f"{peak / 2**20:.1f} MB"


def test_range_limit_and_l_question_mark(booted) -> None:
    session = _pool_session(booted, io.StringIO())
    pad = " " * (len(session.prompt) + len("db 0 "))       # the caret under the range
    assert run(session, "db 0 L10000001") == f"{pad}^ Range error in 'db 0 L10000001'\n"
    assert run(session, "dd 0 10000000") == f"{pad}^ Range error in 'dd 0 10000000'\n"
    assert run(session, "dd 0 L4000001") == f"{pad}^ Range error in 'dd 0 L4000001'\n"
    run(session, ".settings set max_output_lines=3")
    out = run(session, "db 0 L?ffffffffffffffff")           # accepted, and streams at once
    assert out.splitlines() == [
        f"{a:08x}  ?? ?? ?? ?? ?? ?? ?? ??-?? ?? ?? ?? ?? ?? ?? ??  ????????????????"
        for a in (0, 0x10, 0x20)] + [
        "Output stopped after 3 lines (max_output_lines; "
        ".settings set max_output_lines=0 removes the limit)"]
    assert run(session, "db 0 L10000000").count("\n") == 4   # 256 MB exactly is allowed


def test_unmapped_pages_in_a_long_range_print_question_marks(booted) -> None:
    session = _pool_session(booted, io.StringIO())
    out = run(session, "dd 0 L?10000").splitlines()     # 256 KB of the unmapped first pages
    assert len(out) == 0x10000 // 4
    assert set(line[8:] for line in out) == {"  ???????? ???????? ???????? ????????"}


class InterruptingSink(Sink):
    """Ctrl+C, as the terminal delivers it (SIGINT), once `after` lines were written."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.after and self.lines >= self.after:
            self.after = 0
            signal.raise_signal(signal.SIGINT)
        return n


def test_ctrl_c_stops_a_streaming_dump_and_the_session_goes_on(booted) -> None:
    sink = InterruptingSink(after=1000)
    session = _pool_session(booted, sink)
    assert not execute(session, "dd 84400000 L?1000000; .echo not reached")
    assert sink.last == "^C\n"
    assert sink.lines < 1000 + 1 + 2 * memory.BLOCK_BYTES // 16   # stopped within a write
    session.stdout = io.StringIO()
    assert execute(session, "dd 84400000 L1")
    assert session.stdout.getvalue().startswith("84400000  ")


def test_json_of_a_streamed_dump_is_one_document(booted) -> None:
    session = _pool_session(booted, io.StringIO())
    text = run(session, "dd 84400000 L?400")
    run(session, ".output json")
    data = json.loads(run(session, "dd 84400000 L?400"))
    assert (data["format"], data["unit"], len(data["rows"])) == ("dd", 4, 0x100)
    first = data["rows"][0]
    assert first["address"] == 0x84400000 and first["symbol"] is None
    assert " ".join(f"{v:08x}" for v in first["values"]) == text.splitlines()[0][10:]


# -- edit -------------------------------------------------------------------------------------
def test_edit_widths(x86: FakeSession) -> None:
    call(x86, "eb 8627e780 1 2 3")
    call(x86, "ew 8627e784 0x1234 ffff")
    call(x86, "eq 8627e788 1`00000002")
    assert call(x86, "db 8627e780 L10").startswith(
        "8627e780  01 02 03 04 34 12 ff ff-02 00 00 00 01 00 00 00")
    call(x86, "eb 8627e780 1ff")                               # only the low byte is written
    assert call(x86, "db 8627e780 L1").startswith("8627e780  ff")
    call(x86, "eb 8627e780 5 -1 7")                            # `5 -1` is one expression
    assert call(x86, "db 8627e780 L3").startswith("8627e780  04 07 03")


def test_edit_errors(x86: FakeSession, x64: FakeSession) -> None:
    with pytest.raises(DebuggerError, match="^Memory access error at 'fffff800`00001000'$"):
        call(x64, "eb fffff800`00001000 90")
    with pytest.raises(DebuggerError, match="^Memory access error at '8b001000'$"):
        call(x86, "ed 8b000ffc 11111111 22222222")
    assert call(x86, "dd 8b000ffc L1") == "8b000ffc  11111111"   # the first value landed
    with pytest.raises(DebuggerError, match="^Numeric expression missing from '<EOL>'$"):
        call(x86, "ed 8627e780")


# -- fuzz -------------------------------------------------------------------------------------
_ARGS = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="?"), max_size=30),
    st.lists(st.sampled_from(["8627e780", "L", "l", "L-", "2", "0n3", " ", "nt!PoolHitTag",
                              "-", "+", "(", ")", "'ab'", "poi", "8b000ffc", "x", "`"]),
             max_size=8).map("".join))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(memory.FORMATS) + ["d", "eb", "ew", "ed", "eq"]), _ARGS)
def test_fuzz_memory_commands_raise_only_debugger_errors(name: str, args: str) -> None:
    limit, memory.RANGE_LIMIT = memory.RANGE_LIMIT, 0x400         # keep dumps small
    try:
        call(_FUZZ, f"{name} {args}")
    except DebuggerError:
        pass
    finally:
        memory.RANGE_LIMIT = limit


_FUZZ = FakeSession(build_target(
    X86, modules=(("nt", "ntoskrnl.exe", 0x82A0F000, 0x400000, {"PoolHitTag": 0x82B37DF4}),),
    memory=((0x8627E780, bytes(64)), (0x8B000FF8, bytes(8)))))
