"""`!poolused` and `!vm` at the first seed case's scale: an x86 machine with about 240,000
nonpaged and 200,000 paged live allocations over a few hundred tags.

Targets: `!poolused` under 50 ms, `!vm` under 10 ms, each timed as the whole command (parse,
read the target, render) through the dispatcher.

Run from the repository root: python -m bench.bench_poolused_vm [seed]
"""
from __future__ import annotations

import random
import sys

from bench.harness import print_machine, timed, verdict
from commands.session import Session
from commands.testing import run
from kdsim.arch import get_arch
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED
from kdsim.layouts import tag_to_ulong

LIVE = {NONPAGED: 240_000, PAGED: 200_000}
TAGS = 400
# Mean sizes near the seed's (65,912,104 bytes / 239,570 nonpaged, 66,610,504 / 200,276 paged).
SIZES = {NONPAGED: (0x18, 0x28, 0x40, 0x58, 0x90, 0x100, 0x180, 0x240, 0x3F0),
         PAGED: (0x18, 0x40, 0x58, 0x90, 0x100, 0x180, 0x240, 0x300, 0x500)}
COMMANDS = (("!poolused", 50), ("!poolused /t5 2", 50), ("!poolused 1", 50), ("!vm", 10),
            ("!vm 1", 10))


def populate(seed: int) -> Machine:
    m = Machine(get_arch("x86"), seed)
    rng = random.Random(seed)
    keys = [tag_to_ulong(f"B{i:03d}") for i in range(TAGS)]
    for pool, count in LIVE.items():
        for _ in range(count):
            big = rng.random() < 0.001
            size = rng.randrange(0x1000, 0x6000) if big else rng.choice(SIZES[pool])
            if not m.pool.allocate(pool, size, rng.choice(keys)):
                raise SystemExit(f"pool {pool} exhausted before {count:,} allocations")
    return m


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print_machine()
    built = timed(lambda: populate(seed))
    m: Machine = built.result
    print(f"x86 seed scale (seed {seed}): {LIVE[NONPAGED]:,} nonpaged + {LIVE[PAGED]:,} paged "
          f"live allocations over {TAGS} tags, built in {built.best:.1f} s")
    session = Session(m.target())
    print(run(session, "!poolused /t5 2"), end="")
    for command, target_ms in COMMANDS:
        # milliseconds over 30 runs after one warm-up run
        t = timed(lambda: run(session, command), 30, warmup=1)
        print(f"{command:<16} median {t.median * 1000:7.2f} ms, worst {t.worst * 1000:7.2f} ms; "
              f"{verdict(t.median * 1000, '<', target_ms, 'ms')}")


if __name__ == "__main__":
    main()
