"""Where the pool keeps the blocks it has taken back, read from memory.

Windows 7 keeps a freed small block in one of three places (internals.md 5-8):

* a free chunk of two blocks or more is linked through the LIST_ENTRY after its header into
  ListHeads[BlockSize - 1] of its pool's descriptor (nt!NonPagedPoolDescriptor, or the paged
  descriptor its PoolIndex names in nt!ExpPagedPoolDescriptor); a one-block chunk has no room
  for the links and is on no list until it coalesces with a neighbour;
* a block of 32 blocks or fewer may go to a lookaside list: its processor's own (the P list of
  the KPRCB's pair for its size) or the system-wide one (L), an SLIST through the block's data;
* with deferred frees on, to its descriptor's PendingFrees chain (through the data as well),
  released to ListHeads 32 at a time.

A block on a lookaside or the pending list keeps its allocated header, as in Windows: only
these lists tell that it is free.  Every walk here is bounded, so a corrupted link ends it at
the bound rather than in a loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.layouts import PAGED, POOL_SMALL_LISTS, field_path_offset, struct_of
from kdsim.layouts.session import mm_session_space
from kdsim.target import MemoryFault

from .sessions import session_pool_at

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from .poolread import PoolHeader

LIST_HEADS = "ListHeads"
LOOKASIDE = "lookaside"
PENDING = "pending"

LIST_WALK_LIMIT = 100_000      # entries followed on one ListHeads list
SLIST_WALK_LIMIT = 1_024       # on a lookaside or pending list (their depths stay far below)


@dataclass(frozen=True)
class Descriptor:
    """A _POOL_DESCRIPTOR; `name` is how the explanations name it."""

    address: int
    paged: bool
    index: int                 # PoolIndex: the paged pool's number, 0 for nonpaged pool
    name: str


@dataclass(frozen=True)
class LookasideList:
    """One _GENERAL_LOOKASIDE_POOL of the pool's per-processor arrays."""

    address: int
    paged: bool
    index: int                 # block size - 1
    cpu: int | None            # the processor whose P list it is; None for the shared L list


@dataclass(frozen=True)
class Holder:
    """The list a freed block is on, and its place there (1 = the list's first entry)."""

    kind: str                  # LIST_HEADS, LOOKASIDE or PENDING
    list_address: int          # the list head
    index: int                 # for ListHeads: which of the descriptor's lists (BlockSize - 1)
    position: int
    length: int                # entries on the list, as far as the walk went
    descriptor: Descriptor | None = None
    lookaside: LookasideList | None = None

    def describe(self, unit: int) -> str:
        """`ListHeads[5] of nt!NonPagedPoolDescriptor (entry 2 of 7)` and the like."""
        place = f"entry {self.position} of {self.length}"
        if self.kind == LIST_HEADS and self.descriptor is not None:
            return f"on ListHeads[{self.index}] of {self.descriptor.name} ({place})"
        if self.kind == PENDING and self.descriptor is not None:
            return f"on the deferred-free list (PendingFrees) of {self.descriptor.name} ({place})"
        la = self.lookaside
        assert la is not None
        owner = "the shared" if la.cpu is None else f"processor {la.cpu}'s"
        pool = "paged" if la.paged else "nonpaged"
        return (f"on {owner} {pool} lookaside list for 0x{(la.index + 1) * unit:x}-byte blocks "
                f"({place})")


def _symbol(target: "Target", name: str) -> int | None:
    return target.resolve(f"nt!{name}")


# -- the descriptors ----------------------------------------------------------------------------
def descriptors(target: "Target") -> list[Descriptor]:
    """Nonpaged pool's descriptor, then each paged pool's (PagedPool 0 .. N), from the nt
    globals; an absent or unreadable symbol leaves its pools out."""
    found: list[Descriptor] = []
    nonpaged = _symbol(target, "NonPagedPoolDescriptor")
    if nonpaged is not None:
        found.append(Descriptor(nonpaged, False, 0, "nt!NonPagedPoolDescriptor"))
    array, count = _symbol(target, "ExpPagedPoolDescriptor"), _symbol(target,
                                                                       "ExpNumberOfPagedPools")
    if array is None or count is None:
        return found
    try:
        pools = target.read_u32(count) + 1
        for index in range(min(pools, 64)):
            address = target.read_ptr(array + index * target.arch.ptr_size)
            found.append(Descriptor(address, True, index,
                                    f"nt!ExpPagedPoolDescriptor[{index}]"))
    except MemoryFault:
        pass
    return found


