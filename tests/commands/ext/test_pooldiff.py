"""`!pooldiff`: the leak lab's leak found between two break-ins and traced to myfault's stack,
the default machine showing no more than its churn, every form's exact layout on both
architectures, the same results from a live machine and from two dumps of it, the snapshots
taken at every kind of break-in, JSON of every form, and one clear line for each bad input."""
from __future__ import annotations

import io
import json
import math
import os
import re
import signal
from dataclasses import dataclass

import pytest

from commands.ext.pooldiff import (
    PoolDiff, SnapshotList, StackDiff, TagHistory, pooldiff, render_pooldiff,
)
from commands.render import render_json
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.control import open_dump
from kdsim.layouts import NONPAGED, PAGED, profile_for, tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames, seed_modules
from kdsim.scenarios import boot, scenario
from kdsim.workload import Pattern
from tests.support import text

LEAK_BYTES = 0xFA000
# The leak lab at a tenth of its size (--scale 0.1): two Leak blocks at boot, and a new one
# every ~4,500 ticks, so `g 0n30000` adds about six.
LEAK_SCALE = 0.1
MYFAULT = ("myfault+0x11f6", "myfault+0x142f", "nt!IovCallDriver+0xa0")


@pytest.fixture(autouse=True)
def builtin_tags_only(monkeypatch):
    monkeypatch.delenv("KDSIM_POOLTAG", raising=False)


def leak_blocks(poolfind: str) -> list[str]:
    return re.findall(r"^\*([0-9a-f]{16}) :large page allocation, Tag  is Leak, size  is "
                      r"0xfa000 bytes$", poolfind, re.M)


@dataclass
class LeakRun:
    before: list[str]             # !poolfind Leak at `!pooldiff -save a`
    after: list[str]              # and after `g 0n30000`
    table: str                    # !pooldiff
    diff: PoolDiff
    stacks_text: str              # !pooldiff -stacks
    stacks: StackDiff
    dumps: tuple[str, str]        # .dump /f before and after


@pytest.fixture(scope="module")
def leak(tmp_path_factory) -> LeakRun:
    folder = tmp_path_factory.mktemp("leak")
    before_dump, after_dump = str(folder / "before.dmp"), str(folder / "after.dmp")
    session = Session(boot(scenario="leak", seed=1, scale=LEAK_SCALE).target())
    before = leak_blocks(run(session, "!poolfind Leak"))
    run(session, f".dump /f {before_dump}")
    assert run(session, "!pooldiff -save a").startswith("Saved pool snapshot #1 'a' ")
    run(session, "g 0n30000")
    run(session, f".dump /f {after_dump}")
    return LeakRun(before, leak_blocks(run(session, "!poolfind Leak")),
                   run(session, "!pooldiff"), pooldiff(session, ""),
                   run(session, "!pooldiff -stacks"), pooldiff(session, "-stacks"),
                   (before_dump, after_dump))


# -- what it must show: the leak lab ---------------------------------------------------------------
def test_leak_grows_first_by_its_new_blocks_times_0xfa000(leak: LeakRun) -> None:
    new_blocks = len(set(leak.after) - set(leak.before))
    assert len(leak.before) >= 1 and new_blocks >= 3
    assert set(leak.before) <= set(leak.after)                # none was freed
    first = leak.diff.rows[0]
    assert first.tag == "Leak"
    assert first.outstanding_diff == new_blocks
    assert first.used_diff == new_blocks * LEAK_BYTES
    assert (first.old.outstanding, first.new.outstanding) == (len(leak.before), len(leak.after))
    assert leak.diff.large[0].tag == "Leak" and leak.diff.large[0].new_blocks == new_blocks
    lines = leak.table.splitlines()
    assert lines[0] == ("Pool use from #1 'a' (tick 29609) to #2 break-in (tick 59609): "
                        "30000 ticks")
    assert lines[5].split()[:4] == ["Leak", str(len(leak.before)), str(len(leak.after)),
                                    f"+{new_blocks}"]
    assert lines[5].split()[6] == f"+{new_blocks * LEAK_BYTES}"


