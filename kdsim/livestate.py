"""The state a live machine keeps outside its memory: declared, captured and restored.

Memory holds what the kernel keeps (kdsim/dump.py saves it); this is the rest, what a snapshot
adds to a dump (kdsim/snapshot.py): the recipe the machine booted from, the workload's clock,
RNG and scheduled frees, the activities' public number fields, the allocator's and the memory
manager's private tables, the verifier's and special pool's lists, and the bug check that
stopped the machine.  It is declared with construct (`STATE`) like every other format, and
restored into a machine rebuilt from its recipe (`Recipe.machine`: its object graph and
activities, no tick played) with each field checked before it is used.

An activity keeps what it counts while it runs in public int or float fields of its
dataclass (`Overrun.runs`, a leak timer's `turns`), reachable from `Workload.activities`
through fields, tuples and bound methods; fields named with a leading `_` are caches that
the activity derives again.  Caches the machine derives from memory or from these tables
(the tracker's slot cache, the verifier's caller cache) are rebuilt, not saved.
"""
from __future__ import annotations

import dataclasses
import math
from types import MethodType
from typing import TYPE_CHECKING, Any, Iterator

from construct import (
    Array, BytesInteger, Construct, Flag, Float64l, Int8sl, Int8ul, Int32ul, Int64sl, Int64ul,
    PrefixedArray, Struct,
)

from .arch import ARCHES
from .bounded import Budget, Counted, Packed, Record
from .bugcheck import BugCheck
from .dump import NAME
from .layouts.constants import MAXIMUM_PROCESSORS
from .layouts import profile_for
from .recipe import Recipe
from .verifier import KNOWN_FLAGS, VerifierSettings

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

__all__ = ["STATE", "StateError", "capture", "recipe_of", "restore", "activity_fields",
           "budget"]

PENDING_ROUTINES = ("ExAllocatePoolWithTag", "ExFreePoolWithTag")
INT = BytesInteger(16, signed=True, swapped=True)
BITMAP = BytesInteger(64, swapped=True)       # one bit per ListHeads entry (512 on x86)
# What a state may declare in all (kdsim/bounded.py): a snapshot's body inflates up to a
# thousand times its file, so the state's lists are bounded by these, not by the file.  The
# largest machine kdsim builds (fragmentation, x64, scale 4) keeps ~0.5 M values and ~10 k
# records.
MAX_VALUES = 1 << 21          # numbers in the packed lists (pool page runs, scheduled frees...)
MAX_RECORDS = 1 << 16         # elements of the other lists (stacks, activities, fields...)


def budget() -> Budget:
    """The allowances every parse of a STATE draws from."""
    return Budget(values=MAX_VALUES, records=MAX_RECORDS)


def _packed(fmt: str, what: str) -> Packed:
    """A list of `fmt` values after its Int32ul count, drawing on the values allowance."""
    return Packed(fmt, what, MAX_VALUES, count=Int32ul, draws="values")


def _list(subcon: Construct, what: str) -> Counted:
    """A list after its Int32ul count, drawing on the records allowance."""
    return Counted(subcon, what, MAX_RECORDS, count=Int32ul, draws="records")


STACK = _packed("Q", "stack frames")


def _optional(subcon: Construct) -> Construct:
    """None or one value."""
    return PrefixedArray(Int8ul, subcon)


