"""Snapshots: a live machine saved to a file, and resumed from it live, where it stood.

A snapshot is a dump plus the simulator's Python-side state (DESIGN.md).  Its body is a
declared record of what memory does not hold: the recipe the machine booted from, the
workload's clock, RNG and scheduled frees, the activities' public number fields, the
allocator's and the memory manager's private tables, the verifier's and special pool's lists
and the bug check that stopped it; then a dump's body (modules and symbols, no-access pages,
every mapped page), built and parsed by kdsim/dump.py.  Loading rebuilds the machine's object
graph from its recipe without playing the boot workload (`Recipe.machine`), checks that it
has the snapshot's symbols and activities, and puts memory and state in place.

An activity keeps what it counts while it runs in public int or float fields of its
dataclass (`Overrun.runs`, a leak timer's `turns`), reachable from `Workload.activities`
through fields, tuples and bound methods; fields named with a leading `_` are caches that
the activity derives again.

The file is a fixed header (magic, version, the body's size inflated and stored, a CRC-32 of
the stored bytes continued over the header) and the body, zlib-compressed.  The header is
checked against the file's length before anything else is read, the body is inflated a chunk
at a time and never past the size the header declares, and every field is checked before it
is used, so a damaged file is one `SnapshotError` line and costs no more memory than it
claims.  Nothing in a snapshot is executed or unpickled.
"""
from __future__ import annotations

import dataclasses
import math
import os
import struct
import zlib
from types import MethodType
from typing import IO, TYPE_CHECKING, Any, Iterator

from construct import (
    Array, BytesInteger, Const, Construct, ConstructError, Flag, Float64l, Int8sl, Int8ul,
    Int16ul, Int32ul, Int64sl, Int64ul, PrefixedArray, StreamError, Struct,
)
from construct.core import stream_read

from . import dump
from .arch import ARCHES
from .bugcheck import BugCheck
from .memory import AddressSpace
from .recipe import Recipe
from .stop import ROUTINES
from .verifier import KNOWN_FLAGS, VerifierSettings
from .version import version

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

__all__ = ["save", "write", "load", "read", "SnapshotError", "MAGIC", "VERSION"]

MAGIC = b"KDSIMSNP"
VERSION = 1
LEVEL = 1                     # zlib level: a booted lab shrinks ~45 times, and inflates fastest
MAX_RATIO = 1032              # the most a deflate stream inflates: 258 bytes per 2 bits
STORED_CHUNK = 1 << 16        # compressed bytes fed to zlib at a time
INFLATED_CHUNK = 1 << 20      # the most zlib hands back at a time
MAX_PROCESSORS = 32           # nt!KiProcessorBlock's slots
PENDING_ROUTINES = ("ExAllocatePoolWithTag", "ExFreePoolWithTag")
INT = BytesInteger(16, signed=True, swapped=True)
BITMAP = BytesInteger(64, swapped=True)       # one bit per ListHeads entry (512 on x86)


class Packed(Construct):
    """A count (Int32ul) then that many values of one struct format: on disk exactly
    `PrefixedArray(Int32ul, <format field>)`, moved with one struct call instead of
    construct's per-element path (the scheduled frees and free special-pool pairs run to
    thousands)."""

    def __init__(self, fmt: str):
        super().__init__()
        self.fmt = fmt
        self.size = struct.calcsize("<" + fmt)

    def _parse(self, stream, context, path):
        count = struct.unpack("<I", stream_read(stream, 4, path))[0]
        data = stream_read(stream, count * self.size, path)
        return list(struct.unpack(f"<{count}{self.fmt}", data))

    def _build(self, obj, stream, context, path):
        try:
            data = struct.pack(f"<I{len(obj)}{self.fmt}", len(obj), *obj)
        except struct.error as exc:
            raise StreamError(f"cannot pack {self.fmt} values: {exc}", path=path) from None
        stream.write(data)
        return obj


STRING = dump.STRING
STACK = Packed("Q")


def _optional(subcon: Construct) -> Construct:
    """None or one value."""
    return PrefixedArray(Int8ul, subcon)


