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
    """Page-granular allocator for one pool's VA range."""

    def __init__(self, memory: AddressSpace, start: int, max_pages: int):
        self.memory = memory
        self.start = start
        self.max_pages = max_pages
        self.used = bytearray(min(max_pages, BITMAP_CAP))
        self.runs: dict[int, int] = {}        # first page index -> pages
        self.in_use = 0
        self._zeros: dict[int, bytes] = {}

    @property
    def end(self) -> int:
        return self.start + self.max_pages * PAGE_SIZE

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
    """What the machine was built with (the first seed case's figures are the x86 default)."""

    physical_pages: int
    nonpaged_max_pages: int
    paged_max_pages: int
    special_max_pages: int
    pagefile_kb: int
    boot_used_pages: int          # pages used by everything that is not pool
    boot_commit_pages: int
    commit_limit_pages: int


DEFAULT_MEMORY = {
    "x86": MachineMemory(physical_pages=917368, nonpaged_max_pages=32647, paged_max_pages=60416,
                         special_max_pages=8192, pagefile_kb=4190208, boot_used_pages=210000,
                         boot_commit_pages=150000, commit_limit_pages=1929623),
    "x64": MachineMemory(physical_pages=1048446, nonpaged_max_pages=774140,
                         paged_max_pages=33554432, special_max_pages=16384,
                         pagefile_kb=4193784, boot_used_pages=180000, boot_commit_pages=160000,
                         commit_limit_pages=2096416),
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
    "MmFreeNonPagedPtes", "MmFreeSpecialNonPagedPtes", "MmPagingFileCurrentKb",
    "MmPagingFileFreeKb", "MmPagingFileMinimumKb", "MmPagingFileMaximumKb",
    "ExPoolFailures", "MmNonPagedPoolFailures", "MmPagedPoolFailures",
)


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
        self.nonpaged = PoolPages(memory, arch.nonpaged_start, config.nonpaged_max_pages)
        self.paged = PoolPages(memory, arch.paged_start, config.paged_max_pages)
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
            "MmFreeSystemPtes": 14629 if a.ptr_size == 4 else 33494979,
            "MmFreeNonPagedPtes": 4230,
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
