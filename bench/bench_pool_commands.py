"""Timing of `!pool` and `!poolfind` at the scale of the first seed case.

Builds an x86 machine holding about 240,000 live nonpaged and 200,000 live paged blocks (the
`!poolused` TOTAL line of seeds/000) with the tag mix of the default machine, plus the 23 large
`Leak` blocks of seeds/001, then measures:

* `!pool` on random pool addresses (target: under 5 ms each);
* `!poolfind` in each pool, against a plain `bytes.find` loop over the same pool pages
  (target: at most 3 times the find loop).

Run from the repository root: `python -m bench.bench_pool_commands [--seed N]`.  Not part of
the test suite.
"""
from __future__ import annotations

import argparse
import random

from bench.harness import Timing, print_machine, ratio, ratio_text, timed, verdict
from commands.poolread import PoolReader
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.machine import Machine
from kdsim.catalogue import load
from kdsim.layouts import tag_to_ulong

NONPAGED_LIVE, PAGED_LIVE = 240_000, 200_000
LEAKS = 23                       # seeds/001: 23 large Leak blocks of 0xfa000 bytes
PROTECTED = 0x80000000


def tag_mix() -> dict[int, list[tuple[int, tuple[int, ...], bool, float]]]:
    """Per pool: (tag key, x86 sizes, sizes are a range, weight), in the proportions of the
    default machine's population (kdsim/catalogue/win7sp1.toml: its boot blocks and traffic)."""
    mix: dict[int, list[tuple[int, tuple[int, ...], bool, float]]] = {0: [], 1: []}
    for entry in load().entries:
        sizes = entry.sizes["x86"]
        key = tag_to_ulong(entry.tag) | (PROTECTED if entry.protected else 0)
        mix[entry.pool_type & 1].append((key, sizes, len(sizes) == 2,
                                         entry.boot + entry.rate * 500))
    return mix


def build(seed: int) -> tuple[Machine, list[int]]:
    """Allocate a fifth more than the live target and free a random fifth, so pages are
    fragmented the way a machine that has run a while is; then the seed's large leaks."""
    rng = random.Random(seed)
    m = Machine(get_arch("x86"), seed)
    live: list[int] = []
    for pool, count in ((0, NONPAGED_LIVE), (1, PAGED_LIVE)):
        kinds = tag_mix()[pool]
        weights = [k[3] for k in kinds]
        blocks = []
        for key, sizes, ranged, _w in rng.choices(kinds, weights, k=count * 6 // 5):
            size = rng.randint(*sizes) if ranged else rng.choice(sizes)
            address = m.pool.allocate(pool, min(size, 0xFF0), key,
                                      cpu=rng.randrange(m.processors))
            if address:
                blocks.append(address)
        rng.shuffle(blocks)
        extra = len(blocks) - count
        for address in blocks[:extra]:
            m.pool.free(address, cpu=rng.randrange(m.processors))
        live += blocks[extra:]
    for _ in range(LEAKS):
        m.pool.allocate(1, 0xFA000, tag_to_ulong("Leak"))
    return m, live


def find_loop(chunks: list[bytes], needle: bytes) -> int:
    hits = 0
    for data in chunks:
        at = data.find(needle)
        while at >= 0:
            hits += 1
            at = data.find(needle, at + 1)
    return hits


def pool_chunks(session: Session, pool: int) -> tuple[list[bytes], int]:
    """The bytes of every readable page of one pool, as `!poolfind` scans them."""
    reader = PoolReader(session.target)
    ranges = reader.ranges()
    start, end = ranges.paged if pool else ranges.nonpaged
    chunks = [session.target.read(run_va, size) for run_va, size in reader.valid_runs(start, end)]
    return chunks, sum(len(c) for c in chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=300, help="!pool addresses to time")
    args = parser.parse_args()

    print_machine()
    built = timed(lambda: build(args.seed))
    m, live = built.result
    print(f"x86 seed {args.seed}: {len(live)} live blocks "
          f"({NONPAGED_LIVE} nonpaged + {PAGED_LIVE} paged asked), "
          f"{len(m.memory.pages)} mapped pages, built in {built.best:.1f} s")
    session = Session(m.target())

    run(session, "!pool 0")                       # load the commands before timing
    rng = random.Random(args.seed)
    times = [timed(lambda: run(session, f"!pool {address + 4:x}")).best
             for address in rng.sample(live, args.samples)]
    pool = Timing(tuple(times))
    print(f"\n!pool ({args.samples} addresses): median {pool.median * 1000:.2f} ms, "
          f"mean {pool.mean * 1000:.2f} ms, max {pool.worst * 1000:.2f} ms; "
          f"{verdict(pool.worst * 1000, '<', 5, 'ms')}")

    print()
    # the seed's search, a tag of the I/O traffic, and the most numerous tag of each pool
    for pool_index, tag in ((1, "Leak"), (0, "Irp "), (0, "Vad "), (1, "CM31")):
        chunks, size = pool_chunks(session, pool_index)
        needle = tag.encode()
        command = f"!poolfind {tag.strip()} {pool_index}"
        baseline = timed(lambda: find_loop(chunks, needle), 3).best
        found = timed(lambda: run(session, command), 3)
        rows = found.result.count("\n*")
        print(f"{command}: {rows} blocks in {size >> 20} MB of "
              f"{'paged' if pool_index else 'nonpaged'} pool: {found.best * 1000:.0f} ms; "
              f"bytes.find loop {baseline * 1000:.0f} ms; "
              f"{ratio_text(command + ' time', found.best, 'bytes.find time', baseline)}; "
              f"{verdict(ratio(found.best, baseline), '≤', 3)}")


if __name__ == "__main__":
    main()
