"""`s`: searching memory, hits shown as display lines, kd's range forms and limit; the tags
driver images hold where a search finds them."""
from __future__ import annotations

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import X64, X86
from kdsim.control import open_dump, save_dump
from kdsim.machine import Machine
from kdsim.scenarios import boot
from tests.support import build_target

BASE = 0x8E687000


@pytest.fixture
def x86() -> Session:
    data = bytearray(0x2000)
    data[0x11E5:0x11EB] = b"\x68Leak"[:5] + b"\x6a"
    data[0x1800:0x1808] = (0x6B61654C).to_bytes(4, "little") + b"\x00\x00\x01\x00"
    data[0x1902:0x190C] = "Leak".encode("utf-16-le") + b"\x00\x00"
    return Session(build_target(X86, modules=(("myfault", "myfault.sys", BASE, 0x7000, {}),),
                                memory=((BASE, bytes(data)),)))


@pytest.fixture(scope="module")
def leak() -> Machine:
    return boot("x64", seed=1, scenario="leak", scale=0.05)


def test_ascii_unicode_and_bytes(x86: Session) -> None:
    assert run(x86, 's -a myfault L2000 "Leak"') == (
        "8e6881e6  4c 65 61 6b 6a 00 00 00-00 00 00 00 00 00 00 00  Leakj...........\n"
        "8e688800  4c 65 61 6b 00 00 01 00-00 00 00 00 00 00 00 00  Leak............\n")
    assert run(x86, 's -u myfault L2000 "Leak"') == (
        "8e688902  4c 00 65 00 61 00 6b 00-00 00 00 00 00 00 00 00  L.e.a.k.........\n")
    assert run(x86, "s myfault L2000 4c 65 61 6b 00") == (
        "8e688800  4c 65 61 6b 00 00 01 00-00 00 00 00 00 00 00 00  Leak............\n")


def test_double_words_are_matched_aligned_and_shown_with_characters(x86: Session) -> None:
    assert run(x86, "s -d myfault L800 6b61654c") == (
        "8e688800  6b61654c 00010000 00000000 00000000  Leak............\n")
    assert run(x86, "s -w myfault L1000 1") == "8e688806  0001 0000 0000 0000 0000 0000 0000 0000\n"
    assert run(x86, "s -q myfault myfault+1fff 000100006b61654c") == (
        "8e688800  00010000`6b61654c 00000000`00000000\n")


def test_unreadable_pages_are_passed_over(x86: Session) -> None:
    assert run(x86, 's -a 0 L?ffffffff "Leak"').count("Leak") == 2


@pytest.mark.parametrize("line,message", [
    ('s -a myfault L20000001 "x"', " " * 17 + "^ Range error in 's -a myfault L20000001 \"x\"'"),
    ('s -a myfault+10 myfault "x"', " " * 20 + "^ Range error in 's -a myfault+10 myfault \"x\"'"),
    ("s -z myfault L10 1", "       ^ Syntax error in 's -z myfault L10 1'"),
    ("s -a myfault", "Numeric expression missing from '<EOL>'"),
    ("s -d myfault L10", "Numeric expression missing from '<EOL>'"),
    ('s -a foo L10 "x"', "Couldn't resolve error at 'foo '"),
    ('s -a myfault L1 "Leak"', "Search pattern is longer than the range"),
])
def test_bad_input(x86: Session, line: str, message: str) -> None:
    assert run(x86, line) == message + "\n"


def test_the_leak_s_tag_is_in_myfault_s_image_live_and_dumped(leak: Machine, tmp_path) -> None:
    target = leak.target()
    path = tmp_path / "leak.dmp"
    save_dump(target, str(path))
    module = leak.symbols.module("myfault")
    for session in (Session(target), Session(open_dump(path))):
        hits = run(session, 's -a myfault L?7000 "Leak"').splitlines()
        assert len(hits) == 1
        address = int(hits[0].split()[0].replace("`", ""), 16)
        assert module.base < address < module.base + module.size
        # the tag is the immediate of `mov r8d, 'Leak'` before the call that returns to
        # myfault+0x11f6, the frame the verifier's stacks show
        assert address == module.base + 0x11F6 - 5 - 4
        assert run(session, "db myfault L2")[:-1].endswith("MZ")


def test_x64_display_width() -> None:
    session = Session(build_target(X64, memory=((0xFFFFF88004287000, b"MZ"),)))
    assert run(session, "s -a fffff880`04287000 L10 \"MZ\"") == (
        "fffff880`04287000  4d 5a 00 00 00 00 00 00-00 00 00 00 00 00 00 00  MZ..............\n")
