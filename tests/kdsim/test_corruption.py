"""The corruption fuzzer: a kernel whose pool bookkeeping is damaged stops with a bug check, as
Windows 7 does, and never with a Python exception; the pool commands read the wreck.

Each trial resumes a small booted machine from a snapshot (both arches; the default machine,
a fragmented pool, Driver Verifier logging one driver, special pool and pool tracking for every
driver), writes through the debugger's memory interface into the allocator's own structures
(pool headers, the links of free chunks, ListHeads entries, lookaside heads and their Next
chain, descriptors and the pending-free chain, tag tracker entries, the big-page table, special
pool pages and the verifier's records, any pool bytes) the values a wild or clumsy write
leaves: random bits, pointers to the last bytes of a page, into another pool page, into pool
address space that is not mapped, off-by-one sizes.  Then `g`, then the pool commands.  The
seeds are fixed.

What must hold: no Python exception reaches the test, no command prints an internal error, no
trial runs past its time bound, and every machine either runs on or stops at a bug check of
the documented set (kdsim/pool.py: BAD_POOL_HEADER, BAD_POOL_CALLER, DRIVER_CORRUPTED_EXPOOL,
PAGE_FAULT_IN_NONPAGED_AREA, and KMODE_EXCEPTION_NOT_HANDLED for an x64 address no processor
takes; plus the special pool and verifier stops the scenarios make by themselves), the
simulator's last-resort net (`Machine.internal_error`) never used.  The tally is printed.
"""
from __future__ import annotations

import random
import signal
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from commands.session import Session
from commands.testing import run
from kdsim import snapshot
from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import NONPAGED, PAGE_MASK, PAGE_SIZE, PAGED, POOL_SMALL_LISTS, tag_to_ulong
from kdsim.machine import Machine
from kdsim.modules import frames
from kdsim.pool import PoolSettings
from kdsim.scenarios import boot
from tests.support import peak_mb, resident_mb

SEED = 13
TRIALS = 160
TRIAL_SECONDS = 20                  # a trial that runs longer is a hang
WRITES = (1, 1, 1, 2, 3)            # corrupting writes per trial, drawn
TICKS = 3000                        # how long `g` lets the machine run
PEAK_MB = 500

# The machines the trials start from: (arch, scenario, Driver Verifier settings).
MACHINES = [(arch, scenario, verifier) for arch in ("x86", "x64")
            for scenario, verifier in (("default", ""), ("fragmentation", ""), ("leak", ""),
                                       ("default", "/flags 0x9 /all"))]
Machines = dict[tuple[str, str, str], Path]

# Where a corrupted allocator may stop: its own checks and faults, and the stops of special
# pool and the verifier.
ALLOCATOR_STOPS = {0x19, 0xC2, 0xC5, 0x50, 0x1E}
SCENARIO_STOPS = {0xC1, 0xC4, 0xCC, 0xCD, 0xD5, 0xD6}
STATUS_ACCESS_VIOLATION = 0xC0000005

COMMANDS = ("!pool {block}", "!pool {block} 1", "!poolval {page}", "!poolfind {tag}",
            "!poolfind {tag} 1", "!lookaside", "!lookaside -all", "!poolused", "!poolused 4",
            "!vm", "!verifier", "!verifier 3", "!verifier 0x80 {block}", "!analyze -v", "k")
TAGS = ("File", "Irp", "Leak", "MmCm", "Pool", "Thr*", "*")