SETTINGS = Struct(
    "flags" / Int32ul,
    "drivers" / PrefixedArray(Int32ul, STRING),
    "all_drivers" / Flag,
    "verify_start" / Flag,
)
RECIPE = Struct(
    "scenario" / STRING,
    "arch" / STRING,
    "seed" / Int64sl,
    "scale" / Float64l,
    "processors" / Int32ul,
    "verifier" / SETTINGS,
)
WORKLOAD = Struct(
    "t" / Int64ul,
    "seq" / Int64ul,
    "rng_version" / Int32ul,
    "rng_words" / Packed("I"),
    "rng_gauss" / _optional(Float64l),
    "stacks" / PrefixedArray(Int32ul, STACK),        # the call stacks scheduled frees name
    "due_time" / Packed("d"),                         # the heap of scheduled frees, in order
    "due_seq" / Packed("Q"),
    "due_address" / Packed("Q"),
    "due_key" / Packed("I"),
    "due_stack" / Packed("I"),
    "activities" / PrefixedArray(Int32ul, Struct("kind" / STRING, "weight" / Float64l)),
    "ints" / PrefixedArray(Int32ul, Struct("field" / STRING, "value" / INT)),
    "floats" / PrefixedArray(Int32ul, Struct("field" / STRING, "value" / Float64l)),
)
RUNS = Struct("first" / Packed("I"), "pages" / Packed("I"))
POOL = Struct(
    "rr" / Int32ul,
    "bitmaps" / PrefixedArray(Int32ul, BITMAP),       # per descriptor: lists that may hold chunks
    "hit" / _optional(Struct("key" / Int32ul, "sign" / Int8sl)),
    "hit_site" / _optional(Struct("routine" / STRING, "cpu" / Int32ul, "stack" / STACK)),
    "big_table" / Int64ul,
    "big_entries" / Int32ul,
    "big_in_use" / Int32ul,
    "nonpaged" / RUNS,
    "paged" / RUNS,
)
VERIFIER = Struct(
    "pending" / SETTINGS,
    "entries" / PrefixedArray(Int32ul, Struct("name" / STRING, "entry" / Int64ul)),
    "tracked_address" / Packed("Q"),
    "tracked_slot" / Packed("Q"),
    "tracked_entry" / Packed("Q"),
    "tracked_bytes" / Packed("Q"),
    "tracked_paged" / Packed("B"),
    "free_slots" / PrefixedArray(Int32ul, Struct("entry" / Int64ul, "slots" / Packed("Q"))),
    "special_free" / Packed("I"),
)
CRASH = Struct(
    "code" / Int32ul,
    "params" / Array(4, Int64ul),
    "routines" / PrefixedArray(Int32ul, STRING),
    "stack" / STACK,
)
# The preamble is read alone first, so a later version may change everything after it.
PREAMBLE = Struct(
    "magic" / Const(MAGIC),
    "version" / Int16ul,
)
HEADER = PREAMBLE + Struct(
    "body_size" / Int64ul,            # the body, inflated
    "stored_size" / Int64ul,          # the zlib stream that follows the header
    # CRC-32 of the stored bytes, continued over the header's bytes before this field
    "checksum" / Int32ul,
)
HEADER_SIZE = HEADER.sizeof()
BODY = Struct(
    "kdsim" / STRING,                 # the version that wrote it
    "recipe" / RECIPE,
    "workload" / WORKLOAD,
    "pool" / POOL,
    "verifier" / VERIFIER,
    "crash" / _optional(CRASH),
    "memory" / dump.BODY,             # modules and symbols, no-access pages, pages: the end
)


