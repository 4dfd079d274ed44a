"""The boot cache: machines are deterministic, so a scenario booted once opens from a snapshot.

Opening a scenario first looks for a snapshot of exactly that machine, keyed by everything
that decides it: kdsim's version, a hash of the simulator's source (every file of the kdsim
package, the file that defines the scenario when it lives elsewhere, and the lab file's
bytes for a scenario written as one) and the recipe
(scenario, arch, seed, scale, processors, verifier settings: kdsim/recipe.py).  A miss boots
and then stores the machine as it was at the end of its boot.

The cache lives in the user's cache directory (`platformdirs`); KDSIM_CACHE names another
directory, or `off` to do without (the test suite's default).  KDSIM_CACHE_MAX caps its size
in bytes (2 GB by default): the least recently used entries go first, and a hit touches its
entry.  An entry is written to a temporary file in the directory and renamed into place, so
two processes opening the same lab at once both succeed and a reader never sees half an
entry.  A damaged entry (its checksum, its size, its contents) is removed and booted again
with a one-line note; a directory that cannot be used (unwritable, full) means booting
without the cache, with one warning line.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import snapshot
from .files import TEMP_SUFFIX, NewFile
from .recipe import Recipe
from .version import version

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine
    from .scenarios import Progress

CACHE_ENV = "KDSIM_CACHE"
MAX_ENV = "KDSIM_CACHE_MAX"
OFF = "off"
DEFAULT_MAX = 2 << 30
SUFFIX = ".kdsnap"
STALE_TEMP = 3600.0            # seconds: a temporary file this old was left by a killed process
PACKAGE = Path(__file__).resolve().parent

Note = Callable[[str], None]


def _stderr(text: str) -> None:
    print(f"kdsim: {text}", file=sys.stderr, flush=True)


def directory() -> Path | None:
    """Where the cache lives, or None when KDSIM_CACHE turns it off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None and chosen.strip().lower() == OFF:
        return None
    if chosen:
        return Path(chosen)
    import platformdirs
    return platformdirs.user_cache_path("kdsim")


def size_limit() -> int:
    """The cache's size cap in bytes (KDSIM_CACHE_MAX; unusable values mean the default)."""
    try:
        return max(0, int(os.environ.get(MAX_ENV, DEFAULT_MAX)))
    except ValueError:
        return DEFAULT_MAX


@cache
def _package_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def key(recipe: Recipe) -> str | None:
    """The entry name of a recipe's machine; None when the scenario's code cannot be read
    (a scenario defined interactively), so that it is never cached."""
    spec = recipe.spec()
    defined = inspect.getsourcefile(spec.build)
    if defined is None or not os.path.isfile(defined):
        return None
    parts: dict[str, Any] = {
        "kdsim": version(), "source": _package_hash(),
        "scenario": recipe.scenario, "arch": recipe.arch, "seed": recipe.seed,
        "scale": recipe.scale.hex(), "processors": recipe.processors,
        "verifier": [recipe.verifier.flags, list(recipe.verifier.drivers),
                     recipe.verifier.all_drivers, recipe.verifier.verify_start],
    }
    if spec.source:
        parts["lab"] = spec.source
    if not Path(defined).resolve().is_relative_to(PACKAGE):
        parts["definition"] = hashlib.sha256(Path(defined).read_bytes()).hexdigest()
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def open_scenario(options: dict[str, Any], *, use_cache: bool = True,
                  progress: "Progress | None" = None, note: Note = _stderr) -> "Machine":
    """The machine `scenarios.boot(**options)` boots (options: scenario, arch, seed, scale,
    verifier), from the cache when it holds it; otherwise booted, reporting to `progress`,
    and stored.  The machine reboots the same way (`Rebooter`)."""
    machine = _open(options, use_cache, progress, note)
    machine.booted_by = Rebooter(str(options.get("scenario") or "default"), use_cache, note)
    return machine


class Rebooter:
    """What a machine opened here boots again with at `.reboot` (`Machine.booted_by`): the
    same scenario through the cache, so a reboot into settings booted before is warm too."""

    def __init__(self, scenario: str, use_cache: bool, note: Note):
        self.scenario = scenario
        self.use_cache = use_cache
        self.note = note

    def boot(self, arch: str | None = None, seed: int = 0, scale: float = 1.0,
             progress: "Progress | None" = None, **options: Any) -> "Machine":
        return open_scenario({"scenario": self.scenario, "arch": arch, "seed": seed,
                              "scale": scale, **options},
                             use_cache=self.use_cache, progress=progress, note=self.note)


def _open(options: dict[str, Any], use_cache: bool, progress: "Progress | None",
          note: Note) -> "Machine":
    from .scenarios import boot as boot_scenario

    def boot() -> "Machine":
        extra: dict[str, Any] = {"progress": progress} if progress is not None else {}
        return boot_scenario(**options, **extra)

    where = directory() if use_cache else None
    if where is None:
        return boot()
    recipe = Recipe.for_scenario(**options)
    name = key(recipe)
    if name is None:
        return boot()
    path = where / (name + SUFFIX)
    try:
        found = _lookup(path, recipe, note)
    except OSError as exc:
        note(f"boot cache unavailable ({_why(exc, where)}); booting without it")
        return boot()
    if found is not None:
        return found
    machine = boot()
    _store(machine, path, note)
    return machine


def _lookup(path: Path, recipe: Recipe, note: Note) -> "Machine | None":
    """The cached machine, or None on a miss (a damaged entry is removed: a miss)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    try:
        with handle:
            machine = snapshot.read(handle, str(path))
        if Recipe.of(machine) != recipe:
            raise snapshot.SnapshotError(f"{path} holds another machine")
    except snapshot.SnapshotError as exc:
        note(f"boot cache: removed a damaged entry ({exc.message}); booting again")
        _unlink(path)
        return None
    try:
        os.utime(path)                          # recently used
    except OSError:
        pass
    return machine


def _store(machine: "Machine", path: Path, note: Note) -> None:
    where = path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        with NewFile(path, overwrite=True) as handle:
            snapshot.write(machine, handle)
    except OSError as exc:
        note(f"boot cache unavailable ({_why(exc, where)}); booting without it")
        return
    evict(where, size_limit(), keep=path)


def evict(where: Path, limit: int, keep: Path | None = None) -> None:
    """Remove the least recently used entries until the cache holds at most `limit` bytes
    (`keep`, the entry just stored, goes last), and temporary files killed writers left."""
    entries = []
    now = time.time()
    try:
        names = list(where.iterdir())
    except OSError:
        return
    for path in names:
        try:
            info = path.stat()
        except OSError:                          # another process removed it meanwhile
            continue
        if path.name.endswith(SUFFIX):
            entries.append((path == keep, info.st_mtime, info.st_size, path))
        elif path.name.endswith(TEMP_SUFFIX) and now - info.st_mtime > STALE_TEMP:
            _unlink(path)
    total = sum(size for _, _, size, _ in entries)
    for _, _, size, path in sorted(entries):
        if total <= limit:
            break
        _unlink(path)
        total -= size


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _why(exc: OSError, where: Path) -> str:
    return f"{exc.filename or where}: {exc.strerror or exc}"
