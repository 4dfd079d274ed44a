"""Sparse simulated virtual memory with page protections.

Every byte the kernel keeps about its pool lives here, so the debugger (and a dump) sees
exactly what the kernel wrote, corruption included.  A page is either mapped read-write (it has
a 4 KiB bytearray), no-access (a guard page or a freed special-pool page: present but any touch
faults) or unmapped.
"""
from __future__ import annotations

from typing import Iterator

from .layouts.constants import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE


class MemoryFault(Exception):
    """A read or write touched a page it may not (unmapped or no-access)."""

    def __init__(self, address: int, write: bool = False, noaccess: bool = False):
        super().__init__(f"memory access fault at {address:#x}")
        self.address = address
        self.write = write
        self.noaccess = noaccess


class AddressSpace:
    """Pages keyed by virtual page number; reads and writes may span pages."""

    __slots__ = ("pages", "noaccess")

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.noaccess: set[int] = set()

    # -- mapping ---------------------------------------------------------------------------
    def map(self, va: int, size: int) -> None:
        first = va >> PAGE_SHIFT
        for vpn in range(first, first + ((size + PAGE_MASK) >> PAGE_SHIFT)):
            self.noaccess.discard(vpn)
            self.pages[vpn] = bytearray(PAGE_SIZE)

    def unmap(self, va: int, size: int) -> None:
        first = va >> PAGE_SHIFT
        for vpn in range(first, first + ((size + PAGE_MASK) >> PAGE_SHIFT)):
            self.pages.pop(vpn, None)
            self.noaccess.discard(vpn)

    def protect_noaccess(self, va: int, size: int) -> None:
        """Make pages present but untouchable (guard pages, freed special pool)."""
        first = va >> PAGE_SHIFT
        for vpn in range(first, first + ((size + PAGE_MASK) >> PAGE_SHIFT)):
            self.pages.pop(vpn, None)
            self.noaccess.add(vpn)

    def is_mapped(self, va: int) -> bool:
        return (va >> PAGE_SHIFT) in self.pages

    def is_noaccess(self, va: int) -> bool:
        return (va >> PAGE_SHIFT) in self.noaccess

    # -- access ----------------------------------------------------------------------------
    def page(self, va: int, write: bool = False) -> bytearray:
        try:
            return self.pages[va >> PAGE_SHIFT]
        except KeyError:
            raise MemoryFault(va, write, (va >> PAGE_SHIFT) in self.noaccess) from None

    def read(self, va: int, size: int) -> bytes:
        off = va & PAGE_MASK
        if off + size <= PAGE_SIZE:
            return bytes(self.page(va)[off:off + size])
        out = bytearray()
        while size:
            chunk = min(size, PAGE_SIZE - (va & PAGE_MASK))
            off = va & PAGE_MASK
            out += self.page(va)[off:off + chunk]
            va += chunk
            size -= chunk
        return bytes(out)

    def write(self, va: int, data: bytes) -> None:
        """Write data; a write that reaches a bad page faults there, after the bytes before it
        landed (as a real CPU's rep movs would)."""
        size = len(data)
        pos = 0
        while pos < size:
            off = va & PAGE_MASK
            chunk = min(size - pos, PAGE_SIZE - off)
            self.page(va, write=True)[off:off + chunk] = data[pos:pos + chunk]
            va += chunk
            pos += chunk

    def fill(self, va: int, size: int, byte: int) -> None:
        self.write(va, bytes([byte]) * size)

    def runs(self) -> Iterator[tuple[int, int]]:
        """Maximal runs of consecutive mapped pages, as (first vpn, page count)."""
        start = count = 0                                  # count 0: no run yet
        for vpn in sorted(self.pages):
            if count and vpn == start + count:
                count += 1
                continue
            if count:
                yield start, count
            start, count = vpn, 1
        if count:
            yield start, count
