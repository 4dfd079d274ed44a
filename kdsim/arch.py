"""The two Windows 7 SP1 architectures the simulator models.

The machine-level facts that differ between x86 and x64 (block granularity, pointer width,
where each pool lives in the kernel address space) are fields here; the structures and the
other facts of a Windows version are its profile's (kdsim/layouts), so no module branches on
the architecture's name.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str
    ptr_size: int                 # bytes in a pointer
    block: int                    # pool granularity G (also sizeof(_POOL_HEADER))
    block_shift: int
    max_small: int                # largest request served by the small-block allocator
    nt_base: int                  # where ntoskrnl is loaded
    driver_base: int              # first driver image
    nonpaged_start: int           # MmNonPagedPoolStart
    paged_start: int              # MmPagedPoolStart
    special_start: int            # MmSpecialPoolStart
    # VA each pool's region spans where it is smaller than the pool's maximum (x86: the 2 GB
    # kernel space is shared; None: the region is as large as the maximum)
    nonpaged_span: int | None
    paged_span: int | None
    session_start: int            # the sessions' pools: session s at session_start + s * ...
    session_stride: int           # ... session_stride (its MM_SESSION_SPACE, tables, pool)
    win32k_base: int              # win32k.sys, the session image

    @property
    def header(self) -> int:
        return self.block

    @property
    def ptr_mask(self) -> int:
        return (1 << (8 * self.ptr_size)) - 1

    @property
    def hex_digits(self) -> int:
        return 2 * self.ptr_size

    def block_size(self, nbytes: int) -> int:
        """BlockSize (in blocks, header included) for a small request of nbytes."""
        return (max(nbytes, 1) + self.block + self.block - 1) >> self.block_shift

    def fmt_ptr(self, value: int) -> str:
        """A pointer as !pool, !poolfind and !verifier print it: full width, no backtick."""
        return format(value & self.ptr_mask, f"0{self.hex_digits}x")

    def fmt_addr(self, value: int) -> str:
        """A pointer as memory dumps and `?` print it: x64 splits the halves with a backtick."""
        value &= self.ptr_mask
        if self.ptr_size == 8:
            return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"
        return f"{value:08x}"

    def signed(self, value: int) -> int:
        value &= self.ptr_mask
        top = 1 << (8 * self.ptr_size - 1)
        return value - (top << 1) if value & top else value


# x86 follows Windows 7's dynamic system VA (internals.md 16.2).  Windows carves pool, system
# PTEs and session space out of the 2 GB kernel space on demand, in page-directory-sized
# chunks; the simulator gives each use one contiguous region where published Windows 7 x86
# addresses put it (an assumption: the real carving interleaves them):
#   829c6000  hal, just below ntoskrnl (kdsim/modules.py)
#   82a0f000  ntoskrnl
#   84400000  nonpaged pool, 106 MB of VA (observed blocks 85xxxxxx-86xxxxxx)
#   8b200000  the drivers, then (90200000) the kernel stacks in system PTE space
#   91000000  paged pool, 240 MB of VA (observed blocks 91c26130, 9655d468)
#   b0000000  special pool, in the dynamic VA left free
#   fc000000  session space: win32k.sys, then each session's MM_SESSION_SPACE, its tables and
#             its paged pool, session s at fc800000 + s * 24 MB (observed session blocks fexxxxxx)
# The pools' maxima are the memory manager's (kdsim/mm.py); the regions bound what they can use.
X86 = Arch(
    name="x86", ptr_size=4, block=8, block_shift=3, max_small=0xFF0,
    nt_base=0x82A0F000, driver_base=0x8B200000,
    nonpaged_start=0x84400000, paged_start=0x91000000, special_start=0xB0000000,
    nonpaged_span=0x8AE00000 - 0x84400000, paged_span=0xA0000000 - 0x91000000,
    session_start=0xFC800000, session_stride=0x1800000, win32k_base=0xFC000000,
)

# x64 follows the Windows 7 x64 kernel VA layout (internals.md 16.3): paged pool at
# FFFFF8A0`00000000, nonpaged at FFFFFA80`00000000, special pool in the dynamic kernel VA at
# FFFFF980`00000000, session space at FFFFF900`00000000 with win32k.sys at FFFFF960`00000000
# and the sessions' paged pools from FFFFF900`C0000000 (observed session blocks fffff900c...);
# each session gets 64 MB of it (an assumption: Windows maps every session's pool at the same
# VA, per process, which one flat address space cannot show).
X64 = Arch(
    name="x64", ptr_size=8, block=16, block_shift=4, max_small=0xFE0,
    nt_base=0xFFFFF80001409000, driver_base=0xFFFFF88000E00000,
    nonpaged_start=0xFFFFFA8000C00000, paged_start=0xFFFFF8A000000000,
    special_start=0xFFFFF98000000000, nonpaged_span=None, paged_span=None,
    session_start=0xFFFFF900C0000000, session_stride=0x4000000,
    win32k_base=0xFFFFF96000000000,
)

ARCHES: dict[str, Arch] = {"x86": X86, "x64": X64}


def get_arch(name: str) -> Arch:
    try:
        return ARCHES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown architecture '{name}' (expected x86 or x64)") from None
