"""Driver images in memory: what a memory search of a module finds.

The classic way to find which driver owns a pool tag is to search the loaded images for the
tag's four bytes (`s -a myfault L?7000 "Leak"`): a driver passes its tag to
ExAllocatePoolWithTag as an immediate operand, so the bytes sit in its code just before the
call.  Each driver image gets its first page (the `MZ`/`PE` headers) and, for every
allocation site a workload pattern declares in it, the instruction that loads the tag and
the call whose return address the pattern's stack shows (x64: `mov r8d, Tag` then
`call`; x86: `push Tag`, one more argument push, `call`).  Only those pages are mapped: the
rest of an image reads as unreadable memory, which a search passes over.  nt's image is not
mapped (its data section is, by kdsim/ntdata.py).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .layouts import PAGE_MASK, PAGE_SIZE, tag_to_ulong

if TYPE_CHECKING:  # pragma: no cover
    from .arch import Arch
    from .memory import AddressSpace
    from .symbols import SymbolTable

PE_OFFSET = 0x80                     # e_lfanew: where the PE signature follows the DOS header
PE_MACHINE = {4: 0x14C, 8: 0x8664}   # IMAGE_FILE_MACHINE_I386 / _AMD64, by pointer size
CALL = b"\xe8\x00\x00\x00\x00"       # call rel32 (its target is not modelled)
PUSH_ARGUMENT = b"\x6a\x00"          # push 0: the argument pushed between the tag and the call


def _tag_load(ptr_size: int, tag: str) -> bytes:
    """The instruction that hands the tag to the allocator."""
    immediate = struct.pack("<I", tag_to_ulong(tag))
    if ptr_size == 8:
        return b"\x41\xb8" + immediate                    # mov r8d, imm32
    return b"\x68" + immediate + PUSH_ARGUMENT            # push imm32; push 0


class DriverImages:
    """Maps the driver images of a machine's modules and writes allocation sites into them."""

    def __init__(self, arch: "Arch", memory: "AddressSpace", symbols: "SymbolTable"):
        self.arch = arch
        self.memory = memory
        self.symbols = symbols
        for module in symbols.modules:
            if module.name != "nt":
                self._map(module.base, PAGE_SIZE)
                self._write(module.base, self._headers(module.size))

    def _headers(self, size: int) -> bytes:
        header = bytearray(PE_OFFSET + 0x18)
        header[0:2] = b"MZ"
        struct.pack_into("<I", header, 0x3C, PE_OFFSET)
        header[PE_OFFSET:PE_OFFSET + 4] = b"PE\0\0"
        struct.pack_into("<H", header, PE_OFFSET + 4, PE_MACHINE[self.arch.ptr_size])
        return bytes(header)

    def hold_tag(self, tag: str, stack: tuple[int, ...]) -> None:
        """An allocation site of `tag`: when the stack's first return address (the call of
        the allocator) lies in a driver image, the tag load and the call just before it.
        A tag nt allocates for a driver stays in nt's code, which is not mapped."""
        ret = stack[0] if stack else 0
        module = self.symbols.module_at(ret)
        if module is None or module.name == "nt":
            return
        code = _tag_load(self.arch.ptr_size, tag) + CALL
        start = ret - len(code)
        if start < module.base + PAGE_SIZE:
            return                            # inside the headers: no room for the code
        self._map(start, len(code))
        self._write(start, code)

    def _map(self, address: int, size: int) -> None:
        """Map the pages of [address, address + size) that are not mapped yet."""
        page = address & ~PAGE_MASK
        while page < address + size:
            if not self.memory.is_mapped(page):
                self.memory.map(page, PAGE_SIZE)
            page += PAGE_SIZE

    def _write(self, address: int, data: bytes) -> None:
        self.memory.write(address & self.arch.ptr_mask, data)
