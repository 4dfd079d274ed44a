"""The boot cache (kdsim/bootcache.py): a machine opened from the cache is the machine a boot
makes; entries are keyed by everything that decides the machine, written atomically, capped in
size, and a damaged entry or an unusable directory never stops the debugger from opening."""
from __future__ import annotations

import errno
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commands import cli
from kdsim import bootcache, snapshot
from kdsim.bootcache import CACHE_ENV, MAX_ENV, SUFFIX, TEMP_SUFFIX, open_scenario
from kdsim.recipe import Recipe
from kdsim.verifier import parse_settings
from kdsim.scenarios import Scenario, list_scenarios
from tests.support import ROOT

SCALE = "0.05"
SCENARIO_NAMES = [name for name, _ in list_scenarios() if not name.startswith("test-")]
MAIN_TAG = {"default": "File", "fragmentation": "MmCm", "fragmentation-pages": "MmCm",
            "leak": "Leak", "overrun": "DrvA", "overrun-special": "DrvA", "tour": "CcCc",
            "double-free": "StFl", "use-after-free": "PkMn", "underrun": "UhbX",
            "poolhittag": "Rqst", "pool-exhaustion": "SmbF", "quota-leak": "DpDa"}
BLOCK = re.compile(r"^\*([0-9a-f]+)", re.MULTILINE)