class TrialTimeout(BaseException):
    """A trial ran past its bound (a BaseException, so that no safety net swallows it)."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the code inside after `seconds` with TrialTimeout (an endless loop included)."""
    def expired(signum: int, frame: object) -> None:
        raise TrialTimeout

    if not hasattr(signal, "setitimer"):           # no interval timer: measured afterwards
        yield
        return
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- what a corrupting write puts where ---------------------------------------------------------
class Corruptor:
    """Picks a place in the allocator's structures of machine `m` and a value for it."""

    def __init__(self, m: Machine, rng: random.Random):
        self.m, self.rng = m, rng
        self.pool = m.pool
        self.P, self.G = m.arch.ptr_size, m.arch.block
        self.mask = m.arch.ptr_mask
        mm = m.mm
        self.pages = sorted(vpn << 12 for vpn in m.memory.pages
                            if mm.nonpaged.contains(vpn << 12) or mm.paged.contains(vpn << 12))

    # values
    def pointer(self, here: int) -> int:
        """A pointer a wild write leaves: random, the last bytes of a page, into another pool
        page, unmapped pool space, small or all-ones, the place itself."""
        rng, pages = self.rng, self.pages
        kind = rng.randrange(7)
        if kind == 0:
            return rng.getrandbits(8 * self.P)
        if kind == 1:
            return rng.choice(pages) + PAGE_SIZE - rng.choice((1, 2, 4, 8, 12, self.G))
        if kind == 2:
            return rng.choice(pages) + rng.randrange(0, PAGE_SIZE, 4)
        if kind == 3:
            return self.unmapped()
        if kind == 4:
            return rng.choice((0, 1, 0x10, 0xFFFFFFFF, self.mask))
        if kind == 5:
            return here
        return here + rng.choice((-self.G, -self.P, self.P, self.G))

    def unmapped(self) -> int:
        mm, rng = self.m.mm, self.rng
        while True:
            pool = rng.choice((mm.nonpaged, mm.paged))
            va = pool.start + rng.randrange(min(pool.max_pages, 1 << 16)) * PAGE_SIZE
            if not self.m.memory.is_mapped(va):
                return va + rng.randrange(0, PAGE_SIZE, self.G)

    def size(self, value: int, width: int) -> int:
        """A size field's value nudged, zeroed, maxed, or random."""
        rng = self.rng
        return rng.choice((value + 1, value - 1, value + 2, 0, 1, rng.getrandbits(width),
                           (1 << width) - 1)) & ((1 << width) - 1)

    # places
    def chunks(self, page: int) -> list[tuple[int, int, int]]:
        """(address, BlockSize, PoolType) of the headers of a pool page, walked by size."""
        out, off = [], 0
        while off < PAGE_SIZE:
            _, _, bs, ptype, _ = self.pool.header(page + off)
            if not bs:
                break
            out.append((page + off, bs, ptype))
            off += bs * self.G
        return out

    def header(self) -> tuple[int, bytes]:
        chunks = self.chunks(self.rng.choice(self.pages)) or [(self.rng.choice(self.pages), 1, 0)]
        e, bs, _ = self.rng.choice(chunks)
        ulong1 = self.m.memory.read(e, 4)
        fields = int.from_bytes(ulong1, "little")
        mask = self.pool.codec.size_mask
        width = mask.bit_length()
        kind = self.rng.randrange(5)
        if kind == 0:                                  # BlockSize
            value = fields & ~(mask << 16) | self.size(bs, width) << 16
        elif kind == 1:                                # PreviousSize
            value = fields & ~mask | self.size(fields & mask, width)
        elif kind == 2:                                # a byte of it
            shift = 8 * self.rng.randrange(4)
            value = fields & ~(0xFF << shift) | self.rng.getrandbits(8) << shift
        elif kind == 3:                                # `ed <pool address> 10018`
            value = 0x10018
        else:
            value = self.rng.getrandbits(32)
        return e, (value & 0xFFFFFFFF).to_bytes(4, "little")

    def free_links(self) -> tuple[int, bytes]:
        free = [c for page in self.rng.sample(self.pages, min(8, len(self.pages)))
                for c in self.chunks(page) if not c[2] and c[1] > 1]
        if not free:
            return self.header()
        e = self.rng.choice(free)[0] + self.G + self.rng.choice((0, self.P))
        return e, self.ptr(self.pointer(e))

    def list_head(self) -> tuple[int, bytes]:
        pool = self.pool
        desc = self.rng.choice([*pool.descriptors, *pool.paged_desc])
        busy = [k for k in range(pool.nlists) if desc.bitmap >> k & 1]
        k = self.rng.choice(busy) if busy and self.rng.random() < 0.6 else \
            self.rng.randrange(pool.nlists)
        at = desc.lists + k * 2 * self.P + self.rng.choice((0, self.P))
        return at, self.ptr(self.pointer(at))

    def lookaside(self) -> tuple[int, bytes]:
        pool, rng = self.pool, self.rng
        la = rng.choice(pool.la[rng.randrange(self.m.processors)][rng.randrange(2)]
                        [rng.randrange(POOL_SMALL_LISTS)])
        next_at = la + pool.o_la_next
        top = pool._rptr(next_at)
        kind = rng.randrange(4)
        if kind == 0 and self.mapped(top):
            return top, self.ptr(self.pointer(top))       # the Next inside the first chunk
        if kind == 1:
            at = la + rng.choice((pool.o_la_depth, pool.o_la_listdepth, pool.o_la_maxdepth))
            return at, rng.getrandbits(16).to_bytes(2, "little")
        return next_at, self.ptr(self.pointer(next_at))

    def descriptor(self) -> tuple[int, bytes]:
        pool, rng = self.pool, self.rng
        desc = rng.choice([*pool.descriptors, *pool.paged_desc])
        chain = pool._rptr(desc.pending)
        kind = rng.randrange(4)
        if kind == 0 and self.mapped(chain):
            return chain, self.ptr(self.pointer(chain))   # the Next of a pending block
        if kind == 1:
            return desc.pending, self.ptr(self.pointer(desc.pending))
        if kind == 2:
            at = desc.addr + pool.o_pending_depth
            return at, self.size(rng.choice((0, 31, 32)), 32).to_bytes(4, "little")
        at = desc.addr + rng.randrange(0, pool.d_offsets["ListHeads"], 4)
        return at, rng.getrandbits(32).to_bytes(4, "little")

    def tracker(self) -> tuple[int, bytes]:
        t = self.pool.tracker
        at = t.table + self.rng.randrange(t.size) * t.entry_size + \
            self.rng.randrange(0, t.entry_size, 4)
        return at, self.rng.choice((self.rng.getrandbits(32), 0, 0xFFFFFFFF)).to_bytes(4, "little")

    def big_page(self) -> tuple[int, bytes]:
        big, rng = self.pool.big, self.rng
        live = [i for i in range(big.entries) if not big._rptr(big.table + i * big.esize) & 1]
        i = rng.choice(live) if live and rng.random() < 0.7 else rng.randrange(big.entries)
        at = big.table + i * big.esize + rng.randrange(0, big.esize, 4)
        value = self.pointer(at) if rng.random() < 0.5 else rng.getrandbits(32)
        return at, (value & 0xFFFFFFFF).to_bytes(4, "little")

    def verifier(self) -> tuple[int, bytes]:
        """A special-pool page (its header, fill pattern or data), a verifier driver entry,
        the verifier's counters or its allocate/free log; pool bytes on machines without."""
        v, rng = self.m.verifier, self.rng
        special = v.special
        spots = [a for a in (*v.entries.values(), v.traces) if a]
        if special is not None:
            spots += [vpn << 12 for vpn in self.m.memory.pages if special.contains(vpn << 12)]
        if not spots:
            return self.pool_bytes()
        at = rng.choice(spots)
        if rng.random() < 0.5:                         # elsewhere on its page
            at = (at & ~PAGE_MASK) + rng.randrange(0, PAGE_SIZE - 8, 4)
        return at, self.ptr(self.pointer(at) if rng.random() < 0.5 else rng.getrandbits(8))

    def pool_bytes(self) -> tuple[int, bytes]:
        at = self.rng.choice(self.pages) + self.rng.randrange(PAGE_SIZE - 8)
        return at, self.ptr(self.pointer(at))

    def mapped(self, at: int) -> bool:
        """Can a pointer be written at `at` (an earlier write may have made it wild)?"""
        memory = self.m.memory
        return bool(at) and memory.is_mapped(at) and memory.is_mapped(at + self.P - 1)

    def ptr(self, value: int) -> bytes:
        return (value & self.mask).to_bytes(self.P, "little")

    def places(self) -> list[Callable[[], tuple[int, bytes]]]:
        return [self.header, self.header, self.free_links, self.list_head, self.lookaside,
                self.lookaside, self.descriptor, self.tracker, self.big_page, self.verifier,
                self.pool_bytes]


