"""Start-up benchmark (issue 4): `kdsim -c "q"` on the default machine, as a user runs it:
booted (the boot cache off) and opened from a warm boot cache.

Run from the repository root: python -m bench.bench_cli [runs]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import print_machine, timed, verdict

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print_machine()
    with tempfile.TemporaryDirectory() as cache:
        for what, where in (("booted, cache off", "off"), ("warm boot cache", cache)):
            env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT), "KDSIM_CACHE": where}

            def start_and_quit() -> None:
                subprocess.run([sys.executable, "-m", "commands", "-c", "q"], env=env,
                               check=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, cwd=ROOT)

            timing = timed(start_and_quit, runs, warmup=1)
            print(f'kdsim -c "q" on the default machine ({what}): {timing.summary()}; '
                  f"{verdict(timing.median, '<', 1.5, 's')}")


if __name__ == "__main__":
    main()
