"""Snapshots (kdsim/snapshot.py, `.snapshot`, `kdsim --resume`): a resumed machine is the machine
it was saved from, byte for byte and in everything it does next; damaged, truncated or foreign
files are refused in one line and never cost more memory than they hold."""
from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

from commands.dispatch import load_commands
from commands.session import Session
from commands.testing import run
from kdsim import livestate, snapshot
from kdsim.bugcheck import BugCheck
from kdsim.machine import Machine
from kdsim.recipe import Recipe
from kdsim.scenarios import SCENARIOS, boot, list_scenarios
from kdsim.snapshot import HEADER, HEADER_SIZE, MAGIC, SnapshotError
from kdsim.layouts import tag_to_ulong

SCALE = 0.05
TICKS = 20_000
SCENARIO_NAMES = [name for name, _ in list_scenarios() if not name.startswith("test-")]
PROBE = "!vm; !poolused 2; !poolused 4; k; !analyze -v"


def same_machine(a: Machine, b: Machine) -> None:
    """Memory page by page, the no-access pages, and every bit of Python-side state."""
    assert a.memory.pages.keys() == b.memory.pages.keys()
    for vpn, page in a.memory.pages.items():
        assert page == b.memory.pages[vpn], f"page {vpn:#x} differs"
    assert a.memory.noaccess == b.memory.noaccess
    assert livestate.capture(a) == livestate.capture(b)


def probe(machine: Machine) -> str:
    load_commands()
    return run(Session(machine.target()), PROBE)


# -- the differential test: straight on, or saved, resumed and on ------------------------------
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_resumed_machine_runs_on_exactly_as_the_original(name, tmp_path):
    straight = boot(seed=2, scenario=name, scale=SCALE)
    path = tmp_path / "m.kdsnap"
    assert snapshot.save(straight, path) == path.stat().st_size
    resumed = snapshot.load(path)
    same_machine(straight, resumed)
    straight.step(TICKS)
    resumed.step(TICKS)
    same_machine(straight, resumed)
    assert probe(resumed) == probe(straight)


@pytest.mark.parametrize("name", ["leak", "overrun-special", "tour"])
def test_resumed_machine_runs_on_exactly_as_the_original_on_the_other_arch(name, tmp_path):
    other = "x86" if SCENARIOS[name].arch == "x64" else "x64"
    straight = boot(other, 4, name, scale=SCALE)
    straight.step(3000)                         # saved in the middle of a run, not at boot
    snapshot.save(straight, tmp_path / "m.kdsnap")
    resumed = snapshot.load(tmp_path / "m.kdsnap")
    straight.step(TICKS)
    resumed.step(TICKS)
    same_machine(straight, resumed)
    assert probe(resumed) == probe(straight)


def test_a_stopped_machine_resumes_stopped(tmp_path):
    m = boot("x86", 5, "overrun", scale=SCALE)
    m.step(400_000)
    assert m.crash is not None
    snapshot.save(m, tmp_path / "crash.kdsnap")
    resumed = snapshot.load(tmp_path / "crash.kdsnap")
    assert (resumed.crash.code, resumed.crash.params, resumed.crash.where) == (
        m.crash.code, m.crash.params, m.crash.where)
    same_machine(m, resumed)
    assert probe(resumed) == probe(m)


def test_a_pending_pool_hit_and_the_next_boots_verifier_settings_are_kept(tmp_path):
    m = boot("x64", 1, "leak", scale=SCALE)
    hit = m.target().symbol("nt!PoolHitTag")
    m.memory.write(hit, tag_to_ulong("CM10").to_bytes(4, "little"))
    m.step(5000)
    assert m.pool.tracker.hit is not None and m.pool.hit_site is not None
    m.verifier.pending = Recipe.for_scenario("leak", verifier="/flags 0x1 /all").verifier
    m.verifier.disable()                         # !verifier -disable: no more entries
    snapshot.save(m, tmp_path / "hit.kdsnap")
    resumed = snapshot.load(tmp_path / "hit.kdsnap")
    same_machine(m, resumed)
    assert resumed.verifier.pending == m.verifier.pending
    assert resumed.pool.take_hit() == m.pool.take_hit()
    m.step(TICKS)
    resumed.step(TICKS)
    same_machine(m, resumed)


