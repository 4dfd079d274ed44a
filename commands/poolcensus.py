"""A census of one pool's pages, read from memory: how full each page is and what holds it.

Every page the pool's range has in use (a readable page between nt!MmNonPagedPoolStart and
End, or the paged pool's) is one of three kinds: part of a large allocation (its entry in
nt!PoolBigPageTable covers it), a small-pool page whose headers walk to the page end, or a page
whose walk fails (corrupt).  A small page's bytes are in use, cached (freed blocks that keep
their allocated header on a lookaside or deferred-free list, commands/freelists.py) or free.

The figures agree with the kernel's own counters: the pages are what `!vm` counts for the pool
(MmAllocatedNonPagedPool, the paged descriptors' pages), and the bytes in use, headers
included, with large allocations counted in whole pages, are what the tag tracker sums
(`!poolused`'s TOTAL).

A page is *pinned* when it is mostly free but cannot be given back: a small-pool page whose
blocks in use or cached take at most 1/8 of it (0x200 bytes) and number at most four.  One
live block is enough to keep a page, so a few small long-lived blocks settled in the
remainders of page-sized requests hold page after page (the first seed case).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_SIZE, PROTECTED_POOL
from pooltag import tag_from_ulong

from .poolread import BigPage, PoolHeader, PoolReader

if TYPE_CHECKING:  # pragma: no cover
    from .freelists import Holder

NONPAGED_POOL, PAGED_POOL, SESSION_POOL = "NonPaged", "Paged", "Session"
POOL_NAMES = (NONPAGED_POOL, PAGED_POOL, SESSION_POOL)

SMALL, LARGE, CORRUPT = "small", "large", "corrupt"
PINNED_BYTES = PAGE_SIZE // 8      # a pinned page has at most this much in use ...
PINNED_BLOCKS = 4                  # ... in at most this many blocks
PINNED_RULE = (f"at most 1/8 of the page (0x{PINNED_BYTES:x} bytes) in use, in at most "
               f"{PINNED_BLOCKS} blocks")


@dataclass
class PageSummary:
    """One page of a pool; byte counts include the blocks' headers."""

    address: int
    kind: str                  # "small", "large" (part of a large allocation) or "corrupt"
    used: int                  # bytes of blocks in use (what the tag tracker counts)
    cached: int                # bytes of freed blocks kept on a lookaside or deferred-free list
    free: int                  # bytes of free chunks
    blocks: int                # blocks holding the page: in use or cached
    tags: dict[str, int] = field(default_factory=dict)   # bytes in use per tag (as stored)

    @property
    def held(self) -> int:
        return self.used + self.cached

    @property
    def pinned(self) -> bool:
        return (self.kind == SMALL and 0 < self.blocks <= PINNED_BLOCKS
                and self.held <= PINNED_BYTES)


@dataclass
class PoolCensus:
    """Every page in use in one pool, in address order, and the pool's figures."""

    pool: str                  # "NonPaged" or "Paged"
    start: int                 # the pool's range
    end: int
    pages: list[PageSummary]
    allocated: int             # bytes in use (`!poolused` TOTAL for the pool)
    free: int                  # bytes of the pool's pages not in use (cached blocks included)
    cached: int                # of which: freed blocks kept on lookaside and deferred-free lists
    pinned: int                # pinned pages

    @property
    def in_use(self) -> int:
        return len(self.pages)


def _tag(h: PoolHeader) -> str:
    return tag_from_ulong(h.tag & ~PROTECTED_POOL)


def small_page(address: int, headers: list[PoolHeader], cached: "dict[int, Holder]",
               kind: str = SMALL) -> PageSummary:
    """The summary of a page from its headers (those a walk or a validation found)."""
    page = PageSummary(address, kind, 0, 0, 0, 0)
    for h in headers:
        if not h.pool_type:
            page.free += h.size
            continue
        page.blocks += 1
        if h.address + h.unit in cached:
            page.cached += h.size
        else:
            page.used += h.size
            tag = _tag(h)
            page.tags[tag] = page.tags.get(tag, 0) + h.size
    return page


def big_page_map(reader: PoolReader, start: int, end: int) -> dict[int, BigPage]:
    """Each page of a large allocation in [start, end), to its big-page table entry."""
    pages: dict[int, BigPage] = {}
    for big in reader.big_pages():
        if start <= big.va < end:
            count = max(-(-big.nbytes // PAGE_SIZE), 1)
            for i in range(count):
                pages[big.va + i * PAGE_SIZE] = big
    return pages


def pool_range(reader: PoolReader, pool: str) -> tuple[int, int]:
    ranges = reader.ranges()
    return ranges.paged if pool == PAGED_POOL else ranges.nonpaged


def take_census(reader: PoolReader, pool: str, cached: "dict[int, Holder]") -> PoolCensus:
    """The census of NonPaged or Paged pool; `cached` is freelists.cached_blocks()."""
    start, end = pool_range(reader, pool)
    bigs = big_page_map(reader, start, end)
    pages: list[PageSummary] = []
    for va, data in reader.pages(start, end):
        big = bigs.get(va)
        if big is not None:
            pages.append(PageSummary(va, LARGE, PAGE_SIZE, 0, 0, 1,
                                     {tag_from_ulong(big.tag & ~PROTECTED_POOL): PAGE_SIZE}))
            continue
        walk = reader.walk(va, data)
        if walk.error is None:
            pages.append(small_page(va, walk.headers, cached))
        else:
            pages.append(small_page(va, reader.check_page(va).headers, cached, CORRUPT))
    allocated = sum(p.used for p in pages)
    return PoolCensus(pool, start, end, pages, allocated, len(pages) * PAGE_SIZE - allocated,
                      sum(p.cached for p in pages), sum(p.pinned for p in pages))
