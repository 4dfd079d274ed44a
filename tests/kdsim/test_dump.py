"""Saved dumps (kdsim/dump.py): a booted machine round-trips byte for byte, the debugger prints
the same thing live and on the dump, and damaged or foreign files are refused in one line."""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.dispatch import load_commands, parse_name
from commands.registry import lookup
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.dump import (
    BODY, DUMP_TYPE_BANNERS, HEADER, HEADER_SIZE, HEADERS, MAGIC, DumpCreateError, DumpError,
    dump_runs, load, save,
)
from kdsim.layouts import PAGE_SIZE, tag_to_ulong
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED
from kdsim.scenarios import boot


# -- a crashed default machine of each arch, saved and reopened ---------------------------------
class Crashed:
    def __init__(self, arch: str, directory: Path):
        self.machine = boot(arch=arch, seed=11)
        pool = self.machine.pool
        self.small = pool.allocate(NONPAGED, 0x40, tag_to_ulong("Dmpt"))
        self.big = pool.allocate(PAGED, 0x2000, tag_to_ulong("Dmpb"))
        header = self.small - self.machine.arch.header
        # a guard page, as special pool leaves them, so the no-access set is not empty
        self.guard = self.machine.arch.special_start
        self.machine.memory.protect_noaccess(self.guard, PAGE_SIZE)
        self.machine.stop(BugCheck(0x19, 0x20, header, header + 0x50, 0x4050001))
        self.live = self.machine.target()
        self.path = directory / f"{arch}.dmp"
        self.size = save(self.live, self.path)
        self.dump = load(self.path)


@pytest.fixture(scope="module", params=["x86", "x64"])
def crashed(request, tmp_path_factory) -> Crashed:
    return Crashed(request.param, tmp_path_factory.mktemp(request.param))


def test_round_trip_keeps_every_byte(crashed):
    live, dump = crashed.live, crashed.dump
    assert crashed.size == crashed.path.stat().st_size
    assert dump.memory.pages == live.memory.pages
    assert dump.memory.noaccess == live.memory.noaccess == {crashed.guard >> 12}
    assert dump.arch is live.arch
    assert dump.processors == live.processors
    assert dump.control is None and not dump.live


def test_round_trip_keeps_symbols_in_order(crashed):
    def table(target):
        return [(m.name, m.image, m.base, m.size, list(m.symbols.items()))
                for m in target.symbols.modules]
    assert table(crashed.dump) == table(crashed.live)
    assert crashed.dump.resolve("nt!PoolTrackTable") == crashed.live.resolve("nt!PoolTrackTable")
    assert crashed.dump.symbolize(crashed.live.symbol("nt!ExFreePoolWithTag") + 0x10) == \
        "nt!ExFreePoolWithTag+0x10"


def test_round_trip_keeps_stop_state_and_meta(crashed):
    stop = crashed.dump.stop_state()
    assert stop == crashed.live.stop_state()
    assert (stop.code, stop.name) == (0x19, "BAD_POOL_HEADER")
    assert crashed.dump.meta == {"seed": 11, "scenario": "default", "comment": "",
                                 "dump_type": "full"}
    header = HEADER.parse(crashed.path.read_bytes()[:HEADER_SIZE])
    assert (header.bugcheck_code, tuple(header.bugcheck_params)) == (stop.code, stop.params)


def test_guard_page_still_faults_on_the_dump(crashed):
    with pytest.raises(Exception) as live_fault:
        crashed.live.read(crashed.guard, 1)
    with pytest.raises(type(live_fault.value)) as dump_fault:
        crashed.dump.read(crashed.guard, 1)
    assert dump_fault.value.noaccess


def command_lines(c: Crashed) -> list[str]:
    return ["!vm", "!poolused", "!poolused 2", "!poolused 1 Dmpt", "!poolfind Dmpt",
            "!poolfind Dmpb", f"!pool {c.small:x}", f"!pool {c.small:x} 2", f"!pool {c.big:x}",
            f"!poolval {c.small:x}", "db nt!KiBugCheckData L20", "dd nt!PoolTrackTable L4",
            "? nt!PoolTrackTable", f"!pool {c.guard:x}"]


