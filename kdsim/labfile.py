"""Lab files: a lab written as data (TOML), read with the standard library and checked strictly.

A lab file describes the machine (`[machine]`), the drivers and their habits (`[[driver]]`,
`[[driver.allocates]]`), the bugs those habits have, and the teaching layer (`[lab]`).  Loading
one gives a `Scenario` whose build plays the drivers as workload activities
(kdsim/workload.py, kdsim/drivers.py): whatever the lab is about comes out of the allocator.
Nothing in a lab file is executed; frames name modules and offsets, never code.

Every mistake is one `LabFileError` whose `str` is `FILE:LINE: key.path: message`.  tomllib
reports the line of a syntax error; for a semantic error the line of the key is found by
scanning the text (`KeyLines`): table headers (`[x]`, `[[x.y]]`, counting each array of
tables) and `key =` lines outside strings and brackets, so `driver.allocates.sizes` of the
second `[[driver.allocates]]` is the line where that table's `sizes =` starts (its table's
header when the key is missing).  The scan is a line scanner, not a second TOML parser: a key
written as a dotted key inside an inline table is reported at its table's line.

Variants (`[variants]`): named lists of alternatives, all of one length; the seed picks one
column (`seed % length`), so each student of a class gets a culprit of their own, and seed 0,
the default, gets the first.  `{name}` in a string of `[lab]` or `[[driver]]` is replaced by the
column's value (an integer as hex); a string that is only `{name}` becomes the value itself,
so sizes vary too.  Each column is checked as a whole lab, so every seed's lab is valid.
`[machine]` takes no placeholders: one machine shape per lab keeps the boot cache's recipe
seed-independent.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .arch import ARCHES
from .drivers import Burst, Habit, Overrun, Underrun, UseAfterFree
from .files import FileTooLarge, read_regular
from .layouts import NONPAGED, PAGED
from .modules import (DRIVERS, LAB_DRIVER_SLOT, MAX_LAB_DRIVERS, NT_FUNCTIONS, SEED_DRIVERS,
                      ModuleSpec)
from .population import NT_IO, populate
from .verifier import POOL_TRACKING, SPECIAL_POOL, VerifierSettings, parse_settings

__all__ = ["LabFile", "LabFileError", "load", "MAX_BYTES", "SUFFIX"]

SUFFIX = ".toml"
MAX_BYTES = 1 << 20                 # a lab file is text a teacher writes: a megabyte is plenty
SMALL_LIMIT = min(a.max_small for a in ARCHES.values())   # the small-pool limit on every arch
LARGE_LIMIT = 0x4000000             # 64 MB: the largest single request a lab may make
MAX_TICKS = 5_000_000
MAX_COUNT = 1_000_000
MAX_TEXT = 20_000
MAX_VARIANTS = 64
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
POOLS = {"nonpaged": NONPAGED, "paged": PAGED}
KINDS = ("driver", "tag")
SOLUTION_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.(cmd|txt)$")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
FRAME = re.compile(r"^(?P<module>[A-Za-z0-9_.-]+)(?:!(?P<symbol>[A-Za-z_][A-Za-z0-9_@$?]*))?"
                   r"(?:\+0x(?P<offset>[0-9A-Fa-f]{1,8}))?$")
DRIVER_STACK = ("nt!IofCallDriver+0x63", *NT_IO)     # below a driver's frames by default
SYMBOL_SLOT = 0x100                 # RVA step between symbols a lab adds to a module
DEFAULT_POPULATION = 0.1            # the background machine: small, so a lab's tags stand out
# the background traffic's weights (~21 in all, kdsim/population.py) times this: a lab
# driver of weight 3 takes about a third of the ticks
DEFAULT_TRAFFIC = 0.25
DEFAULT_BOOT_TICKS = 20_000


class LabFileError(Exception):
    """A lab file that cannot be used; `str` is the one line the user sees."""


@dataclass(frozen=True)
class LabFile:
    """A checked lab file: what `scenario()` turns into a bootable scenario."""

    path: str
    name: str                       # the scenario name: the file's stem
    digest: str                     # sha256 of the file's bytes (the boot cache's key)
    data: dict[str, Any]            # the parsed, checked document (its first variant)
    variants: tuple[dict[str, Any], ...] = ()   # every variant's checked document, in order

    @property
    def lab(self) -> dict[str, Any]:
        return self.data["lab"]

    def pick(self, seed: int) -> dict[str, Any]:
        """The checked document of the variant `seed` picks (the only one without variants)."""
        return self.variants[seed % len(self.variants)] if self.variants else self.data


# -- where keys are ------------------------------------------------------------------------------
class KeyLines:
    """The line of each key path of a TOML text (indices of arrays of tables included)."""

    def __init__(self, text: str):
        self.lines: dict[tuple[Any, ...], int] = {}
        self._scan(text)

    def line(self, path: tuple[Any, ...]) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def _resolve(self, keys: list[str], counters: dict[tuple[Any, ...], int]) -> tuple[Any, ...]:
        path: tuple[Any, ...] = ()
        for key in keys:
            path += (key,)
            if path in counters:                   # an array of tables: its latest element
                path += (counters[path] - 1,)
        return path

    def _scan(self, text: str) -> None:
        counters: dict[tuple[Any, ...], int] = {}
        table: tuple[Any, ...] = ()
        depth = 0
        quote = ""                                  # the open multi-line string's delimiter
        for number, line in enumerate(text.splitlines(), 1):
            if quote:
                if quote in line:
                    line = line.split(quote, 1)[1]
                    quote = ""
                else:
                    continue
            stripped = line.strip()
            if depth == 0 and stripped.startswith("[["):
                keys = _keys(stripped[2:].split("]]", 1)[0])
                parent = self._resolve(keys[:-1], counters)
                array = parent + (keys[-1],)
                counters[array] = counters.get(array, 0) + 1
                table = array + (counters[array] - 1,)
                self.lines.setdefault(table, number)
                continue
            if depth == 0 and stripped.startswith("["):
                table = self._resolve(_keys(stripped[1:].split("]", 1)[0]), counters)
                self.lines.setdefault(table, number)
                continue
            match = re.match(r"\s*([A-Za-z0-9_\-\"'. ]+?)\s*=", line) if depth == 0 else None
            if match:
                self.lines.setdefault(table + tuple(_keys(match[1])), number)
                line = line[match.end():]
            depth, quote = _brackets(line, depth)


def _keys(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in dotted.split(".")]


def _brackets(rest: str, depth: int) -> tuple[int, str]:
    """The bracket depth after `rest` and the multi-line string it leaves open, if any."""
    i = 0
    while i < len(rest):
        ch = rest[i]
        if ch == "#":
            break
        for delim in ('"""', "'''"):
            if rest.startswith(delim, i):
                end = rest.find(delim, i + 3)
                if end < 0:
                    return depth, delim
                i = end + 3
                break
        else:
            if ch in "\"'":
                end = rest.find(ch, i + 1)
                while end > 0 and ch == '"' and rest[end - 1] == "\\":
                    end = rest.find(ch, end + 1)
                i = len(rest) if end < 0 else end + 1
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth = max(0, depth - 1)
            i += 1
    return depth, ""


