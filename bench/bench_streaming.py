"""Streaming output (issue 13): peak memory and time of a display command whose output is far
larger than memory should be, `dd <nonpaged pool start> L?1000000` (16M double words, 4M lines,
170 MB of text), printed to /dev/null through the session's one output path.

Each arch runs in a child process on the default machine, so the figure is the child's own RSS
growth over the command (ru_maxrss after it minus RSS before it), not the parent's history.
Target: under 100 MB.

Run from the repository root: python -m bench.bench_streaming [--arch x86|x64|both]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import peak_rss_mb, print_machine, verdict

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "dd poi(nt!MmNonPagedPoolStart) L?1000000"
TARGET_MB = 100


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the peak so far stands in for it)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def child(arch: str) -> None:
    """Boot the default machine, then run COMMAND into /dev/null; print the figures as JSON."""
    from commands.dispatch import execute, load_commands
    from commands.session import Session
    from kdsim.control import open_machine

    target = open_machine(arch=arch)
    load_commands()
    with open(os.devnull, "w", encoding="utf-8") as null:
        session = Session(target, stdout=null)
        before = current_rss_mb()
        start = time.perf_counter()
        ok = execute(session, COMMAND)
        seconds = time.perf_counter() - start
    print(json.dumps({"ok": ok, "seconds": seconds, "before": before, "peak": peak_rss_mb()}))


def measure(arch: str) -> dict[str, float]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "bench.bench_streaming", "--child", arch],
                         env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    figures: dict[str, float] = json.loads(out.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("x86", "x64", "both"), default="both")
    parser.add_argument("--child", choices=("x86", "x64"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print_machine()
    for arch in ("x86", "x64") if args.arch == "both" else (args.arch,):
        f = measure(arch)
        growth = max(f["peak"] - f["before"], 0.0)
        state = "" if f["ok"] else " (the command failed)"
        print(f"{arch}: {COMMAND} > /dev/null: {f['seconds']:.1f} s, peak RSS "
              f"{f['peak']:.0f} MB, {growth:.0f} MB over the {f['before']:.0f} MB before it"
              f"{state}; {verdict(growth, '<', TARGET_MB, 'MB')}")


if __name__ == "__main__":
    main()
