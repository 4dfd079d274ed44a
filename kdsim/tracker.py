"""nt!PoolTrackTable: the per-tag counters `!poolused` reads (internals.md section 10)."""
from __future__ import annotations

import struct

from .arch import Arch
from .layouts import PAGE_MASK, PAGE_SIZE, PROTECTED_POOL, field_run, profile_for, tag_to_ulong
from .memory import AddressSpace
from .mm import MemoryManager
from .ntdata import KernelGlobals

TRACKER_ENTRIES = 2048               # hashed entries; one more at the end is the overflow slot
POOL_HIT_TAG_NONE = 0xFFFFFF0F       # nt!PoolHitTag's boot value: matches no tag

# ExpSeedHotTags: seeded at boot so that they get their home slot.
HOT_TAGS = (
    "Io  ", "Hal ", "MdlP", "PooL", "ObSt", "Irp ", "NDdb", "IrpL", "IoOp", "Mdl ", "File",
    "CMVa", "SeSd", "NtFC", "Pool", "TCPr", "CMNb", "SeTd", "NtFs", "TCPT", "TCPC", "Key ",
    "ObSq", "IoNm", "IoEa", "TCPc", "NtFa", "Ntf0", "Sect", "IrpS", "Toke", "Se  ", "ObCl",
    "CcSc", "NtFl", "SeAc", "FSfm", "CcWk", "FSim", "AfdC", "AfdE", "FSro", "Ntfn", "UIRP",
    "NpFr", "NpFR", "SePa", "SeUs", "AcpF", "AcpM", "SeSc", "ObNm", "NpFs", "SeLu", "ScPD",
    "Even", "Rqrv", "Vadl", "Pp  ", "VadS", "Vad ", "VadL", "VadF", "BIG ",
)


def tracker_hash(key: int, mask: int) -> int:
    h = key * 40543
    h ^= h >> 32
    return h & mask


