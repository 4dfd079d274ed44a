"""`_MM_SESSION_SPACE`: one session's bookkeeping, as far as the pool and the debugger use it.

Windows 7 keeps a session's paged pool inside its session space: the `PagedPool` descriptor is
part of the session structure, the session's tag counters are a tracker table of their own
(`PoolTrackTableExpansion`, `!poolused 8` reads it) and its large allocations a big-page table
of their own (`PoolTrackBigPages`, where `!pool` goes "checking large session pool").  The
field names are the Windows 7 SP1 public symbols'; the structure is reduced to these fields, in
their order (the real one is several pages long), with the descriptor's ListHeads aligned as
the allocator needs them.  The sessions are linked through `WsListEntry` from
`nt!MiSessionWsList`; `nt!MmSessionSpace` points at the current process's session.

`Lookaside` follows `WsListEntry` as in the public symbols: the session paged pool's own
lookaside lists, one `_GENERAL_LOOKASIDE` (a cache-aligned 0x80 bytes) per BlockSize from 1 up
to 25 on x86 and 21 on x64 (200 and 336 bytes), shared by the processors.
"""
from __future__ import annotations

from functools import cache

from construct import Array, Construct, Int32ul, Int64ul, Padding, Struct

from .profile import Profile

LIST_ALIGN = 16          # a LIST_ENTRY of ListHeads never straddles a page (2 pointers, x64)
LOOKASIDE_ALIGN = 0x40   # a cache line
LOOKASIDE_SIZE = 0x80    # sizeof(_GENERAL_LOOKASIDE), both arches
SESSION_LOOKASIDES = {4: 25, 8: 21}     # by pointer size: Lookaside[25] / Lookaside[21]


def general_lookaside(profile: Profile) -> Construct:
    """`_GENERAL_LOOKASIDE`: the pool lookaside's fields (`profile.lookaside`), padded to its
    cache-aligned size."""
    fields = profile.lookaside
    return Struct(*fields.subcons, Padding(LOOKASIDE_SIZE - fields.sizeof()))


@cache
def mm_session_space(profile: Profile) -> Construct:
    """The session structure of `profile`'s architecture."""
    ptr = Int64ul if profile.arch.ptr_size == 8 else Int32ul
    entry = Struct("Flink" / ptr, "Blink" / ptr)
    head = (
        "ReferenceCount" / Int32ul,
        "Flags" / Int32ul,
        "SessionId" / Int32ul,
        "ProcessReferenceToSession" / Int32ul,
        "ProcessList" / entry,
        "NonPagablePages" / ptr,
        "CommittedPages" / ptr,
        "PagedPoolStart" / ptr,
        "PagedPoolEnd" / ptr,
        "SessionPoolAllocationFailures" / Array(4, Int32ul),
        "WsListEntry" / entry,
    )
    lookasides = Array(SESSION_LOOKASIDES[profile.arch.ptr_size], general_lookaside(profile))
    tail = (
        Padding(-Struct(*head).sizeof() % LOOKASIDE_ALIGN),
        "Lookaside" / lookasides,
        "PoolTrackTableExpansion" / ptr,
        "PoolTrackTableExpansionSize" / ptr,
        "PoolTrackBigPages" / ptr,
        "PoolTrackBigPagesSize" / ptr,
        "PoolBigEntriesInUse" / ptr,
    )
    size = Struct(*head, *tail).sizeof()
    lists = profile.offset("descriptor", "ListHeads")
    return Struct(*head, *tail, Padding(-(size + lists) % LIST_ALIGN),
                  "PagedPool" / profile.descriptor)
