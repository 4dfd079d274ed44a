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


# x86 keeps the seed case's layout: nonpaged pool high in the 2 GB kernel space (the first seed
# case shows pages at f8feb000..fe593000), paged pool at the WRK default 0xE1000000.
X86 = Arch(
    name="x86", ptr_size=4, block=8, block_shift=3, max_small=0xFF0,
    nt_base=0x82A0F000, driver_base=0x8B200000,
    nonpaged_start=0xF8000000, paged_start=0xE1000000, special_start=0xB0000000,
)

# x64 follows the Windows 7 x64 kernel VA layout: paged pool at FFFFF8A0`00000000, nonpaged at
# FFFFFA80`00000000, special pool in the dynamic kernel VA at FFFFF980`00000000.
X64 = Arch(
    name="x64", ptr_size=8, block=16, block_shift=4, max_small=0xFE0,
    nt_base=0xFFFFF80001409000, driver_base=0xFFFFF88000E00000,
    nonpaged_start=0xFFFFFA8000C00000, paged_start=0xFFFFF8A000000000,
    special_start=0xFFFFF98000000000,
)

ARCHES: dict[str, Arch] = {"x86": X86, "x64": X64}


def get_arch(name: str) -> Arch:
    try:
        return ARCHES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown architecture '{name}' (expected x86 or x64)") from None
