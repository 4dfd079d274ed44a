"""Special pool (MmAllocateSpecialPool / MmFreeSpecialPool), internals.md section 12.

The pool owns the VA range nt!MmSpecialPoolStart..End as pairs of pages: a data page and the
no-access guard page after it.  An allocation takes the pair at the head of a FIFO of free
pairs (freed pairs go to the tail, so a freed address stays unmapped as long as possible), fills
its data page with a pattern byte, writes the special header and hands out the data placed
against the guard page (verify end: the data ends at the page end, aligned down to the block
size) or at the page start (verify start: the guard page before it catches underruns; the
header moves to the page end).  Freeing checks the header and the pattern around the data and
bug-checks 0xC1 with the real subcodes; the freed page becomes no-access.  The FIFO is the
kernel's private list of free PTE pairs; everything the debugger reads (headers, patterns,
guard pages, MmSpecialPagesInUse, MmFreeSpecialNonPagedPtes) is in simulated memory.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from .arch import Arch
from .bugcheck import BugCheck
from .layouts import PAGE_MASK, PAGE_SIZE, SPECIAL_PAGED, SPECIAL_SIZE_MASK, profile_for
from .memory import AddressSpace
from .mm import MemoryManager
from .tracker import TagTracker

SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION = 0xC1
MIN_AVAILABLE_PAGES = 0x100          # MmAllocateSpecialPool refuses below this

# 0xC1 parameter 4 (MS-BC-C1): what the free found wrong
FREE_NOT_ALLOCATED = 0x20
FREE_BAD_ADDRESS_LOW = 0x21
FREE_BAD_ADDRESS_HIGH = 0x22
FREE_NEARBY_CORRUPT = 0x23
FREE_TAIL_CORRUPT = 0x24

# Page faults in special pool, rewritten from 0x50 by KeBugCheck2 (internals.md 12.4):
# (freed pair, live pair's guard) for a fault in the kernel and in a driver.
KERNEL_FAULT_CODES = (0xCC, 0xCD)
DRIVER_FAULT_CODES = (0xD5, 0xD6)


class SpecialPool:
    def __init__(self, arch: Arch, memory: AddressSpace, mm: MemoryManager, tracker: TagTracker,
                 tick: Callable[[], int], verify_start: bool = False):
        self.arch = arch
        self.memory = memory
        self.mm = mm
        self.tracker = tracker
        self.tick = tick
        self.verify_start = verify_start
        self.H = arch.header
        self.start = mm.get("MmSpecialPoolStart")
        self.end = mm.get("MmSpecialPoolEnd")
        self.pairs = (self.end - self.start) // (2 * PAGE_SIZE)
        # verify start needs a guard page before the data page: the first pair has none
        self.free_pairs: deque[int] = deque(range(int(verify_start), self.pairs))
        self.header = profile_for(arch).special_header
        mm.add("MmFreeSpecialNonPagedPtes", 2 * len(self.free_pairs))

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def _data_page(self, pair: int) -> int:
        return self.start + 2 * pair * PAGE_SIZE

    # -- allocate ----------------------------------------------------------------------------
    def allocate(self, paged: bool, nbytes: int, tag: int) -> int:
        """The data address of a new special allocation, or 0 when special pool cannot take
        it (no free pair, too few available pages): the caller falls back to normal pool."""
        if not self.free_pairs or self.mm.get("MmAvailablePages") < MIN_AVAILABLE_PAGES:
            return 0
        pair = self.free_pairs.popleft()
        page = self._data_page(pair)
        self.memory.map(page, PAGE_SIZE)
        guard = page - PAGE_SIZE if self.verify_start else page + PAGE_SIZE
        self.memory.protect_noaccess(guard, PAGE_SIZE)
        fill = self.tick() & 0xFF | 1          # the tick count's low byte, never zero
        self.memory.fill(page, PAGE_SIZE, fill)
        H = self.H
        if self.verify_start:
            data, header = page, page + PAGE_SIZE - H
        else:
            data, header = (page + PAGE_SIZE - nbytes) & ~(H - 1), page
        ulong1 = nbytes | (SPECIAL_PAGED if paged else 0) | fill << 16
        self.memory.write(header, self.header.build({"Ulong1": ulong1, "PoolTag": tag}))
        self._account(paged, tag, nbytes, 1)
        return data

    def _account(self, paged: bool, tag: int, nbytes: int, sign: int) -> None:
        mm = self.mm
        mm.add("MmSpecialPagesInUse", sign)
        mm.add("MmAvailablePages", -sign)
        mm.add("MmFreeSpecialNonPagedPtes", -2 * sign)
        if not paged:
            mm.add("MmResidentAvailablePages", -sign)
        # Not established how Windows charges special pool in PoolTrackTable (internals.md 21.9):
        # the tag is charged what the same request costs in normal pool.
        self.tracker.update(tag, self.arch.block_size(nbytes) << self.arch.block_shift,
                            int(paged), sign)

    # -- free --------------------------------------------------------------------------------
    def requested(self, address: int) -> int:
        """Bytes requested by the live allocation at `address` (0 if its page is not live)."""
        page = address & ~PAGE_MASK
        if not self.memory.is_mapped(page):
            return 0
        return self._header(address)[0] & SPECIAL_SIZE_MASK

    def _header(self, address: int) -> tuple[int, int]:
        page = address & ~PAGE_MASK
        at = page if address & PAGE_MASK else page + PAGE_SIZE - self.H
        parsed = self.header.parse(self.memory.read(at, self.header.sizeof()))
        return parsed.Ulong1, parsed.PoolTag

    def free(self, address: int) -> None:
        """MmFreeSpecialPool: the checks of internals.md 12.3, then the page goes no-access."""
        page = address & ~PAGE_MASK
        if not self.memory.is_mapped(page):
            raise BugCheck(SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, address, 0, 0,
                           FREE_NOT_ALLOCATED)
        ulong1, tag = self._header(address)
        nbytes = ulong1 & SPECIAL_SIZE_MASK
        fill = (ulong1 >> 16) & 0xFF
        offset = address & PAGE_MASK
        end = page + PAGE_SIZE
        if offset:                                     # verify end: header at the page start
            real = PAGE_SIZE - offset
            if nbytes > real:
                raise BugCheck(SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, address, nbytes, real,
                               FREE_BAD_ADDRESS_LOW)
            if nbytes + self.H <= real:
                raise BugCheck(SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, address, nbytes, real,
                               FREE_BAD_ADDRESS_HIGH)
            self._check_pattern(address, page + self.H, address, fill, FREE_NEARBY_CORRUPT)
        else:                                          # verify start: header at the page end
            end -= self.H
        self._check_pattern(address, address + nbytes, end, fill, FREE_TAIL_CORRUPT)
        self.memory.protect_noaccess(page, PAGE_SIZE)
        self.free_pairs.append((page - self.start) // (2 * PAGE_SIZE))
        self._account(bool(ulong1 & SPECIAL_PAGED), tag, nbytes, -1)

    def _check_pattern(self, address: int, start: int, end: int, fill: int, code: int) -> None:
        if end <= start:
            return
        data = self.memory.read(start, end - start)
        bad = data.lstrip(bytes([fill]))
        if bad:
            raise BugCheck(SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, address,
                           start + len(data) - len(bad), fill, code)

    # -- faults ------------------------------------------------------------------------------
    def fault_code(self, address: int, from_driver: bool) -> int:
        """What KeBugCheck2 turns a page fault at `address` (inside special pool) into: the
        guard page of a live allocation (after it, or before it in verify-start mode) is a
        reference beyond the allocation (0xCD, 0xD6 from a driver), anything else a reference
        to freed special pool (0xCC, 0xD5 from a driver)."""
        freed_code, beyond_code = DRIVER_FAULT_CODES if from_driver else KERNEL_FAULT_CODES
        pair_offset = (address - self.start) % (2 * PAGE_SIZE)
        if pair_offset >= PAGE_SIZE:                   # a guard page
            guarded = address - PAGE_SIZE if not self.verify_start else address + PAGE_SIZE
            if self.contains(guarded) and self.memory.is_mapped(guarded):
                return beyond_code
        return freed_code
