"""The tag catalogue: what each Windows component allocates from pool, as data per OS profile.

`load(name)` reads `<name>.toml` beside this module (the format is described at the top of
win7sp1.toml) and checks every entry, so that a malformed one stops at load time with a
`CatalogueError` naming the entry and the key; tests/kdsim/test_catalogue.py loads every file
shipped.  Frames are checked for their form and their module here; that each names a real
symbol of the machine is checked against the loaded modules by the tests.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..arch import get_arch
from ..layouts import NONPAGED, PAGED
from ..pool import MM_ALLOCATION

# "paged-mm": the memory manager's own paged requests, which Windows 7 serves from paged pool 0
# (kdsim/pool.py MM_ALLOCATION)
POOLS = {"nonpaged": NONPAGED, "paged": PAGED, "paged-mm": PAGED | MM_ALLOCATION}
ARCHES = ("x86", "x64")
MAX_SIZE = 0x1000000                   # 16 MB: no single Windows 7 allocation here is larger
FRAME = re.compile(r"(?P<module>[A-Za-z0-9_.]+)(?:!(?P<symbol>[A-Za-z_][\w:~]*))?"
                   r"\+0x[0-9a-f]+")
REQUIRED = ("tag", "module", "pool", "x86", "x64", "boot", "alloc", "via")
OPTIONAL = ("rate", "life", "free", "free_via", "object", "protected")


class CatalogueError(ValueError):
    """A catalogue file that does not say what the population needs, and where."""


@dataclass(frozen=True)
class Entry:
    """One tag in one pool: its sizes per arch, how many stay after boot, how busy it is."""

    tag: str
    module: str                      # the module that allocates and frees it
    pool_type: int
    sizes: dict[str, tuple[int, ...]]   # arch -> (size,) or (lo, hi)
    boot: int                        # blocks allocated at boot that stay
    rate: float                      # share of the running traffic (0: none)
    life: float                      # mean ticks a traffic block lives
    alloc: tuple[str, ...]           # the allocation's frames, innermost first
    free: tuple[str, ...]            # the free's frames ((): never freed)
    object_type: str                 # the object manager type it holds ("" = not an object)
    protected: bool                  # allocated with PROTECTED_POOL (object bodies)


@dataclass(frozen=True)
class Catalogue:
    name: str
    entries: tuple[Entry, ...]


def load(name: str = "win7sp1") -> Catalogue:
    """The shipped catalogue `name` (kdsim/catalogue/NAME.toml), checked."""
    return _load(name)


@cache
def _load(name: str) -> Catalogue:
    try:
        text = (resources.files(__name__) / f"{name}.toml").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueError(f"no tag catalogue '{name}'") from None
    return parse(text, name)


def parse(text: str, name: str) -> Catalogue:
    """Check a catalogue's text and return its entries."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{name}: {exc}") from None
    unknown = set(data) - {"tags", "paths"}
    if unknown:
        raise CatalogueError(f"{name}: unknown key(s) {', '.join(sorted(unknown))}")
    paths = _paths(data.get("paths", {}), name)
    tags = data.get("tags")
    if not isinstance(tags, list) or not tags:
        raise CatalogueError(f"{name}: 'tags' must be a non-empty list of entries")
    entries = tuple(_entry(raw, paths, f"{name}: tags[{i}]") for i, raw in enumerate(tags))
    seen: set[tuple[str, int]] = set()
    for entry in entries:
        key = (entry.tag, entry.pool_type)
        if key in seen:
            raise CatalogueError(f"{name}: tag '{entry.tag}' twice in the same pool")
        seen.add(key)
    return Catalogue(name, entries)


