"""What every benchmark in bench/ shares: the machine it ran on, repeated timing (best and
median), peak memory, ratios of two measurements taken in the same run, and one verdict style.

Benchmarks run from the repository root as modules, e.g. `python -m bench.bench_allocator`.
"""
from __future__ import annotations

import operator
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Clock = Callable[[], float]


def describe() -> str:
    """One line naming the machine: every figure is printed with it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()} ({platform.python_implementation()})")


def print_machine() -> None:
    print(f"machine: {describe()}")


@dataclass(frozen=True)
class Timing:
    """The seconds of each run of one measurement, and what the last run returned."""

    runs: tuple[float, ...]
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs)

    @property
    def worst(self) -> float:
        return max(self.runs)

    def summary(self) -> str:
        """'1.23 s' for one run, else 'best 1.23 s, median 1.30 s of 3 runs'."""
        if len(self.runs) == 1:
            return f"{self.best:.2f} s"
        return f"best {self.best:.2f} s, median {self.median:.2f} s of {len(self.runs)} runs"


# A measured job: `setup` runs untimed before every run and hands its result to `run`.
Job = tuple[Callable[[], Any], Callable[[Any], Any]]


def timed_rounds(jobs: Sequence[Job], repeats: int = 3, clock: Clock = time.perf_counter
                 ) -> list[Timing]:
    """Time each job `repeats` times, round-robin (A B A B ...), so a change in the machine's
    load during the run reaches every job alike; one Timing per job, in order."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    runs: list[list[float]] = [[] for _ in jobs]
    results: list[Any] = [None] * len(jobs)
    for _ in range(repeats):
        for i, (setup, run) in enumerate(jobs):
            subject = setup()
            start = clock()
            results[i] = run(subject)
            runs[i].append(clock() - start)
    return [Timing(tuple(r), res) for r, res in zip(runs, results)]


def timed(func: Callable[[], Any], repeats: int = 1, *, warmup: int = 0,
          clock: Clock = time.perf_counter) -> Timing:
    """Time `func` `repeats` times after `warmup` untimed calls."""
    for _ in range(warmup):
        func()
    return timed_rounds([(_nothing, lambda _: func())], repeats, clock)[0]


def _nothing() -> None:
    return None


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (ru_maxrss: it covers every earlier
    phase too, so a script measures its largest phase first; tracemalloc is not used because
    it slows the very code being timed and misses memory outside Python's allocator)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024   # bytes / KB


def ratio(a: float, b: float) -> float:
    return a / b


def ratio_text(name_a: str, a: float, name_b: str, b: float) -> str:
    """'allocator ops/s is 0.34× reference ops/s': two measurements of the same run."""
    return f"{name_a} is {ratio(a, b):.2f}× {name_b}"


_COMPARE = {"<": operator.lt, "≤": operator.le, ">": operator.gt, "≥": operator.ge}


def verdict(value: float, op: str, target: float, unit: str = "") -> str:
    """The one verdict style: 'target < 5 s: met' or 'target ≥ 0.6: missed'."""
    try:
        ok = _COMPARE[op](value, target)
    except KeyError:
        raise ValueError(f"unknown comparison {op!r} (one of {' '.join(_COMPARE)})") from None
    return f"target {op} {target:g}{' ' + unit if unit else ''}: {'met' if ok else 'missed'}"
