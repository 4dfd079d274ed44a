"""Start-up benchmark (issue 4): `kdsim -c "q"` on the default machine, as a user runs it.

Run from the repository root: python -m bench.bench_cli [runs]
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.harness import print_machine, timed, verdict

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}

    def start_and_quit() -> None:
        subprocess.run([sys.executable, "-m", "commands", "-c", "q"], env=env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=ROOT)

    timing = timed(start_and_quit, runs)
    print_machine()
    print(f'kdsim -c "q" on the default machine: {timing.summary()}; '
          f"{verdict(timing.median, '<', 1.5, 's')}")


if __name__ == "__main__":
    main()