def descriptor_of(target: "Target", header: "PoolHeader",
                  known: list[Descriptor] | None = None) -> Descriptor | None:
    """The descriptor whose lists a block of this header goes to: a session pool's own (the
    block lies in it), nonpaged pool's, or the paged pool its PoolIndex names (None for an
    index no paged pool has)."""
    space = session_pool_at(target, header.address)
    if space is not None:
        layout = mm_session_space(target.profile)
        return Descriptor(space.address + field_path_offset(layout, "PagedPool"), True, 0,
                          f"session {space.session_id}'s PagedPool")
    paged = bool(header.pool_type & PAGED)
    for d in known if known is not None else descriptors(target):
        if d.paged == paged and (not paged or d.index == header.pool_index):
            return d
    return None


# -- walking the lists --------------------------------------------------------------------------
def _slist(target: "Target", first: int, limit: int) -> list[int]:
    """The entries of a singly linked chain through the blocks' data, from `first`."""
    entries: list[int] = []
    seen: set[int] = set()
    at = first
    while at and at not in seen and len(entries) < limit:
        seen.add(at)
        entries.append(at)
        try:
            at = target.read_ptr(at)
        except MemoryFault:
            break
    return entries


def lookaside_lists(target: "Target") -> list[LookasideList]:
    """The pool's lookaside lists: the shared (L) lists, nonpaged then paged by block size,
    then each processor's own (P) lists in the same order, from the {P, L} pairs of each
    KPRCB's PPNPagedLookasideList and PPPagedLookasideList (nt!KiProcessorBlock)."""
    count_at, block = _symbol(target, "KeNumberProcessors"), _symbol(target, "KiProcessorBlock")
    if count_at is None or block is None:
        return []
    ptr = target.arch.ptr_size
    profile = target.profile
    offsets = [profile.offset("kprcb", name)
               for name in ("PPNPagedLookasideList", "PPPagedLookasideList")]
    count = min(target.read_u32(count_at), 32)
    prcbs = [target.read_ptr(block + cpu * ptr) for cpu in range(count)]

    def pair(prcb: int, paged: int, i: int) -> tuple[int, int]:
        slot = prcb + offsets[paged] + i * 2 * ptr
        return target.read_ptr(slot), target.read_ptr(slot + ptr)

    if not prcbs:
        return []
    shared = [LookasideList(pair(prcbs[0], paged, i)[1], bool(paged), i, None)
              for paged in (0, 1) for i in range(POOL_SMALL_LISTS)]
    own = [LookasideList(pair(prcb, paged, i)[0], bool(paged), i, cpu)
           for cpu, prcb in enumerate(prcbs) for paged in (0, 1)
           for i in range(POOL_SMALL_LISTS)]
    return shared + own


def _lookaside_first(target: "Target", address: int) -> int:
    layout = target.profile.lookaside
    fmt = struct_of(layout)
    names = [sub.name for sub in layout.subcons if sub.name]
    fields = dict(zip(names, fmt.unpack(target.read(address, fmt.size))))
    return int(fields["Next"])


def cached_blocks(target: "Target") -> dict[int, Holder]:
    """Every block that is free but keeps its allocated header, by the address of its data
    (header + one block): those on a lookaside list and those on a descriptor's deferred-free
    list."""
    held: dict[int, Holder] = {}
    for la in lookaside_lists(target):
        try:
            entries = _slist(target, _lookaside_first(target, la.address), SLIST_WALK_LIMIT)
        except MemoryFault:
            continue
        for position, data in enumerate(entries, 1):
            held.setdefault(data, Holder(LOOKASIDE, la.address, la.index, position, len(entries),
                                         lookaside=la))
    pending = target.profile.offset("descriptor", "PendingFrees")
    for d in descriptors(target):
        try:
            entries = _slist(target, target.read_ptr(d.address + pending), SLIST_WALK_LIMIT)
        except MemoryFault:
            continue
        for position, data in enumerate(entries, 1):
            held.setdefault(data, Holder(PENDING, d.address + pending, 0, position, len(entries),
                                         descriptor=d))
    return held


def list_heads_holder(target: "Target", header: "PoolHeader",
                      known: list[Descriptor] | None = None) -> Holder | None:
    """The ListHeads entry that links the free chunk of `header`, found by walking
    ListHeads[BlockSize - 1] of its descriptor from the head (bounded); None when the chunk is
    not on that list (a single block, or links that corruption broke)."""
    if header.block_size < 2:
        return None
    desc = descriptor_of(target, header, known)
    if desc is None:
        return None
    ptr = target.arch.ptr_size
    index = header.block_size - 1
    if index >= target.profile.list_heads:
        return None
    head = desc.address + target.profile.offset("descriptor", "ListHeads") + index * 2 * ptr
    entry = header.address + header.unit
    position = 0
    found = 0
    at = head
    try:
        for _ in range(LIST_WALK_LIMIT):
            at = target.read_ptr(at)
            if at == head:
                break
            position += 1
            if at == entry and not found:
                found = position
    except MemoryFault:
        pass
    if not found:
        return None
    return Holder(LIST_HEADS, head, index, found, position, descriptor=desc)
