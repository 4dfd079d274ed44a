"""nt's data section: the kernel globals every subsystem keeps its bookkeeping in.

A variable is a named, fixed address inside the mapped `.data` section of the nt image, so the
debugger finds it through `nt!Name` exactly as it would on a real target.
"""
from __future__ import annotations

import struct

from .arch import Arch
from .layouts.constants import PAGE_MASK
from .memory import AddressSpace
from .symbols import Module

DATA_RVA = 0x560000      # where .data starts inside the nt image
DATA_SIZE = 0x40000


class KernelGlobals:
    def __init__(self, arch: Arch, memory: AddressSpace, nt: Module):
        self.arch = arch
        self.memory = memory
        self.nt = nt
        self.base = nt.base + DATA_RVA
        self.end = self.base + DATA_SIZE
        self.cursor = self.base
        memory.map(self.base, DATA_SIZE)
        self._ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")

    def var(self, name: str, size: int | None = None, align: int | None = None,
            align_at: int = 0) -> int:
        """Reserve a variable (pointer-sized by default) and publish `nt!name`; `align_at`
        names the offset inside it that must be aligned (e.g. a LIST_ENTRY array)."""
        size = self.arch.ptr_size if size is None else size
        align = align or min(max(size, 4), 16)
        addr = ((self.cursor + align_at + align - 1) & ~(align - 1)) - align_at
        if addr < self.cursor:
            addr += align
        if addr + size > self.end:
            raise MemoryError("nt .data section exhausted")
        self.cursor = addr + size
        self.nt.add(name, addr)
        return addr

    # small typed accessors for code that is not on a hot path
    def read_u32(self, addr: int) -> int:
        return struct.unpack_from("<I", self.memory.page(addr), addr & PAGE_MASK)[0]

    def write_u32(self, addr: int, value: int) -> None:
        struct.pack_into("<I", self.memory.page(addr, True), addr & PAGE_MASK,
                         value & 0xFFFFFFFF)

    def read_ptr(self, addr: int) -> int:
        return self._ptr.unpack_from(self.memory.page(addr), addr & PAGE_MASK)[0]

    def write_ptr(self, addr: int, value: int) -> None:
        self._ptr.pack_into(self.memory.page(addr, True), addr & PAGE_MASK,
                            value & self.arch.ptr_mask)
