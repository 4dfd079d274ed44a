"""Saved dumps: a Target written to a file and read back as a Target that behaves identically.

A dump is what DESIGN.md says a machine is to the debugger: pages, symbols, its profile (the
Windows version and architecture whose layouts its memory holds, kdsim/layouts) and the
bug-check data, which lives in memory (nt!KiBugCheckData) and so travels with the pages.  The
whole format is declared once with construct below and both `save` and `load` go through that
declaration.  A run of consecutive pages is stored as `count * PAGE_SIZE` raw bytes; `PageArray`
moves them page by page, straight between the file and the page store's own bytearrays, so no
byte is ever handled one at a time and loading copies each page once.  A CRC-32 covers the body
and the header, so a flipped byte anywhere is refused.

Compression was measured and left out: zlib level 1 shrinks a booted machine about 40 times but
runs at ~190 MB/s compressing and ~230 MB/s inflating on the reference box, below the 200 MB/s
that saving and loading must sustain (bench/bench_dump.py).

A dump may come from a stranger, so nothing it declares is believed: the header is checked
against the file's length and the maxima below (processors, the profile), every count and
length of the body against its maximum and the bytes left before anything is allocated
(kdsim/bounded.py), every field is read in time linear in its size, and a page run against the
address space and the pages already read before its pages are.  What the prompt and the stack
walk take from memory, the processor that owns the bug check, must be one of the processors.

Every failure is a `DumpError` whose message is in the debugger's words: one line when opening,
kd's own two-line `Unable to create file ...` text when saving.  Never a traceback.

Version 2 added the profile's name to the header; a version 1 dump, which names only its
architecture, opens with that architecture's Windows 7 SP1 profile.
"""
from __future__ import annotations

import io
import os
import zlib
from typing import IO, Any

from construct import (
    Array, Const, Construct, ConstructError, Enum, Int8ul, Int16ul, Int32ul, Int64ul,
    PaddedString, StreamError, Struct, Terminated, this,
)

from .arch import ARCHES, Arch
from .bounded import Budget, Counted, Packed, Record, Refused, Signed, Text, budget_of
from .files import INVALID_NAME, NewFile, cannot_create, open_regular, win32_error
from .layouts import PAGE_SHIFT, PAGE_SIZE, PROFILES, Profile, profile_for
from .layouts.constants import MAXIMUM_PROCESSORS
from .memory import AddressSpace, MemoryFault
from .processes import KERNEL_STACK
from .symbols import SymbolTable
from .target import Target

__all__ = ["save", "load", "dump_runs", "DumpError", "DumpCreateError", "DUMP_TYPE_BANNERS",
           "MAGIC", "VERSION", "MAX_MODULES", "MAX_SYMBOLS", "MAX_NAME",
           "MAX_COMMENT", "MAX_PAGES"]

MAGIC = b"KDSIMDMP"
VERSION = 2

# What kd prints under `Loading Dump File [...]` for each kind of kernel dump.
DUMP_TYPE_BANNERS = {
    "full": "Kernel Complete Dump File: Full address space is available",
    "mini": "Mini Kernel Dump File: Only registers and stack trace are available",
}

# -- the format ---------------------------------------------------------------------------------
_PAGES_PER_WRITE = 256      # 1 MB: few system calls, and a buffer malloc keeps reusing

# What a dump may declare: anything beyond is refused before it is read (kdsim/bounded.py).
MAX_MODULES = 1024          # a Windows 7 machine loads a few hundred
MAX_SYMBOLS = 1 << 15       # in all modules together; the simulated kernel exports ~100
MAX_NAME = 1024             # bytes of a module, image, symbol or scenario name
MAX_COMMENT = 4096          # bytes of a `.dump /c` comment
MAX_PAGES = 1 << 20         # 4 GB of pages, in all runs (and as many no-access pages)