def open_lab(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_every_scenario_has_a_main_tag():
    assert sorted(MAIN_TAG) == sorted(SCENARIO_NAMES)


@pytest.mark.parametrize("arch", ["x86", "x64"])
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_cold_warm_and_uncached_machines_print_the_same(name, arch, tmp_path, monkeypatch,
                                                        capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    lab = ["--scenario", name, "--arch", arch, "--scale", SCALE, "--seed", "3"]
    tag = MAIN_TAG[name]
    status, found, _ = open_lab(monkeypatch, capsys, *lab, "--no-cache", "-c",
                                f"!poolfind {tag}; q")
    assert status == 0 and entries(cache) == []           # --no-cache leaves it alone
    block = BLOCK.search(found)
    at = block.group(1) if block else "poi(nt!PoolBigPageTable)"
    probe = f"!vm; !poolused 2; !poolused 4; !poolfind {tag}; !pool {at}; q"
    uncached = open_lab(monkeypatch, capsys, *lab, "--no-cache", "-c", probe)
    cold = open_lab(monkeypatch, capsys, *lab, "-c", probe)
    (entry,) = entries(cache)
    assert entry.endswith(SUFFIX)

    def no_boot(*args, **kwargs):
        raise AssertionError("a warm open booted the machine")

    monkeypatch.setattr(Scenario, "boot", no_boot)
    warm = open_lab(monkeypatch, capsys, *lab, "-c", probe)
    assert uncached == cold == warm
    assert uncached[0] == 0 and uncached[2] == ""
    assert "Allocated" in uncached[1] or "large page allocation" in uncached[1]


def test_the_key_is_everything_that_decides_the_machine(monkeypatch):
    base = Recipe.for_scenario("leak", scale=0.5)
    keys = {bootcache.key(base)}
    for other in (Recipe.for_scenario("leak", scale=0.25), Recipe.for_scenario("leak", seed=1),
                  Recipe.for_scenario("leak", "x86", scale=0.5),
                  Recipe.for_scenario("leak", scale=0.5, verifier="/flags 0x8 /all"),
                  Recipe.for_scenario("tour", scale=0.5)):
        keys.add(bootcache.key(other))
    assert len(keys) == 6
    assert bootcache.key(Recipe.for_scenario("leak", scale=0.5)) == bootcache.key(base)
    monkeypatch.setattr(bootcache, "_package_hash", lambda: "another simulator")
    assert bootcache.key(base) not in keys
    monkeypatch.setattr(bootcache, "version", lambda: "9.9")
    assert bootcache.key(base) not in keys


def test_where_the_cache_lives(monkeypatch, tmp_path):
    import platformdirs
    monkeypatch.delenv(CACHE_ENV)
    assert bootcache.directory() == platformdirs.user_cache_path("kdsim")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert bootcache.directory() == tmp_path
    monkeypatch.setenv(CACHE_ENV, "OFF")
    assert bootcache.directory() is None


OPTIONS = {"scenario": "overrun", "scale": 0.05}


def test_a_damaged_entry_is_removed_and_booted_again(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    notes: list[str] = []
    first = open_scenario(OPTIONS, note=notes.append)
    (path,) = tmp_path.iterdir()
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    path.write_bytes(bytes(damaged))
    again = open_scenario(OPTIONS, note=notes.append)
    assert notes == [f"boot cache: removed a damaged entry (Could not open snapshot [{path}], "
                     f"the file is damaged (checksum mismatch)); booting again"]
    assert again.memory.pages == first.memory.pages
    assert snapshot.load(path).memory.pages == first.memory.pages      # stored anew
    path.write_bytes(path.read_bytes()[:100])
    open_scenario(OPTIONS, note=notes.append)
    assert len(notes) == 2 and "the file is truncated" in notes[1]


def test_a_damaged_entry_through_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    lab = ("--scenario", "overrun", "--scale", SCALE, "-c", "!poolused 2; q")
    cold = open_lab(monkeypatch, capsys, *lab)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"KDSIMSNP" + bytes(40))
    status, out, err = open_lab(monkeypatch, capsys, *lab)
    assert (status, out) == cold[:2]
    assert err.count("\n") == 1 and err.startswith("kdsim: boot cache: removed a damaged entry")
    assert open_lab(monkeypatch, capsys, *lab) == cold


def test_an_unusable_directory_means_booting_without_it(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    lab = ("--scenario", "overrun", "--scale", SCALE, "-c", "!poolused 2; q")
    status, out, err = open_lab(monkeypatch, capsys, *lab)
    assert status == 0 and "TOTAL" in out
    assert err.count("\n") == 1
    assert err.startswith(f"kdsim: boot cache unavailable ({blocker}/") and err.endswith(
        ": Not a directory); booting without it\n")
    monkeypatch.setenv(CACHE_ENV, "off")
    assert open_lab(monkeypatch, capsys, *lab) == (0, out, "")


def test_a_full_disk_means_booting_without_it(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))

    def full(machine, handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(snapshot, "write", full)
    notes: list[str] = []
    machine = open_scenario(OPTIONS, note=notes.append)
    assert machine.workload.t > 0
    assert notes == [f"boot cache unavailable ({tmp_path}: No space left on device); "
                     f"booting without it"]
    assert entries(tmp_path) == []                           # the temporary file is gone


def test_least_recently_used_entries_go_first(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    open_scenario({**OPTIONS, "seed": 1})
    (one,) = tmp_path.iterdir()
    monkeypatch.setenv(MAX_ENV, str(int(one.stat().st_size * 2.5)))
    open_scenario({**OPTIONS, "seed": 2})
    two = next(p for p in tmp_path.iterdir() if p != one)
    past = time.time() - 100
    os.utime(one, (past, past))
    os.utime(two, (past + 10, past + 10))
    open_scenario({**OPTIONS, "seed": 1})                    # a hit: now the most recent
    stale = tmp_path / f"x.{TEMP_SUFFIX}"
    stale.write_bytes(b"left by a killed process")
    os.utime(stale, (past - 7200, past - 7200))
    fresh = tmp_path / f"y{TEMP_SUFFIX}"
    fresh.write_bytes(b"being written")
    open_scenario({**OPTIONS, "seed": 3})
    assert one.exists() and not two.exists() and not stale.exists() and fresh.exists()
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(SUFFIX)]) == 2
    monkeypatch.setenv(MAX_ENV, "0")
    open_scenario({**OPTIONS, "seed": 4})                    # nothing fits: nothing is kept
    assert [p.name for p in tmp_path.iterdir()] == [fresh.name]


def test_two_processes_opening_the_same_lab_at_once(tmp_path):
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache")}
    command = [sys.executable, "-m", "commands.cli", "--scenario", "leak", "--scale", "0.1",
               "-c", "!poolused 4; !vm; q"]
    both = [subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in both]
    assert [r[2] for r in results] == [0, 0]
    assert [r[1] for r in results] == [b"", b""]
    assert results[0][0] == results[1][0]
    (entry,) = entries(tmp_path / "cache")
    assert entry.endswith(SUFFIX)
    warm = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, results[0][0], b"")


def test_reboot_opens_from_the_cache_and_boots_again_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    options = {"scenario": "leak", "arch": "x64", "seed": 3, "scale": float(SCALE)}
    first = open_scenario(options)
    booted = first.reboot()                        # the same recipe: the cached entry
    assert booted.memory.pages == first.memory.pages
    monkeypatch.setattr("kdsim.scenarios.Scenario.boot",
                        lambda *a, **k: pytest.fail("a cached reboot booted cold"))
    assert booted.reboot().memory.pages == first.memory.pages
    reports: list[tuple[str, int, int]] = []
    monkeypatch.undo()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first.verifier.pending = parse_settings("/flags 0x1 /driver myfault.sys")
    verified = first.reboot(lambda *report: reports.append(report))
    assert verified.verifier.settings.flags == 0x1 and reports          # cold, with progress
    assert len(entries(tmp_path)) == 2