def test_stacks_put_the_myfault_stack_first_with_that_count(leak: LeakRun) -> None:
    new_blocks = len(set(leak.after) - set(leak.before))
    top = leak.stacks.groups[0]
    assert [name for _, name in top.frames][2] == "myfault+0x11f6"
    assert top.tags == ["Leak"]
    assert (top.new_count, top.old_count) == (len(leak.after), len(leak.before))
    assert top.new_bytes - top.old_bytes == new_blocks * LEAK_BYTES
    assert leak.stacks.unseen_blocks == 0 and leak.stacks.verified == ["myfault.sys"]
    lines = leak.stacks_text.splitlines()
    assert lines[4] == (f"+ {new_blocks * LEAK_BYTES:8x} ( {len(leak.after) * LEAK_BYTES:8x} - "
                        f"{len(leak.before) * LEAK_BYTES:8x}) {len(leak.after):6x} allocs"
                        "\tBackTrace1\tLeak")
    assert lines[5] == (f"+ {new_blocks:8x} ( {len(leak.after):8x} - {len(leak.before):8x})"
                        "\tBackTrace1\tallocations")
    assert lines[9] == "\tmyfault+0x11f6"


def test_a_live_machine_and_two_dumps_of_it_give_the_same_results(leak: LeakRun) -> None:
    before, after = leak.dumps
    later = Session(open_dump(after))
    table = pooldiff(later, f"-dump {before}")
    assert table.rows == leak.diff.rows and table.large == leak.diff.large
    assert (table.old_total, table.new_total) == (leak.diff.old_total, leak.diff.new_total)
    assert (table.old.tick, table.new.tick) == (29609, 59609)
    assert (table.old.name, table.new.kind) == (before, "this target")
    assert pooldiff(later, f"-stacks -dump {before}").groups == leak.stacks.groups
    # from the earlier dump, the later is the newer: the same table, the other way round
    earlier = Session(open_dump(before))
    assert pooldiff(earlier, f"-dump {after}").rows == leak.diff.rows
    assert pooldiff(earlier, f"-stacks -dump {after}").groups == leak.stacks.groups


# -- what it must show: the default machine ------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_default_machine_grows_by_no_more_than_its_churn(arch: str) -> None:
    """The default machine's traffic (kdsim/population.py TRAFFIC) frees every block after a
    mean lifetime of at most 2,000 ticks, and its boot objects stay.  Past boot each tag's
    outstanding count is then in equilibrium, a Poisson count of mean m, and two counts
    30,000 ticks apart (many lifetimes) are independent: their difference has a standard
    deviation of sqrt(2m).  No tag may move by more than 5 of those (+2 for tags of a few
    blocks: a leak grows with time instead), nor by more bytes than that many blocks of at
    most a page (no traffic block is bigger); no tag is marked as growing in lockstep and no
    large allocation comes or goes."""
    session = Session(boot(arch=arch, seed=7).target())
    run(session, "g 0n30000")
    diff = pooldiff(session, "")
    assert diff.rows and diff.new.tick == diff.old.tick + 30000
    for row in diff.rows:
        bound = 5 * math.sqrt(2 * max(row.old.outstanding, row.new.outstanding)) + 2
        assert abs(row.outstanding_diff) <= bound, row
        assert abs(row.used_diff) <= bound * 0x1000, row
        assert not row.lockstep
    assert diff.large == []


# -- the layout of each form, on both architectures ---------------------------------------------
def hand_built(arch: str) -> Session:
    """Pool tracking on myfault.sys; snapshot 'before' at tick 100, 'after' at tick 350: one
    Leak block (large, logged with myfault's stack) then three more, three blocks each of two
    tags allocated with them, three of Ijkl allocated four times, a CM31, an Irp freed."""
    m = Machine(get_arch(arch), 0, verifier="/flags 0x8 /driver myfault.sys",
                modules=seed_modules("myfault"))
    session = Session(m.target())
    alloc, key = m.pool.allocate, tag_to_ulong
    stack = frames(m.symbols, MYFAULT)
    alloc(PAGED, 0x2000, key("Leak"), 0, stack)
    irps = [alloc(NONPAGED, 0x100, key("Irp")) for _ in range(2)]
    m.step(100)
    run(session, "!pooldiff -save before")
    for _ in range(3):
        alloc(NONPAGED, 0x40, key("Abcd"))
        alloc(NONPAGED, 0x60, key("Efgh"))
        alloc(PAGED, 0x2000, key("Leak"), 0, stack)
    ijkl = [alloc(NONPAGED, 0x20, key("Ijkl")) for _ in range(4)]
    m.pool.free(ijkl[0])
    m.pool.free(irps[0])
    alloc(PAGED, 0x30, key("CM31"))
    m.step(250)
    run(session, "!pooldiff -save after")
    return session