# -- the trials ---------------------------------------------------------------------------------
@dataclass
class Report:
    tally: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Machines:
    """Each machine booted once (small scale) and saved: a trial resumes a fresh copy."""
    folder = tmp_path_factory.mktemp("corruption")
    saved = {}
    for n, (arch, scenario, verifier) in enumerate(MACHINES):
        path = folder / f"{n}.kdsnap"
        options = {"verifier": verifier} if verifier else {}
        snapshot.save(boot(arch, seed=3, scenario=scenario, scale=0.05, **options), path)
        saved[arch, scenario, verifier] = path
    return saved


def stop_name(m: Machine) -> str:
    return "runs on" if m.crash is None else f"{m.crash.name} ({m.crash.code:#x})"


def check_stop(m: Machine) -> str | None:
    """What is wrong with how the machine stopped, or None."""
    if m.internal_error is not None:
        return "the simulator's last-resort net caught " + "".join(
            traceback.format_exception(m.internal_error))
    bc: BugCheck | None = m.crash
    if bc is None or bc.code in SCENARIO_STOPS:
        return None
    if bc.code not in ALLOCATOR_STOPS:
        return f"undocumented bug check {bc}"
    if bc.code == 0x1E and (bc.params[0] != STATUS_ACCESS_VIOLATION or m.arch.ptr_size != 8):
        return f"0x1E is only an x64 non-canonical reference: {bc}"
    return None