def test_a_machine_with_scalars_in_its_activities_keeps_them(tmp_path):
    m = boot("x86", 3, "overrun", scale=SCALE)
    m.step(50_000)
    (culprit,) = [obj for _, obj, attr in livestate.activity_fields(m.workload.activities)
                  if attr == "runs"]
    assert culprit.runs > 0
    snapshot.save(m, tmp_path / "m.kdsnap")
    resumed = snapshot.load(tmp_path / "m.kdsnap")
    fields = livestate.activity_fields(resumed.workload.activities)
    (again,) = [obj for _, obj, attr in fields if attr == "runs"]
    assert again.runs == culprit.runs and again is not culprit


# -- bad input: one line, exit 1, bounded memory ------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.kdsnap"
    snapshot.save(boot("x86", 1, "default", scale=SCALE), path)
    return path.read_bytes()


def sealed(stored: bytes, body_size: int, version: int = snapshot.VERSION) -> bytes:
    """A file whose header and checksum are right for `stored`, whatever it holds."""
    header = HEADER.build(dict(version=version, body_size=body_size, stored_size=len(stored),
                               checksum=0))[:-4]
    return header + struct.pack("<I", zlib.crc32(header, zlib.crc32(stored))) + stored


def refused(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "bad.kdsnap"
    path.write_bytes(content)
    with pytest.raises(SnapshotError) as caught:
        snapshot.load(path)
    message = caught.value.message
    assert "\n" not in message and message.startswith(f"Could not open snapshot [{path}], ")
    return message[len(f"Could not open snapshot [{path}], "):]


def body_of(content: bytes) -> bytes:
    return zlib.decompress(content[HEADER_SIZE:])


def test_truncated_files(tmp_path, good):
    for cut in (3, len(MAGIC), HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 100, len(good) - 1):
        assert refused(tmp_path, good[:cut]).startswith("the file is truncated (")
    assert refused(tmp_path, good[:HEADER_SIZE + 100]) == (
        f"the file is truncated ({HEADER_SIZE + 100} of {len(good)} bytes)")


def test_wrong_magic_version_and_trailing_bytes(tmp_path, good):
    assert refused(tmp_path, b"KDSIMDMP" + good[8:]) == (
        "not a kdsim snapshot (could not match the snapshot signature)")
    assert refused(tmp_path, b"") == "not a kdsim snapshot (could not match the snapshot signature)"
    assert refused(tmp_path, good[:8] + b"\x07\x00" + good[10:]) == (
        f"unsupported kdsim snapshot version 7 (this kdsim reads version {snapshot.VERSION})")
    assert refused(tmp_path, good + b"\0") == (
        "the file is damaged (1 unexpected bytes after the end of the snapshot)")


def test_checksum(tmp_path, good):
    for at in (HEADER_SIZE - 2, HEADER_SIZE + 5, len(good) // 2, len(good) - 1):
        flipped = bytearray(good)
        flipped[at] ^= 0x20
        assert refused(tmp_path, bytes(flipped)) == "the file is damaged (checksum mismatch)"


def test_declared_sizes_beyond_the_file(tmp_path, good):
    header = HEADER.parse(good[:HEADER_SIZE])
    stored = good[HEADER_SIZE:]
    # a stored size beyond the file's end: truncated, whatever the rest says
    too_long = HEADER.build(dict(version=1, body_size=header.body_size,
                                 stored_size=len(stored) + 10**12, checksum=0))
    assert refused(tmp_path, too_long + stored) == (
        f"the file is truncated ({len(good)} of {HEADER_SIZE + len(stored) + 10**12} bytes)")
    # a body larger than the compressed bytes could ever inflate to: refused before reading
    assert refused(tmp_path, sealed(stored, len(stored) * 1033)) == (
        f"the file is damaged (it declares {len(stored) * 1033} bytes of contents, more than "
        f"{len(stored)} compressed bytes can hold)")
    # a body that inflates to more (or less) than declared
    assert refused(tmp_path, sealed(stored, header.body_size - 1)) == (
        f"the file is damaged (the contents inflate past the {header.body_size - 1} bytes "
        f"declared)")
    assert refused(tmp_path, sealed(stored, header.body_size + 1)).startswith(
        "the file is damaged (")


def test_contents_that_do_not_decompress(tmp_path, good):
    stored = bytearray(good[HEADER_SIZE:])
    stored[2:40] = bytes(range(38))
    assert refused(tmp_path, sealed(bytes(stored), len(body_of(good)))).startswith(
        "the file is damaged (the contents do not decompress: Error -3 ")
    assert refused(tmp_path, sealed(b"\x78\x9c", 10)) == (
        "the file is damaged (the compressed contents stop early)")


def test_a_zip_bomb_costs_no_more_than_it_declares(tmp_path):
    bomb = zlib.compress(bytes(200 << 20), 9)              # 200 MB of zeros in ~200 KB
    tracemalloc.start()
    try:
        assert refused(tmp_path, sealed(bomb, 1 << 20)) == (
            "the file is damaged (malformed contents: expected end of stream)")
        assert refused(tmp_path, sealed(bomb, 200 << 20)) == (
            "the file is damaged (malformed contents: expected end of stream)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_huge_declared_counts_cost_nothing(tmp_path, good):
    body = body_of(good)
    version = snapshot.version().encode()
    at = 1 + len(version)                        # past the "kdsim" string: the recipe
    assert body[:at] == bytes([len(version)]) + version
    # the scenario name's length prefix says a gigabyte follows
    hostile = body[:at] + b"\x80\x80\x80\x80\x04" + body[at + 8:]
    tracemalloc.start()
    try:
        assert refused(tmp_path, sealed(zlib.compress(hostile), len(hostile))).startswith(
            "the file is damaged (malformed contents: ")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def reseal(good: bytes, old: bytes, new: bytes) -> bytes:
    """The file with the first `old` of its body (the recipe's, before the dump part)
    replaced, checksum and sizes made right."""
    body = body_of(good)
    assert old in body
    body = body.replace(old, new, 1)
    return sealed(zlib.compress(body), len(body))


def test_a_machine_this_kdsim_cannot_rebuild(tmp_path, good):
    version = snapshot.version().encode()
    other = reseal(good, bytes([len(version)]) + version, b"\x0299")
    assert refused(tmp_path, other) == (
        f"it was saved by kdsim 99 (this is kdsim {snapshot.version()})")
    unknown = reseal(good, b"\x07default", b"\x07nowhere")
    assert refused(tmp_path, unknown) == "unknown scenario 'nowhere' (see --list-scenarios)"
    arch = reseal(good, b"\x03x86", b"\x03arm")
    assert refused(tmp_path, arch) == "the file is damaged (unknown architecture 'arm')"


def test_recipes_name_the_machines_scenarios_boot():
    for name in SCENARIO_NAMES:
        for arch in ("x86", "x64"):
            m = SCENARIOS[name].machine(arch, 7, SCALE)
            assert Recipe.of(m) == Recipe.for_scenario(name, arch, 7, SCALE)
    assert Recipe.for_scenario("leak").verifier.flags == 9
    assert Recipe.for_scenario("leak", verifier="/reset").verifier.flags == 0
    assert Recipe.for_scenario("fragmentation").processors == 4


def test_bug_check_where_survives_without_a_site(tmp_path):
    m = boot("x86", 1, "default", scale=SCALE)
    m.stop(BugCheck(0xC2, 7, 0x1297, 1, 2))
    snapshot.save(m, tmp_path / "c.kdsnap")
    resumed = snapshot.load(tmp_path / "c.kdsnap")
    assert resumed.crash.where is None and resumed.crash.params == (7, 0x1297, 1, 2)