SETTINGS = Struct(
    "flags" / Int32ul,
    "drivers" / _list(NAME, "driver names"),
    "all_drivers" / Flag,
    "verify_start" / Flag,
)
RECIPE = Struct(
    "scenario" / NAME,
    "arch" / NAME,
    "seed" / Int64sl,
    "scale" / Float64l,
    "processors" / Int32ul,
    "verifier" / SETTINGS,
)
WORKLOAD = Struct(
    "t" / Int64ul,
    "seq" / Int64ul,
    "rng_version" / Int32ul,
    "rng_words" / _packed("I", "random generator words"),
    "rng_gauss" / _optional(Float64l),
    "stacks" / _list(STACK, "stacks"),               # the call stacks scheduled frees name
    "due_time" / _packed("d", "scheduled frees"),    # the heap of scheduled frees, in order
    "due_seq" / _packed("Q", "scheduled frees"),
    "due_address" / _packed("Q", "scheduled frees"),
    "due_key" / _packed("I", "scheduled frees"),
    "due_stack" / _packed("I", "scheduled frees"),
    "activities" / _list(Record("kind" / NAME, "weight" / Float64l), "activities"),
    "ints" / _list(Record("field" / NAME, "value" / INT), "activity fields"),
    "floats" / _list(Record("field" / NAME, "value" / Float64l), "activity fields"),
)
RUNS = Struct("first" / _packed("I", "pool page runs"), "pages" / _packed("I", "pool page runs"))
POOL = Struct(
    "rr" / Int32ul,
    "bitmaps" / _list(BITMAP, "pool descriptors"),    # per descriptor: lists that may hold chunks
    "hit" / _optional(Struct("key" / Int32ul, "sign" / Int8sl)),
    "hit_site" / _optional(Struct("routine" / NAME, "cpu" / Int32ul, "stack" / STACK)),
    "big_table" / Int64ul,
    "big_entries" / Int32ul,
    "big_in_use" / Int32ul,
    "nonpaged" / RUNS,
    "paged" / RUNS,
)
VERIFIER_STATE = Struct(
    "pending" / SETTINGS,
    "entries" / _list(Record("name" / NAME, "entry" / Int64ul), "driver entries"),
    "tracked_address" / _packed("Q", "tracked blocks"),
    "tracked_slot" / _packed("Q", "tracked blocks"),
    "tracked_entry" / _packed("Q", "tracked blocks"),
    "tracked_bytes" / _packed("Q", "tracked blocks"),
    "tracked_paged" / _packed("B", "tracked blocks"),
    "free_slots" / _list(Record("entry" / Int64ul, "slots" / _packed("Q", "free slots")),
                         "driver entries"),
    "special_free" / _packed("I", "special pool pairs"),
)
CRASH = Struct(
    "code" / Int32ul,
    "params" / Array(4, Int64ul),
    "routines" / _list(NAME, "routines"),
    "stack" / STACK,
)
STATE = Struct(
    "recipe" / RECIPE,
    "workload" / WORKLOAD,
    "pool" / POOL,
    "verifier" / VERIFIER_STATE,
    "crash" / _optional(CRASH),
)


# -- capturing ----------------------------------------------------------------------------------
def capture(machine: "Machine") -> dict[str, Any]:
    """The machine's state outside memory, as STATE builds it."""
    wl, pool, verifier = machine.workload, machine.pool, machine.verifier
    stacks: dict[tuple[int, ...], int] = {}
    due_stack = [stacks.setdefault(stack, len(stacks)) for *_, stack in wl.due]
    rng_version, words, gauss = wl.rng.getstate()
    ints, floats = ([dict(field=path, value=getattr(obj, attr)) for path, obj, attr in kind]
                    for kind in _scalars(wl.activities))
    tracked = list(verifier.tracked.items())
    special = verifier.special
    crash = machine.crash
    hit_site = pool.hit_site
    return dict(
        recipe=dict(scenario=machine.scenario, arch=machine.arch.name, seed=machine.seed,
                    scale=machine.scale, processors=machine.processors,
                    verifier=_settings(verifier.settings)),
        workload=dict(
            t=wl.t, seq=wl.seq, rng_version=rng_version, rng_words=list(words),
            rng_gauss=[] if gauss is None else [gauss],
            stacks=[list(stack) for stack in stacks],
            due_time=[d[0] for d in wl.due], due_seq=[d[1] for d in wl.due],
            due_address=[d[2] for d in wl.due], due_key=[d[3] for d in wl.due],
            due_stack=due_stack,
            activities=[dict(kind=type(a).__name__, weight=float(a.weight))
                        for a in wl.activities],
            ints=ints, floats=floats),
        pool=dict(
            rr=pool.rr,
            bitmaps=[d.bitmap for d in (*pool.descriptors, *pool.paged_desc)],
            hit=[] if pool.tracker.hit is None else [dict(key=pool.tracker.hit[0],
                                                          sign=pool.tracker.hit[1])],
            hit_site=[] if hit_site is None else [dict(routine=hit_site[0], cpu=hit_site[1],
                                                       stack=list(hit_site[2]))],
            big_table=pool.big.table, big_entries=pool.big.entries, big_in_use=pool.big.in_use,
            nonpaged=_runs(machine.mm.nonpaged.runs), paged=_runs(machine.mm.paged.runs)),
        verifier=dict(
            pending=_settings(verifier.pending),
            entries=[dict(name=n, entry=e) for n, e in verifier.entries.items()],
            tracked_address=[a for a, _ in tracked],
            tracked_slot=[t[0] for _, t in tracked],
            tracked_entry=[t[1] for _, t in tracked],
            tracked_bytes=[t[2] for _, t in tracked],
            tracked_paged=[int(t[3]) for _, t in tracked],
            free_slots=[dict(entry=e, slots=s) for e, s in verifier.free_slots.items()],
            special_free=list(special.free_pairs) if special is not None else []),
        crash=[] if crash is None else [dict(
            code=crash.code, params=[p & 0xFFFFFFFFFFFFFFFF for p in crash.params],
            routines=list(crash.where[0]) if crash.where else [],
            stack=list(crash.where[1]) if crash.where else [])],
    )