def trial(number: int, rng: random.Random, snapshots: Machines, report: Report) -> None:
    machine = rng.choice(MACHINES)
    m = snapshot.load(snapshots[machine])
    session = Session(m.target())
    corrupt = Corruptor(m, rng)
    writes = []
    for _ in range(rng.choice(WRITES)):
        at, data = rng.choice(corrupt.places())()
        session.target.write(at, data)
        writes.append(f"{at:#x} <- {data.hex()}")
    where = f"trial {number} on {machine}, writes {writes}"
    started = time.perf_counter()
    try:
        with time_bound(TRIAL_SECONDS):
            lines = [run(session, f"g 0n{TICKS}")]
            block = rng.choice(corrupt.pages) + rng.randrange(0, PAGE_SIZE, corrupt.G)
            for command in COMMANDS:
                line = command.format(block=f"{block:x}", page=f"{block & ~PAGE_MASK:x}",
                                      tag=rng.choice(TAGS))
                lines.append(run(session, line))
    except TrialTimeout:
        report.failures.append(f"{where}: still running after {TRIAL_SECONDS} s")
        return
    except Exception:
        report.failures.append(f"{where}: {traceback.format_exc()}")
        return
    report.slowest = max(report.slowest, time.perf_counter() - started)
    report.tally[stop_name(m)] += 1
    wrong = check_stop(m)
    if wrong:
        report.failures.append(f"{where}: {wrong}")
    for text in lines:
        if "Internal error" in text or "internal error" in text:
            report.failures.append(f"{where}: {text.strip()}")


def test_a_corrupted_pool_stops_with_a_bug_check(snapshots: Machines) -> None:
    rng = random.Random(SEED)
    report = Report()
    before_mb = resident_mb()
    for number in range(TRIALS):
        trial(number, rng, snapshots, report)
    print(f"\n{TRIALS} corrupted machines, slowest trial {report.slowest:.2f} s:")
    for name, count in report.tally.most_common():
        print(f"  {count:4d}  {name}")
    grew_mb = peak_mb() - before_mb          # the test's growth, or more (never less)
    assert not report.failures, "\n\n".join(report.failures[:10])
    assert sum(report.tally.values()) == TRIALS and report.slowest < TRIAL_SECONDS
    assert report.tally["runs on"] < TRIALS        # the corruption reached the allocator
    assert grew_mb < PEAK_MB


# -- the cases the fuzzer first found, pinned ---------------------------------------------------
ARCHES = ("x86", "x64")


def quiet_pool(arch: str, deferred: bool = False) -> Machine:
    """A bare machine whose frees go straight to ListHeads (no lookasides; no pending list
    unless `deferred`)."""
    m = Machine(get_arch(arch), seed=1,
                settings=PoolSettings(lookasides=False, deferred_frees=deferred))
    m.pool.disable_lookasides()
    return m


