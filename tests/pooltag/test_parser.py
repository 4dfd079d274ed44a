"""The pooltag.txt parser, on the real file and on crafted inputs."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from pooltag.parser import PoolTagEntry, decode, parse_bytes, parse_file, parse_text


@pytest.fixture(scope="module")
def real(pooltag_txt):
    return parse_file(pooltag_txt)


def by_tag(parsed, tag: str) -> PoolTagEntry:
    return next(e for e in parsed.entries if e.tag == tag)


# --- the real file -------------------------------------------------------------------------

def test_real_file_shape(real, pooltag_txt):
    raw = pooltag_txt.read_bytes()
    assert raw.endswith(b"\r\n\x1a")                 # what the parser has to cope with
    assert real.encoding == "ascii"
    assert len(real.entries) == 4698
    assert len({e.tag for e in real.entries}) == 4639
    assert sum(e.is_wildcard for e in real.entries) == 101
    assert real.entries[0] == PoolTagEntry("@GMM", None, "(Intel video driver) Memory manager", 18)
    assert real.entries[-1] == PoolTagEntry(
        "FCwr", "dxgkrnl!CFlipWaitedConsumerReturn::operator new",
        "FLIPCONTENT_WAITEDCONSUMERRETURN", 5098)


def test_real_file_no_line_end_or_eof_byte_leaks(real):
    for e in real.entries:
        assert "\r" not in e.description and "\x1a" not in e.description
        assert e.description == e.description.strip()
        assert len(e.tag) == 4


def test_real_file_comments_skipped(real):
    lines = {e.line for e in real.entries}
    assert not lines & set(range(1, 17))              # `//` copyright and `rem` header
    assert not lines & {704, 1701, 2129, 2210, 2854, 2903}   # upper-case `REM` lines
    assert by_tag(real, "ReMo").line == 2923          # a tag that starts with "Re", not a comment


def test_real_file_known_lines(real):
    assert by_tag(real, "Irp ") == PoolTagEntry("Irp ", None, "Io, IRP packets", 1183)
    assert by_tag(real, "Thre") == PoolTagEntry("Thre", "nt!ps", "Thread objects", 3634)
    assert by_tag(real, "MmCm").description == "Calls made to MmAllocateContiguousMemory"
    assert by_tag(real, "CIcr").binary == "ci.dll"
    # description indentation is dropped, inner runs of blanks are kept
    assert by_tag(real, "AfdE").description == "Afd endpoint structure"
    assert by_tag(real, "NtxF").description == (
        "FCB_NONPAGED                      NtfsFcbNonpagedDataLookasideList")
    # ` - ` inside the description, blanks inside the binary
    assert by_tag(real, "NDcw").description == "NDIS_TAG_PCW - NDIS Performance Counters"
    assert by_tag(real, "smCR").binary == "nt!store or rdyboost.sys"
    assert by_tag(real, "Usac").binary == "win32k!_CreateAcceleratorTable"


def test_real_file_irregular_lines(real):
    assert by_tag(real, "Tun4").description == "Tunnel cache allocation for long file name"
    assert by_tag(real, "I4e ") == PoolTagEntry("I4e ", "tcpip.sys", "IPv4 Echo data", 1119)
    assert by_tag(real, "eMyS").binary == "win32k!CInputSystemMetrics::operator new"
    assert by_tag(real, "Dh 0").description == "DirectDraw/3D default object"
    assert by_tag(real, "ATmp") == PoolTagEntry("ATmp", None, "AppTag mount point", 138)


def test_real_file_wildcards(real):
    wild = {e.tag: e for e in real.entries if e.is_wildcard}
    assert wild["Afd?"].description == "AFD objects"
    assert wild["CM??"].binary == "nt!cm"
    assert wild["Bu* "].description == "burneng.sys from adaptec"
    assert wild["Gh?5"].description == "GDITAG_HMGR_SURF_TYPE"
    assert "Aml*" in wild and "G???" in wild


def test_real_file_warnings(real):
    got = [(w.line, w.reason) for w in real.warnings]
    assert got == [(n, "no binary field") for n in range(138, 146)] + [
        (887, "not a 'TAG - binary - description' line"),
        (2681, "not a 'TAG - binary - description' line"),
    ]
    assert real.warnings[-1].text == "QUIC Allocation tags are Qc00 through QcFF"


# --- crafted inputs ------------------------------------------------------------------------

def test_line_ends_and_eof_byte():
    body = ["rem header", "", "Abcd - a.sys - first", "Irp  - <unknown>    - Io, IRP packets"]
    for end in ("\r\n", "\n", "\r"):
        data = (end.join(body) + end).encode() + b"\x1a"
        parsed = parse_bytes(data)
        assert [(e.tag, e.binary, e.description, e.line) for e in parsed.entries] == [
            ("Abcd", "a.sys", "first", 3), ("Irp ", None, "Io, IRP packets", 4)]
        assert parsed.warnings == ()


def test_nothing_after_dos_eof_counts():
    parsed = parse_bytes(b"Abcd - a.sys - x\r\n\x1aEfgh - b.sys - y\r\n")
    assert [e.tag for e in parsed.entries] == ["Abcd"]


def test_comments_and_blanks():
    text = "//\n// Copyright\nrem\nREM Something - with - dashes\nRem  tab\n   \n\tAbcd - x - y\n"
    parsed = parse_text(text)
    assert parsed.entries == ()
    assert [w.line for w in parsed.warnings] == [7]      # indented line: no tag at column 1


def test_short_tags_are_padded_and_case_kept():
    parsed = parse_text("G    - <unknown>    -     Gdi Generic allocations\nIo - nt!io - io\n")
    assert [(e.tag, e.description) for e in parsed.entries] == [
        ("G   ", "Gdi Generic allocations"), ("Io  ", "io")]
    assert parse_text("irp  - x - y").entries[0].tag == "irp "


def test_unknown_binary_any_case():
    assert parse_text("Abcd - <Unknown> - y").entries[0].binary is None


def test_malformed_lines_become_warnings():
    text = "\n".join([
        "Abcd - a.sys - good",
        "no separator at all",
        "TooLong - a.sys - tag has 7 chars",
        "Ab*c - a.sys - star inside the tag",
        "Efgh - b.sys - also good",
    ])
    parsed = parse_text(text)
    assert [e.tag for e in parsed.entries] == ["Abcd", "Efgh"]
    assert [(w.line, w.reason) for w in parsed.warnings] == [
        (2, "not a 'TAG - binary - description' line"),
        (3, "tag is not 1 to 4 bytes"),
        (4, "'*' must end the tag"),
    ]
    assert str(parsed.warnings[0]) == "line 2: not a 'TAG - binary - description' line: " \
                                      "'no separator at all'"


def test_missing_space_after_second_dash():
    entry = parse_text("CMAl - nt!cm        -internal registry memory allocator pool tag").entries[0]
    assert (entry.binary, entry.description) == ("nt!cm", "internal registry memory allocator pool tag")


def test_encodings():
    # ANSI (cp1252) description, latin-1-only byte, UTF-8, UTF-16 with BOM
    assert decode("Abcd - a - caf\u00e9 \u20ac".encode("cp1252")) == ("Abcd - a - caf\u00e9 \u20ac", "cp1252")
    assert decode(b"Abcd - a - \x81")[1] == "latin-1"
    assert decode("Abcd - a - caf\u00e9".encode("utf-8"))[1] == "utf-8"
    assert decode("\ufeffAbcd - a - x".encode("utf-8")) == ("Abcd - a - x", "utf-8")
    parsed = parse_bytes("Abcd - a.sys - caf\u00e9\r\n".encode("utf-16"))
    assert (parsed.encoding, parsed.entries[0].description) == ("utf-16", "caf\u00e9")


def test_tag_characters_are_bytes():
    # a cp1252 file's tag byte 0x80 is the character U+0080 in the tag (its byte value) ...
    parsed = parse_bytes(b"Ab\x80d - a.sys - euro in the tag")
    assert parsed.entries[0].tag == "Ab\x80d"
    # ... and a UTF-8 multi-byte character makes the tag longer than 4 bytes
    parsed = parse_bytes("Abc\u00e9 - a.sys - x".encode("utf-8"))
    assert parsed.entries == () and parsed.warnings[0].reason == "tag is not 1 to 4 bytes"


def test_parse_file_missing_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        parse_file(tmp_path / "absent.txt")


@given(st.binary(max_size=400))
def test_parser_never_raises(data):
    parsed = parse_bytes(data)
    for e in parsed.entries:
        assert len(e.tag) == 4 and e.description == e.description.strip()