def _paths(raw: Any, name: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{name}: 'paths' must be a table of frame lists")
    out = {}
    for key, frames in raw.items():
        if not isinstance(frames, list) or not frames:
            raise CatalogueError(f"{name}: paths.{key} must be a non-empty list of frames")
        for frame in frames:
            _frame(frame, f"{name}: paths.{key}")
        out[key] = tuple(frames)
    return out


def _frame(frame: Any, at: str) -> str:
    """The module a frame ('nt!IopCreateFile+0x2bc', 'myfault+0x11f6') is in."""
    match = FRAME.fullmatch(frame) if isinstance(frame, str) else None
    if match is None:
        raise CatalogueError(f"{at}: '{frame}' is not a frame (module!Symbol+0xoffset)")
    return match["module"]


def _entry(raw: Any, paths: dict[str, tuple[str, ...]], at: str) -> Entry:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{at}: an entry is a table")
    missing = [key for key in REQUIRED if key not in raw]
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        what = [f"missing {', '.join(missing)}"] if missing else []
        what += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise CatalogueError(f"{at}: {'; '.join(what)}")
    tag = raw["tag"]
    if not (isinstance(tag, str) and len(tag) == 4 and tag.isascii() and tag.isprintable()):
        raise CatalogueError(f"{at}: tag {tag!r} is not four printable characters")
    at = f"{at} ({tag})"
    module = _text(raw["module"], at, "module")
    if raw["pool"] not in POOLS:
        raise CatalogueError(f"{at}: pool must be one of {', '.join(POOLS)}")
    sizes = {arch: _sizes(raw[arch], f"{at}: {arch}") for arch in ARCHES}
    boot = _number(raw["boot"], at, "boot", integer=True)
    rate = _number(raw.get("rate", 0), at, "rate")
    life = _number(raw.get("life", 0), at, "life")
    if (rate > 0) != (life > 0):
        raise CatalogueError(f"{at}: rate and life go together (traffic needs both)")
    if not boot and not rate:
        raise CatalogueError(f"{at}: neither boot blocks nor traffic")
    for arch, drawn in sizes.items():
        if rate and drawn[0] > get_arch(arch).max_small:
            raise CatalogueError(f"{at}: traffic blocks fit a pool page, but every {arch} size "
                                 f"is above {get_arch(arch).max_small:#x}")
    alloc = _stack(raw["alloc"], raw["via"], module, paths, f"{at}: alloc")
    free: tuple[str, ...] = ()
    if ("free" in raw) != ("free_via" in raw):
        raise CatalogueError(f"{at}: free and free_via go together")
    if "free" in raw:
        free = _stack(raw["free"], raw["free_via"], module, paths, f"{at}: free")
    elif rate:
        raise CatalogueError(f"{at}: traffic is freed: it needs free and free_via")
    object_type = _text(raw.get("object", ""), at, "object", empty=True)
    protected = raw.get("protected", False)
    if not isinstance(protected, bool):
        raise CatalogueError(f"{at}: protected is true or false")
    return Entry(tag, module, POOLS[raw["pool"]], sizes, int(boot), float(rate), float(life),
                 alloc, free, object_type, protected)


def _text(value: Any, at: str, key: str, empty: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty):
        raise CatalogueError(f"{at}: {key} must be a{'' if empty else ' non-empty'} string")
    return value


def _number(value: Any, at: str, key: str, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise CatalogueError(f"{at}: {key} must be a non-negative "
                             f"{'integer' if integer else 'number'}")
    return value


def _sizes(value: Any, at: str) -> tuple[int, ...]:
    sizes = tuple(value) if isinstance(value, list) else (value,)
    if not (1 <= len(sizes) <= 2 and all(isinstance(s, int) and not isinstance(s, bool)
                                          and 0 < s <= MAX_SIZE for s in sizes)):
        raise CatalogueError(f"{at}: a size is a number of bytes (1..{MAX_SIZE:#x}) "
                             f"or [lo, hi]")
    if len(sizes) == 2 and sizes[0] > sizes[1]:
        raise CatalogueError(f"{at}: [lo, hi] with lo above hi")
    return sizes


def _stack(site: Any, via: Any, module: str, paths: dict[str, tuple[str, ...]],
           at: str) -> tuple[str, ...]:
    """The site's frame (inside `module`) and the named path below it."""
    if _frame(site, at).lower() != module.lower():
        raise CatalogueError(f"{at}: '{site}' is not in {module}")
    if via not in paths:
        raise CatalogueError(f"{at}: no path named {via!r}")
    return (site, *paths[via])
