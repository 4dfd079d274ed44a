"""The memory manager's side of pool: page-granular pool VA and the counters `!vm` reads.

`PoolPages` is MiAllocatePoolPages/MiFreePoolPages for one pool: first fit over an allocation
bitmap of the pool's VA range, where a request smaller than 2 MB never straddles a 2 MB boundary
(Windows 7 hands out system VA per page-directory entry; this is why the second seed case shows
0xfa000-byte allocations in pairs at ...00000 and ...fa000).  `MemoryManager` keeps the counters
in simulated memory at `nt!` symbols, consistent with the pages the pools really hold.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .arch import Arch
from .layouts.constants import PAGE_SHIFT, PAGE_SIZE
from .memory import AddressSpace
from .ntdata import KernelGlobals

PDE_PAGES = 512                  # 2 MB of 4 KB pages
BITMAP_CAP = 1 << 20             # VA we model per pool (4 GB); the reported maximum may be larger


class PoolPages:
    """Page-granular allocator for one pool's VA range: `span_pages` of VA (the pool's region,
    by default as large as its maximum), of which at most `max_pages` are in use at once."""

    def __init__(self, memory: AddressSpace, start: int, max_pages: int,
                 span_pages: int | None = None):
        self.memory = memory
        self.start = start
        self.max_pages = max_pages
        self.span_pages = max_pages if span_pages is None else span_pages
        self.used = bytearray(min(self.span_pages, BITMAP_CAP))
        self.runs: dict[int, int] = {}        # first page index -> pages
        self.in_use = 0
        self._zeros: dict[int, bytes] = {}

    @property
    def end(self) -> int:
        return self.start + self.span_pages * PAGE_SIZE

    def contains(self, va: int) -> bool:
        return self.start <= va < self.end

    def allocate(self, pages: int) -> int:
        """Map `pages` fresh pages and return their VA, or 0 when the pool is exhausted."""
        if self.in_use + pages > self.max_pages:
            return 0
        pos = self._find(pages)
        if pos < 0:
            return 0
        self.used[pos:pos + pages] = b"\x01" * pages
        self.runs[pos] = pages
        self.in_use += pages
        va = self.start + (pos << PAGE_SHIFT)
        self.memory.map(va, pages << PAGE_SHIFT)
        return va

    def free(self, va: int) -> int:
        """Unmap the run starting at va; returns its page count (0 if va starts no run)."""
        pos = (va - self.start) >> PAGE_SHIFT
        pages = self.runs.pop(pos, 0)
        if pages:
            self.used[pos:pos + pages] = bytes(pages)
            self.in_use -= pages
            self.memory.unmap(va, pages << PAGE_SHIFT)
        return pages

    def run_pages(self, va: int) -> int:
        return self.runs.get((va - self.start) >> PAGE_SHIFT, 0)

    def _find(self, pages: int) -> int:
        zeros = self._zeros.get(pages)
        if zeros is None:
            zeros = self._zeros[pages] = bytes(pages)
        used = self.used
        pos = used.find(zeros)
        while pos >= 0 and pages < PDE_PAGES and pos // PDE_PAGES != (pos + pages - 1) // PDE_PAGES:
            pos = used.find(zeros, (pos // PDE_PAGES + 1) * PDE_PAGES)
        return pos


@dataclass
class MachineMemory:
    """What the machine was built with: the RAM it claims and the limits Windows 7 derives
    from it (DEFAULT_MEMORY)."""

    physical_pages: int
    nonpaged_max_pages: int
    paged_max_pages: int
    special_max_pages: int
    pagefile_kb: int
    boot_used_pages: int          # pages used by everything that is not pool
    boot_commit_pages: int
    commit_limit_pages: int
    free_system_ptes: int


# The default machines, each a real Windows 7 SP1 box of the RAM it claims.
# x86: 3.5 GB (917368 pages, the first seed case's RAM and page file).  With dynamic system VA
# the pools' maxima are about 2 GB each on a 32-bit machine with that much RAM; the maxima are
# those Windows Internals (6th ed., ch. 10) reads from a 4 GB 32-bit Windows 7 system
# (MmMaximumNonPagedPoolInBytes 0x7f880000, MmSizeOfPagedPoolInBytes 0x7fc00000) and its
# 307168 system PTEs (most of them free).  What the pools can really use is bounded by their
# regions of the 2 GB kernel space (kdsim/arch.py).
# x64: 4 GB (1048446 pages), with the maxima, page file, commit limit and free system PTEs of
# the Windows 7 x64 4 GB `!vm` sample (formats.md 8.2): nonpaged max ~74 % of RAM, paged max
# 128 GB.
DEFAULT_MEMORY = {
    "x86": MachineMemory(physical_pages=917368, nonpaged_max_pages=522368,
                         paged_max_pages=523264, special_max_pages=8192, pagefile_kb=4190208,
                         boot_used_pages=210000, boot_commit_pages=150000,
                         commit_limit_pages=1929623, free_system_ptes=290911),
    "x64": MachineMemory(physical_pages=1048446, nonpaged_max_pages=774140,
                         paged_max_pages=33554432, special_max_pages=16384,
                         pagefile_kb=4193784, boot_used_pages=180000, boot_commit_pages=160000,
                         commit_limit_pages=2096416, free_system_ptes=33494979),
}

# The counters, as nt globals (pointer-sized).  `!vm` reads exactly these.
COUNTERS = (
    "MmNumberOfPhysicalPages", "MmAvailablePages", "MmResidentAvailablePages",
    "MmTotalCommittedPages", "MmTotalCommitLimit", "MmAllocatedNonPagedPool",
    "MmMaximumNonPagedPoolInPages", "MmSizeOfPagedPoolInPages", "MmPagedPoolCommit",
    "MmNonPagedPoolStart", "MmNonPagedPoolEnd", "MmPagedPoolStart", "MmPagedPoolEnd",
    "MmSpecialPoolStart", "MmSpecialPoolEnd", "MmSpecialPagesInUse", "MmSharedCommit",
    "MmDriverCommit", "MmProcessCommit", "MmSessionCommit", "MmKernelStackPages",
    "MmModifiedPageCount", "MmModifiedPFPageCount", "MmLockedIoPages", "MmFreeSystemPtes",
    "MmFreeSpecialNonPagedPtes", "MmPagingFileCurrentKb",
    "MmPagingFileFreeKb", "MmPagingFileMinimumKb", "MmPagingFileMaximumKb",
    "ExPoolFailures", "MmNonPagedPoolFailures", "MmPagedPoolFailures",
)


def _pages(span: int | None) -> int | None:
    return None if span is None else span // PAGE_SIZE


class MemoryManager:
    """Pool VA for both pools plus the counters, updated on every page-level event."""

    def __init__(self, arch: Arch, memory: AddressSpace, globals_: KernelGlobals,
                 config: MachineMemory):
        self.arch = arch
        self.config = config
        self.g = globals_
        self.addr = {name: globals_.var(name) for name in COUNTERS}
        self._ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")
        self._ptr_mask = arch.ptr_mask
        self.nonpaged = PoolPages(memory, arch.nonpaged_start, config.nonpaged_max_pages,
                                  _pages(arch.nonpaged_span))
        self.paged = PoolPages(memory, arch.paged_start, config.paged_max_pages,
                               _pages(arch.paged_span))
        self._boot()

    def _boot(self) -> None:
        c, a = self.config, self.arch
        init = {
            "MmNumberOfPhysicalPages": c.physical_pages,
            "MmAvailablePages": c.physical_pages - c.boot_used_pages,
            "MmResidentAvailablePages": c.physical_pages - c.boot_used_pages // 4,
            "MmTotalCommittedPages": c.boot_commit_pages,
            "MmTotalCommitLimit": c.commit_limit_pages,
            "MmMaximumNonPagedPoolInPages": c.nonpaged_max_pages,
            "MmSizeOfPagedPoolInPages": c.paged_max_pages,
            "MmNonPagedPoolStart": a.nonpaged_start,
            "MmNonPagedPoolEnd": self.nonpaged.end,
            "MmPagedPoolStart": a.paged_start,
            "MmPagedPoolEnd": self.paged.end,
            "MmSpecialPoolStart": a.special_start,
            "MmSpecialPoolEnd": a.special_start + 2 * c.special_max_pages * PAGE_SIZE,
            "MmSharedCommit": c.boot_commit_pages // 40,
            "MmDriverCommit": c.boot_commit_pages // 80,
            "MmProcessCommit": c.boot_commit_pages // 17,
            "MmSessionCommit": c.boot_commit_pages // 80,
            "MmKernelStackPages": c.boot_commit_pages // 30,
            "MmModifiedPageCount": 791,
            "MmModifiedPFPageCount": 785,
            "MmLockedIoPages": 210,
            "MmFreeSystemPtes": c.free_system_ptes,
            "MmFreeSpecialNonPagedPtes": 0,
            "MmPagingFileCurrentKb": c.pagefile_kb,
            "MmPagingFileFreeKb": c.pagefile_kb - c.pagefile_kb // 40,
            "MmPagingFileMinimumKb": c.pagefile_kb,
            "MmPagingFileMaximumKb": c.pagefile_kb,
        }
        for name, value in init.items():
            self.g.write_ptr(self.addr[name], value)

    def add(self, name: str, delta: int) -> None:
        # every page the pools take or give back changes three counters: read and write
        # nt's .data page directly (always mapped)
        addr = self.addr[name]
        page = self.g.memory.pages[addr >> PAGE_SHIFT]
        off = addr & (PAGE_SIZE - 1)
        ptr = self._ptr
        ptr.pack_into(page, off, (ptr.unpack_from(page, off)[0] + delta) & self._ptr_mask)

    def get(self, name: str) -> int:
        return self.g.read_ptr(self.addr[name])

    # -- page-level pool allocation --------------------------------------------------------
    def allocate_pool_pages(self, paged: bool, pages: int) -> int:
        pool = self.paged if paged else self.nonpaged
        va = pool.allocate(pages)
        if not va:
            self.add("MmPagedPoolFailures" if paged else "MmNonPagedPoolFailures", 1)
            return 0
        self._charge(paged, pages)
        return va

    def free_pool_pages(self, va: int) -> int:
        paged = self.paged.contains(va)
        pages = (self.paged if paged else self.nonpaged).free(va)
        if pages:
            self._charge(paged, -pages)
        return pages

    def _charge(self, paged: bool, pages: int) -> None:
        self.add("MmAvailablePages", -pages)
        if paged:
            self.add("MmPagedPoolCommit", pages)
            self.add("MmTotalCommittedPages", pages)
        else:
            self.add("MmAllocatedNonPagedPool", pages)
            self.add("MmResidentAvailablePages", -pages)