def instruction(m: Machine, routine: str) -> int:
    """The address of the stop stack's frame in `routine` (the faulting instruction)."""
    return frames(m.symbols, ("nt!" + m.pool.layouts.routines[routine],))[0]


def stop_of(action: Callable[[], object]) -> BugCheck:
    with pytest.raises(BugCheck) as stop:
        action()
    return stop.value


@pytest.mark.parametrize("arch", ARCHES)
def test_a_free_chunk_smaller_than_the_request_is_carved_as_windows_does(arch: str) -> None:
    """A free chunk whose BlockSize was overwritten with 1 is taken for a 0x80-byte request:
    Windows 7 trusts it, the remainder's size wraps in its bit field and the allocation lands
    far past the page, where the kernel's first store (its PreviousSize) faults: 0xC5 in the
    nonpaged pool, at that address, from ExAllocatePoolWithTag."""
    m = quiet_pool(arch)
    pool, G = m.pool, m.arch.block
    blocks = [pool.allocate(NONPAGED, 0x80, tag_to_ulong("Aaaa")) for _ in range(6)]
    pool.free(blocks[2])
    e = blocks[2] - G
    need = pool.header(e)[2]
    m.memory.write(e + 2, b"\x01")                         # BlockSize 1
    bc = stop_of(lambda: [pool.allocate(NONPAGED, 0x80, tag_to_ulong("Bbbb")) for _ in range(9)])
    remainder = (1 - need) & pool.codec.size_mask
    assert bc.code == 0xC5
    assert bc.params == (e + remainder * G, 2, 0, instruction(m, "ExAllocatePoolWithTag"))


def list_head(m: Machine, desc_index: int, blocks: int) -> int:
    descriptor = ([*m.pool.descriptors, *m.pool.paged_desc])[desc_index]
    return descriptor.lists + (blocks - 1) * 2 * m.arch.ptr_size


@pytest.mark.parametrize("arch", ARCHES)
def test_a_list_head_pointing_at_a_page_end(arch: str) -> None:
    """`ed <ListHeads entry> <last bytes of a page>`, then `g`: the entry's links straddle
    into the next page; when it is not mapped, reading them faults there (0xC5).  (A seed
    whose first use of a damaged head is an allocation reading its links: the check of a
    free's insertion reports the damage as BAD_POOL_HEADER 3 instead.)"""
    m = boot(arch, seed=2, scale=0.05)
    session = Session(m.target())
    page = max(vpn << 12 for vpn in m.memory.pages if m.mm.nonpaged.contains(vpn << 12))
    assert not m.memory.is_mapped(page + PAGE_SIZE)
    for blocks in range(2, 40):
        session.target.write(list_head(m, 0, blocks), (page + PAGE_SIZE - 4).to_bytes(
            m.arch.ptr_size, "little"))
    text = run(session, "g 0n3000")
    assert "Internal error" not in text and "Fatal System Error" in text
    assert m.crash is not None and m.internal_error is None
    assert (m.crash.code, m.crash.params[0]) == (0xC5, page + PAGE_SIZE)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_lookaside_next_at_a_page_end_faults_reading_it(arch: str) -> None:
    m = boot(arch, seed=3, scale=0.05)
    pool = m.pool
    page = max(vpn << 12 for vpn in m.memory.pages if m.mm.nonpaged.contains(vpn << 12))
    for cpu in range(m.processors):
        for p_list, l_list in pool.la[cpu][NONPAGED]:
            for la in (p_list, l_list):
                pool._wptr(la + pool.o_la_next, page + PAGE_SIZE - 2)
    assert m.step(3000) is not None and m.internal_error is None
    assert (m.crash.code, m.crash.params[0]) == (0xC5, page + PAGE_SIZE)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_block_freed_twice_onto_the_pending_list_is_a_double_free(arch: str) -> None:
    """The second free pushes the block on the pending list again, which then loops on it;
    releasing the list finds the block already free: BAD_POOL_CALLER 7, not an endless
    ExDeferredFreePool."""
    m = quiet_pool(arch, deferred=True)
    pool = m.pool
    block, _kept = (pool.allocate(NONPAGED, 0x80, tag_to_ulong("Aaaa")) for _ in range(2))
    pool.free(block)
    pool.free(block)
    bc = stop_of(pool.flush_pending)
    assert (bc.code, bc.params[0], bc.params[3]) == (0xC2, 7, block)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_pending_list_that_comes_back_to_a_coalesced_block_stops(arch: str) -> None:
    """A pending block whose link was turned back on itself, released after its free
    neighbour: it merges into the neighbour (its own header still reads allocated), so the
    walk would go round for ever.  Watching the walk stops it (double free), or the kernel's
    own checks do first."""
    m = quiet_pool(arch, deferred=True)
    pool, G = m.pool, m.arch.block
    blocks = {pool.allocate(NONPAGED, 0x80, tag_to_ulong("Aaaa")) - G for _ in range(8)}
    size = pool.header(min(blocks))[2] * G
    w, x = next((e, e + size) for e in sorted(blocks) if e + size in blocks)
    pool.free(w + G)
    pool.flush_pending()                                   # w: free, in ListHeads
    pool.free(x + G)                                       # x: pending
    pool._wptr(x + G, x + G)                               # its link: itself
    bc = stop_of(pool.flush_pending)
    assert bc.code in (0xC2, 0x19) and m.internal_error is None