@pytest.fixture(scope="module")
def hand() -> dict[str, Session]:
    return {arch: hand_built(arch) for arch in ("x86", "x64")}


TABLE_HEAD = ("                 Allocs                            Used",
              " Tag        Old      New     Diff          Old          New         Diff")
SPAN = "Pool use from #1 'before' (tick 100) to #2 'after' (tick 350): 250 ticks"
LOCKSTEP = " A: grew in lockstep (+3 blocks each, allocated as often): probably one leak"
UNKNOWN = "UNKNOWN pooltag '{}', please update pooltag.txt"
CM31 = "Registry data: hive cells, key control blocks and the like , Binary: nt!cm"
# (Efgh, Abcd, Ijkl, CM31 bytes; Irp's before and after; the totals) by arch
BYTES = {"x86": (312, 216, 120, 56, 528, 264, 4430280, 4455296, 25016, 4422088, 4422472, 384),
         "x64": (336, 240, 144, 64, 544, 272, 8706800, 8731888, 25088, 8698608, 8699056, 448)}


def test_the_table_of_changes(hand) -> None:
    for arch, session in hand.items():
        efgh, abcd, ijkl, cm31, irp0, irp1, total0, total1, grew, _, _, _ = BYTES[arch]
        assert run(session, "!pooldiff") == text(
            SPAN,
            "   Sorting by  Bytes Grown",
            "",
            *TABLE_HEAD,
            " Leak         1        4       +3         8192        32768       +24576 A "
            + UNKNOWN.format("Leak"),
            f" Efgh         0        3       +3            0 {efgh:12d} {f'+{efgh}':>12} A "
            + UNKNOWN.format("Efgh"),
            f" Abcd         0        3       +3            0 {abcd:12d} {f'+{abcd}':>12} A "
            + UNKNOWN.format("Abcd"),
            f" Ijkl         0        3       +3            0 {ijkl:12d} {f'+{ijkl}':>12}   "
            + UNKNOWN.format("Ijkl"),
            f" CM31         0        1       +1            0 {cm31:12d} {f'+{cm31}':>12}   "
            + CM31,
            f" Irp          2        1       -1 {irp0:12d} {irp1:12d} {irp1 - irp0:+12d}   "
            "I/O request packets (IRPs) ",
            f" TOTAL       15       27      +12 {total0:12d} {total1:12d} {f'+{grew}':>12}",
            "",
            LOCKSTEP,
            "",
            " Large allocations (nt!PoolBigPageTable)",
            " Tag        New        Bytes    Freed        Bytes",
            " Leak         3        24576        0            0"), arch


def test_the_table_sorted_by_allocations_for_one_pool(hand) -> None:
    for arch, session in hand.items():
        efgh, abcd, ijkl, _, irp0, irp1, _, _, _, total0, total1, grew = BYTES[arch]
        assert run(session, "!pooldiff -a -n before") == text(
            SPAN,
            "   Sorting by  Allocations Grown",
            "   NonPaged pool only",
            "",
            *TABLE_HEAD,
            f" Efgh         0        3       +3            0 {efgh:12d} {f'+{efgh}':>12} A "
            + UNKNOWN.format("Efgh"),
            f" Abcd         0        3       +3            0 {abcd:12d} {f'+{abcd}':>12} A "
            + UNKNOWN.format("Abcd"),
            f" Ijkl         0        3       +3            0 {ijkl:12d} {f'+{ijkl}':>12}   "
            + UNKNOWN.format("Ijkl"),
            f" Irp          2        1       -1 {irp0:12d} {irp1:12d} {irp1 - irp0:+12d}   "
            "I/O request packets (IRPs) ",
            f" TOTAL       14       22       +8 {total0:12d} {total1:12d} {f'+{grew}':>12}",
            "",
            LOCKSTEP), arch