class TagTracker:
    def __init__(self, arch: Arch, memory: AddressSpace, g: KernelGlobals, mm: MemoryManager,
                 where: tuple[int, int] | None = None):
        """The kernel's table, published as nt!PoolTrackTable; or, with `where` (the addresses
        of a table pointer and its size, in a session's structure), a session pool's table,
        which counts the same nt!PoolHitTag."""
        self.memory = memory
        self.pages = memory.pages
        L = profile_for(arch)
        self.entry_size = L.tracker.sizeof()
        self.size = TRACKER_ENTRIES + 1
        self.mask = TRACKER_ENTRIES - 1
        o = L.offset
        self.u32 = struct.Struct("<I")
        self.szmask = arch.ptr_mask
        # (allocs, frees, bytes) offsets, nonpaged then paged
        self.fields = (
            (o("tracker", "NonPagedAllocs"), o("tracker", "NonPagedFrees"),
             o("tracker", "NonPagedBytes")),
            (o("tracker", "PagedAllocs"), o("tracker", "PagedFrees"),
             o("tracker", "PagedBytes")),
        )
        # Allocs, Frees and Bytes lie in one run per pool: read and written together
        self.groups = tuple(field_run(L.tracker, names)[0] for names in (
            ("NonPagedAllocs", "NonPagedFrees", "NonPagedBytes"),
            ("PagedAllocs", "PagedFrees", "PagedBytes")))
        # ... and read with the entry's Key in one call (the fields between are skipped)
        self.keyed = tuple(field_run(L.tracker, ("Key", *names))[0] for names in (
            ("NonPagedAllocs", "NonPagedFrees", "NonPagedBytes"),
            ("PagedAllocs", "PagedFrees", "PagedBytes")))
        pages = -(-self.size * self.entry_size // PAGE_SIZE)
        self.table = mm.allocate_pool_pages(False, pages)
        if where is None:
            g.write_ptr(g.var("PoolTrackTable"), self.table)
            g.write_ptr(g.var("PoolTrackTableSize"), self.size)
            g.write_ptr(g.var("PoolTrackTableMask"), self.mask)
        else:
            g.write_ptr(where[0], self.table)
            g.write_ptr(where[1], self.size)
        # (tag | paged << 31) -> (page, offset of the entry, its Key+counters run, the counters'
        # offset, their run), for entries whose Key and counters lie on one page; tag -> the
        # address of an entry whose counters do not
        self._spots: dict[int, tuple] = {}
        self._straddling: dict[int, int] = {}
        # nt!PoolHitTag: the tracker breaks into the debugger when it counts this tag
        if where is None:
            self.sym_hit = g.var("PoolHitTag", 4)
            g.write_u32(self.sym_hit, POOL_HIT_TAG_NONE)
        else:
            self.sym_hit = g.nt.symbols["PoolHitTag"]
        self._hit_page = self.pages[self.sym_hit >> 12]
        self._hit_off = self.sym_hit & PAGE_MASK
        self.hit: tuple[int, int] | None = None      # (tag, sign) of a pending hit
        self.hits = self              # the tracker that keeps the hit (a session's: the kernel's)
        for tag in HOT_TAGS if where is None else ():
            self.slot(tag_to_ulong(tag))

    def _r32(self, a: int) -> int:
        return self.u32.unpack_from(self.pages[a >> 12], a & PAGE_MASK)[0]

    def slot(self, key: int) -> int:
        """The entry index for key, claiming an empty slot on first use (linear probing)."""
        key &= ~PROTECTED_POOL & 0xFFFFFFFF
        s = tracker_hash(key, self.mask)
        for _ in range(TRACKER_ENTRIES):
            addr = self.table + s * self.entry_size
            found = self._r32(addr)
            if found == key:
                break
            if found == 0:
                self.u32.pack_into(self.pages[addr >> 12], addr & PAGE_MASK, key)
                break
            s = (s + 1) & self.mask
        else:                                   # table full: the overflow slot absorbs it
            s = TRACKER_ENTRIES
            addr = self.table + s * self.entry_size
            self.u32.pack_into(self.pages[addr >> 12], addr & PAGE_MASK, tag_to_ulong("Ovfl"))
        return s

    def update(self, key: int, nbytes: int, paged: int, sign: int) -> None:
        """An allocation (sign 1) or a free (sign -1) of nbytes charged bytes."""
        key &= 0x7FFFFFFF
        if key == self.u32.unpack_from(self._hit_page, self._hit_off)[0] and \
                self.hits.hit is None:
            self.hits.hit = (key, sign)
        spot = self._spots.get(key | paged << 31)
        if spot is not None:
            page, off, keyed, goff, group = spot
            found, allocs, frees, used = keyed.unpack_from(page, off)
            if found == key:
                if sign > 0:
                    allocs = (allocs + 1) & 0xFFFFFFFF
                else:
                    frees = (frees + 1) & 0xFFFFFFFF
                group.pack_into(page, goff, allocs, frees, (used + sign * nbytes) & self.szmask)
                return
        self._update_slow(key, nbytes, paged, sign)

    def _update_slow(self, key: int, nbytes: int, paged: int, sign: int) -> None:
        """Count through the page map in the entry that holds key (the one remembered if its
        Key still says so, else found or claimed by probing the table in memory), and
        remember where it is."""
        base = self._straddling.get(key)
        if base is None or self._r32(base) != key:
            base = self.table + self.slot(key) * self.entry_size
        keyed, group = self.keyed[1 if paged else 0], self.groups[1 if paged else 0]
        a = base + self.fields[1 if paged else 0][0]
        allocs, frees, used = group.unpack(self.memory.read(a, group.size))
        if sign > 0:
            allocs = (allocs + 1) & 0xFFFFFFFF
        else:
            frees = (frees + 1) & 0xFFFFFFFF
        self.memory.write(a, group.pack(allocs, frees, (used + sign * nbytes) & self.szmask))
        if (base & PAGE_MASK) + keyed.size <= PAGE_SIZE:
            self._spots[key | paged << 31] = (self.pages[base >> 12], base & PAGE_MASK, keyed,
                                              a & PAGE_MASK, group)
        else:
            self._straddling[key] = base

    def totals(self) -> tuple[int, int, int, int]:
        """(nonpaged blocks, paged blocks, nonpaged bytes, paged bytes) outstanding, summed
        over the table in memory."""
        raw = self.memory.read(self.table, self.size * self.entry_size)
        sums = [0, 0, 0, 0]
        for i in range(self.size):
            base = i * self.entry_size
            for paged, (fields, group) in enumerate(zip(self.fields, self.groups)):
                allocs, frees, used = group.unpack_from(raw, base + fields[0])
                sums[paged] += allocs - frees
                sums[2 + paged] += used
        return sums[0], sums[1], sums[2], sums[3]

    def charge_boot(self, tag: str, nbytes: int, paged: bool) -> None:
        """Account the allocator's own boot-time pages (tag 'Pool'), as Windows does."""
        self.update(tag_to_ulong(tag), nbytes, int(paged), 1)