# -- checking ------------------------------------------------------------------------------------
class _Checker:
    """Checks one document; `fail` raises the one-line error for a key path."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.where = KeyLines(text)

    def fail(self, at: tuple[Any, ...], message: str) -> LabFileError:
        dotted = ".".join(str(k) for k in at if isinstance(k, str))
        return LabFileError(f"{self.path}:{self.where.line(at)}: {dotted}: {message}")

    def table(self, value: Any, at: tuple[Any, ...], known: dict[str, Any],
              required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(at, f"must be a table, not {_kind(value)}")
        for key in value:
            if key not in known:
                near = difflib.get_close_matches(key, list(known), 1)
                more = f" (did you mean '{near[0]}'?)" if near else ""
                raise self.fail(at + (key,), f"unknown key '{key}'{more}")
        for key in required:
            if key not in value:
                raise self.fail(at, f"'{key}' is missing")
        return value

    def text(self, value: Any, at: tuple[Any, ...], empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(at, f"must be a string, not {_kind(value)}")
        if not empty and not value.strip():
            raise self.fail(at, "must not be empty")
        if len(value) > MAX_TEXT:
            raise self.fail(at, f"is longer than {MAX_TEXT} characters")
        return value

    def texts(self, value: Any, at: tuple[Any, ...], least: int = 1) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(at, f"must be an array of strings, not {_kind(value)}")
        if len(value) < least:
            raise self.fail(at, f"needs at least {least} entr{'y' if least == 1 else 'ies'}")
        return tuple(self.text(v, at) for v in value)

    def number(self, value: Any, at: tuple[Any, ...], lo: float, hi: float,
               integer: bool = True) -> Any:
        ok = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok):
            raise self.fail(at, f"must be {'an integer' if integer else 'a number'}, "
                                f"not {_kind(value)}")
        if not lo <= value <= hi:
            shown = (lambda v: f"{v:#x}") if integer and hi > 0x1000 else (lambda v: f"{v:g}")
            raise self.fail(at, f"{shown(value)} is not between {shown(lo)} and {shown(hi)}")
        return value

    def flag(self, value: Any, at: tuple[Any, ...]) -> bool:
        if not isinstance(value, bool):
            raise self.fail(at, f"must be true or false, not {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


LAB_KEYS = dict.fromkeys(("title", "arch", "question", "answers", "briefing", "hints",
                          "solution", "description", "kind"))
MACHINE_KEYS = dict.fromkeys(("processors", "boot_ticks", "population", "traffic", "verifier",
                              "nonpaged_pool_pages"))
VERIFIER_KEYS = dict.fromkeys(("drivers", "special_pool", "pool_tracking", "catch"))
DRIVER_KEYS = dict.fromkeys(("name", "size", "allocates"))
ALLOCATES_KEYS = dict.fromkeys((
    "tag", "pool", "sizes", "size_range", "weight", "lifetime", "leak_every", "stack",
    "protected", "large", "quota", "overrun", "underrun", "every", "double_free_every",
    "free_tag", "use_after_free", "burst", "burst_at"))


def _check(checker: _Checker, doc: dict[str, Any], loaded: frozenset[str] = frozenset()
           ) -> dict[str, Any]:
    """The checked document; `loaded` names the drivers of every variant (all are modules on
    the machine, so the verifier may name any of them)."""
    c = checker
    c.table(doc, (), {"lab": 0, "machine": 0, "driver": 0, "variants": 0}, ("lab",))
    lab = c.table(doc["lab"], ("lab",), LAB_KEYS,
                  ("title", "question", "answers", "briefing", "hints"))
    out_lab: dict[str, Any] = {
        "title": c.text(lab["title"], ("lab", "title")),
        "question": c.text(lab["question"], ("lab", "question")),
        "answers": c.texts(lab["answers"], ("lab", "answers")),
        "briefing": c.text(lab["briefing"], ("lab", "briefing")),
        "hints": c.texts(lab["hints"], ("lab", "hints")),
    }
    out_lab["solution"], out_lab["solution_file"] = _solution(c, lab.get("solution", []))
    arch = c.text(lab.get("arch", "x86"), ("lab", "arch"))
    if arch not in ARCHES:
        raise c.fail(("lab", "arch"), f"unknown architecture '{arch}' (x86 or x64)")
    out_lab["arch"] = arch
    kind = c.text(lab.get("kind", ""), ("lab", "kind"), empty=True)
    if kind and kind not in KINDS:
        raise c.fail(("lab", "kind"), f"unknown kind '{kind}' ({' or '.join(KINDS)})")
    description = c.text(lab.get("description", f"{out_lab['title']}: find "
                                 f"{out_lab['question']}"), ("lab", "description"))
    for answer in out_lab["answers"]:
        if re.search(rf"(?<![\w]){re.escape(answer)}(?![\w])", description, re.I):
            raise c.fail(("lab", "description"), f"gives the answer away ('{answer}')")
    out_lab["description"] = description
    drivers = _check_drivers(c, doc.get("driver", []))
    out_lab["kind"] = kind or _answer_kind(out_lab["answers"], drivers)
    machine = _check_machine(c, doc.get("machine", {}), drivers, loaded)
    return {"lab": out_lab, "machine": machine, "drivers": drivers}


def _solution(c: _Checker, value: Any) -> tuple[tuple[str, ...], str]:
    """(commands, file name): the solution as a list of commands, or as the name of a command
    file beside the lab file (read when the lab is checked, so a missing one is an error)."""
    at = ("lab", "solution")
    if not isinstance(value, str):
        return c.texts(value, at, least=0), ""
    name = c.text(value, at)
    if not SOLUTION_FILE.match(name):
        raise c.fail(at, f"'{name}' is not a command file name beside the lab (like lab.cmd)")
    beside = Path(c.path).parent / name
    try:
        text = read_regular(beside, MAX_BYTES).decode("utf-8")
    except (OSError, ValueError, FileTooLarge):
        raise c.fail(at, f"cannot read the solution file '{name}' beside the lab") from None
    return tuple(line for line in text.splitlines() if line.strip()), name


def _answer_kind(answers: tuple[str, ...], drivers: list[dict[str, Any]]) -> str:
    """What the answers name: a driver when one is a declared driver or ends in .sys, a tag
    when one is a declared tag; '' when neither."""
    names = {n.lower() for d in drivers for n in (d["name"], d["image"])}
    tags = {a["tag"].strip().lower() for d in drivers for a in d["allocates"]}
    low = [a.lower() for a in answers]
    if any(a in names or a.endswith(".sys") for a in low):
        return "driver"
    if any(a in tags for a in low):
        return "tag"
    return ""


def _check_machine(c: _Checker, machine: Any, drivers: list[dict[str, Any]],
                   loaded: frozenset[str]) -> dict[str, Any]:
    at = ("machine",)
    machine = c.table(machine, at, MACHINE_KEYS)
    out: dict[str, Any] = {
        "processors": c.number(machine.get("processors", 2), at + ("processors",), 1, 32),
        "boot_ticks": c.number(machine.get("boot_ticks", DEFAULT_BOOT_TICKS),
                               at + ("boot_ticks",), 0, MAX_TICKS),
        "population": float(c.number(machine.get("population", DEFAULT_POPULATION),
                                     at + ("population",), 0.01, 10.0, integer=False)),
        "traffic": float(c.number(machine.get("traffic", DEFAULT_TRAFFIC), at + ("traffic",),
                                  0.0, 10.0, integer=False)),
        "verifier": VerifierSettings(),
        "nonpaged_pool_pages": 0,
    }
    if "nonpaged_pool_pages" in machine:
        out["nonpaged_pool_pages"] = c.number(machine["nonpaged_pool_pages"],
                                              at + ("nonpaged_pool_pages",), 2048, 1 << 20)
    if "verifier" in machine:
        out["verifier"] = _check_verifier(c, machine["verifier"], at + ("verifier",), drivers,
                                          loaded)
    return out


def _check_verifier(c: _Checker, value: Any, at: tuple[Any, ...],
                    drivers: list[dict[str, Any]], loaded: frozenset[str]) -> VerifierSettings:
    if isinstance(value, str):                 # verifier.exe's own syntax
        try:
            settings = parse_settings(value)
        except ValueError as exc:
            raise c.fail(at, str(exc)) from None
    else:
        table = c.table(value, at, VERIFIER_KEYS, ("drivers",))
        flags = SPECIAL_POOL if c.flag(table.get("special_pool", False),
                                       at + ("special_pool",)) else 0
        if c.flag(table.get("pool_tracking", False), at + ("pool_tracking",)):
            flags |= POOL_TRACKING
        if not flags:
            raise c.fail(at, "turns nothing on: set special_pool or pool_tracking to true")
        catch = c.text(table.get("catch", "overruns"), at + ("catch",))
        if catch not in ("overruns", "underruns"):
            raise c.fail(at + ("catch",), f"'{catch}' is not overruns or underruns")
        names = c.texts(table["drivers"], at + ("drivers",))
        settings = VerifierSettings(flags, names, False, catch == "underruns")
    known = {n.lower() for d in drivers for n in (d["name"], d["image"])} | loaded
    known |= {n.lower() for name, image, _, _ in DRIVERS for n in (name, image)}
    for name in settings.drivers:
        if name.lower() not in known:
            raise c.fail(at, f"'{name}' is not a declared driver")
    return settings


def _check_drivers(c: _Checker, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise c.fail(("driver",), "must be an array of tables ([[driver]])")
    if len(value) > MAX_LAB_DRIVERS:
        raise c.fail(("driver",), f"more than {MAX_LAB_DRIVERS} drivers")
    drivers: list[dict[str, Any]] = []
    for i, raw in enumerate(value):
        at = ("driver", i)
        d = c.table(raw, at, DRIVER_KEYS, ("name",))
        image = c.text(d["name"], at + ("name",))
        if not NAME.match(image):
            raise c.fail(at + ("name",), f"'{image}' is not a driver file name (like "
                                         "netflt.sys)")
        name = image[:-4] if image.lower().endswith(".sys") else image
        if name.lower() in ("nt", "ntoskrnl", "hal"):
            raise c.fail(at + ("name",), f"'{image}' is part of the kernel, not a driver")
        if any(name.lower() == other["name"].lower() for other in drivers):
            raise c.fail(at + ("name",), f"'{image}' is declared twice")
        size = c.number(d.get("size", 0x8000), at + ("size",), 0x1000, LAB_DRIVER_SLOT)
        drivers.append({"name": name, "image": image, "size": size, "allocates": [],
                        "raw": d.get("allocates", []), "at": at})
    for driver in drivers:
        raw, at = driver.pop("raw"), driver.pop("at")
        if not isinstance(raw, list):
            raise c.fail(at + ("allocates",), "must be an array of tables "
                                              "([[driver.allocates]])")
        for j, entry in enumerate(raw):
            driver["allocates"].append(_check_allocates(c, entry, at + ("allocates", j),
                                                        driver, drivers))
    return drivers


def _check_allocates(c: _Checker, value: Any, at: tuple[Any, ...], driver: dict[str, Any],
                     drivers: list[dict[str, Any]]) -> dict[str, Any]:
    a = c.table(value, at, ALLOCATES_KEYS, ("tag", "sizes"))
    tag = c.text(a["tag"], at + ("tag",))
    if len(tag) > 4 or not all(" " <= ch <= "~" for ch in tag):
        raise c.fail(at + ("tag",), f"'{tag}' is not a pool tag (1 to 4 printable ASCII "
                                    "characters)")
    pool = c.text(a.get("pool", "nonpaged"), at + ("pool",))
    if pool not in POOLS:
        raise c.fail(at + ("pool",), f"unknown pool type '{pool}' (nonpaged or paged)")
    large = c.flag(a.get("large", False), at + ("large",))
    sizes_at = at + ("sizes",)
    if not isinstance(a["sizes"], list) or not a["sizes"]:
        raise c.fail(sizes_at, "must be a non-empty array of byte counts")
    lo, hi = (SMALL_LIMIT + 1, LARGE_LIMIT) if large else (1, SMALL_LIMIT)
    sizes = []
    for size in a["sizes"]:
        if isinstance(size, bool) or not isinstance(size, int):
            raise c.fail(sizes_at, f"must hold integers, not {_kind(size)}")
        if size > hi:
            limit = "the largest request a lab may make" if large else (
                "the small-pool limit (large = true for big-pool blocks)")
            raise c.fail(sizes_at, f"{size:#x} is above {limit}")
        if size < lo:
            raise c.fail(sizes_at, f"{size:#x} is below {lo:#x}" + (
                " (large blocks are bigger than the small-pool limit)" if large else ""))
        sizes.append(size)
    size_range = c.flag(a.get("size_range", False), at + ("size_range",))
    if size_range and (len(sizes) != 2 or sizes[0] > sizes[1]):
        raise c.fail(sizes_at, "with size_range = true, sizes is [lowest, highest]")
    out: dict[str, Any] = {
        "tag": tag, "pool": POOLS[pool], "sizes": tuple(sizes), "size_range": size_range,
        "weight": float(c.number(a.get("weight", 1.0), at + ("weight",), 0.0, 1000.0,
                                 integer=False)),
        "lifetime": None, "protected": c.flag(a.get("protected", False), at + ("protected",)),
        "quota": c.flag(a.get("quota", False), at + ("quota",)),
    }
    if "lifetime" in a:
        out["lifetime"] = float(c.number(a["lifetime"], at + ("lifetime",), 1, MAX_TICKS,
                                         integer=False))
    stack = c.texts(a.get("stack", [f"{driver['name']}+0x1000", *DRIVER_STACK]),
                    at + ("stack",))
    out["stack"] = stack
    out["frames"] = tuple(_frame(c, frame, at + ("stack",), drivers) for frame in stack)
    for key in ("leak_every", "double_free_every", "every", "overrun", "underrun", "burst"):
        if key in a:
            out[key] = c.number(a[key], at + (key,), 1, MAX_COUNT)
    if "burst_at" in a:
        out["burst_at"] = c.number(a["burst_at"], at + ("burst_at",), 0, MAX_TICKS)
    if "free_tag" in a:
        free_tag = c.text(a["free_tag"], at + ("free_tag",))
        if len(free_tag) > 4 or not all(" " <= ch <= "~" for ch in free_tag):
            raise c.fail(at + ("free_tag",), f"'{free_tag}' is not a pool tag")
        out["free_tag"] = free_tag
    out["use_after_free"] = c.flag(a.get("use_after_free", False), at + ("use_after_free",))
    _check_bug(c, a, at, out)
    return out


BUGS = ("overrun", "underrun", "use_after_free", "burst")


def _check_bug(c: _Checker, a: dict[str, Any], at: tuple[Any, ...], out: dict[str, Any]) -> None:
    """At most one kind of store or burst per entry, and each with what it needs."""
    bugs = [b for b in BUGS if b in a and a[b] is not False]
    if len(bugs) > 1:
        raise c.fail(at + (bugs[1],), f"an entry has one bug of this kind: {bugs[0]} and "
                                      f"{bugs[1]} go in separate [[driver.allocates]]")
    if "leak_every" in a and "lifetime" not in a:
        raise c.fail(at + ("leak_every",), "needs a lifetime (without one, no block is freed)")
    if "double_free_every" in a and "lifetime" not in a:
        raise c.fail(at + ("double_free_every",), "needs a lifetime (blocks are freed twice "
                                                  "when they are freed)")
    if "burst_at" in a and "burst" not in a:
        raise c.fail(at + ("burst_at",), "only applies with burst = COUNT")
    if bugs and bugs[0] != "burst" and (len(out["sizes"]) != 1 or out["size_range"]):
        raise c.fail(at + ("sizes",), f"with {bugs[0]}, sizes holds one size")
    if bugs and (out["quota"] or "free_tag" in out or "leak_every" in out
                 or "double_free_every" in out):
        raise c.fail(at + (bugs[0],), f"{bugs[0]} does not combine with quota, free_tag, "
                                      "leak_every or double_free_every")
    if "every" in a and not bugs[:1] or bugs[:1] == ["burst"] and "every" in a:
        raise c.fail(at + ("every",), "only applies with overrun, underrun or use_after_free")
    if bugs[:1] == ["use_after_free"] and "lifetime" in a:
        raise c.fail(at + ("lifetime",), "a use_after_free entry frees each block at its "
                                         "next turn: leave lifetime out")


def _frame(c: _Checker, frame: str, at: tuple[Any, ...],
           drivers: list[dict[str, Any]]) -> tuple[str, str, int]:
    """(module, symbol or '', offset) of a frame written `mod+0xOFF` or `mod!Sym+0xOFF`."""
    match = FRAME.match(frame)
    if not match:
        raise c.fail(at, f"'{frame}' is not a frame (module+0xOFFSET or module!Symbol+0xOFFSET)")
    module, symbol = match["module"], match["symbol"] or ""
    offset = int(match["offset"] or "0", 16)
    low = module.lower()
    declared = {n.lower(): d for d in drivers for n in (d["name"], d["image"])}
    builtin = {n.lower(): (name, size) for name, image, _, size in DRIVERS
               for n in (name, image)}
    if low in ("nt", "ntoskrnl", "ntoskrnl.exe"):
        if symbol and symbol not in NT_FUNCTIONS:
            raise c.fail(at, f"'{frame}': nt has no symbol '{symbol}'")
        return "nt", symbol, offset
    if low in declared:
        name, size = declared[low]["name"], declared[low]["size"]
    elif low in builtin:
        name, size = builtin[low]
    else:
        raise c.fail(at, f"'{frame}': {module} is not a declared driver (add a [[driver]] "
                         f"with name = \"{module}.sys\")")
    if not symbol and offset >= size:
        raise c.fail(at, f"'{frame}': {offset:#x} is past the end of {name} ({size:#x} bytes)")
    return name, symbol, offset


# -- variants ----------------------------------------------------------------------------------
def _variants(c: _Checker, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The columns of `[variants]` as {name: value} (one empty column without variants)."""
    if "variants" not in doc:
        return [{}]
    at = ("variants",)
    table = doc["variants"]
    if not isinstance(table, dict) or not table:
        raise c.fail(at, "must be a table of named lists of alternatives")
    length = 0
    for name, values in table.items():
        if not re.fullmatch(PLACEHOLDER.pattern[2:-2], name):
            raise c.fail(at + (name,), f"'{name}' is not a variant name (lower case letters, "
                                       "digits and _)")
        if not isinstance(values, list) or not 2 <= len(values) <= MAX_VARIANTS:
            raise c.fail(at + (name,), f"must be an array of 2 to {MAX_VARIANTS} alternatives")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise c.fail(at + (name,), f"must hold strings or integers, not {_kind(value)}")
        if length and len(values) != length:
            raise c.fail(at + (name,), f"has {len(values)} alternatives where the others have "
                                       f"{length}: the seed picks one column of them all")
        length = len(values)
    return [{name: values[i] for name, values in table.items()} for i in range(length)]


