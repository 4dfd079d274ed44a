"""Snapshots: a live machine saved to a file, and resumed from it live, where it stood.

A snapshot is a dump plus the simulator's Python-side state (DESIGN.md).  Its body is the
version of kdsim that wrote it, the state the machine keeps outside memory (declared,
captured and restored by kdsim/livestate.py), then a dump's body: modules and symbols,
no-access pages, every mapped page, built and parsed by kdsim/dump.py.  Loading rebuilds the
machine's object graph from its recipe without playing the boot workload (`Recipe.machine`),
checks that it has the snapshot's symbols, and puts state and memory in place.

The file is a fixed header (magic, version, the body's size inflated and stored, a CRC-32 of
the stored bytes continued over the header) and the body, zlib-compressed.  The header is
checked against the file's length before anything else is read, the body is inflated a chunk
at a time and never past the size the header declares, and every field is checked before it
is used, so a damaged file is one `SnapshotError` line and costs no more memory than it
claims.  Every list and name of the body is checked against its maximum and the bytes left
before it is read (kdsim/bounded.py; the state's allowances in kdsim/livestate.py, the memory's
the dump's), and the bug check's owner against the processors, as for a dump.  Nothing in a
snapshot is executed or unpickled.
"""
from __future__ import annotations

import os
import struct
import zlib
from typing import IO, TYPE_CHECKING, Any

from construct import Const, ConstructError, Int16ul, Int32ul, Int64ul, StreamError, Struct

from . import dump
from .arch import ARCHES
from .bounded import Text
from .files import INVALID_NAME, NewFile, cannot_create, win32_error
from .livestate import STATE, StateError, budget, capture, recipe_of, restore
from .memory import AddressSpace
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
    "kdsim" / Text(dump.MAX_NAME, "version"),      # the version that wrote it
    "state" / STATE,                  # what memory does not hold (kdsim/livestate.py)
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
    `overwrite` an existing file is an error.  The file is written beside the destination and
    renamed into place (kdsim/files.py): a failed write leaves what was there, and only a
    regular file is ever replaced."""
    name = os.fspath(path)
    try:
        out = NewFile(path, overwrite=overwrite)
    except (OSError, ValueError) as exc:      # ValueError: a NUL in the name
        raise SnapshotError(cannot_create(name, exc)) from None
    try:
        with out as handle:
            return write(machine, handle)
    except OSError as exc:
        code, text = win32_error(exc, None, creating=True)
        raise SnapshotError(f"Failed writing to snapshot file - {code}\n    \"{text}\"") from None


def write(machine: "Machine", handle: IO[bytes]) -> int:
    """Write the snapshot to an open, seekable file; returns its size.  OSError passes."""
    out = _Deflating(handle)
    handle.write(bytes(HEADER_SIZE))                  # the header goes in last
    body = dict(kdsim=version(), state=capture(machine),
                memory=dump.dump_body(machine.target(), "full"))
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
        with dump.open_regular(path) as handle:
            return read(handle, name)
    except ValueError:                        # a NUL in the name
        raise SnapshotError(f"Could not open snapshot [{name}], Win32 error 0n123 "
                            f"\"{INVALID_NAME}\"") from None
    except OSError as exc:
        code, text = win32_error(exc, path, creating=False)
        raise SnapshotError(f"Could not open snapshot [{name}], {code} \"{text}\"") from None


def read(handle: IO[bytes], name: str) -> "Machine":
    """The machine of an open snapshot file (`name` is how messages call it).  The body's
    parts are parsed in turn, each list and name checked before it is read
    (kdsim/bounded.py): the state against its allowances, the memory against the dump's
    maxima and the address space of the architecture its recipe names."""
    header, raw = _header(handle, name)
    stored = handle.read(header.stored_size)
    if len(stored) != header.stored_size:
        raise _truncated(name, HEADER_SIZE + len(stored), HEADER_SIZE + header.stored_size)
    if zlib.crc32(raw[:HEADER_SIZE - 4], zlib.crc32(stored)) != header.checksum:
        raise _damaged(name, "checksum mismatch")
    stream = _Inflating(stored, header.body_size)
    parts = iter(BODY.subcons)
    written_by = _parse(next(parts), stream, name)
    state = _parse(next(parts), stream, name, budget=budget())
    loading = dump.Loading(ARCHES.get(state.recipe.arch))
    memory = _parse(next(parts), stream, name, budget=loading)
    why = stream.error or stream.leftover()
    if why:
        raise _damaged(name, why)
    return _restore(written_by, state, memory, loading, name)


def _parse(part: Any, stream: "_Inflating", name: str, **params: Any) -> Any:
    """One part of the body, read from the stream."""
    try:
        return part.parse_stream(stream, **params)
    except (ConstructError, ValueError, OverflowError, zlib.error) as exc:
        raise _damaged(name, stream.error or dump.reason_of(exc)) from None


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

    def remaining(self) -> int:
        return self.limit - self.pos

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
    return SnapshotError(f"Could not open snapshot [{name}], the file is damaged "
                         f"({dump.printable(why)})")


# -- restoring ----------------------------------------------------------------------------------
def _restore(written_by: str, state: Any, body: Any, loading: "dump.Loading",
             name: str) -> "Machine":
    if written_by != version():
        raise SnapshotError(f"Could not open snapshot [{name}], it was saved by kdsim "
                            f"{dump.printable(written_by)} (this is kdsim {version()})")
    try:
        recipe = recipe_of(state)
    except StateError as exc:
        raise _damaged(name, str(exc)) from None
    try:
        machine = recipe.machine()
    except ValueError as exc:
        raise SnapshotError(f"Could not open snapshot [{name}], {dump.printable(str(exc))}"
                            ) from None
    try:
        memory = dump._memory(body, loading, name)
        symbols = dump._symbols(body.modules, machine.arch, name)
    except dump.DumpError as exc:
        raise _damaged(name, exc.reason or exc.message) from None
    if _symbol_list(symbols.modules) != _symbol_list(machine.symbols.modules):
        raise SnapshotError(f"Could not open snapshot [{name}], its machine's symbols are not "
                            f"those this kdsim gives scenario '{recipe.scenario}'")
    try:
        restore(machine, state)
    except StateError as exc:
        raise _damaged(name, str(exc)) from None
    _load_memory(machine, memory)
    if machine.pool.sessions is not None:      # session pool's page runs, from memory
        machine.pool.sessions.reload()
    why = dump.stop_problem(machine.target())
    if why:
        raise _damaged(name, why)
    return machine


def _symbol_list(modules: Any) -> list[tuple[Any, ...]]:
    return [(m.name, m.image, m.base, m.size, m.symbols) for m in modules]


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