def _settings(s: VerifierSettings) -> dict[str, Any]:
    return dict(flags=s.flags, drivers=list(s.drivers), all_drivers=s.all_drivers,
                verify_start=s.verify_start)


def _runs(runs: dict[int, int]) -> dict[str, list[int]]:
    return dict(first=list(runs), pages=list(runs.values()))


Scalar = tuple[str, Any, str]                 # (path, object, attribute)


def _scalars(activities: list[Any]) -> tuple[list[Scalar], list[Scalar]]:
    """The activities' int fields and their float fields (`activity_fields`)."""
    ints: list[Scalar] = []
    floats: list[Scalar] = []
    for path, obj, attr in activity_fields(activities):
        (floats if isinstance(getattr(obj, attr), float) else ints).append((path, obj, attr))
    return ints, floats


def activity_fields(activities: list[Any]) -> Iterator[Scalar]:
    """(path, object, attribute) of every public int and float field of the activities'
    dataclasses and of the dataclasses they hold, each object once, in a fixed order."""
    seen: set[int] = set()

    def visit(obj: Any, path: str) -> Iterator[Scalar]:
        if isinstance(obj, MethodType):
            obj = obj.__self__
        if isinstance(obj, (tuple, list)):
            for i, item in enumerate(obj):
                yield from visit(item, f"{path}[{i}]")
            return
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type) or id(obj) in seen:
            return
        seen.add(id(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name.startswith("_") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                yield f"{path}.{f.name}", obj, f.name
            else:
                yield from visit(value, f"{path}.{f.name}")

    for i, activity in enumerate(activities):
        yield from visit(activity, f"activities[{i}]")


# -- restoring ----------------------------------------------------------------------------------
class StateError(Exception):
    """A field of the state is impossible; the message says which."""


def restore(machine: "Machine", state: Any) -> None:
    """Put a parsed STATE into a machine rebuilt from its recipe (`Recipe.machine`)."""
    _restore_workload(machine, state.workload)
    _restore_pool(machine, state.pool)
    _restore_verifier(machine, state.verifier)
    _restore_crash(machine, state.crash)


def recipe_of(state: Any) -> Recipe:
    """The recipe a parsed STATE names."""
    r = state.recipe
    _check(r.arch in ARCHES, f"unknown architecture '{r.arch}'")
    _check(1 <= r.processors <= MAXIMUM_PROCESSORS, f"{r.processors} processors")
    _check(math.isfinite(r.scale) and r.scale > 0, f"scale {r.scale}")
    return Recipe(r.scenario, r.arch, r.seed, r.scale, r.processors, _settings_of(r.verifier))


def _settings_of(s: Any) -> VerifierSettings:
    if s.flags & ~KNOWN_FLAGS:
        raise StateError(f"verifier flags {s.flags:#x}")
    return VerifierSettings(s.flags, tuple(s.drivers), s.all_drivers, s.verify_start)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise StateError(what)


def _restore_workload(machine: "Machine", w: Any) -> None:
    wl = machine.workload
    kinds = [(a.kind, a.weight) for a in w.activities]
    _check([k for k, _ in kinds] == [type(a).__name__ for a in wl.activities],
           "its activities are not those of its scenario")
    for stored, current in zip((w.ints, w.floats), _scalars(wl.activities)):
        _check([f.field for f in stored] == [path for path, _, _ in current],
               "its activities' fields are not those of its scenario")
        for f, (_, obj, attr) in zip(stored, current):
            _check(math.isfinite(f.value), f"the activity field {f.field}")
            if getattr(obj, attr) != f.value:
                setattr(obj, attr, f.value)
    for activity, (_, weight) in zip(wl.activities, kinds):
        _check(math.isfinite(weight) and weight >= 0, "an activity's weight")
        activity.weight = weight
    wl.add()                                      # the cumulative weights, again
    _check(w.rng_version == 3 and len(w.rng_words) == 625 and w.rng_words[-1] <= 624
           and len(w.rng_gauss) <= 1, "the random generator's state")
    try:
        wl.rng.setstate((w.rng_version, tuple(w.rng_words), w.rng_gauss[0] if w.rng_gauss
                         else None))
    except (ValueError, TypeError, OverflowError):
        raise StateError("the random generator's state") from None
    columns = (w.due_time, w.due_seq, w.due_address, w.due_key, w.due_stack)
    _check(len({len(c) for c in columns}) == 1, "the scheduled frees")
    _check(all(i < len(w.stacks) for i in w.due_stack), "a scheduled free's stack")
    _check(all(math.isfinite(t) for t in w.due_time), "a scheduled free's time")
    stacks = [tuple(stack) for stack in w.stacks]
    due = [(t, seq, address, key, stacks[i])
           for t, seq, address, key, i in zip(*columns)]
    _check(all(due[(i - 1) // 2] <= due[i] for i in range(1, len(due))),
           "the scheduled frees are not a heap")
    wl.due[:] = due
    wl.t, wl.seq = w.t, w.seq


def _restore_pool(machine: "Machine", p: Any) -> None:
    pool, mm = machine.pool, machine.mm
    descriptors = (*pool.descriptors, *pool.paged_desc)
    _check(len(p.bitmaps) == len(descriptors)
           and all(0 <= b < 1 << profile_for(machine.arch).list_heads for b in p.bitmaps),
           "the pool descriptors' list bitmaps")
    for desc, bitmap in zip(descriptors, p.bitmaps):
        desc.bitmap = bitmap
    _check(p.rr <= pool.settings.paged_pools, "the paged pool round robin")
    pool.rr = p.rr
    _check(all(h.sign in (1, -1) for h in p.hit), "the PoolHitTag hit")
    pool.tracker.hit = (p.hit[0].key, p.hit[0].sign) if p.hit else None
    _check(all(s.routine in PENDING_ROUTINES and s.cpu < machine.processors
               for s in p.hit_site), "the PoolHitTag hit's routine")
    pool.hit_site = ((p.hit_site[0].routine, p.hit_site[0].cpu, tuple(p.hit_site[0].stack))
                     if p.hit_site else None)
    entries = p.big_entries
    _check(entries >= 1 and entries & (entries - 1) == 0 and p.big_in_use <= entries
           and mm.nonpaged.contains(p.big_table), "the big page table")
    pool.big.table, pool.big.entries, pool.big.in_use = p.big_table, entries, p.big_in_use
    for pages, runs in ((mm.nonpaged, p.nonpaged), (mm.paged, p.paged)):
        _check(len(runs.first) == len(runs.pages), "the pool page runs")
        end = 0
        for first, count in sorted(zip(runs.first, runs.pages)):
            _check(count > 0 and first >= end, "a pool page run")
            end = first + count
        _check(end <= len(pages.used), "a pool page run")
        used = pages.used
        used[:] = bytes(len(used))
        for first, count in zip(runs.first, runs.pages):
            used[first:first + count] = b"\x01" * count
        pages.runs = dict(zip(runs.first, runs.pages))
        pages.in_use = sum(runs.pages)


def _restore_verifier(machine: "Machine", v: Any) -> None:
    verifier = machine.verifier
    verifier.pending = _settings_of(v.pending)
    verifier.entries = {e.name: e.entry for e in v.entries}
    verifier._callers.clear()                  # caches which entry a stack's driver has
    columns = (v.tracked_address, v.tracked_slot, v.tracked_entry, v.tracked_bytes,
               v.tracked_paged)
    _check(len({len(c) for c in columns}) == 1, "the verifier's tracked blocks")
    slots = {s.entry: s.slots for s in v.free_slots}
    _check(set(slots) == set(verifier.free_slots), "the verifier's driver entries")
    _check(all(e in slots for e in v.tracked_entry), "a tracked block's driver entry")
    verifier.tracked = {address: (slot, entry, nbytes, bool(paged))
                        for address, slot, entry, nbytes, paged in zip(*columns)}
    verifier.free_slots = slots
    special = verifier.special
    if special is None:
        _check(not v.special_free, "special pool's free pairs, without special pool")
        return
    _check(len(set(v.special_free)) == len(v.special_free)
           and all(pair < special.pairs for pair in v.special_free),
           "special pool's free pairs")
    special.free_pairs.clear()
    special.free_pairs.extend(v.special_free)


def _restore_crash(machine: "Machine", crashes: Any) -> None:
    _check(len(crashes) <= 1, "the bug check")
    if not crashes:
        machine.crash = None
        return
    c = crashes[0]
    _check(all(r in profile_for(machine.arch).routines for r in c.routines), "the bug check's routine")
    bc = BugCheck(c.code, *c.params)
    bc.where = (tuple(c.routines), tuple(c.stack)) if c.routines or c.stack else None
    machine.crash = bc