class PageArray(Construct):
    """`count` whole pages back to back: on disk exactly `Bytes(count * PAGE_SIZE)`, in Python a
    list of page-sized bytearrays (what AddressSpace.pages holds), read with one readinto per
    page and written a megabyte at a time.  Reading stores them straight into the body's
    address space (`Loading`), once the run is known to fit it and the file."""

    least = PAGE_SIZE

    def __init__(self, vpn: Any, count: Any):
        super().__init__()
        self.vpn = vpn
        self.count = count

    def _parse(self, stream, context, path):
        vpn, count = self.vpn(context), self.count(context)
        loading = Loading.of(context)
        loading.claim(vpn, count, path)
        pages = []
        for _ in range(count):
            page = bytearray(PAGE_SIZE)
            if stream.readinto(page) != PAGE_SIZE:
                raise StreamError("the page data stops early", path=path)
            pages.append(page)
        loading.memory.pages.update(zip(range(vpn, vpn + count), pages))
        return pages

    def _build(self, obj, stream, context, path):
        if len(obj) != self.count(context):
            raise StreamError("page count disagrees with the run length", path=path)
        for start in range(0, len(obj), _PAGES_PER_WRITE):
            stream.write(b"".join(obj[start:start + _PAGES_PER_WRITE]))
        return obj

    def _sizeof(self, context, path):
        return self.count(context) * PAGE_SIZE


def vpn_limit(arch: Arch) -> int:
    """Virtual pages the arch can address."""
    return 1 << (8 * arch.ptr_size - PAGE_SHIFT)


class RunRefused(Refused):
    """A page run the address space cannot take."""


class Loading(Budget):
    """What a body being read may still declare, and the address space its runs are stored
    into as they are read: before any page of a run is allocated, the run is checked against
    the arch's address space, the pages a dump may hold and the pages already stored (its
    pages are then read one at a time, so no more is allocated than the file holds)."""

    def __init__(self, arch: Arch | None = None):
        super().__init__(symbols=MAX_SYMBOLS, pages=MAX_PAGES)
        widest = max(ARCHES.values(), key=lambda a: a.ptr_size)
        self.limit = vpn_limit(arch or widest)
        self.memory = AddressSpace()

    @classmethod
    def of(cls, context: Any) -> "Loading":
        """The parse's Loading; a body parsed without one (BODY.parse, in tests) gets one
        for the widest address space."""
        found = budget_of(context)
        if not isinstance(found, Loading):
            found = context._params["budget"] = cls()
        return found

    def claim(self, vpn: int, count: int, path: str) -> None:
        if count == 0:
            raise RunRefused(f"page run {vpn:#x} is empty", path=path)
        if vpn + count > self.limit:
            raise RunRefused(f"page run {vpn:#x}+{count:#x} is outside the address space",
                             path=path)
        self.draw("pages", count)
        pages = self.memory.pages
        twice = next((v for v in range(vpn, vpn + count) if v in pages), None)
        if twice is not None:
            raise RunRefused(f"page {twice:#x} is stored twice", path=path)


# The preamble is read alone first, so a later version may change everything after it.
PREAMBLE = Struct(
    "magic" / Const(MAGIC),
    "version" / Int16ul,
)
_ARCH = Struct("arch" / Enum(Int8ul, x86=1, x64=2))
_PROFILE = Struct("profile" / PaddedString(24, "ascii"))     # a kdsim.layouts profile name
_REST = Struct(
    "dump_type" / Enum(Int8ul, full=1, mini=2),
    "processors" / Int32ul,
    "bugcheck_code" / Int32ul,            # a copy of nt!KiBugCheckData, for tools that peek
    "bugcheck_params" / Array(4, Int64ul),
    "body_size" / Int64ul,
    # CRC-32 of the body, continued over the header's bytes before this field
    "checksum" / Int32ul,
)
HEADER = PREAMBLE + _ARCH + _PROFILE + _REST
HEADER_SIZE = HEADER.sizeof()
HEADERS = {1: PREAMBLE + _ARCH + _REST, 2: HEADER}        # by version

