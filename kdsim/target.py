"""The narrow interface through which the debugger sees a machine (DESIGN.md's one rule).

A live simulated machine and a dump loaded from disk are both a `Target`: bytes at addresses
(an unmapped or guard page raises `MemoryFault`), symbols, arch facts and the bug-check state,
which itself is read from `nt!KiBugCheckData` in memory.  `control` is the live machine's
control surface (kdsim/control.py) for the few commands that act on it (`g`, `.reboot`,
`.verifier`, `!verifier -disable`); it is None on a dump, and nothing that displays state may
use it (tests/test_architecture.py).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from .arch import Arch, get_arch
from .bugcheck import BUGCHECK_NAMES
from .layouts import PAGE_SHIFT, PAGE_SIZE, Profile, profile_for
from .memory import AddressSpace, MemoryFault
from .symbols import SymbolTable

if TYPE_CHECKING:  # pragma: no cover
    from .control import Control

__all__ = ["Target", "StopState", "MemoryFault", "BUGCHECK_NAMES"]


@dataclass(frozen=True)
class StopState:
    code: int
    params: tuple[int, int, int, int]

    @property
    def name(self) -> str:
        return BUGCHECK_NAMES.get(self.code, f"BUGCHECK_{self.code:X}")


class Target:
    def __init__(self, arch: Arch, memory: AddressSpace, symbols: SymbolTable,
                 processors: int, control: "Control | None" = None,
                 meta: dict[str, Any] | None = None, profile: Profile | None = None):
        self.arch = arch
        self.profile = profile or profile_for(arch)      # the layouts its memory holds
        self.memory = memory
        self.symbols = symbols
        self.processors = processors
        self.control = control
        self.meta = meta or {}
        self._ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")

    @classmethod
    def empty(cls, arch: str = "x86", processors: int = 1) -> "Target":
        """A target with no memory and an `nt` module without symbols (for tests)."""
        spec = get_arch(arch)
        symbols = SymbolTable()
        symbols.add_module("nt", "ntoskrnl.exe", spec.nt_base, 0x400000)
        return cls(spec, AddressSpace(), symbols, processors)

    @property
    def live(self) -> bool:
        return self.control is not None

    # -- memory ----------------------------------------------------------------------------
    def read(self, address: int, size: int) -> bytes:
        return self.memory.read(address & self.arch.ptr_mask, size)

    def write(self, address: int, data: bytes) -> None:
        self.memory.write(address & self.arch.ptr_mask, data)

    def is_valid(self, address: int) -> bool:
        return self.memory.is_mapped(address & self.arch.ptr_mask)

    def mapped_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """(address, bytes) of each run of consecutive readable pages inside [start, end), in
        address order: what a scan of a whole pool can read, as a debugger learns it from the
        page tables."""
        first, last = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        for vpn, count in self.memory.runs():
            lo, hi = max(vpn, first), min(vpn + count, last)
            if lo < hi:
                yield lo << PAGE_SHIFT, (hi - lo) << PAGE_SHIFT

    def mapped_pages(self, start: int, end: int) -> Iterator[tuple[int, bytes | bytearray]]:
        """(address, contents) of every readable page inside [start, end): the target's own
        page buffers, not copies (a pool is hundreds of megabytes), so callers only read
        them."""
        pages = self.memory.pages
        for run, size in self.mapped_runs(start, end):
            vpn = run >> PAGE_SHIFT
            for va in range(run, run + size, PAGE_SIZE):
                yield va, pages[vpn]
                vpn += 1

    def read_u8(self, address: int) -> int:
        return self.read(address, 1)[0]

    def read_u16(self, address: int) -> int:
        return struct.unpack("<H", self.read(address, 2))[0]

    def read_u32(self, address: int) -> int:
        return struct.unpack("<I", self.read(address, 4))[0]

    def read_u64(self, address: int) -> int:
        return struct.unpack("<Q", self.read(address, 8))[0]

    def read_ptr(self, address: int) -> int:
        return self._ptr.unpack(self.read(address, self.arch.ptr_size))[0]

    # -- symbols ---------------------------------------------------------------------------
    def resolve(self, name: str) -> int | None:
        return self.symbols.resolve(name)

    def symbol(self, name: str) -> int:
        """Address of a symbol the kernel is known to export; KeyError if absent."""
        found = self.symbols.resolve(name)
        if found is None:
            raise KeyError(name)
        return found

    def symbolize(self, address: int) -> str | None:
        return self.symbols.symbolize(address)

    def global_ptr(self, name: str, default: int | None = None) -> int:
        """Value of the pointer-sized nt global `name`, e.g. global_ptr('PoolTrackTable').
        An absent symbol raises KeyError and an unreadable one MemoryFault, unless a default
        is given: then both give the default."""
        address = self.resolve(f"nt!{name}")
        if address is None:
            if default is None:
                raise KeyError(f"nt!{name}")
            return default
        try:
            return self.read_ptr(address)
        except MemoryFault:
            if default is None:
                raise
            return default

    # -- bug check -------------------------------------------------------------------------
    def stop_state(self) -> StopState | None:
        """The bug check the machine stopped at, read from nt!KiBugCheckData (None if running)."""
        addr = self.resolve("nt!KiBugCheckData")
        if addr is None:
            return None
        p = self.arch.ptr_size
        raw = self.read(addr, 5 * p)
        vals = struct.unpack("<5" + ("I" if p == 4 else "Q"), raw)
        if vals[0] == 0:
            return None
        return StopState(vals[0], tuple(vals[1:]))