class SnapshotError(Exception):
    """A snapshot could not be written or read; `message` is what the user sees (one line
    when reading, kd's two-line `Unable to create file` text when the file cannot be made)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# -- saving -------------------------------------------------------------------------------------
def save(machine: "Machine", path: str | os.PathLike[str], *, overwrite: bool = True) -> int:
    """Write a snapshot of the machine as it stands; returns the bytes written.  Without
    `overwrite` an existing file is an error; a failed write leaves no file behind."""
    name = os.fspath(path)
    try:
        handle = open(path, "wb" if overwrite else "xb")
    except ValueError:                        # a NUL in the name
        raise SnapshotError(f"Unable to create file '{name}' - Win32 error 0n123\n"
                            f"    \"{dump.INVALID_NAME}\"") from None
    except OSError as exc:
        code, text = dump._win32(exc, path, creating=True)
        raise SnapshotError(f"Unable to create file '{name}' - {code}\n    \"{text}\"") from None
    try:
        with handle:
            return write(machine, handle)
    except OSError as exc:
        dump._discard(path)
        code, text = dump._win32(exc, None, creating=True)
        raise SnapshotError(f"Failed writing to snapshot file - {code}\n    \"{text}\"") from None
    except BaseException:
        dump._discard(path)
        raise


def write(machine: "Machine", handle: IO[bytes]) -> int:
    """Write the snapshot to an open, seekable file; returns its size.  OSError passes."""
    out = _Deflating(handle)
    handle.write(bytes(HEADER_SIZE))                  # the header goes in last
    body = _capture(machine)
    body["memory"] = dump.dump_body(machine.target(), "full")
    try:
        BODY.build_stream(body, out)
    except StreamError as exc:
        if isinstance(exc.__context__, OSError):
            raise exc.__context__ from None
        raise
    out.finish()
    header = HEADER.build(dict(version=VERSION, body_size=out.size, stored_size=out.stored,
                               checksum=0))[:-4]
    handle.seek(0)
    handle.write(header + struct.pack("<I", zlib.crc32(header, out.crc)))
    return HEADER_SIZE + out.stored


class _Deflating:
    """The body's stream on the way out: compresses what construct writes straight into the
    file, keeping the stored bytes' CRC-32 and both sizes."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.z = zlib.compressobj(LEVEL)
        self.crc = 0
        self.size = 0
        self.stored = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self._store(self.z.compress(data))
        return len(data)

    def tell(self) -> int:            # construct places its error messages with it
        return self.size

    def finish(self) -> None:
        self._store(self.z.flush())

    def _store(self, data: bytes) -> None:
        if data:
            self.handle.write(data)
            self.crc = zlib.crc32(data, self.crc)
            self.stored += len(data)