# kd prints this only when it reads a dump, which carries no session data (formats.md 4.5).
DUMP_ONLY = "Unable to read large session pool table (Session data is not present in mini and " \
            "kernel-only dumps)\n"


def test_every_command_prints_the_same_live_and_on_the_dump(crashed):
    load_commands()
    compared = 0
    for line in command_lines(crashed):
        if lookup(parse_name(line)[0]) is None:      # a command still being written
            continue
        live = run(Session(crashed.live), line)
        dump = run(Session(crashed.dump), line)
        assert DUMP_ONLY not in live
        assert dump.replace(DUMP_ONLY, "") == live, line
        assert live.strip() and "Internal error" not in live, line
        compared += 1
    assert compared >= 4


def test_dump_of_a_dump_is_the_same_file(crashed, tmp_path):
    again = tmp_path / "again.dmp"
    save(crashed.dump, again)
    assert again.read_bytes() == crashed.path.read_bytes()


# -- mini dumps ----------------------------------------------------------------------------------
@pytest.fixture
def small_machine() -> Machine:
    machine = Machine(get_arch("x86"), seed=0)
    machine.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Smll"))
    return machine


def test_mini_dump_keeps_symbols_bug_check_and_the_stop_stack(small_machine, tmp_path):
    small_machine.stop(BugCheck(0xC2, 7, 0x1234, 0, 0))
    live = small_machine.target()
    path = tmp_path / "mini.dmp"
    save(live, path, kind="mini", comment="after the crash")
    mini = load(path)
    bugcheck = live.symbol("nt!KiBugCheckData")
    kept = set(mini.memory.pages)
    assert bugcheck >> 12 in kept
    assert kept == {v for v, _ in dump_runs(live, "mini")}
    assert len(kept) < len(live.memory.pages) // 4          # small: no pool pages
    assert not any(live.memory.pages[v] != mini.memory.pages[v] for v in kept)
    assert mini.stop_state() == live.stop_state()
    assert mini.meta["dump_type"] == "mini" and mini.meta["comment"] == "after the crash"
    assert mini.resolve("nt!PoolTrackTable") == live.resolve("nt!PoolTrackTable")
    assert dump_runs(mini, "mini") == dump_runs(live, "mini")
    load_commands()
    assert run(Session(mini), "k") == run(Session(live), "k")


def test_full_dump_of_a_mini_dump_is_refused_and_leaves_no_file(small_machine, tmp_path):
    save(small_machine.target(), tmp_path / "mini.dmp", kind="mini")
    mini = load(tmp_path / "mini.dmp")
    with pytest.raises(DumpError) as err:
        save(mini, tmp_path / "full.dmp")
    assert err.value.message == ("Kernel full dumps can only be written when all of physical "
                                 "memory is accessible - aborting now")
    assert not (tmp_path / "full.dmp").exists()


def test_banners_are_kds():
    assert DUMP_TYPE_BANNERS["full"] == "Kernel Complete Dump File: Full address space is available"
    assert DUMP_TYPE_BANNERS["mini"] == ("Mini Kernel Dump File: Only registers and stack trace "
                                         "are available")


# -- saving errors -------------------------------------------------------------------------------
def test_existing_file_is_kept_without_overwrite(small_machine, tmp_path):
    path = tmp_path / "x.dmp"
    path.write_bytes(b"precious")
    with pytest.raises(DumpCreateError) as err:
        save(small_machine.target(), path, overwrite=False)
    assert err.value.message == f"Unable to create file '{path}' - Win32 error 0n80\n" \
                                '    "The file exists."'
    assert path.read_bytes() == b"precious"
    save(small_machine.target(), path)
    assert load(path).memory.pages == small_machine.memory.pages


def test_missing_directory_when_saving(small_machine, tmp_path):
    path = tmp_path / "nowhere" / "x.dmp"
    with pytest.raises(DumpCreateError) as err:
        save(small_machine.target(), path)
    assert err.value.message == f"Unable to create file '{path}' - Win32 error 0n3\n" \
                                '    "The system cannot find the path specified."'


