"""Start-up benchmark (issue 4): `kdsim -c "q"` on the default machine, as a user runs it.

Run: python bench/bench_cli.py [runs]
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine_info import describe  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "commands", "-c", "q"], env=env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - start)
    print(f"machine: {describe()}")
    print(f'kdsim -c "q" on the default machine: median {statistics.median(times):.2f} s, '
          f"best {min(times):.2f} s over {runs} runs (target < 1.5 s)")


if __name__ == "__main__":
    main()