# -- loading ------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> "Machine":
    """The live machine a snapshot file holds; SnapshotError says why it cannot be opened."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            return read(handle, name)
    except ValueError:                        # a NUL in the name
        raise SnapshotError(f"Could not open snapshot [{name}], Win32 error 0n123 "
                            f"\"{dump.INVALID_NAME}\"") from None
    except OSError as exc:
        code, text = dump._win32(exc, path, creating=False)
        raise SnapshotError(f"Could not open snapshot [{name}], {code} \"{text}\"") from None


def read(handle: IO[bytes], name: str) -> "Machine":
    """The machine of an open snapshot file (`name` is how messages call it)."""
    header, raw = _header(handle, name)
    stored = handle.read(header.stored_size)
    if len(stored) != header.stored_size:
        raise _truncated(name, HEADER_SIZE + len(stored), HEADER_SIZE + header.stored_size)
    if zlib.crc32(raw[:HEADER_SIZE - 4], zlib.crc32(stored)) != header.checksum:
        raise _damaged(name, "checksum mismatch")
    stream = _Inflating(stored, header.body_size)
    try:
        body = BODY.parse_stream(stream)
    except (ConstructError, ValueError, OverflowError, zlib.error) as exc:
        raise _damaged(name, stream.error or f"malformed contents: {dump._last_line(exc)}"
                       ) from None
    why = stream.error or stream.leftover()
    if why:
        raise _damaged(name, why)
    return _restore(body, name)


def _header(handle: IO[bytes], name: str) -> tuple[Any, bytes]:
    """The parsed header and its bytes, once the magic, version and sizes agree with the
    file."""
    size = os.fstat(handle.fileno()).st_size
    raw = handle.read(HEADER_SIZE)
    if raw[:len(MAGIC)] != MAGIC:
        if raw and MAGIC.startswith(raw):
            raise _truncated(name, len(raw))
        raise SnapshotError(f"Could not open snapshot [{name}], not a kdsim snapshot "
                            f"(could not match the snapshot signature)")
    if len(raw) < PREAMBLE.sizeof():
        raise _truncated(name, len(raw))
    found = PREAMBLE.parse(raw[:PREAMBLE.sizeof()]).version
    if found != VERSION:
        raise SnapshotError(f"Could not open snapshot [{name}], unsupported kdsim snapshot "
                            f"version {found} (this kdsim reads version {VERSION})")
    if len(raw) < HEADER_SIZE:
        raise _truncated(name, size)
    header = HEADER.parse(raw)
    need = HEADER_SIZE + header.stored_size
    if size < need:
        raise _truncated(name, size, need)
    if size > need:
        raise _damaged(name, f"{size - need} unexpected bytes after the end of the snapshot")
    if header.body_size > header.stored_size * MAX_RATIO:
        raise _damaged(name, f"it declares {header.body_size} bytes of contents, more than "
                             f"{header.stored_size} compressed bytes can hold")
    return header, raw


class _Inflating:
    """The body's stream on the way in: inflates the stored bytes a chunk at a time and never
    past `limit`, the size the header declares.  A zlib failure or an overrun is kept in
    `error` (construct turns a failing read into its own error)."""

    def __init__(self, stored: bytes, limit: int):
        self.z = zlib.decompressobj()
        self.stored = memoryview(stored)
        self.fed = 0                      # stored bytes given to zlib
        self.limit = limit
        self.inflated = 0                 # bytes zlib produced
        self.pos = 0                      # bytes handed to the parser
        self.chunk = memoryview(b"")
        self.at = 0                       # position in `chunk`
        self.error = ""

    def _fill(self) -> bool:
        """The next inflated chunk; False when the stream has no more."""
        while not self.z.eof:
            source: bytes | memoryview = self.z.unconsumed_tail
            if not source:
                if self.fed == len(self.stored):
                    self.error = "the compressed contents stop early"
                    return False
                source = self.stored[self.fed:self.fed + STORED_CHUNK]
                self.fed += len(source)
            try:     # a limit one past the declared size tells an overrun from an exact end
                data = self.z.decompress(source, min(INFLATED_CHUNK,
                                                     self.limit - self.inflated + 1))
            except zlib.error as exc:
                self.error = f"the contents do not decompress: {exc}"
                raise
            self.inflated += len(data)
            if self.inflated > self.limit:
                self.error = f"the contents inflate past the {self.limit} bytes declared"
                raise zlib.error(self.error)
            if data:
                self.chunk, self.at = memoryview(data), 0
                return True
        return False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self.limit - self.pos
        parts = []
        while size:
            if self.at == len(self.chunk) and not self._fill():
                break
            part = self.chunk[self.at:self.at + size]
            self.at += len(part)
            size -= len(part)
            parts.append(part)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def readinto(self, buffer: bytearray) -> int:
        end = self.at + len(buffer)
        if end <= len(self.chunk):                    # the common case: a page in the chunk
            buffer[:] = self.chunk[self.at:end]
            self.at = end
            self.pos += len(buffer)
            return len(buffer)
        view = memoryview(buffer)
        got = 0
        while got < len(view):
            if self.at == len(self.chunk) and not self._fill():
                break
            take = min(len(view) - got, len(self.chunk) - self.at)
            view[got:got + take] = self.chunk[self.at:self.at + take]
            self.at += take
            got += take
        self.pos += got
        return got

    def tell(self) -> int:
        return self.pos

    def leftover(self) -> str:
        """What is wrong with the stream once the body is parsed ('' if nothing)."""
        if self.inflated != self.limit or not self.z.eof:
            return f"the contents are not the {self.limit} bytes declared"
        if self.z.unused_data or self.fed != len(self.stored):
            return "unexpected bytes after the compressed contents"
        return ""


def _truncated(name: str, have: int, need: int | None = None) -> SnapshotError:
    of = f" of {need}" if need is not None else ""
    return SnapshotError(f"Could not open snapshot [{name}], the file is truncated "
                         f"({have}{of} bytes)")


def _damaged(name: str, why: str) -> SnapshotError:
    return SnapshotError(f"Could not open snapshot [{name}], the file is damaged ({why})")


# -- the state a machine keeps outside memory ---------------------------------------------------
def _capture(machine: "Machine") -> dict[str, Any]:
    """Everything the body holds but the dump's part."""
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
        kdsim=version(),
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
    """The activities' int fields and their float fields (`_fields`)."""
    ints: list[Scalar] = []
    floats: list[Scalar] = []
    for path, obj, attr in _fields(activities):
        (floats if isinstance(getattr(obj, attr), float) else ints).append((path, obj, attr))
    return ints, floats


