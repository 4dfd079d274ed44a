"""nt!PoolBigPageTable: where allocations of a page or more are recorded (internals.md 9)."""
from __future__ import annotations

import struct

from .arch import Arch
from .layouts import BIG_PAGE_FREE, PAGE_MASK, PAGE_SIZE, field_run, profile_for
from .memory import AddressSpace
from .mm import MemoryManager
from .ntdata import KernelGlobals

DEFAULT_ENTRIES = 4096
_ODD = bytes(b & BIG_PAGE_FREE for b in range(256))     # a Va's low byte -> its free bit


def big_hash(va: int, mask: int) -> int:
    p = (va >> 12) & 0xFFFFFFFF
    return ((p >> 24) ^ (p >> 16) ^ (p >> 8) ^ p) & mask


class BigPageTable:
    def __init__(self, arch: Arch, memory: AddressSpace, g: KernelGlobals, mm: MemoryManager,
                 entries: int = DEFAULT_ENTRIES, where: tuple[int, int, int] | None = None):
        """The kernel's table, published as nt!PoolBigPageTable; or, with `where` (where its
        pointer, size and entries in use are kept in a session's structure), a session's."""
        self.arch = arch
        self.memory = memory
        self.mm = mm
        self.g = g
        L = profile_for(arch)
        self.esize = L.big_page.sizeof()
        self.o_key = L.offset("big_page", "Key")
        self.o_type = L.offset("big_page", "PoolType")
        self.o_bytes = L.offset("big_page", "NumberOfBytes")
        self.ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")
        self.u32 = struct.Struct("<I")
        # an entry written in one call, and its Key and NumberOfBytes read in one
        self.entry, order = field_run(L.big_page, ("Va", "Key", "PoolType", "NumberOfBytes"))
        assert list(order.values()) == [0, 1, 2, 3] and self.entry.size == self.esize
        self.key_bytes = field_run(L.big_page, ("Key", "NumberOfBytes"))[0]
        self.sym_table, self.sym_size, self.sym_in_use = where or (
            g.var("PoolBigPageTable"), g.var("PoolBigPageTableSize"),
            g.var("ExpPoolBigEntriesInUse"))
        self._in_use_page = memory.pages[self.sym_in_use >> 12]       # nt's .data: mapped
        self.table, self.entries = self._new_table(entries)
        self.in_use = 0

    def _new_table(self, entries: int) -> tuple[int, int]:
        pages = -(-entries * self.esize // PAGE_SIZE)
        table = self.mm.allocate_pool_pages(False, pages)
        if not table:
            raise MemoryError("no nonpaged pool for the big page table")
        for i in range(entries):
            self._wptr(table + i * self.esize, BIG_PAGE_FREE)
        self.g.write_ptr(self.sym_table, table)
        self.g.write_ptr(self.sym_size, entries)
        return table, entries

    def _rptr(self, a: int) -> int:
        return self.ptr.unpack_from(self.memory.pages[a >> 12], a & PAGE_MASK)[0]

    def _wptr(self, a: int, v: int) -> None:
        self.ptr.pack_into(self.memory.pages[a >> 12], a & PAGE_MASK, v)

    def _w32(self, a: int, v: int) -> None:
        self.u32.pack_into(self.memory.pages[a >> 12], a & PAGE_MASK, v)

    def _r32(self, a: int) -> int:
        return self.u32.unpack_from(self.memory.pages[a >> 12], a & PAGE_MASK)[0]

    def _write_entry(self, e: int, va: int, key: int, pool_type: int, nbytes: int) -> None:
        off = e & PAGE_MASK
        if off + self.esize <= PAGE_SIZE:
            self.entry.pack_into(self.memory.pages[e >> 12], off, va, key, pool_type, nbytes)
            return
        self._wptr(e, va)                          # an entry that straddles two pages
        self._w32(e + self.o_key, key)
        self._w32(e + self.o_type, pool_type)
        self._wptr(e + self.o_bytes, nbytes)

    def _read_key_bytes(self, e: int) -> tuple[int, int]:
        a = e + self.o_key
        if (a & PAGE_MASK) + self.key_bytes.size <= PAGE_SIZE:
            key, nbytes = self.key_bytes.unpack_from(self.memory.pages[a >> 12], a & PAGE_MASK)
            return key, nbytes
        return self._r32(a), self._rptr(e + self.o_bytes)

    def _publish_in_use(self) -> None:
        self.ptr.pack_into(self._in_use_page, self.sym_in_use & PAGE_MASK, self.in_use)

    def insert(self, va: int, key: int, pool_type: int, nbytes: int) -> bool:
        """Claim the first free entry from the hash slot on (wrapping around once); expand
        the table after a claim of 16 or more probes past a quarter full, or when full."""
        start = big_hash(va, self.entries - 1)
        slot = self._first(start, self.entries, None)
        if slot is None:
            slot = self._first(0, start, None)
        if slot is None:
            if self._grow():
                return self.insert(va, key, pool_type, nbytes)
            return False
        self._write_entry(self.table + slot * self.esize, va, key, pool_type, nbytes)
        self.in_use += 1
        self._publish_in_use()
        if (slot - start) % self.entries >= 16 and self.in_use > self.entries // 4:
            self._grow()
        return True

    def _slot_of(self, va: int) -> int | None:
        """The first entry from the hash slot on (wrapping around once) that holds `va`."""
        start = big_hash(va, self.entries - 1)
        slot = self._first(start, self.entries, va)
        return slot if slot is not None else self._first(0, start, va)

    def _first(self, start: int, stop: int, va: int | None) -> int | None:
        """The first entry in [start, stop) that is free (`va` None) or holds `va`.  A probe
        run is scanned a page at a time, in C, as long runs are common (consecutive pages
        hash to consecutive slots): for a free entry, the low bytes of the Va fields sliced
        out at the entry stride, the first odd one (BIG_PAGE_FREE); for `va`, its bytes found
        at an entry's start.  (A Va is never split by a page end: entries are 8-aligned.)"""
        esize, table, pages = self.esize, self.table, self.memory.pages
        needle = b"" if va is None else self.ptr.pack(va)
        i = start
        while i < stop:
            a = table + i * esize
            page, off = pages[a >> 12], a & PAGE_MASK
            n = min(stop - i, (PAGE_SIZE - off + esize - 1) // esize)
            if va is None:
                j = page[off:off + (n - 1) * esize + 1:esize].translate(_ODD).find(1)
                if j >= 0:
                    return i + j
            else:
                limit = off + (n - 1) * esize + len(needle)
                at = page.find(needle, off, limit)
                while at >= 0:
                    if (at - off) % esize == 0:
                        return i + (at - off) // esize
                    at = page.find(needle, at + 1, limit)
            i += n
        return None

    def find(self, va: int) -> tuple[int, int] | None:
        s = self._slot_of(va)
        if s is None:
            return None
        return self._read_key_bytes(self.table + s * self.esize)

    def remove(self, va: int) -> tuple[int, int] | None:
        """Free the entry; its old Va stays visible with bit 0 set, as in Windows."""
        s = self._slot_of(va)
        if s is None:
            return None
        e = self.table + s * self.esize
        found = self._read_key_bytes(e)
        self._wptr(e, va | BIG_PAGE_FREE)
        self.in_use -= 1
        self._publish_in_use()
        return found

    def _grow(self) -> bool:
        old, old_entries = self.table, self.entries
        live = []
        for i in range(old_entries):
            e = old + i * self.esize
            va = self._rptr(e)
            if not va & BIG_PAGE_FREE:
                live.append((va, self._r32(e + self.o_key), self._r32(e + self.o_type),
                             self._rptr(e + self.o_bytes)))
        try:
            self.table, self.entries = self._new_table(old_entries * 2)
        except MemoryError:
            return False
        own = [e for e in live if e[0] == old]          # the table records itself
        live = [e for e in live if e[0] != old]
        if own:
            live.append((self.table, own[0][1], own[0][2], self.entries * self.esize))
        self.in_use = 0
        mask = self.entries - 1
        for va, key, ptype, nbytes in live:
            s = big_hash(va, mask)
            while not self._rptr(self.table + s * self.esize) & BIG_PAGE_FREE:
                s = (s + 1) & mask
            self._write_entry(self.table + s * self.esize, va, key, ptype, nbytes)
            self.in_use += 1
        self._publish_in_use()
        self.mm.free_pool_pages(old)
        return True
