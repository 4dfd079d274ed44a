"""The one sanitiser: control characters from the target or a file are printed escaped, on the
screen and in the log, and colour still works; a hostile dump opened with `kdsim -z` never gets
an ESC byte to standard output."""
from __future__ import annotations

import io
import re
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from commands.render import RESET, STYLES
from commands.sanitize import sanitize
from commands.session import Session
from commands.testing import blank_target, run, temporary_command
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.dump import save
from kdsim.machine import Machine
from kdsim.modules import frames
from kdsim.stop import raised_in
from tests.support import ROOT

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def test_control_characters_are_escaped_line_ends_and_tabs_kept():
    assert sanitize("a\tb\n") == "a\tb\n"
    assert sanitize("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert sanitize("over\rwrite\x08\x07\x00\x7f") == "over\\x0dwrite\\x08\\x07\\x00\\x7f"
    assert sanitize("\x9b2J \x85") == "\\x9b2J \\x85"                   # C1: CSI, NEL
    assert sanitize("abc\u202edef\u2066") == "abc\\u202edef\\u2066"     # bidi overrides
    assert sanitize("\udcff\udc80") == "\\xff\\x80"                     # surrogateescape bytes
    assert sanitize("\ud800") == "\\ud800"
    assert sanitize("Grüße, 東京 ∑") == "Grüße, 東京 ∑"        # printable Unicode stays


def test_clean_text_is_returned_as_is():
    text = "kd> !pool fa808000\n" * 100
    assert sanitize(text) is text


@given(st.text())
def test_nothing_unsafe_survives_and_sanitising_is_idempotent(text):
    shown = sanitize(text)
    assert UNSAFE.search(shown) is None
    assert sanitize(shown) == shown
    assert shown.count("\n") == text.count("\n")


# -- Session.write: the one output path -------------------------------------------------------
def test_screen_and_log_get_the_escaped_text(tmp_path):
    session = Session(blank_target("x86"), stdout=io.StringIO())
    log = tmp_path / "kd.log"
    session.open_log(str(log), append=False)
    session.write("Comment: '\x1b]0;owned\x07'\n")
    session.record_input("\x1b[2J.echo", echo=False)
    session.close_log(announce=False)
    assert session.stdout.getvalue() == "Comment: '\\x1b]0;owned\\x07'\n"
    assert log.read_text() == "Comment: '\\x1b]0;owned\\x07'\nkd> \\x1b[2J.echo\n"


def test_colour_is_added_after_sanitising():
    session = Session(blank_target("x86"), stdout=io.StringIO())
    session.settings["color"] = "on"
    session.write("82a0f000 \x1b[5m\n")
    session.write("No export \x1b found\n", "error")
    assert session.stdout.getvalue() == (
        f"{STYLES['address']}82a0f000{RESET} \\x1b[5m\n"
        f"{STYLES['error']}No export \\x1b found{RESET}\n")


def test_every_command_result_is_sanitised(session):
    """A command that prints a string read from the target needs no care of its own."""
    with temporary_command(".kt_hostile", lambda s, a: "name: Ev\x1b[2Jil\x9b"):
        assert run(session, ".kt_hostile") == "name: Ev\\x1b[2Jil\\x9b\n"
    assert run(session, ".echo \x1b[31m") == "\\x1b[31m\n"


# -- a hostile dump -----------------------------------------------------------------------------
EVIL = "Ev\x1b[2Jil"                       # a module whose name clears the screen
EVIL_IMAGE = "ev\x1b]0;owned\x07il.sys"      # ... and whose image retitles the window
EVIL_FN = "Fn\x1b[5m\u202e"                 # a symbol that blinks and reverses the line
COMMENT = "\x1b[31mred\x1b[0m\r\x9b2J done"


def hostile_dump(path) -> tuple[int, int]:
    """A crash dump whose comment, module, image and symbol names hold escape sequences, and
    whose stack runs through that module; returns the block freed twice and an `Evil` one."""
    m = Machine(get_arch("x86"), 2)
    base = m.arch.driver_base + 0x3600000
    module = m.symbols.add_module(EVIL, EVIL_IMAGE, base, 0x6000)
    module.add(EVIL_FN, base + 0x1000)
    block = m.pool.allocate(0, 0x40, int.from_bytes(b"\x1b[2J", "little"))
    m.pool.free(block)
    evil = m.pool.allocate(0, 0x40, int.from_bytes(b"Evil", "little"))
    m.stop(raised_in(BugCheck(0xC2, 7, 0x1297, 0, block), "ExFreePoolWithTag",
                     frames(m.symbols, (f"{EVIL}!{EVIL_FN}+0x10", "nt!IofCallDriver+0x63"))))
    save(m.target(), path, comment=COMMENT)
    return block, evil


def test_a_hostile_dump_prints_inert(tmp_path):
    path = tmp_path / "hostile.dmp"
    block, evil = hostile_dump(path)
    tags = tmp_path / "pooltag.txt"
    tags.write_text("Evil - ev\x1b]0;owned\x07il.sys - \x1b[31mEvil\x9b2J things\r\n",
                    encoding="utf-8")
    commands = (f"k; kb; !analyze -v; !pool {block:x}; !poolfind *; "
                f".settings set pooltag_file={tags}; !pool {evil:x}; .echo end")
    result = subprocess.run([sys.executable, "-m", "commands.cli", "-z", str(path), "-c",
                             commands], capture_output=True, cwd=ROOT, timeout=120,
                            stdin=subprocess.DEVNULL)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert b"\x1b" not in result.stdout and b"\x1b" not in result.stderr
    assert UNSAFE.search(out) is None
    assert "Comment: '\\x1b[31mred\\x1b[0m\\x0d\\x9b2J done'" in out
    assert "Ev\\x1b[2Jil!Fn\\x1b[5m\\u202e+0x10" in out          # the stack, symbolised
    assert "\\x1b[31mEvil\\x9b2J things" in out                    # the tag's description
    assert "internal error" not in out.lower() and out.endswith("end\n")