def test_a_tag_filter_and_snapshots_by_name_and_number(hand) -> None:
    for session in hand.values():
        leak_only = text(
            SPAN,
            "   Sorting by  Bytes Grown",
            "   Tags matching Le*",
            "",
            *TABLE_HEAD,
            " Leak         1        4       +3         8192        32768       +24576   "
            + UNKNOWN.format("Leak"),
            " TOTAL        1        4       +3         8192        32768       +24576",
            "",
            " Large allocations (nt!PoolBigPageTable)",
            " Tag        New        Bytes    Freed        Bytes",
            " Leak         3        24576        0            0")
        assert run(session, "!pooldiff before after -tag Le*") == leak_only
        assert run(session, "!pooldiff -tag Le* #1 2") == leak_only
        assert run(session, "!pooldiff -TAG Le* BEFORE") == leak_only
        assert run(session, "!pooldiff -tag Xyz*").splitlines()[6:] == [
            " (no tag's pool use changed)",
            " TOTAL        0        0       +0            0            0           +0"]


def test_the_list(hand) -> None:
    used = {"x86": (4417464, 4422088, 4422472, 8192, 32824),
            "x64": (8693968, 8698608, 8699056, 8192, 32832)}
    for arch, session in hand.items():
        np0, np1, np2, p1, p2 = used[arch]
        assert run(session, "!pooldiff -list") == text(
            "Pool snapshots of this session (3, the last 256 are kept)",
            "",
            "    #  Name    Taken at           Tick  NonPaged         Used     Paged         Used"
            "  Large",
            f"    0          session open          0        11 {np0:12d}         0            0"
            "      5",
            f"    1  before  saved               100        14 {np1:12d}         1 {p1:12d}"
            "      7",
            f"    2  after   saved               350        22 {np2:12d}         5 {p2:12d}"
            "     10",
            "",
            "Session pool is not in them: this target has no session pool tracker "
            "(nt!ExpSessionPoolTrackTable)."), arch


STACKS_HEAD = (
    "// Verified drivers' pool allocations from #1 'before' (tick 100) to #2 'after' "
    "(tick 350): 250 ticks",
    "// by allocation stack (Driver Verifier's log, nt!VfPoolTraces), biggest change first:",
    "// + bytes ( new - old ) allocs, + count ( new - old ), the stack; hex numbers.",
    "")
NOT_SEEN = (
    "// Not seen: {} new blocks ({} bytes) whose allocation record fell off the log (0x10000 "
    "records),",
    "// and the allocations of drivers that are not verified, which are not logged (verified: "
    "myfault.sys).")


def test_the_stacks_in_umdhs_shape(hand) -> None:
    for arch, session in hand.items():
        assert run(session, "!pooldiff -stacks") == text(
            *STACKS_HEAD,
            "+     6000 (     8000 -     2000)      4 allocs\tBackTrace1\tLeak",
            "+        3 (        4 -        1)\tBackTrace1\tallocations",
            "",
            "\tnt!VeAllocatePoolWithTagPriority+0x2b6",
            "\tnt!VerifierExAllocatePoolEx+0x1d",
            "\tmyfault+0x11f6",
            "\tmyfault+0x142f",
            "\tnt!IovCallDriver+0xa0",
            "",
            "Total increase == 6000 (3 allocations)",
            "",
            NOT_SEEN[0].format(0, 0),
            NOT_SEEN[1]), arch
        # a tag no verified driver allocates: nothing, and the tracker's count for it
        assert run(session, "!pooldiff -stacks Abcd").splitlines()[4:] == [
            "// (no stack holds more or fewer blocks than before)",
            "",
            "Total increase == 0 (0 allocations)",
            "",
            NOT_SEEN[0].format(0, 0),
            NOT_SEEN[1],
            "// The tag tracker counts +3 outstanding blocks of Abcd in that time, all drivers."]


def test_stacks_say_what_fell_off_the_log() -> None:
    """Two myfault blocks allocated after 'a', then more than the ring's 0x10000 records of
    other frees: their allocation records are gone, and -stacks says so."""
    m = Machine(get_arch("x86"), 0, verifier="/flags 0x8 /driver myfault.sys",
                modules=seed_modules("myfault"))
    session = Session(m.target())
    run(session, "!pooldiff -save a")
    stack = frames(m.symbols, MYFAULT)
    for _ in range(2):
        m.pool.allocate(PAGED, 0x80, tag_to_ulong("Leak"), 0, stack)
    for _ in range(0x10010):
        m.pool.free(m.pool.allocate(NONPAGED, 0x20, tag_to_ulong("Chrn")))
    run(session, "!pooldiff -save b")
    lines = run(session, "!pooldiff -stacks Leak").splitlines()
    assert lines[0].startswith("// Verified drivers' pool allocations from #1 'a' (tick 0) "
                               "to #2 'b' (tick 0): 0 ticks")
    assert lines[4:] == [
        "// (no stack holds more or fewer blocks than before)",
        "",
        "Total increase == 0 (0 allocations)",
        "",
        NOT_SEEN[0].format(2, "100"),
        NOT_SEEN[1],
        "// The log no longer reaches back to #1 'a': 0x12 records since then fell off.",
        "// The tag tracker counts +2 outstanding blocks of Leak in that time, all drivers."]


