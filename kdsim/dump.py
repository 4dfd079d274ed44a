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
    PaddedString, PascalString, PrefixedArray, StreamError, Struct, Terminated, VarInt, ZigZag,
    this,
)

from .arch import ARCHES, Arch
from .files import INVALID_NAME, NewFile, cannot_create, win32_error
from .layouts import PAGE_SHIFT, PAGE_SIZE, PROFILES, Profile, profile_for
from .memory import AddressSpace, MemoryFault
from .stop import KSTACK_REGION, KSTACK_SIZE
from .symbols import SymbolTable
from .target import Target

__all__ = ["save", "load", "dump_runs", "DumpError", "DumpCreateError", "DUMP_TYPE_BANNERS",
           "MAGIC", "VERSION"]

MAGIC = b"KDSIMDMP"
VERSION = 2

# What kd prints under `Loading Dump File [...]` for each kind of kernel dump.
DUMP_TYPE_BANNERS = {
    "full": "Kernel Complete Dump File: Full address space is available",
    "mini": "Mini Kernel Dump File: Only registers and stack trace are available",
}

# -- the format ---------------------------------------------------------------------------------
_PAGES_PER_WRITE = 256      # 1 MB: few system calls, and a buffer malloc keeps reusing


class PageArray(Construct):
    """`count` whole pages back to back: on disk exactly `Bytes(count * PAGE_SIZE)`, in Python a
    list of page-sized bytearrays (what AddressSpace.pages holds), read with one readinto per
    page and written a megabyte at a time."""

    def __init__(self, count: Any):
        super().__init__()
        self.count = count

    def _parse(self, stream, context, path):
        pages = []
        for _ in range(self.count(context)):
            page = bytearray(PAGE_SIZE)
            if stream.readinto(page) != PAGE_SIZE:
                raise StreamError("the page data stops early", path=path)
            pages.append(page)
        return pages

    def _build(self, obj, stream, context, path):
        if len(obj) != self.count(context):
            raise StreamError("page count disagrees with the run length", path=path)
        for start in range(0, len(obj), _PAGES_PER_WRITE):
            stream.write(b"".join(obj[start:start + _PAGES_PER_WRITE]))
        return obj

    def _sizeof(self, context, path):
        return self.count(context) * PAGE_SIZE


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

