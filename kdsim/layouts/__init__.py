"""Profiles: the structure layouts and constants the simulator and the debugger share.

One `Profile` per Windows version and architecture holds every structure either side reads or
writes, declared with construct (`win7sp1.py`); `constants.py` has the numbers that are no
structure's; `packing.py` turns declarations into offsets and `struct` formats for code that
must not parse structure by structure.  A dump names its profile, and a Target carries it.
"""
from __future__ import annotations

from ..arch import Arch
from .constants import (
    BIG_PAGE_FREE, CACHE_ALIGNED, FRAME_ARGS, IN_USE, NONPAGED, PAGE_MASK, PAGE_SHIFT,
    PAGE_SIZE, PAGED, POOL_SMALL_LISTS, POOL_TRACE_FRAMES, PROTECTED_POOL, QUOTA, SESSION,
    SPECIAL_PAGED, SPECIAL_SIZE_MASK, TAG_LEN, TYPE_BITS, VERIFIER, VERIFIER_ENTRY_SIGNATURE,
    VI_VERIFYING_DIRECTLY,
)
from .packing import (
    HeaderCodec, Slot, declared_slots, field_offsets, field_path_offset, field_run, struct_of,
)
from .profile import TYPE_NAMES, Profile
from .tags import tag_from_ulong, tag_to_ulong
from .win7sp1 import WIN7SP1_X64, WIN7SP1_X86

__all__ = [
    "BIG_PAGE_FREE", "CACHE_ALIGNED", "FRAME_ARGS", "IN_USE", "NONPAGED", "PAGE_MASK",
    "PAGE_SHIFT", "PAGE_SIZE", "PAGED", "POOL_SMALL_LISTS", "POOL_TRACE_FRAMES",
    "PROTECTED_POOL", "QUOTA", "SESSION", "SPECIAL_PAGED", "SPECIAL_SIZE_MASK", "TAG_LEN",
    "TYPE_BITS", "VERIFIER", "VERIFIER_ENTRY_SIGNATURE", "VI_VERIFYING_DIRECTLY",
    "HeaderCodec", "Slot", "declared_slots", "field_offsets", "field_path_offset", "field_run",
    "struct_of", "Profile", "PROFILES", "TYPE_NAMES", "get_profile", "profile_for",
    "tag_from_ulong", "tag_to_ulong",
]

PROFILES: dict[str, Profile] = {p.name: p for p in (WIN7SP1_X86, WIN7SP1_X64)}


def profile_for(arch: Arch) -> Profile:
    """The profile a machine of this architecture runs (today every machine is Windows 7 SP1)."""
    found = next((p for p in PROFILES.values() if p.arch == arch), None)
    if found is None:
        raise ValueError(f"no profile for architecture '{arch.name}'")
    return found


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile '{name}' (expected "
                         f"{' or '.join(PROFILES)})") from None