NAME = Text(MAX_NAME, "name")
SYMBOL = Record(
    "name" / NAME,
    "address" / Int64ul,
)
MODULE = Record(
    "name" / NAME,
    "image" / NAME,
    "base" / Int64ul,
    "size" / Int64ul,
    "symbols" / Counted(SYMBOL, "symbols", MAX_SYMBOLS),
)
RUN = Struct(
    "vpn" / Int64ul,                      # first virtual page number
    "count" / Int32ul,                    # consecutive mapped pages
    "pages" / PageArray(this.vpn, this.count),
)
BODY = Struct(
    "seed" / Signed,
    "scenario" / NAME,
    "comment" / Text(MAX_COMMENT, "comment"),
    "modules" / Counted(MODULE, "modules", MAX_MODULES),
    "noaccess" / Packed("Q", "no-access pages", MAX_PAGES),   # guard / freed special-pool pages
    "runs" / Counted(RUN, "page runs", MAX_PAGES),
    Terminated,
)


class DumpError(Exception):
    """A dump could not be written or read; `message` is what the user sees, `reason` what
    is wrong with a damaged file (for a snapshot, which embeds a dump's body, to say so)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.message = message
        self.reason = reason


class DumpCreateError(DumpError):
    """The output file could not be created: nothing was written."""


# -- saving -------------------------------------------------------------------------------------
def save(target: Target, path: str | os.PathLike[str], *, kind: str = "full",
         comment: str = "", overwrite: bool = True) -> int:
    """Write the target as it stands; returns the bytes written.

    kind "full" keeps every page (what the pool commands need); "mini" keeps the modules, the
    symbols and the page holding the bug-check data, as a small memory dump does.  Without
    `overwrite` an existing file is an error (kd's default for `.dump`).  The file is written
    beside the destination and renamed into place (kdsim/files.py): a failed write leaves what
    was there, and only a regular file is ever replaced."""
    if kind not in DUMP_TYPE_BANNERS:
        raise ValueError(f"unknown dump kind {kind!r}")
    try:
        out = NewFile(path, overwrite=overwrite)
    except (OSError, ValueError) as exc:     # ValueError: a NUL in the name
        raise DumpCreateError(cannot_create(os.fspath(path), exc)) from None
    try:
        with out as handle:
            return _write(target, handle, kind, comment)
    except OSError as exc:                   # the last bytes, or the rename
        raise _write_failed(exc) from None


def _write(target: Target, handle: io.BufferedIOBase, kind: str, comment: str) -> int:
    if kind == "full" and target.meta.get("dump_type") == "mini":
        raise DumpError("Kernel full dumps can only be written when all of physical memory "
                        "is accessible - aborting now")
    body = dump_body(target, kind, comment)
    code, params = _bugcheck(target)
    out = _Checksummed(handle)
    try:
        handle.write(bytes(HEADER_SIZE))            # the header goes in last
        BODY.build_stream(body, out)
        header = HEADER.build(dict(
            version=VERSION, arch=target.arch.name, profile=target.profile.name, dump_type=kind,
            processors=target.processors, bugcheck_code=code, bugcheck_params=list(params),
            body_size=out.size, checksum=0))[:-4]
        handle.seek(0)
        handle.write(header + Int32ul.build(zlib.crc32(header, out.crc)))
    except (OSError, StreamError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if not isinstance(cause, OSError):
            raise
        raise _write_failed(cause) from None
    return HEADER_SIZE + out.size


def _write_failed(exc: OSError) -> DumpError:
    code, text = win32_error(exc, None, creating=True)
    return DumpError(f"Failed writing to crashdump file - {code}\n    \"{text}\"")


def dump_body(target: Target, kind: str = "full", comment: str = "") -> dict[str, Any]:
    """What BODY builds from: the target's modules and symbols, no-access pages and the
    pages a dump of this kind keeps.  A comment is stored as UTF-8 (what cannot be encoded,
    such as the undecodable bytes of a command line, as `?`) and no longer than a dump may
    hold."""
    comment = comment.encode("utf-8", "replace").decode("utf-8")
    if len(comment.encode("utf-8")) > MAX_COMMENT:
        raise DumpError(f"The comment is too long: a dump holds at most {MAX_COMMENT} bytes "
                        f"of comment")
    memory = target.memory
    runs = dump_runs(target, kind)
    return dict(
        seed=int(target.meta.get("seed", 0)),
        scenario=str(target.meta.get("scenario", "")),
        comment=comment,
        modules=[dict(name=m.name, image=m.image, base=m.base, size=m.size,
                      symbols=[dict(name=n, address=a) for n, a in m.symbols.items()])
                 for m in target.symbols.modules],
        noaccess=sorted(memory.noaccess) if kind == "full" else [],
        runs=[dict(vpn=vpn, count=count,
                   pages=[memory.pages[v] for v in range(vpn, vpn + count)])
              for vpn, count in runs],
    )


def dump_runs(target: Target, kind: str = "full") -> list[tuple[int, int]]:
    """The pages a dump of this kind keeps, as (first vpn, count) runs: every mapped page for
    a full dump; for a mini dump, as a small memory dump does, the bug-check data and what a
    stack trace of the stop needs: the owning processor's KPRCB and its kernel stack."""
    if kind == "full":
        return list(target.memory.runs())
    keep: set[int] = set()

    def span(addr: int | None, size: int) -> None:
        if addr is not None:
            keep.update(v for v in range(addr >> PAGE_SHIFT, ((addr + size - 1) >> PAGE_SHIFT) + 1)
                        if v in target.memory.pages)

    P = target.arch.ptr_size
    span(target.resolve("nt!KiBugCheckData"), 5 * P)
    owner_sym = target.resolve("nt!KeBugCheckOwner")
    span(owner_sym, 4)
    block = target.resolve("nt!KiProcessorBlock")
    if owner_sym is not None and block is not None:
        profile = target.profile
        try:
            prcb = target.read_ptr(block + target.read_u32(owner_sym) * P)
            span(prcb, profile.kprcb.sizeof())
            thread = target.read_ptr(prcb + profile.offset("kprcb", "CurrentThread"))
            span(thread, profile.ethread.sizeof())
            span(target.read_ptr(thread + profile.offset("ethread", "Tcb.Process")),
                 profile.eprocess.sizeof())
            limit = target.read_ptr(thread + profile.offset("ethread", "Tcb.StackLimit"))
            base = target.read_ptr(thread + profile.offset("ethread", "Tcb.StackBase"))
            span(limit, min(max(base - limit, 0), KERNEL_STACK[P]))     # even if corrupt
            # the frames themselves (on the idle stack for a thread that has none yet)
            span(target.read_ptr(prcb + profile.offset("kprcb", profile.context_registers[2])),
                 PAGE_SIZE)
        except MemoryFault:
            pass
    return [(v, 1) for v in sorted(keep)]


class _Checksummed:
    """The body's stream: passes bytes to or from the file, counting them and keeping their
    CRC-32, so the checksum costs no second pass over the file.  Reading, `limit` is the
    body's size, so what a count declares is checked against the bytes left."""

    def __init__(self, handle: io.BufferedIOBase, limit: int = 0):
        self.handle = handle
        self.limit = limit
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.handle.write(data)
        self._count(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self._count(data)
        return data

    def readinto(self, buffer: bytearray) -> int:
        got = self.handle.readinto(buffer) or 0
        self._count(memoryview(buffer)[:got])
        return got

    def tell(self) -> int:            # construct places its error messages with it
        return self.handle.tell()

    def remaining(self) -> int:
        return self.limit - self.size

    def _count(self, data: bytes | memoryview) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)


# -- loading ------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> Target:
    """Open a dump file as a Target (control=None); DumpError says why it could not be.

    Everything the file declares is checked before it is used: the header against the file's
    length and the maxima, each count and length of the body against the maxima and the bytes
    left (kdsim/bounded.py) before anything is allocated, each page run against the address
    space as it is read, and what the prompt and the stack walk take from memory (the
    processor that owns the bug check) against the processors."""
    name = os.fspath(path)
    try:
        with open_regular(path) as handle:
            header, raw, size = _header(handle, name)
            arch = _arch(header, name)
            _check_header(header, name)
            stream = _Checksummed(handle, header.body_size)
            loading = Loading(arch)
            try:
                body = BODY.parse_stream(stream, budget=loading)
            except (ConstructError, ValueError, OverflowError) as exc:
                raise _damaged(name, reason_of(exc)) from None
    except ValueError:
        raise DumpError(f"Could not open dump file [{name}], Win32 error 0n123 "
                        f"\"{INVALID_NAME}\"") from None
    except OSError as exc:
        code, text = win32_error(exc, path, creating=False)
        raise DumpError(f"Could not open dump file [{name}], {code} \"{text}\"") from None
    if zlib.crc32(raw[:size - 4], stream.crc) != header.checksum:
        raise _damaged(name, "checksum mismatch")
    profile = _profile(header, arch, name)
    target = Target(arch, _memory(body, loading, name), _symbols(body.modules, arch, name),
                    header.processors,
                    meta={"seed": body.seed, "scenario": body.scenario, "comment": body.comment,
                          "dump_type": str(header.dump_type)}, profile=profile)
    if _bugcheck(target) != (header.bugcheck_code, tuple(header.bugcheck_params)):
        raise _damaged(name, "the bug-check data in the header disagrees with memory")
    why = stop_problem(target)
    if why:
        raise _damaged(name, why)
    return target


def reason_of(exc: Exception) -> str:
    """What is wrong with a body construct could not read: a page run's own words, else the
    malformed field's."""
    if isinstance(exc, RunRefused):
        return exc.reason
    return f"malformed contents: {exc.reason if isinstance(exc, Refused) else _last_line(exc)}"


def _header(handle: IO[bytes], name: str) -> tuple[Any, bytes, int]:
    """The parsed header, its bytes and its size (which depends on the version), once the
    magic, version and file size are right."""
    size = os.fstat(handle.fileno()).st_size
    raw = handle.read(HEADER_SIZE)
    if raw[:len(MAGIC)] != MAGIC:
        if raw and MAGIC.startswith(raw):
            raise _truncated(name, len(raw))
        raise DumpError(f"Could not open dump file [{name}], not a kdsim dump file "
                        f"(could not match the dump file signature)")
    if len(raw) < PREAMBLE.sizeof():
        raise _truncated(name, len(raw))
    version = PREAMBLE.parse(raw[:PREAMBLE.sizeof()]).version
    layout = HEADERS.get(version)
    if layout is None:
        *older, newest = sorted(HEADERS)
        raise DumpError(f"Could not open dump file [{name}], unsupported kdsim dump version "
                        f"{version} (this kdsim reads versions {', '.join(map(str, older))} "
                        f"and {newest})")
    header_size = layout.sizeof()
    raw = raw[:header_size]
    if len(raw) < header_size:
        raise _truncated(name, size)
    try:
        header = layout.parse(raw)
    except (ConstructError, UnicodeDecodeError) as exc:
        raise _damaged(name, f"malformed header: {_last_line(exc)}") from None
    need = header_size + header.body_size
    if size < need:
        raise _truncated(name, size, need)
    if size > need:
        raise _damaged(name, f"{size - need} unexpected bytes after the end of the dump")
    handle.seek(header_size)
    return header, raw, header_size


def _arch(header: Any, name: str) -> Arch:
    if str(header.arch) not in ARCHES:
        raise _damaged(name, f"unknown architecture id {int(header.arch)}")
    return ARCHES[str(header.arch)]


def _profile(header: Any, arch: Arch, name: str) -> Profile:
    """The profile the header names, checked against its architecture (version 1 names none:
    the architecture's Windows 7 SP1 profile)."""
    if "profile" not in header:
        return profile_for(arch)
    if not header.profile.isprintable():
        raise _damaged(name, "its profile name is not text")
    profile = PROFILES.get(header.profile)
    if profile is None:
        raise DumpError(f"Could not open dump file [{name}], unknown kdsim profile "
                        f"'{header.profile}' (this kdsim knows {', '.join(PROFILES)})")
    if profile.arch != arch:
        raise _damaged(name, f"profile {profile.name} is not for architecture {arch.name}")
    return profile


def _check_header(header: Any, name: str) -> None:
    if str(header.dump_type) not in DUMP_TYPE_BANNERS:
        raise _damaged(name, f"unknown dump type {int(header.dump_type)}")
    if header.processors < 1:
        raise _damaged(name, "no processors")
    if header.processors > MAXIMUM_PROCESSORS:
        raise _damaged(name, f"{header.processors} processors, more than {MAXIMUM_PROCESSORS}")


def _memory(body: Any, loading: Loading, name: str) -> AddressSpace:
    """The address space the body's runs were read into, with its no-access pages."""
    memory = loading.memory
    for vpn in body.noaccess:
        if vpn >= loading.limit or vpn in memory.pages:
            raise _damaged(name, f"no-access page {vpn:#x} is invalid")
        memory.noaccess.add(vpn)
    return memory


def _symbols(modules: Any, arch: Arch, name: str) -> SymbolTable:
    table = SymbolTable()
    for m in modules:
        if m.base + m.size > arch.ptr_mask + 1:
            raise _damaged(name, f"module {m.name} lies outside the address space")
        far = next((s for s in m.symbols if s.address > arch.ptr_mask), None)
        if far is not None:
            raise _damaged(name, f"symbol {m.name}!{far.name} lies "
                                 f"outside the address space")
        table.add_module(m.name, m.image, m.base, m.size).add_all(
            (s.name, s.address) for s in m.symbols)
    return table


def stop_problem(target: Target) -> str:
    """What is wrong with the bug-check state in the target's memory ('' if nothing): the
    bug-check data must be readable where nt says it is, and the processor that owns the bug
    check (which the prompt shows and `k` walks) one of the target's processors."""
    try:
        stop = target.stop_state()
    except MemoryFault:
        return "nt!KiBugCheckData is not in memory"
    owner = target.resolve("nt!KeBugCheckOwner")
    if stop is None or owner is None:
        return ""
    try:
        processor = target.read_u32(owner)
    except MemoryFault:
        return "nt!KeBugCheckOwner is not in memory"
    if processor >= target.processors:
        return (f"the bug check's owner, processor {processor}, is not one of its "
                f"{target.processors} processors")
    return ""


def _bugcheck(target: Target) -> tuple[int, tuple[int, ...]]:
    """Code and parameters in nt!KiBugCheckData (zeros while running or when not in memory)."""
    try:
        stop = target.stop_state()
    except MemoryFault:
        stop = None
    return (stop.code, tuple(stop.params)) if stop else (0, (0, 0, 0, 0))


def _truncated(name: str, have: int, need: int | None = None) -> DumpError:
    of = f" of {need}" if need is not None else ""
    return DumpError(f"Could not open dump file [{name}], the file is truncated "
                     f"({have}{of} bytes)")


def _damaged(name: str, why: str) -> DumpError:
    why = printable(why)
    return DumpError(f"Could not open dump file [{name}], the file is damaged ({why})", why)


def printable(text: str) -> str:
    """A name from the file as a message may show it: control and other unprintable
    characters escaped, so nothing in a stranger's file reaches the terminal raw."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _last_line(exc: Exception) -> str:
    """The message of a construct error, without its `Error in path ...` line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
