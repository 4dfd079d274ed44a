"""The numbers the simulator and the debugger share that no structure declaration holds: page
geometry, the values of `_POOL_HEADER.PoolType`, the flag bits packed into tags, big-page
entries and special-pool headers, and the array lengths of the declared structures.  Each is
defined here and nowhere else (tests/kdsim/test_layouts.py checks), and is the same on both
Windows 7 SP1 architectures.
"""
from __future__ import annotations

PAGE_SIZE = 0x1000
PAGE_SHIFT = 12
PAGE_MASK = PAGE_SIZE - 1

# _POOL_HEADER.PoolType (internals.md section 3)
NONPAGED = 0
PAGED = 1
IN_USE = 2                     # Win7: allocated PoolType = type bits | 2; free = 0
CACHE_ALIGNED = 4
QUOTA = 8
SESSION = 0x20
VERIFIER = 0x40
TYPE_BITS = PAGED | CACHE_ALIGNED | QUOTA | SESSION | VERIFIER

# A tag is four bytes, read as a little-endian ULONG; bit 31 marks a protected allocation and
# is stripped before tags are compared.
TAG_LEN = 4
PROTECTED_POOL = 0x80000000

BIG_PAGE_FREE = 1              # bit 0 of a _POOL_TRACKER_BIG_PAGES.Va: the slot is free

# The special-pool header's Ulong1: bytes requested | SPECIAL_PAGED | fill byte << 16
SPECIAL_SIZE_MASK = 0x7FFF
SPECIAL_PAGED = 0x8000

POOL_SMALL_LISTS = 32          # BlockSize 1..32 have per-processor lookaside lists (KPRCB)
POOL_TRACE_FRAMES = 13         # _VF_POOL_TRACE.StackTrace[13]
VERIFIER_ENTRY_SIGNATURE = 0x98761940
VI_VERIFYING_DIRECTLY = 0x1    # _MI_VERIFIER_DRIVER_ENTRY.Flags
MAXIMUM_PROCESSORS = 32        # nt!KiProcessorBlock's slots (Windows 7 x86's MAXIMUM_PROCESSORS)
FRAME_ARGS = 4                 # arguments a stack frame shows (kb)