def _substitute(c: _Checker, value: Any, at: tuple[Any, ...], column: dict[str, Any]) -> Any:
    """`value` with each `{name}` replaced by the column's value."""
    if isinstance(value, dict):
        return {k: _substitute(c, v, at + (k,), column) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(c, v, at + ((i,) if isinstance(v, dict) else ()), column)
                for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    for name in PLACEHOLDER.findall(value):
        if name not in column:
            known = ", ".join(column) or "none: add a [variants] table"
            raise c.fail(at, f"unknown variant '{{{name}}}' (variants: {known})")
    whole = PLACEHOLDER.fullmatch(value)
    if whole:
        return column[whole[1]]
    return PLACEHOLDER.sub(lambda m: _shown(column[m[1]]), value)


def _raw_driver_names(bodies: list[dict[str, Any]]) -> Iterator[str]:
    """Every variant's driver names as written, with and without `.sys`, lower case."""
    for body in bodies:
        drivers = body.get("driver", [])
        for driver in drivers if isinstance(drivers, list) else ():
            name = driver.get("name") if isinstance(driver, dict) else None
            if isinstance(name, str):
                low = name.lower()
                yield from (low, low[:-4] if low.endswith(".sys") else low + ".sys")


def _shown(value: Any) -> str:
    return f"{value:#x}" if isinstance(value, int) else str(value)


def _check_all(c: _Checker, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every variant's checked document; a mistake in one names its column."""
    columns = _variants(c, doc)
    if "variants" in doc and PLACEHOLDER.search(repr(doc.get("machine", {}))):
        raise c.fail(("machine",), "takes no {variant}: the variants vary [lab] and [[driver]]")
    body = {k: v for k, v in doc.items() if k != "variants"}
    bodies = [_substitute(c, body, (), column) if column else body for column in columns]
    loaded = frozenset(_raw_driver_names(bodies)) if len(columns) > 1 else frozenset()
    if len({n for n in loaded if not n.endswith(".sys")}) > MAX_LAB_DRIVERS:
        raise c.fail(("driver",), f"more than {MAX_LAB_DRIVERS} drivers in all the variants")
    checked = []
    for number, one in enumerate(bodies):
        try:
            checked.append(_check(c, one, loaded))
        except LabFileError as exc:
            if len(columns) == 1:
                raise
            raise LabFileError(f"{exc} (variant {number + 1} of {len(columns)}: seeds "
                               f"{number}, {number + len(columns)}, ...)") from None
    return checked


# -- loading -------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> LabFile:
    """Read and check a lab file; LabFileError (one line) for anything wrong with it."""
    shown = os.fspath(path)
    try:
        raw = read_regular(path, MAX_BYTES)
    except FileTooLarge:
        raise LabFileError(f"{shown}:1: file: larger than {MAX_BYTES} bytes") from None
    except OSError as exc:
        raise LabFileError(f"{shown}:1: file: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:                     # a NUL in the name
        raise LabFileError(f"{shown}:1: file: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[:exc.start].count(b"\n") + 1
        raise LabFileError(f"{shown}:{bad}: file: not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = found[1] if found else "1"
        what = message[:found.start()].strip() if found else message
        if found:
            what += f" at column {found[2]}"
        raise LabFileError(f"{shown}:{line}: syntax: {what[:1].lower()}{what[1:]}") from None
    checked = _check_all(_Checker(shown, text), doc)
    name = Path(shown).name
    stem = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
    return LabFile(shown, stem, hashlib.sha256(raw).hexdigest(), checked[0],
                   tuple(checked) if len(checked) > 1 else ())


def module_specs(lab: LabFile) -> tuple[ModuleSpec, ...]:
    """The lab's drivers as modules (every variant's: all are loaded, the seed picks the one
    that misbehaves), and the symbols its frames name in any module, each symbol at its own
    RVA in the order the file names them."""
    symbols: dict[str, dict[str, int]] = {}
    declared = [d for data in lab.variants or (lab.data,) for d in data["drivers"]]
    for driver in declared:
        symbols.setdefault(driver["name"], {})
        for entry in driver["allocates"]:
            for module, symbol, _ in entry["frames"]:
                if symbol and module != "nt":
                    known = symbols.setdefault(module, {})
                    known.setdefault(symbol, SYMBOL_SLOT * (len(known) + 1))
    sizes = {d["name"]: (d["image"], d["size"]) for d in reversed(declared)}
    sizes.update({name: (image, size) for name, image, _, size in DRIVERS})
    return tuple(dataclasses.replace(SEED_DRIVERS[name], symbols=tuple(found.items()))
                 if name in SEED_DRIVERS else
                 ModuleSpec(name, sizes[name][0], sizes[name][1], tuple(found.items()))
                 for name, found in symbols.items())


def _frame_text(frame: tuple[str, str, int]) -> str:
    module, symbol, offset = frame
    return (f"{module}!{symbol}" if symbol else module) + (f"+{offset:#x}" if offset else "")


def activities(lab: LabFile, seed: int = 0) -> Iterator[Any]:
    """The workload activities of the lab's drivers in the variant `seed` picks
    (kdsim/drivers.py), in file order."""
    for driver in lab.pick(seed)["drivers"]:
        for e in driver["allocates"]:
            frames = tuple(_frame_text(f) for f in e["frames"])
            store = frames[0]
            size = e["sizes"][0]
            every = e.get("every", 1)
            common = (driver["name"], e["tag"], e["pool"])
            if "overrun" in e:
                yield Overrun(driver["name"], e["tag"], size, size + e["overrun"], e["weight"],
                              frames, store, e["pool"], e["lifetime"], every)
            elif "underrun" in e:
                yield Underrun(*common, size, e["underrun"], e["weight"], frames, store,
                               e["lifetime"], every)
            elif e["use_after_free"]:
                yield UseAfterFree(*common, size, e["weight"], frames, store, every)
            elif "burst" in e:
                yield Burst(*common, size, e["burst"], e.get("burst_at", 0), e["weight"],
                            frames)
            else:
                yield Habit(*common, e["sizes"], e["lifetime"], e["weight"], frames,
                            size_range=e["size_range"], protected=e["protected"],
                            leak_every=e.get("leak_every", 0),
                            double_free_every=e.get("double_free_every", 0),
                            free_tag=e.get("free_tag", ""), quota=e["quota"])


def build_for(lab: LabFile) -> Callable[..., Any]:
    """The build function of the lab's scenario: the background machine, the lab's drivers,
    then `boot_ticks` (times the scale) of their workload."""
    machine_spec = lab.data["machine"]

    def build(machine: Any, scale: float) -> Iterator[tuple[str, int]]:
        yield from populate(machine, machine_spec["population"] * scale)
        for background in machine.workload.activities:
            background.weight *= machine_spec["traffic"]
        made = list(activities(lab, machine.seed))
        charged = [a for a in made if isinstance(a, Habit) and a.quota]
        if charged:                                # the process the quota is charged to
            process = machine.current_process()
            for habit in charged:
                habit.quota_process = process
        if made:
            machine.workload.add(*made)
        yield "lab drivers", int(machine_spec["boot_ticks"] * scale)

    return build


def options_of(lab: LabFile) -> dict[str, Any]:
    """The Machine constructor options of the lab (kdsim/scenarios/__init__.py)."""
    m = lab.data["machine"]
    options: dict[str, Any] = {"processors": m["processors"], "modules": module_specs(lab)}
    if m["verifier"].enabled:
        options["verifier"] = m["verifier"]
    if m["nonpaged_pool_pages"]:
        options["nonpaged_pool_pages"] = m["nonpaged_pool_pages"]
    return options
