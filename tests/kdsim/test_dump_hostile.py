"""Dumps and snapshots from strangers: each file below has a valid checksum and hostile
contents (huge declared counts and lengths, huge varints, page tables declaring more pages
than the file holds, overlapping pages, pages outside the address space, control characters,
impossible processors, an unknown profile, a body cut in the middle of a field).  Each is
refused in one line (or opened, where what it holds is harmless) in under a second, and
opening it costs less than a fixed amount of memory whatever the file declares (tracemalloc
peak).  Then the debugger's extensions on a dump whose symbols lack nt, or lack the globals
they read: kd's messages, never an internal error."""
from __future__ import annotations

import io
import os
import struct
import time
import tracemalloc
import zlib
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable

import pytest

from commands.session import Session
from commands.testing import run
from kdsim import livestate, snapshot
from kdsim.arch import get_arch
from kdsim.bounded import Number
from kdsim.bugcheck import BugCheck
from kdsim.dump import (
    BODY, HEADER, HEADER_SIZE, MAX_COMMENT, MAX_MODULES, MAX_PAGES, MAX_SYMBOLS,
    DumpError, load, save,
)
from kdsim.layouts import PAGE_SIZE, tag_to_ulong
from kdsim.layouts.constants import MAXIMUM_PROCESSORS
from kdsim.machine import Machine
from kdsim.pool import NONPAGED
from kdsim.scenarios import boot
from kdsim.symbols import SymbolTable
from kdsim.target import Target

SECONDS = 1.0                # to refuse or open any file below
PEAK = 16 << 20              # tracemalloc peak while opening a dump, whatever it declares
SNAPSHOT_PEAK = 64 << 20     # ... a snapshot (its state's lists inflate from a small file)
ESC = "\x1b"
BAD_OWNER = 0xFFFFFFF0


# -- building hostile files ---------------------------------------------------------------------
def varint(value: int) -> bytes:
    """LEB128 of any size, as a hostile writer would put it."""
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    return bytes(out + bytes([value]))


