"""Bug checks: the simulated kernel's way of stopping, with the real codes and parameters."""
from __future__ import annotations

BUGCHECK_NAMES: dict[int, str] = {
    0x19: "BAD_POOL_HEADER",
    0x1E: "KMODE_EXCEPTION_NOT_HANDLED",
    0x41: "MUST_SUCCEED_POOL_EMPTY",
    0x50: "PAGE_FAULT_IN_NONPAGED_AREA",
    0xC1: "SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION",
    0xC2: "BAD_POOL_CALLER",
    0xC4: "DRIVER_VERIFIER_DETECTED_VIOLATION",
    0xC5: "DRIVER_CORRUPTED_EXPOOL",
    0xCC: "PAGE_FAULT_IN_FREED_SPECIAL_POOL",
    0xCD: "PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
    0xD0: "DRIVER_CORRUPTED_MMPOOL",
    0xD5: "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL",
    0xD6: "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
}

BAD_POOL_HEADER = 0x19
BAD_POOL_CALLER = 0xC2
DRIVER_CORRUPTED_EXPOOL = 0xC5
PAGE_FAULT_IN_NONPAGED_AREA = 0x50
KMODE_EXCEPTION_NOT_HANDLED = 0x1E


class BugCheck(Exception):
    """Raised inside the simulated kernel; the machine records it in nt!KiBugCheckData and stops."""

    def __init__(self, code: int, p1: int = 0, p2: int = 0, p3: int = 0, p4: int = 0):
        self.code = code
        self.params = (p1, p2, p3, p4)
        # (routines, caller stack) of the raise site, attached by kdsim.stop.raised_in
        self.where: tuple[tuple[str, ...], tuple[int, ...]] | None = None
        super().__init__(f"{self.name} ({code:#x}) {', '.join(hex(p) for p in self.params)}")

    @property
    def name(self) -> str:
        return BUGCHECK_NAMES.get(self.code, f"BUGCHECK_{self.code:X}")