def _fields(activities: list[Any]) -> Iterator[Scalar]:
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
class _Damaged(Exception):
    """A field of the state is impossible; the message says which."""


def _restore(body: Any, name: str) -> "Machine":
    recipe = _recipe(body, name)
    try:
        machine = recipe.machine()
    except ValueError as exc:
        raise SnapshotError(f"Could not open snapshot [{name}], {exc}") from None
    try:
        memory = dump._memory(body.memory, machine.arch, name)
        symbols = dump._symbols(body.memory.modules, machine.arch, name)
    except dump.DumpError as exc:
        raise _damaged(name, exc.reason or exc.message) from None
    if _symbol_list(symbols.modules) != _symbol_list(machine.symbols.modules):
        raise SnapshotError(f"Could not open snapshot [{name}], its machine's symbols are not "
                            f"those this kdsim gives scenario '{recipe.scenario}'")
    try:
        _restore_workload(machine, body.workload)
        _restore_pool(machine, body.pool)
        _restore_verifier(machine, body.verifier)
        _restore_crash(machine, body.crash)
    except _Damaged as exc:
        raise _damaged(name, str(exc)) from None
    _load_memory(machine, memory)
    return machine


def _recipe(body: Any, name: str) -> Recipe:
    if body.kdsim != version():
        raise SnapshotError(f"Could not open snapshot [{name}], it was saved by kdsim "
                            f"{body.kdsim} (this is kdsim {version()})")
    r = body.recipe
    if r.arch not in ARCHES:
        raise _damaged(name, f"unknown architecture '{r.arch}'")
    if not 1 <= r.processors <= MAX_PROCESSORS:
        raise _damaged(name, f"{r.processors} processors")
    if not (math.isfinite(r.scale) and r.scale > 0):
        raise _damaged(name, f"scale {r.scale}")
    try:
        settings = _settings_of(r.verifier)
    except _Damaged as exc:
        raise _damaged(name, str(exc)) from None
    return Recipe(r.scenario, r.arch, r.seed, r.scale, r.processors, settings)


def _settings_of(s: Any) -> VerifierSettings:
    if s.flags & ~KNOWN_FLAGS:
        raise _Damaged(f"verifier flags {s.flags:#x}")
    return VerifierSettings(s.flags, tuple(s.drivers), s.all_drivers, s.verify_start)


def _symbol_list(modules: Any) -> list[tuple[Any, ...]]:
    return [(m.name, m.image, m.base, m.size, m.symbols) for m in modules]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise _Damaged(what)


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
        raise _Damaged("the random generator's state") from None
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
           and all(0 <= b < 1 << machine.arch.list_heads for b in p.bitmaps),
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
    _check(all(r in ROUTINES[machine.arch.name] for r in c.routines), "the bug check's routine")
    bc = BugCheck(c.code, *c.params)
    bc.where = (tuple(c.routines), tuple(c.stack)) if c.routines or c.stack else None
    machine.crash = bc


def _load_memory(machine: "Machine", memory: AddressSpace) -> None:
    """Put the snapshot's pages in place.  A page the rebuilt machine already has keeps its
    object (its contents replaced), so what the allocator caches about a page stays valid."""
    pages = machine.memory.pages
    for vpn in [v for v in pages if v not in memory.pages]:
        del pages[vpn]
    for vpn, page in memory.pages.items():
        mine = pages.get(vpn)
        if mine is None:
            pages[vpn] = page
        else:
            mine[:] = page
    machine.memory.noaccess.clear()
    machine.memory.noaccess.update(memory.noaccess)