# -- damaged, foreign and missing files ----------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    machine = Machine(get_arch("x86"), seed=0)
    machine.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Smll"))
    machine.stop(BugCheck(0x19, 0x20, 1, 2, 3))
    path = tmp_path_factory.mktemp("good") / "good.dmp"
    save(machine.target(), path)
    return path.read_bytes()


def refused(tmp_path: Path, data: bytes, name: str = "bad.dmp") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DumpError) as err:
        load(path)
    message = err.value.message
    assert "\n" not in message
    assert message.startswith(f"Could not open dump file [{path}], ")
    return message[len(f"Could not open dump file [{path}], "):]


def test_good_copy_loads(good, tmp_path):
    path = tmp_path / "ok.dmp"
    path.write_bytes(good)
    assert load(path).stop_state().code == 0x19


@pytest.mark.parametrize("cut", [1, 5, 8, 9, 10, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 7,
                                 -PAGE_SIZE - 3, -1])
def test_truncated_copies(good, tmp_path, cut):
    reason = refused(tmp_path, good[:cut])
    assert reason.startswith("the file is truncated (")


def test_truncated_body_says_how_much(good, tmp_path):
    assert refused(tmp_path, good[:-10]) == \
        f"the file is truncated ({len(good) - 10} of {len(good)} bytes)"


def test_empty_file(tmp_path):
    assert refused(tmp_path, b"") == \
        "not a kdsim dump file (could not match the dump file signature)"


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100),     # a picture
    b"PAGEDU64" + bytes(0x2000),                             # a real Windows kernel dump
    b"KDSIMDMQ" + bytes(100),                                # one letter off
    b"hello\n",
])
def test_foreign_files(tmp_path, data):
    assert refused(tmp_path, data) == \
        "not a kdsim dump file (could not match the dump file signature)"


def test_wrong_magic(good, tmp_path):
    assert refused(tmp_path, b"XXXXXXXX" + good[8:]).startswith("not a kdsim dump file")


def test_unsupported_version(good, tmp_path):
    assert refused(tmp_path, MAGIC + b"\x03\x00" + good[10:]) == \
        "unsupported kdsim dump version 3 (this kdsim reads versions 1 and 2)"


def test_trailing_bytes(good, tmp_path):
    assert refused(tmp_path, good + b"junk") == \
        "the file is damaged (4 unexpected bytes after the end of the dump)"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_are_refused(good, tmp_path, data):
    offset = data.draw(st.integers(0, len(good) - 1), label="offset")
    mask = data.draw(st.integers(1, 255), label="mask")
    damaged = bytearray(good)
    damaged[offset] ^= mask
    reason = refused(tmp_path, bytes(damaged))
    assert reason.startswith(("the file is damaged (", "not a kdsim dump file",
                              "unsupported kdsim dump version", "the file is truncated ("))


def test_flipped_page_byte_is_a_checksum_mismatch(good, tmp_path):
    damaged = bytearray(good)
    damaged[-100] ^= 0x40
    assert refused(tmp_path, bytes(damaged)) == "the file is damaged (checksum mismatch)"


def reassembled(good: bytes, **changes) -> bytes:
    """The good dump with header or body fields changed and a correct checksum: what a buggy
    writer or a hand-edited file would look like."""
    header = HEADER.parse(good[:HEADER_SIZE])
    body = BODY.parse(good[HEADER_SIZE:])
    for key, value in changes.items():
        target = header if key in header else body
        target[key] = value(target[key]) if callable(value) else value
    raw_body = BODY.build(body)
    header.body_size = len(raw_body)
    raw_header = HEADER.build(header)[:-4]
    return raw_header + zlib.crc32(raw_header, zlib.crc32(raw_body)).to_bytes(4, "little") + \
        raw_body


def test_reassembled_good_copy_loads(good, tmp_path):
    path = tmp_path / "same.dmp"
    path.write_bytes(reassembled(good))
    assert path.read_bytes() == good          # the declaration parses and builds alike