def test_the_history_and_its_sparkline(hand) -> None:
    history = text(
        "Pool use of Leak: " + UNKNOWN.format("Leak"),
        "",
        "    #  Snapshot           Tick  NonPaged         Used     Paged         Used  Large",
        "    0  session open          0         0            0         0            0      0",
        "    1  before              100         0            0         1         8192      1",
        "    2  after               350         0            0         4        32768      4",
        "",
        " Used \u2581\u2583\u2588  (0 to 32768 bytes)")
    for session in hand.values():
        assert run(session, "!pooldiff -history Leak") == history
        result = pooldiff(session, "-history Leak")
        assert isinstance(result, TagHistory)
        # an output that cannot write block characters gets the ASCII ramp
        session.stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        assert render_pooldiff(result, session).splitlines()[-1] == \
            " Used _-@  (0 to 32768 bytes)"
        assert run(session, "!pooldiff -history Mm*").startswith(
            "Pool use of Mm*: the tags matching Mm*\n")


def test_save_names_the_snapshot_and_its_totals() -> None:
    m = Machine(get_arch("x64"), 0)
    session = Session(m.target())
    m.pool.allocate(PAGED, 0x100, tag_to_ulong("Abcd"))
    m.step(7)
    line = run(session, "!pooldiff -save mine")
    assert re.fullmatch(r"Saved pool snapshot #1 'mine' \(tick 7\): nonpaged \d+ allocations, "
                        r"\d+ bytes; paged 1 allocations, 272 bytes\n", line)
    assert run(session, "!pooldiff -save").startswith("Saved pool snapshot #2 saved (tick 7): ")


# -- the snapshots the session takes -------------------------------------------------------------
class SendCtrlC:
    """Presses Ctrl+C (SIGINT to this process) at tick 5, as a user at the keyboard would."""

    weight = 1.0

    def run(self, engine) -> None:
        if engine.t == 5:
            os.kill(os.getpid(), signal.SIGINT)


class Crash:
    weight = 1.0

    def run(self, engine) -> None:
        if engine.t == 2500:
            raise BugCheck(0x19, 0x20, 1, 2, 3)


@scenario("test-pooldiff-irps", "Irp traffic", arch="x86")
def _irps(machine: Machine, scale: float = 1.0) -> None:
    machine.workload.add(Pattern("nt", "Irp ", NONPAGED, (0x40,), 50.0, 1.0))


@scenario("test-pooldiff-ctrl-c", "Ctrl+C at tick 5", arch="x86")
def _ctrl_c(machine: Machine, scale: float = 1.0) -> None:
    machine.workload.add(SendCtrlC())


@scenario("test-pooldiff-crash", "a bug check at tick 2500", arch="x86")
def _crash(machine: Machine, scale: float = 1.0) -> None:
    machine.workload.add(Crash())


def kinds(session: Session) -> list[tuple[int, str, int | None]]:
    return [(s.number, s.kind, s.tick) for s in session.pool_snapshots.snapshots]