def text(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return varint(len(raw)) + raw


def module(name: str, base: int, size: int = 0x1000, symbols: bytes = b"\x00") -> bytes:
    return text(name) + text(name + ".sys") + struct.pack("<QQ", base, size) + symbols


def symbols(count: int, base: int, step: int = 0x10) -> bytes:
    """`count` symbols, in descending address order (the worst for a sorted table)."""
    return varint(count) + b"".join(text(f"Sym{i:05d}") + struct.pack("<Q", base - i * step)
                                    for i in range(count))


def run_of(vpn: int, count: int, pages: int | None = None) -> bytes:
    """A run declaring `count` pages and holding `pages` of them (all, by default)."""
    return struct.pack("<QI", vpn, count) + bytes(PAGE_SIZE * (count if pages is None
                                                               else pages))


@dataclass
class Good:
    """A crashed x86 machine's dump, taken apart: its header and the encoded fields of its
    body, to build hostile dumps that differ in one field."""
    header: Any
    body: Any
    parts: dict[str, bytes]
    target: Target

    def dump(self, **changes: bytes | Callable[[bytes], bytes]) -> bytes:
        parts = {name: (change(self.parts[name]) if callable(change) else change)
                 for name, change in {**self.parts, **changes}.items()}
        return self.seal(b"".join(parts.values()))

    def seal(self, body: bytes, **header: Any) -> bytes:
        fields = {**self.header, **header, "body_size": len(body), "checksum": 0}
        raw = HEADER.build(fields)[:-4]
        return raw + struct.pack("<I", zlib.crc32(raw, zlib.crc32(body))) + body

    def runs(self, pages: dict[int, bytearray]) -> bytes:
        """The runs part holding these pages, one run each."""
        return field("runs").build([dict(vpn=v, count=1, pages=[p])
                                    for v, p in sorted(pages.items())])

    def pages(self) -> dict[int, bytearray]:
        return {vpn: bytearray(page) for vpn, page in self.target.memory.pages.items()}

    def vpn_of(self, symbol: str) -> tuple[int, int]:
        address = self.target.symbol(symbol)
        return address // PAGE_SIZE, address % PAGE_SIZE


def field(name: str) -> Any:
    return next(sub for sub in BODY.subcons if sub.name == name)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Good:
    machine = Machine(get_arch("x86"), seed=0)
    machine.pool.allocate(NONPAGED, 0x100, tag_to_ulong("Hstl"))
    machine.stop(BugCheck(0x19, 0x20, 1, 2, 3))
    path = tmp_path_factory.mktemp("good") / "good.dmp"
    save(machine.target(), path)
    data = path.read_bytes()
    body = BODY.parse(data[HEADER_SIZE:])
    parts = {sub.name: sub.build(body[sub.name]) for sub in BODY.subcons if sub.name}
    assert b"".join(parts.values()) == data[HEADER_SIZE:]
    return Good(HEADER.parse(data[:HEADER_SIZE]), body, parts, load(path))


def free_vpn(good: Good) -> int:
    """A page number inside the x86 address space that the dump does not hold."""
    pages = good.target.memory.pages
    return next(v for v in range(0x80000, 0x100000, 4) if all(v + i not in pages
                                                                 for i in range(8)))


def opened(path: Path, reader: Callable[[Path], Any], error: type, peak: int) -> tuple[Any, str]:
    """Open the file twice, once timed and once traced (tracing slows what it traces):
    (what opened or None, the refusal or '')."""
    def attempt() -> tuple[Any, str]:
        try:
            return reader(path), ""
        except error as exc:
            return None, exc.message

    started = time.perf_counter()
    result, message = attempt()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        assert attempt()[1] == message
        most = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < SECONDS, f"{elapsed:.2f} s"
    assert most < peak, f"{most / 1e6:.1f} MB"
    return result, message


# -- the table ----------------------------------------------------------------------------------
def bad_owner(good: Good) -> bytes:
    pages = good.pages()
    vpn, offset = good.vpn_of("nt!KeBugCheckOwner")
    pages[vpn][offset:offset + 4] = struct.pack("<I", BAD_OWNER)
    return good.dump(runs=good.runs(pages))


def no_bugcheck_data(good: Good) -> bytes:
    pages = good.pages()
    del pages[good.vpn_of("nt!KiBugCheckData")[0]]
    body = b"".join({**good.parts, "runs": good.runs(pages)}.values())
    return good.seal(body, bugcheck_code=0, bugcheck_params=[0, 0, 0, 0])


def items(part: bytes, count: int) -> bytes:
    """An array part without its count."""
    return part[len(varint(count)):]


def many_modules(good: Good, count: int, each: int) -> bytes:
    """The dump's modules, then `count` more with `each` symbols."""
    mods = good.body.modules
    return good.dump(modules=varint(len(mods) + count) + items(good.parts["modules"], len(mods))
                     + b"".join(module(f"m{i}", 0x1000000 + i * 0x10000, 0x10000,
                                       symbols(each, 0x100fff0 + i * 0x10000))
                                for i in range(count)))


def duplicate_runs(good: Good, count: int) -> bytes:
    """The dump's runs, then `count` more runs, each one page at the first run's address: a
    page table declaring more pages than the address space has room for."""
    runs = good.body.runs
    extra = b"".join(run_of(runs[0].vpn, 1) for _ in range(count))
    return good.dump(runs=varint(len(runs) + count) + items(good.parts["runs"], len(runs))
                     + extra)


def x64_header(good: Good, body: bytes) -> bytes:
    return good.seal(body, arch="x64")


WRONG = "malformed contents: "
HOSTILE_DUMPS: dict[str, tuple[Callable[[Good], bytes], str | None]] = {
    # counts declared beyond the maxima or beyond what the file holds
    "60,000 modules declared": (
        lambda g: g.dump(modules=varint(60_000) + module("m", 0x1000000)),
        f"{WRONG}60000 modules, more than {MAX_MODULES}"),
    "60,000 modules held": (
        lambda g: many_modules(g, 60_000 - len(g.body.modules), 0),
        f"{WRONG}60000 modules, more than {MAX_MODULES}"),
    "modules beyond the bytes left": (
        lambda g: g.dump(modules=varint(1000) + module("m", 0x1000000), noaccess=b"",
                         runs=b""),
        f"{WRONG}1000 modules cannot fit in the {len(module('m', 0))} bytes left"),
    "2**32 symbols declared": (
        lambda g: g.dump(modules=varint(1) + module("m", 0x1000000, symbols=varint(1 << 32))),
        f"{WRONG}4294967296 symbols, more than {MAX_SYMBOLS}"),
    "more symbols in all modules than a dump holds": (
        lambda g: many_modules(g, 3, 12_000), f"{WRONG}more than {MAX_SYMBOLS} symbols"),
    "a billion no-access pages declared": (
        lambda g: g.dump(noaccess=varint(1 << 30)),
        f"{WRONG}1073741824 no-access pages, more than {MAX_PAGES}"),
    "60,000 runs declared": (
        lambda g: g.dump(runs=varint(60_000) + run_of(free_vpn(g), 1)),
        f"{WRONG}60000 page runs cannot fit in the 4108 bytes left"),
    # varints and strings
    "a million-byte varint": (
        lambda g: g.dump(scenario=b"\x80" * 999_999 + b"\x01"),
        f"{WRONG}a number wider than 64 bits"),
    "a 65-bit varint": (
        lambda g: g.dump(seed=b"\x80" * 9 + b"\x02"), f"{WRONG}a number wider than 64 bits"),
    "a terabyte scenario name": (
        lambda g: g.dump(scenario=varint(1 << 40)),
        f"{WRONG}a name of 1099511627776 bytes, longer than 1024"),
    "a 5000-byte comment": (
        lambda g: g.dump(comment=text("c" * 5000)),
        f"{WRONG}a comment of 5000 bytes, longer than 4096"),
    "a name that is not UTF-8": (
        lambda g: g.dump(scenario=text(b"\xff\xfe")), f"{WRONG}a name that is not UTF-8"),
    # the page table
    "a run declaring 60,000 pages, holding one": (
        lambda g: g.dump(runs=varint(1) + run_of(free_vpn(g), 60_000, pages=1)),
        f"{WRONG}the page data stops early"),
    "5,000 runs storing the same page": (
        lambda g: duplicate_runs(g, 5_000), "page {first:#x} is stored twice"),
    "overlapping runs": (
        lambda g: g.dump(runs=varint(2) + run_of(free_vpn(g), 4) + run_of(free_vpn(g) + 2, 4)),
        "page {free_plus_2:#x} is stored twice"),
    "pages outside the address space": (
        lambda g: g.dump(runs=varint(1) + run_of(0xFFFFF, 2)),
        "page run 0xfffff+0x2 is outside the address space"),
    "2**32 - 1 pages in one run of an x64 dump": (
        lambda g: x64_header(g, b"".join({**g.parts, "runs": varint(1) + run_of(
            0, 0xFFFFFFFF, pages=1)}.values())),
        f"{WRONG}more than {MAX_PAGES} pages"),
    # the header and what the prompt reads
    "processors = 0xFFFFFFF0": (
        lambda g: g.seal(b"".join(g.parts.values()), processors=0xFFFFFFF0),
        f"4294967280 processors, more than {MAXIMUM_PROCESSORS}"),
    "33 processors": (
        lambda g: g.seal(b"".join(g.parts.values()), processors=33),
        f"33 processors, more than {MAXIMUM_PROCESSORS}"),
    "the bug-check owner out of range": (
        bad_owner, f"the bug check's owner, processor {BAD_OWNER}, is not one of its 2 "
                   f"processors"),
    "the bug-check data missing from memory": (
        no_bugcheck_data, "nt!KiBugCheckData is not in memory"),
    "a profile name with control characters": (
        lambda g: g.seal(b"".join(g.parts.values()), profile="\x1b[2Jwin7sp1-x86"),
        "its profile name is not text"),
    "a module with control characters outside the address space": (
        lambda g: g.dump(modules=varint(1) + module("\x1b[31mfar", 0xFFFFF000, 0x2000)),
        "module \\x1b[31mfar lies outside the address space"),
    # cut in the middle of a field (body_size and checksum still right)
    "cut inside a varint": (
        lambda g: g.dump(modules=b"\x80", noaccess=b"", runs=b""),
        f"{WRONG}stream read less than specified amount, expected 1, found 0"),
    "cut inside a module's base": (
        lambda g: g.dump(modules=varint(1) + text("module" * 4) + text("m.sys") + b"\x00\x00",
                         noaccess=b"", runs=b""),
        f"{WRONG}stream read less than specified amount, expected 8, found 2"),
}


@pytest.mark.parametrize("case", list(HOSTILE_DUMPS))
def test_hostile_dump_is_refused_in_one_line_quickly_and_cheaply(good, tmp_path, case):
    build, reason = HOSTILE_DUMPS[case]
    path = tmp_path / "hostile.dmp"
    path.write_bytes(build(good))
    target, message = opened(path, load, DumpError, PEAK)
    assert target is None
    assert message == f"Could not open dump file [{path}], " + (
        "the file is damaged (" + reason.format(
            first=good.body.runs[0].vpn, free_plus_2=free_vpn(good) + 2) + ")")
    assert "\n" not in message and ESC not in message


def test_control_characters_in_names_and_comment_open_verbatim(good, tmp_path):
    """Harmless to open: they are data, shown through the debugger's printing (never raw)."""
    comment = "\x1b]0;title\x07\x1b[2J\r\n"
    name = "\x1b[31mevil"
    path = tmp_path / "escapes.dmp"
    count = len(good.body.modules)
    path.write_bytes(good.dump(comment=text(comment), modules=lambda mods: varint(
        count + 1) + items(mods, count) + module(
            name, 0x1000000, symbols=varint(1) + text("\x1b[5mblink") +
            struct.pack("<Q", 0x1000010))))
    target, message = opened(path, load, DumpError, PEAK)
    assert message == ""
    assert target.meta["comment"] == comment
    assert target.symbols.module(name).symbols == {"\x1b[5mblink": 0x1000010}


@pytest.mark.parametrize("case", ["32 processors", "1024 modules and 32768 symbols",
                                  "100,000 no-access pages"])
def test_harmless_extremes_open_quickly(good, tmp_path, case):
    pages = good.target.memory.pages
    extra = MAX_MODULES - len(good.body.modules)
    held = sum(len(m.symbols) for m in good.body.modules)
    free = islice((v for v in range(0x100000) if v not in pages), 100_000)
    data = {
        "32 processors": lambda: good.seal(b"".join(good.parts.values()), processors=32),
        "1024 modules and 32768 symbols": lambda: many_modules(
            good, extra, (MAX_SYMBOLS - held) // extra),
        "100,000 no-access pages": lambda: good.dump(
            noaccess=Number.build(100_000) + b"".join(struct.pack("<Q", v) for v in free)),
    }[case]()
    path = tmp_path / "extreme.dmp"
    path.write_bytes(data)
    target, message = opened(path, load, DumpError, 64 << 20)
    assert message == ""
    assert target.stop_state().code == 0x19
    session = Session(target)
    assert session.prompt == ("0: kd> " if target.processors > 1 else "kd> ")


# -- snapshots: the state's lists, and the memory part read with the recipe's address space ----
@dataclass
class GoodSnapshot:
    head: bytes                    # the kdsim version and the state, encoded
    state: Any
    memory: Any                    # the dump body part, parsed

    def sealed(self, head: bytes | None = None, memory: bytes | None = None) -> bytes:
        body = (self.head if head is None else head) + (
            BODY.build(self.memory) if memory is None else memory)
        stored = zlib.compress(body, 1)
        header = snapshot.HEADER.build(dict(version=snapshot.VERSION, body_size=len(body),
                                            stored_size=len(stored), checksum=0))[:-4]
        return header + struct.pack("<I", zlib.crc32(header, zlib.crc32(stored))) + stored

    def with_state(self, change: Callable[[Any], None]) -> bytes:
        state = livestate.STATE.parse(livestate.STATE.build(self.state))
        change(state)
        kdsim = snapshot.BODY.subcons[0].build(snapshot.version())
        return self.sealed(head=kdsim + livestate.STATE.build(state))


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory) -> GoodSnapshot:
    machine = boot("x86", 1, "default", scale=0.05)
    machine.stop(BugCheck(0x19, 0x20, 1, 2, 3))
    path = tmp_path_factory.mktemp("snap") / "good.kdsnap"
    snapshot.save(machine, path)
    body = zlib.decompress(path.read_bytes()[snapshot.HEADER_SIZE:])
    stream = io.BytesIO(body)
    snapshot.BODY.subcons[0].parse_stream(stream)
    state = livestate.STATE.parse_stream(stream)
    split = stream.tell()
    return GoodSnapshot(body[:split], state, BODY.parse(body[split:]))


def snapshot_runs(good: GoodSnapshot, change: Callable[[dict[int, bytearray]], None]) -> bytes:
    pages = {run.vpn + i: bytearray(page) for run in good.memory.runs
             for i, page in enumerate(run.pages)}
    change(pages)
    memory = dict(good.memory, runs=[dict(vpn=v, count=1, pages=[p])
                                     for v, p in sorted(pages.items())])
    return good.sealed(memory=BODY.build(memory))


def owner_page(good: GoodSnapshot) -> tuple[int, int]:
    address = next(s.address for m in good.memory.modules if m.name == "nt"
                   for s in m.symbols if s.name == "KeBugCheckOwner")
    return address // PAGE_SIZE, address % PAGE_SIZE


def set_owner(good: GoodSnapshot, pages: dict[int, bytearray]) -> None:
    vpn, offset = owner_page(good)
    pages[vpn][offset:offset + 4] = struct.pack("<I", BAD_OWNER)


def memory_with(good: GoodSnapshot, **parts: bytes) -> bytes:
    encoded = {sub.name: sub.build(good.memory[sub.name]) for sub in BODY.subcons if sub.name}
    return b"".join({**encoded, **parts}.values())


def rng_words_at(good: GoodSnapshot) -> int:
    """Where the random generator's word count is in the body: after the version, the recipe
    and the workload's clock, sequence and generator version."""
    version = snapshot.BODY.subcons[0].build(snapshot.version())
    return len(version) + len(livestate.RECIPE.build(good.state.recipe)) + 8 + 8 + 4


def set_values(state: Any) -> None:
    """Two lists of 1.5 M numbers: each within the per-list maximum, together beyond the
    state's allowance."""
    state.workload.due_seq = [0] * 1_500_000
    state.workload.due_address = [0] * 1_500_000


HOSTILE_SNAPSHOTS: dict[str, tuple[Callable[[GoodSnapshot], bytes], str]] = {
    "2**32 - 1 random generator words declared": (
        lambda g: g.sealed(head=g.head[:rng_words_at(g)] + struct.pack("<I", 0xFFFFFFFF)
                           + g.head[rng_words_at(g) + 4:]),
        f"{WRONG}4294967295 random generator words, more than {livestate.MAX_VALUES}"),
    "lists beyond the state's allowance": (
        lambda g: g.with_state(set_values), f"{WRONG}more than {livestate.MAX_VALUES} values"),
    "70,000 stacks declared": (
        lambda g: g.with_state(lambda s: setattr(s.workload, "stacks", [[]] * 70_000)),
        f"{WRONG}70000 stacks, more than {livestate.MAX_RECORDS}"),
    "a terabyte scenario name": (
        lambda g: g.sealed(head=g.head.replace(b"\x07default", varint(1 << 40), 1)),
        f"{WRONG}a name of 1099511627776 bytes, longer than 1024"),
    "60,000 modules declared in the memory": (
        lambda g: g.sealed(memory=memory_with(g, modules=varint(60_000))),
        f"{WRONG}60000 modules, more than {MAX_MODULES}"),
    "a million-byte varint in the memory": (
        lambda g: g.sealed(memory=memory_with(g, seed=b"\x80" * 999_999 + b"\x01")),
        f"{WRONG}a number wider than 64 bits"),
    "pages outside the recipe's address space": (
        lambda g: g.sealed(memory=memory_with(g, runs=varint(1) + run_of(0xFFFFF, 2))),
        "page run 0xfffff+0x2 is outside the address space"),
    "the bug-check owner out of range": (
        lambda g: snapshot_runs(g, lambda pages: set_owner(g, pages)),
        f"the bug check's owner, processor {BAD_OWNER}, is not one of its 2 processors"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SNAPSHOTS))
def test_hostile_snapshot_is_refused_in_one_line_quickly_and_cheaply(good_snapshot, tmp_path,
                                                                      case):
    build, reason = HOSTILE_SNAPSHOTS[case]
    path = tmp_path / "hostile.kdsnap"
    path.write_bytes(build(good_snapshot))
    machine, message = opened(path, snapshot.load, snapshot.SnapshotError, SNAPSHOT_PEAK)
    assert machine is None
    assert message == f"Could not open snapshot [{path}], the file is damaged ({reason})"


def test_the_good_snapshot_rebuilt_from_its_parts_opens(good_snapshot, tmp_path):
    path = tmp_path / "same.kdsnap"
    path.write_bytes(good_snapshot.sealed())
    assert snapshot.load(path).crash.code == 0x19


# -- extensions on a dump whose symbols lack nt, or the globals they read -----------------------
EXTENSION_LINES = ("!verifier", "!verifier 1", "!verifier 3", "!verifier 0x80",
                   "!verifier 0x80 f8000000", "!pool {block:x}", "!pool {block:x} 2",
                   "!poolused", "!poolused 2", "!poolfind Hstl", "!poolfind Hstl 1", "!vm",
                   "!lookaside", "!lookaside -all", "!analyze", "!analyze -v", "k", "kb",
                   ".bugcheck")
GLOBALS = ("MmVerifierData", "MiSuspectDriverList", "VfPoolTraces", "VfPoolTracesLength",
           "VfPoolTracesIndex", "PoolTrackTable", "PoolTrackTableSize", "PoolBigPageTable",
           "PoolBigPageTableSize", "KiProcessorBlock", "KeNumberProcessors",
           "ExpNumberOfPagedPools", "KiBugCheckData", "KeBugCheckOwner", "MmNonPagedPoolStart",
           "MmPagedPoolStart")


@pytest.fixture(scope="module")
def crashed() -> tuple[Machine, int]:
    machine = boot("x86", 1, "default", scale=0.05)
    block = machine.pool.allocate(NONPAGED, 0x40, tag_to_ulong("Hstl"))
    machine.stop(BugCheck(0x19, 0x20, block - 8, block + 0x40, 0x4050001))
    return machine, block


def without(target: Target, drop: str) -> SymbolTable:
    """The target's symbols without nt ('nt'), without nt's symbols ('nt!'), or without one
    nt symbol."""
    table = SymbolTable()
    for mod in target.symbols.modules:
        if drop == "nt" and mod.name == "nt":
            continue
        kept = {} if drop == "nt!" and mod.name == "nt" else {
            name: address for name, address in mod.symbols.items()
            if not (mod.name == "nt" and name == drop)}
        table.add_module(mod.name, mod.image, mod.base, mod.size).add_all(kept.items())
    return table


@pytest.mark.parametrize("drop", ["nt", "nt!", *GLOBALS])
def test_extensions_on_a_dump_without_the_symbols_they_read(crashed, tmp_path, drop):
    machine, block = crashed
    live = machine.target()
    stripped = Target(live.arch, live.memory, without(live, drop), live.processors,
                      profile=live.profile)
    path = tmp_path / "stripped.dmp"
    save(stripped, path)
    session = Session(load(path))
    for line in EXTENSION_LINES:
        out = run(session, line.format(block=block))
        assert "Internal error" not in out and "Traceback" not in out, (line, out)


def test_kds_messages_for_what_the_symbols_lack(crashed, tmp_path):
    machine, _ = crashed
    live = machine.target()
    path = tmp_path / "no-nt.dmp"
    save(Target(live.arch, live.memory, without(live, "nt"), live.processors,
                profile=live.profile), path)
    session = Session(load(path))
    assert run(session, "!verifier") == "Couldn't resolve error at 'nt!MmVerifierData'\n"
    assert run(session, "!verifier 0x80") == "Couldn't resolve error at 'nt!VfPoolTraces'\n"
    assert run(session, "!analyze -v") == (
        "***** Kernel symbols are WRONG. Please fix symbols to do analysis.\n")
    assert run(session, "!poolused") == "Couldn't resolve error at 'nt!PoolTrackTable'\n"
    alone = Session(Target(live.arch, live.memory, without(live, "MiSuspectDriverList"),
                           live.processors, profile=live.profile))
    assert run(alone, "!verifier 1") == "Couldn't resolve error at 'nt!MiSuspectDriverList'\n"


# -- the writer writes nothing the reader refuses -----------------------------------------------
def test_comments_a_dump_cannot_hold(tmp_path):
    machine = Machine(get_arch("x86"), seed=0)
    path = tmp_path / "long.dmp"
    with pytest.raises(DumpError) as caught:
        save(machine.target(), path, comment="c" * (MAX_COMMENT + 1))
    assert caught.value.message == (f"The comment is too long: a dump holds at most "
                                    f"{MAX_COMMENT} bytes of comment")
    assert not path.exists()
    save(machine.target(), path, comment="undecodable \udcff byte")     # from a command line
    assert load(path).meta["comment"] == "undecodable ? byte"


# -- files that are not files -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_pipes_and_devices_are_refused_at_once(tmp_path, kind):
    """A FIFO would block the open (or never end), /dev/zero never ends: as for a directory,
    `Access is denied`."""
    path = tmp_path / "pipe"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    started = time.perf_counter()
    with pytest.raises(DumpError) as dumped:
        load(path)
    with pytest.raises(snapshot.SnapshotError) as resumed:
        snapshot.load(path)
    assert time.perf_counter() - started < SECONDS
    assert dumped.value.message == (f"Could not open dump file [{path}], Win32 error 0n5 "
                                    f'"Access is denied."')
    assert resumed.value.message == (f"Could not open snapshot [{path}], Win32 error 0n5 "
                                     f'"Access is denied."')
