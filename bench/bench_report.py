"""`.report` on the default machine at full size (x86 and x64): the page that draws every pool
page, with the `!pool` text of each.

It inspects every page, so its yardstick is `!pool` itself: the report's time over the time
of `!pool` on each of its pages (measured on a sample, in the same run).  A report that reads
more than a `!pool` per page -- as it did when each page re-read the big-page table, 100 s on
the x86 machine -- shows up as a ratio far above 1.

Targets: `.report` ≤ 1.5× the `!pool` of its pages, and under 10 s.

Run from the repository root: python -m bench.bench_report [seed]
"""
from __future__ import annotations

import random
import re
import sys
import tempfile
from pathlib import Path

from bench.harness import print_machine, ratio_text, timed, verdict
from commands.freelists import cached_blocks
from commands.poolcensus import NONPAGED_POOL, PAGED_POOL, take_census
from commands.poolread import PoolReader
from commands.session import Session
from commands.testing import run
from kdsim.scenarios import boot

SAMPLE = 400                       # pages `!pool` is timed on


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print_machine()
    for arch in ("x86", "x64"):
        session = Session(boot(arch, seed=seed).target())
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "report.html"
            report = timed(lambda: run(session, f".report {out}"))
        counts = [int(n) for n in re.findall(r"(\d+) pages", report.result)]
        pages = sum(counts)
        reader, cached = PoolReader(session.target), cached_blocks(session.target)
        addresses = [page.address for pool in (NONPAGED_POOL, PAGED_POOL)
                     for page in take_census(reader, pool, cached).pages]
        rng = random.Random(seed)
        sample = [rng.choice(addresses) for _ in range(SAMPLE)]
        one = timed(lambda: [run(session, f"!pool {a:x}") for a in sample])
        per_page = one.best / SAMPLE
        ratio = ratio_text(".report", report.best, "!pool of its pages", per_page * pages)
        print(f"{arch}: {report.result.strip()}")
        print(f"  .report {report.best:.2f} s for {pages:,} pages; !pool {per_page * 1000:.3f} ms "
              f"a page; {ratio}")
        print(f"  {verdict(report.best / (per_page * pages), '≤', 1.5, '×')}; "
              f"{verdict(report.best, '<', 10, 's')}")


if __name__ == "__main__":
    main()