@pytest.mark.parametrize("changes, reason", [
    (dict(arch=7), "unknown architecture id 7"),
    (dict(dump_type=9), "unknown dump type 9"),
    (dict(processors=0), "no processors"),
    (dict(bugcheck_code=0xC2), "the bug-check data in the header disagrees with memory"),
    (dict(runs=lambda runs: runs + [dict(vpn=1 << 19, count=0, pages=[])]),
     "page run 0x80000 is empty"),
    (dict(runs=lambda runs: runs + [dict(vpn=(1 << 20) - 1, count=2,
                                         pages=[bytearray(PAGE_SIZE)] * 2)]),
     "page run 0xfffff+0x2 is outside the address space"),
    (dict(runs=lambda runs: runs + [dict(vpn=runs[0].vpn, count=1,
                                         pages=[bytearray(PAGE_SIZE)])]),
     "page {vpn:#x} is stored twice"),
    (dict(noaccess=lambda pages: [1 << 20]), "no-access page 0x100000 is invalid"),
    (dict(modules=lambda mods: mods + [dict(name="far", image="far.sys", base=0xFFFFF000,
                                            size=0x2000, symbols=[])]),
     "module far lies outside the address space"),
])
def test_malformed_contents_with_a_good_checksum(good, tmp_path, changes, reason):
    first_vpn = BODY.parse(good[HEADER_SIZE:]).runs[0].vpn
    assert refused(tmp_path, reassembled(good, **changes)) == \
        f"the file is damaged ({reason.format(vpn=first_vpn)})"


def test_header_names_the_profile(crashed):
    header = HEADER.parse(crashed.path.read_bytes()[:HEADER_SIZE])
    assert header.profile == crashed.live.profile.name == f"win7sp1-{crashed.live.arch.name}"
    assert crashed.dump.profile is crashed.live.profile


def test_unknown_profile_is_refused(good, tmp_path):
    assert refused(tmp_path, reassembled(good, profile="win10-x64")) == \
        "unknown kdsim profile 'win10-x64' (this kdsim knows win7sp1-x86, win7sp1-x64)"


def test_profile_of_another_arch_is_refused(good, tmp_path):
    assert refused(tmp_path, reassembled(good, profile="win7sp1-x64")) == \
        "the file is damaged (profile win7sp1-x64 is not for architecture x86)"


def test_version_1_dump_opens_with_its_architectures_profile(good, tmp_path):
    """Version 1 named only the architecture: its dumps are Windows 7 SP1 of that arch."""
    header = HEADER.parse(good[:HEADER_SIZE])
    body = good[HEADER_SIZE:]
    header.version = 1
    raw_header = HEADERS[1].build(header)[:-4]
    path = tmp_path / "v1.dmp"
    path.write_bytes(raw_header + zlib.crc32(raw_header, zlib.crc32(body)).to_bytes(4, "little")
                     + body)
    target = load(path)
    assert target.profile.name == "win7sp1-x86"
    assert target.stop_state().code == 0x19
    assert refused(tmp_path, path.read_bytes()[:-1]).startswith("the file is truncated (")


def test_malformed_structure_with_a_good_checksum(good, tmp_path):
    body = good[HEADER_SIZE:]
    broken = body[:-PAGE_SIZE // 2]                # the last run's pages stop early
    header = HEADER.parse(good[:HEADER_SIZE])
    header.body_size = len(broken)
    raw_header = HEADER.build(header)[:-4]
    data = raw_header + zlib.crc32(raw_header, zlib.crc32(broken)).to_bytes(4, "little") + broken
    assert refused(tmp_path, data) == \
        "the file is damaged (malformed contents: the page data stops early)"


def test_missing_file(tmp_path):
    path = tmp_path / "absent.dmp"
    with pytest.raises(DumpError) as err:
        load(path)
    assert err.value.message == (f"Could not open dump file [{path}], Win32 error 0n2 "
                                 f'"The system cannot find the file specified."')


def test_missing_directory(tmp_path):
    path = tmp_path / "nowhere" / "absent.dmp"
    with pytest.raises(DumpError) as err:
        load(path)
    assert err.value.message == (f"Could not open dump file [{path}], Win32 error 0n3 "
                                 f'"The system cannot find the path specified."')


def test_directory(tmp_path):
    with pytest.raises(DumpError) as err:
        load(tmp_path)
    assert err.value.message == (f"Could not open dump file [{tmp_path}], Win32 error 0n5 "
                                 f'"Access is denied."')
