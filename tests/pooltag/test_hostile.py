"""A pooltag.txt from a stranger: bounded time and memory, every encoding the real file ships
in, and paths that are not a readable regular file refused in one line."""
from __future__ import annotations

import codecs
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import pooltag.db
from commands.session import Session
from commands.testing import run
from tests.support import POOLTAG_TXT
from pooltag import ENV_VAR, TagDatabase, check_file
from pooltag.parser import (MAX_FILE_BYTES, MAX_LINE_CHARS, decode, parse_bytes, parse_text,
                            split_fields)

REAL = POOLTAG_TXT
NO_ENV: dict[str, str] = {}

# The grammar split_fields implements, as the parser once wrote it with backtracking regular
# expressions: the specification the one-pass splitter is checked against.
_THREE = re.compile(r"(?P<tag>\S.*?)\s*-\s+(?P<binary>\S.*?)\s+-\s*(?P<desc>.*)")
_TWO = re.compile(r"(?P<tag>\S.*?)\s*-\s+(?P<desc>.*)")


def _by_regex(line: str) -> tuple[str, str | None, str] | None:
    match = _THREE.fullmatch(line)
    if match:
        return match["tag"].rstrip(), match["binary"].strip(), match["desc"].strip()
    match = _TWO.fullmatch(line)
    if match:
        return match["tag"].rstrip(), None, match["desc"].strip()
    return None


@settings(max_examples=1500)
@given(st.text(alphabet="A-b \t\x0b\x1c\x85\xa0", max_size=16))
def test_split_fields_is_the_regex_grammar(line):
    line = line.rstrip()
    assert split_fields(line) == _by_regex(line)


# --- time ----------------------------------------------------------------------------------

HOSTILE_LINES = {
    "blanks after the first dash": "Ab -" + " " * 120_000 + "x",
    "dash blank pairs": "Ab " + "- " * 60_000 + "x",
    "one long word": "A" * 120_000,
    "blank dash pairs": "Ab" + " -" * 60_000 + "x",
}


@pytest.mark.parametrize("name", HOSTILE_LINES)
def test_a_120kb_line_is_skipped_at_once(name):
    text = "Abcd - a.sys - before\r\n" + HOSTILE_LINES[name] + "\r\nEfgh - b.sys - after\r\n"
    start = time.perf_counter()
    parsed = parse_text(text)
    assert time.perf_counter() - start < 0.5
    assert [e.tag for e in parsed.entries] == ["Abcd", "Efgh"]
    (warning,) = parsed.warnings
    assert (warning.line, warning.reason) == (2, f"line longer than {MAX_LINE_CHARS} characters")
    assert len(warning.text) <= 80


def test_lines_up_to_the_limit_still_parse():
    line = "Abcd - a.sys - " + "d" * (MAX_LINE_CHARS - 15)
    assert len(line) == MAX_LINE_CHARS
    assert parse_text(line).entries[0].description == "d" * (MAX_LINE_CHARS - 15)