STRING = PascalString(VarInt, "utf8")
SYMBOL = Struct(
    "name" / STRING,
    "address" / Int64ul,
)
MODULE = Struct(
    "name" / STRING,
    "image" / STRING,
    "base" / Int64ul,
    "size" / Int64ul,
    "symbols" / PrefixedArray(VarInt, SYMBOL),
)
RUN = Struct(
    "vpn" / Int64ul,                      # first virtual page number
    "count" / Int32ul,                    # consecutive mapped pages
    "pages" / PageArray(this.count),
)
BODY = Struct(
    "seed" / ZigZag,
    "scenario" / STRING,
    "comment" / STRING,
    "modules" / PrefixedArray(VarInt, MODULE),
    "noaccess" / PrefixedArray(VarInt, Int64ul),     # guard / freed special-pool pages
    "runs" / PrefixedArray(VarInt, RUN),
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
    pages a dump of this kind keeps."""
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
        try:
            owner = target.read_u32(owner_sym)
            span(target.read_ptr(block + owner * P), target.profile.kprcb.sizeof())
        except MemoryFault:
            pass
        span(((target.arch.driver_base + KSTACK_REGION) & target.arch.ptr_mask)
             + owner * KSTACK_SIZE, KSTACK_SIZE)
    return [(v, 1) for v in sorted(keep)]


class _Checksummed:
    """The body's stream: passes bytes to or from the file, counting them and keeping their
    CRC-32, so the checksum costs no second pass over the file."""

    def __init__(self, handle: io.BufferedIOBase):
        self.handle = handle
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

    def _count(self, data: bytes | memoryview) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)


# -- loading ------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> Target:
    """Open a dump file as a Target (control=None); DumpError says why it could not be."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            header, raw, size = _header(handle, name)
            stream = _Checksummed(handle)
            try:
                body = BODY.parse_stream(stream)
            except (ConstructError, ValueError, OverflowError) as exc:
                raise _damaged(name, f"malformed contents: {_last_line(exc)}") from None
    except ValueError:
        raise DumpError(f"Could not open dump file [{name}], Win32 error 0n123 "
                        f"\"{INVALID_NAME}\"") from None
    except OSError as exc:
        code, text = win32_error(exc, path, creating=False)
        raise DumpError(f"Could not open dump file [{name}], {code} \"{text}\"") from None
    if zlib.crc32(raw[:size - 4], stream.crc) != header.checksum:
        raise _damaged(name, "checksum mismatch")
    if str(header.arch) not in ARCHES:
        raise _damaged(name, f"unknown architecture id {int(header.arch)}")
    profile = _profile(header, name)
    if str(header.dump_type) not in DUMP_TYPE_BANNERS:
        raise _damaged(name, f"unknown dump type {int(header.dump_type)}")
    if header.processors < 1:
        raise _damaged(name, "no processors")
    arch = profile.arch
    target = Target(arch, _memory(body, arch, name), _symbols(body.modules, arch, name),
                    header.processors,
                    meta={"seed": body.seed, "scenario": body.scenario, "comment": body.comment,
                          "dump_type": str(header.dump_type)}, profile=profile)
    if _bugcheck(target) != (header.bugcheck_code, tuple(header.bugcheck_params)):
        raise _damaged(name, "the bug-check data in the header disagrees with memory")
    return target


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
    except ConstructError as exc:
        raise _damaged(name, f"malformed header: {_last_line(exc)}") from None
    need = header_size + header.body_size
    if size < need:
        raise _truncated(name, size, need)
    if size > need:
        raise _damaged(name, f"{size - need} unexpected bytes after the end of the dump")
    handle.seek(header_size)
    return header, raw, header_size


def _profile(header: Any, name: str) -> Profile:
    """The profile the header names, checked against its architecture (version 1 names none:
    the architecture's Windows 7 SP1 profile)."""
    arch = ARCHES[str(header.arch)]
    if "profile" not in header:
        return profile_for(arch)
    profile = PROFILES.get(header.profile)
    if profile is None:
        raise DumpError(f"Could not open dump file [{name}], unknown kdsim profile "
                        f"'{header.profile}' (this kdsim knows {', '.join(PROFILES)})")
    if profile.arch != arch:
        raise _damaged(name, f"profile {profile.name} is not for architecture {arch.name}")
    return profile


def _memory(body: Any, arch: Arch, name: str) -> AddressSpace:
    limit = 1 << (8 * arch.ptr_size - PAGE_SHIFT)     # virtual pages the arch can address
    memory = AddressSpace()
    pages = memory.pages
    for run in body.runs:
        if run.count == 0:
            raise _damaged(name, f"page run {run.vpn:#x} is empty")
        if run.vpn + run.count > limit:
            raise _damaged(name, f"page run {run.vpn:#x}+{run.count:#x} is outside the "
                                 f"address space")
        for vpn, page in enumerate(run.pages, run.vpn):
            if vpn in pages:
                raise _damaged(name, f"page {vpn:#x} is stored twice")
            pages[vpn] = page
    for vpn in body.noaccess:
        if vpn >= limit or vpn in pages:
            raise _damaged(name, f"no-access page {vpn:#x} is invalid")
        memory.noaccess.add(vpn)
    return memory


def _symbols(modules: Any, arch: Arch, name: str) -> SymbolTable:
    table = SymbolTable()
    for m in modules:
        if m.base + m.size > arch.ptr_mask + 1:
            raise _damaged(name, f"module {m.name} lies outside the address space")
        module = table.add_module(m.name, m.image, m.base, m.size)
        for sym in m.symbols:
            if sym.address > arch.ptr_mask:
                raise _damaged(name, f"symbol {m.name}!{sym.name} lies outside the "
                                     f"address space")
            module.add(sym.name, sym.address)
    return table


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
    return DumpError(f"Could not open dump file [{name}], the file is damaged ({why})", why)


def _last_line(exc: Exception) -> str:
    """The message of a construct error, without its `Error in path ...` line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