def test_a_snapshot_at_open_and_at_every_break_in() -> None:
    session = Session(boot("x86", 1, "test-pooldiff-irps").target())
    run(session, "g 0n300")
    run(session, "ed nt!PoolHitTag ' prI'")
    run(session, "g 0n300")
    assert kinds(session) == [(0, "session open", 0), (1, "break-in", 300),
                              (2, "PoolHitTag", 301)]
    session = Session(boot("x86", 1, "test-pooldiff-ctrl-c").target())
    run(session, "g 0n5000")
    assert kinds(session) == [(0, "session open", 0), (1, "Ctrl+C", 1000)]
    session = Session(boot("x86", 1, "test-pooldiff-crash").target())
    run(session, "g")
    assert kinds(session) == [(0, "session open", 0), (1, "bug check", 2500)]
    run(session, "g")                       # stopped: no run, no snapshot
    run(session, ".reboot")
    assert kinds(session)[2:] == [(2, "reboot", 0)]
    assert run(session, "!pooldiff") == ("Snapshots #1 and #2 are of two boots (.reboot in "
                                         "between): their counters do not compare\n")
    run(session, "g 0n100")
    assert run(session, "!pooldiff").startswith(
        "Pool use from #2 reboot (tick 0) to #3 break-in (tick 100): 100 ticks\n")
    rows = re.findall(r"^ +(\d+)  ", run(session, "!pooldiff -history Irp"), re.M)
    assert rows == ["0", "1", "2", "3"]                       # both boots' snapshots


def test_session_pool_is_read_as_paged_when_the_target_has_its_tracker() -> None:
    """The machine models no session space; a target that publishes
    nt!ExpSessionPoolTrackTable has its counters counted as paged pool."""
    m = Machine(get_arch("x86"), 0)
    layout = profile_for(m.arch).tracker
    entries = m.g.var("TestSessionTrackerEntries", 2 * layout.sizeof())
    m.g.write_ptr(m.g.var("ExpSessionPoolTrackTable"), entries)
    m.g.write_ptr(m.g.var("ExpSessionPoolTrackTableSize"), 2)
    fields = {sub.name: 0 for sub in layout.subcons if sub.name}
    m.memory.write(entries, layout.build({**fields, "Key": tag_to_ulong("Gses"),
                                          "PagedAllocs": 5, "PagedFrees": 1,
                                          "PagedBytes": 0x400}))
    session = Session(m.target())
    listing = run(session, "!pooldiff -list")
    assert "Session pool is not in them" not in listing
    history = pooldiff(session, "-history Gses")
    assert history.points[0].snapshot.paged.outstanding == 4
    assert history.points[0].used == 0x400


# -- JSON ------------------------------------------------------------------------------------------
def test_every_form_prints_its_result_as_json(hand) -> None:
    session = hand["x86"]
    run(session, ".output json")
    try:
        for args, kind in (("", PoolDiff), ("-list", SnapshotList), ("-stacks", StackDiff),
                           ("-history Leak", TagHistory)):
            printed = json.loads(run(session, f"!pooldiff {args}"))
            assert printed == json.loads(render_json(pooldiff(session, args))), args
            assert isinstance(pooldiff(session, args), kind)
        saved = json.loads(run(session, "!pooldiff -save json_test"))
        assert saved["name"] == "json_test" and saved["tick"] == 350
        assert printed["points"][2]["used"] == 32768
    finally:
        run(session, ".output text")