def test_hostile_splitting_is_linear():
    """Lines just under the limit, many of them: the worst shapes for the old expressions."""
    half = MAX_LINE_CHARS // 2
    lines = ["Ab -" + " " * (MAX_LINE_CHARS - 5) + "x", "Ab " + "- " * (half - 2),
             "A - b" + " " * (MAX_LINE_CHARS - 7) + "-"]
    text = "\n".join(lines * (MAX_FILE_BYTES // (3 * MAX_LINE_CHARS)))
    start = time.perf_counter()
    parse_text(text)
    assert time.perf_counter() - start < 1.0


def test_largest_file_of_wildcards_loads_and_looks_up_fast(tmp_path):
    """A file at the size limit, all wildcard lines: the index is dictionaries, not a regular
    expression per line, so building it and looking up stay cheap."""
    line = "%s?? - a.sys - wildcard %d\n"
    body = "".join(line % (chr(0x41 + i % 26) + chr(0x41 + i // 26 % 26), i)
                   for i in range(MAX_FILE_BYTES // 30))
    path = tmp_path / "pooltag.txt"
    path.write_text(body)
    assert path.stat().st_size <= MAX_FILE_BYTES
    start = time.perf_counter()
    db = TagDatabase(path, environ=NO_ENV)
    assert db.error is None
    assert db.lookup("ABxy").description == "wildcard 26"
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    for tag in ("Leak", "Irp ", "ZZ00", "zzzz"):
        db.lookup(tag)
    assert time.perf_counter() - start < 0.01


def _irp_block(session: Session) -> str:
    """The header address of a small Irp block on the default machine."""
    return next(line[1:].split()[0] for line in run(session, "!poolfind Irp").splitlines()
                if line.startswith("*") and "large" not in line)


def _pool_time(session: Session, line: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run(session, line)
        best = min(best, time.perf_counter() - start)
    return best


def test_pool_after_a_hostile_file_is_as_fast_as_with_the_builtin_list(tmp_path, session):
    address = _irp_block(session)
    builtin = _pool_time(session, f"!pool {address}")
    path = tmp_path / "pooltag.txt"
    path.write_bytes(b"Irp  - x.sys - mine\r\n" + b"Ab -" + b" " * 120_000 + b"x\r\n")
    start = time.perf_counter()
    assert run(session, f".settings set pooltag_file={path}") == ""
    assert time.perf_counter() - start < 1.0
    out = run(session, f"!pool {address}")
    assert "Pooltag Irp  : mine, Binary : x.sys" in out
    assert _pool_time(session, f"!pool {address}") < builtin * 1.5 + 0.01


# --- encodings -----------------------------------------------------------------------------

LINE = "Abcd - a.sys - caf\u00e9\r\nIrp  - <unknown> - Io, IRP packets\r\n"


@pytest.mark.parametrize("data, encoding", [
    (LINE.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + LINE.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF16_LE + LINE.encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + LINE.encode("utf-16-be"), "utf-16"),
    (LINE.encode("cp1252"), "cp1252"),
    (LINE.encode("latin-1") + b"\x81", "latin-1"),
])
def test_every_encoding_the_file_ships_in(data, encoding):
    parsed = parse_bytes(data)
    assert parsed.encoding == encoding
    assert [(e.tag, e.binary, e.description) for e in parsed.entries] == [
        ("Abcd", "a.sys", "caf\u00e9"), ("Irp ", None, "Io, IRP packets")]


@pytest.mark.parametrize("bom, codec", [(codecs.BOM_UTF16_LE, "utf-16-le"),
                                        (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_odd_length_utf16_does_not_raise(bom, codec):
    parsed = parse_bytes(bom + "Abcd - a.sys - x\r\nEfgh - b.sys - y".encode(codec) + b"\x00")
    assert [e.tag for e in parsed.entries] == ["Abcd", "Efgh"]
    assert parsed.entries[1].description.startswith("y")


def test_broken_sequences_after_a_bom_do_not_raise():
    text, encoding = decode(codecs.BOM_UTF8 + b"Abcd - a.sys - \xff\xfe\r\n")
    assert encoding == "utf-8" and text.startswith("Abcd - a.sys - ")
    lone_surrogate = codecs.BOM_UTF16_LE + "Ab".encode("utf-16-le") + b"\x00\xd8" + b" \x00"
    assert decode(lone_surrogate)[1] == "utf-16"


@given(st.binary(max_size=200))
def test_any_bytes_after_any_bom_parse(data):
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b""):
        parse_bytes(bom + data)


# --- paths -----------------------------------------------------------------------------------

@pytest.fixture
def session(booted) -> Session:
    """The default x86 machine, shared read-only (tests/conftest.py)."""
    return Session(booted("x86").target())


def _bad_paths(tmp_path: Path) -> dict[str, tuple[str, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.txt"
    big.write_bytes(b"Abcd - a.sys - x\n" * (MAX_FILE_BYTES // 17 + 1))
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    return {
        "nul": ("pool\0tag.txt", "Invalid file name"),
        "directory": (str(tmp_path), "Is a directory"),
        "fifo": (str(fifo), "Not a regular file"),
        "device": ("/dev/zero", "Not a regular file"),
        "too large": (str(big), f"File too large (over {MAX_FILE_BYTES} bytes)"),
        "loop": (str(loop), "Too many levels of symbolic links"),
    }


BAD = ["nul", "directory", "fifo", "device", "too large", "loop"]


def _shown(path: str) -> str:
    return path.replace("\0", "\\x00")


@pytest.mark.parametrize("case", BAD)
def test_unusable_file_is_one_line_and_falls_back(case, tmp_path):
    path, reason = _bad_paths(tmp_path)[case]
    start = time.perf_counter()
    db = TagDatabase(path, environ=NO_ENV)
    assert time.perf_counter() - start < 1.0
    assert db.error == f"Unable to read pool tag file {_shown(path)}: {reason}"
    assert db.lookup("Thre").binary == "nt!ps"                 # the built-in list still answers
    assert check_file(path) == db.error


@pytest.mark.parametrize("case", BAD)
def test_settings_refuse_an_unusable_file(case, tmp_path, session):
    path, reason = _bad_paths(tmp_path)[case]
    out = run(session, f".settings set pooltag_file={path}")
    assert out == f"Unable to read pool tag file {_shown(path)}: {reason}\n"
    assert session.settings["pooltag_file"] is None


def test_settings_accept_a_file_that_does_not_exist_yet(tmp_path, session):
    path = tmp_path / "later.txt"
    assert run(session, f".settings set pooltag_file={path}") == ""
    assert session.settings["pooltag_file"] == str(path)
    assert check_file(path) == (f"Unable to read pool tag file {path}: "
                                "No such file or directory")


def test_commands_report_an_unusable_file_once(tmp_path, monkeypatch, session):
    monkeypatch.setenv(ENV_VAR, "/dev/zero")
    message = "Unable to read pool tag file /dev/zero: Not a regular file\n"
    first = run(session, "!poolused 2")
    assert first.startswith(message) and "FILE_OBJECT of an open file" in first   # built in
    assert message not in run(session, "!poolused 2")
    address = _irp_block(session)
    assert message not in run(session, f"!pool {address}")
    assert message in run(Session(session.target), f"!pool {address}")


def test_fifo_never_blocks(tmp_path):
    """Opening a FIFO for reading waits for a writer; the file is opened without blocking
    and refused, so this returns (a hang would fail the suite's timeout)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert TagDatabase(fifo, environ=NO_ENV).error.endswith("Not a regular file")


def test_cache_holds_a_few_files(tmp_path):
    for i in range(20):
        path = tmp_path / f"t{i}.txt"
        path.write_text(f"T{i:03d} - a.sys - x\n")
        assert TagDatabase(path, environ=NO_ENV).lookup(f"T{i:03d}") is not None
    assert len(pooltag.db._FILE_CACHE) <= 8


def test_real_file_loads_quickly():
    if not REAL.is_file():
        pytest.skip(f"{REAL} is not present")
    assert REAL.stat().st_size < MAX_FILE_BYTES // 2
    start = time.perf_counter()
    parse_bytes(REAL.read_bytes())
    assert time.perf_counter() - start < 0.5