@pytest.mark.parametrize("arch", ARCHES)
def test_the_paged_pool_faults_as_page_fault_in_nonpaged_area(arch: str) -> None:
    m = quiet_pool(arch)
    pool = m.pool
    wild = m.mm.paged.start + 0x7F0000 + 0x40
    for index in range(1, len(pool.paged_desc)):
        head = list_head(m, index, 9)
        pool._wptr(head, wild)
        pool.paged_desc[index].bitmap |= 1 << 8
    bc = stop_of(lambda: pool.allocate(PAGED, 8 * m.arch.block - m.arch.block,
                                       tag_to_ulong("Pppp")))
    assert bc.params == (wild, 0, instruction(m, "ExAllocatePoolWithTag"), 0)
    assert bc.code == 0x50


def test_an_x64_address_no_processor_takes_is_a_general_protection_fault() -> None:
    m = quiet_pool("x64")
    pool = m.pool
    pool._wptr(list_head(m, 0, 9), 0x0000_8000_0000_1230)
    pool.descriptors[0].bitmap |= 1 << 8
    bc = stop_of(lambda: pool.allocate(NONPAGED, 0x70, tag_to_ulong("Gggg")))
    assert bc.code == 0x1E
    assert bc.params == (STATUS_ACCESS_VIOLATION, instruction(m, "ExAllocatePoolWithTag"), 0,
                         0xFFFFFFFFFFFFFFFF)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_list_head_the_debugger_wrote_is_scanned_at_the_next_g(arch: str) -> None:
    m = boot(arch, seed=3, scale=0.05)
    desc = m.pool.descriptors[0]
    empty = next(k for k in range(m.pool.nlists) if not desc.bitmap >> k & 1)
    before = [d.bitmap for d in (*m.pool.descriptors, *m.pool.paged_desc)]
    m.pool.rescan_lists()
    assert [d.bitmap for d in (*m.pool.descriptors, *m.pool.paged_desc)] == before
    session = Session(m.target())
    session.target.write(list_head(m, 0, empty + 1), (desc.addr + 0x10).to_bytes(
        m.arch.ptr_size, "little"))
    run(session, "g 1")
    assert desc.bitmap >> empty & 1


def test_an_unexpected_exception_stops_the_machine_not_the_debugger(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The last-resort net: a Python exception from the simulator becomes a bug check (and is
    kept on the machine for tests); `g` prints the stop and the session goes on."""
    m = boot("x86", seed=3, scale=0.05)
    session = Session(m.target())

    def broken(*args: object, **kwargs: object) -> int:
        raise ValueError("a simulator bug")

    monkeypatch.setattr(m.pool, "allocate", broken)
    text = run(session, "g 0n100")
    assert "Internal error" not in text and "Fatal System Error: 0x0000001e" in text
    assert isinstance(m.internal_error, ValueError)
    assert m.crash is not None and m.crash.params[0] == 0xC0000420
    assert "BUGCHECK_STR" in run(session, "!analyze -v")