# -- bad input: one line each, and the session goes on --------------------------------------------
def test_bad_input_is_one_clear_line(hand, tmp_path) -> None:
    session = hand["x86"]
    other_arch = str(tmp_path / "x64.dmp")
    other_seed = str(tmp_path / "seed1.dmp")
    mini = str(tmp_path / "mini.dmp")
    run(Session(Machine(get_arch("x64"), 0).target()), f".dump /f {other_arch}")
    run(Session(Machine(get_arch("x86"), 1).target()), f".dump /f {other_seed}")
    run(Session(Machine(get_arch("x86"), 0).target()), f".dump /m {mini}")
    cases = {
        "!pooldiff nosuch": "No pool snapshot named 'nosuch' (!pooldiff -list shows them)",
        "!pooldiff 0 9": "No pool snapshot #9 (!pooldiff -list shows them)",
        "!pooldiff -tag ABCDE": "'ABCDE' is not a pool tag: four characters at most, * matching "
                                "any run and ? one character",
        "!pooldiff -history \u00e9t\u00e9": "'\u00e9t\u00e9' is not a pool tag: four characters "
                                            "at most, * matching any run and ? one character",
        "!pooldiff -history": "-history needs a TagString: !pooldiff -history Leak",
        "!pooldiff -p -n": "-p and -n do not go together: leave both out for both pools",
        "!pooldiff -list -stacks": "-list and -stacks do not go together",
        "!pooldiff -save -a": "-a applies to the table of changes, not to -save",
        "!pooldiff -history Leak -n": "-n applies to the table of changes, not to -history",
        "!pooldiff -list -dump x.dmp": "-dump goes with the table of changes or -stacks, not "
                                       "with -list",
        "!pooldiff a b c": "Too many arguments: 'c' (!pooldiff -? shows the syntax)",
        "!pooldiff -stacks Leak a b c": "Too many arguments: 'c' (!pooldiff -? shows the "
                                        "syntax)",
        "!pooldiff -stacks -tag Leak a b c": "Too many arguments: 'c' (!pooldiff -? shows the "
                                             "syntax)",
        "!pooldiff -dump x.dmp a": "Too many arguments: 'a' (!pooldiff -? shows the syntax)",
        "!pooldiff -history Leak a": "Too many arguments: 'a' (!pooldiff -? shows the syntax)",
        "!pooldiff -frobnicate": "Unknown option '-frobnicate' (!pooldiff -? shows the syntax)",
        "!pooldiff -save before": "The name 'before' is taken by snapshot #1: choose another",
        "!pooldiff -save 7up": "'7up' is no snapshot name: a letter first, then letters, digits,"
                               " '_', '.' or '-', 32 at most",
        "!pooldiff -tag": "-tag needs a TagString",
        "!pooldiff -dump": "-dump needs the file name of the other dump",
        '!pooldiff -dump "x.dmp': "Missing closing quote in '-dump \"x.dmp'",
        f"!pooldiff -dump {tmp_path / 'none.dmp'}":
            f"Could not open dump file [{tmp_path / 'none.dmp'}], Win32 error 0n2 \"The system "
            "cannot find the file specified.\"",
        f"!pooldiff -dump {other_arch}": f"{other_arch} is a dump of a Windows 7 SP1 x64 "
                                         "machine; this target is Windows 7 SP1 x86",
        f"!pooldiff -dump {other_seed}": f"{other_seed} is a dump of another machine (scenario "
                                         "default, seed 1); this target is scenario default, "
                                         "seed 0",
        f"!pooldiff -dump {mini}": f"{mini} does not hold the pool tag tracker "
                                  "(nt!PoolTrackTable): a full dump (.dump /f) does",
    }
    for line, message in cases.items():
        assert run(session, line) == message + "\n", line
        assert run(session, ".echo goes on") == "goes on\n"
    # -stacks with the verifier off, and a session with one snapshot
    plain = Session(Machine(get_arch("x86"), 0).target())
    assert run(plain, "!pooldiff") == ("Only one pool snapshot so far: g takes one at every "
                                       "break-in, !pooldiff -save one now\n")
    run(plain, "!pooldiff -save x")
    assert run(plain, "!pooldiff -stacks") == (
        "!pooldiff -stacks needs Driver Verifier pool tracking on the drivers to watch when "
        "both snapshots were taken (.verifier /flags 0x9 /driver NAME.sys, then .reboot)\n")
    # a dump is one snapshot; a target without a tag tracker has none
    assert run(Session(open_dump(other_arch)), "!pooldiff") == (
        "A dump is one pool snapshot: !pooldiff -dump OTHER.dmp compares it with another dump "
        "of the same machine\n")
    for line in ("!pooldiff", "!pooldiff -list", "!pooldiff -save x", "!pooldiff -history Leak"):
        assert run(Session(open_dump(mini)), line) == (
            "No pool snapshot: this target has no readable pool tag tracker "
            "(nt!PoolTrackTable)\n"), line


def test_the_syntax_and_help() -> None:
    session = Session(Machine(get_arch("x86"), 0).target())
    usage = run(session, "!pooldiff -?")
    assert usage.splitlines()[:7] == [
        "!pooldiff [-a] [-p|-n] [-tag TagString] [A [B]]",
        "!pooldiff -dump FileName [-a] [-p|-n] [-tag TagString]",
        "!pooldiff -stacks [TagString [A [B]]]",
        "!pooldiff -stacks [TagString] -dump FileName",
        "!pooldiff -history TagString",
        "!pooldiff -save [Name]",
        "!pooldiff -list"]
    described = run(session, "!help pooldiff")
    assert described.startswith("!pooldiff [-a] [-p|-n] [-tag TagString] [A [B] | -dump "
                                "FileName] | -stacks")
    assert "kernel-mode UMDH" in described and "-history TagString" in described
