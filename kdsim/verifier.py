"""Driver Verifier and pool: its settings, its hook into the allocator, pool tracking and the
Allocate/Free log (internals.md section 13), all kept in simulated memory.

Settings use the real `verifier` syntax (`/flags 0x9 /driver myfault.sys`, `/standard`,
`/all`) and take effect when the machine boots.  When the verifier is on, the pool is run as
Windows 7 runs it then: deferred frees and lookaside lists are off, and every allocation and
free goes through this hook (`PoolManager.hook`):

* an allocation whose caller (the first frame outside the kernel) is a verified driver is
  counted in `nt!MmVerifierData`, goes to special pool when that option is on (falling back to
  normal pool when special pool cannot take it), is tracked per driver when pool tracking is on
  (`_MI_VERIFIER_DRIVER_ENTRY` on `nt!MiSuspectDriverList`, with its `_VI_POOL_ENTRY` table) and
  is logged in the ring `nt!VfPoolTraces`;
* every free is logged (VfFreePoolNotification runs for all frees, which is why the second seed
  case shows a free by nt!HvFreeDirtyData) and then performed by special or normal pool.

Each log record is a `_VF_POOL_TRACE` {Address, Size, Thread, StackTrace[13]}; whether it is
an allocation or a free shows in its first frame (nt!VeAllocatePoolWithTagPriority or
nt!VfFreePoolNotification), as on Windows.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .bugcheck import BugCheck
from .layouts import (
    NONPAGED, PAGE_SIZE, PAGED, POOL_TRACE_FRAMES, VERIFIER, VERIFIER_ENTRY_SIGNATURE,
    VI_VERIFYING_DIRECTLY, profile_for, tag_to_ulong,
)
from .modules import frames as resolve_frames
from .special import SpecialPool
from .stop import raised_in
from .threads import Threads

if TYPE_CHECKING:  # pragma: no cover
    from .arch import Arch
    from .memory import AddressSpace
    from .mm import MemoryManager
    from .ntdata import KernelGlobals
    from .pool import PoolManager
    from .symbols import Module, SymbolTable
    from .workload import Workload


class Host(Protocol):
    """What Driver Verifier uses of its machine."""

    arch: "Arch"
    memory: "AddressSpace"
    symbols: "SymbolTable"
    g: "KernelGlobals"
    mm: "MemoryManager"
    pool: "PoolManager"
    workload: "Workload"
    processors: int


# verifier /flags bits (internals.md 13.1) and the names verifier.exe prints for them
SPECIAL_POOL = 0x1
POOL_TRACKING = 0x8
STANDARD_FLAGS = 0x9BB
FLAG_NAMES: dict[int, str] = {
    0x001: "Special pool",
    0x008: "Pool tracking",
    0x002: "Force IRQL checking",
    0x010: "I/O verification",
    0x020: "Deadlock detection",
    0x080: "DMA checking",
    0x100: "Security checks",
    0x200: "Force pending I/O requests",
    0x004: "Low resources simulation",
    0x400: "IRP Logging",
    0x800: "Miscellaneous checks",
}
KNOWN_FLAGS = sum(FLAG_NAMES)

# ExpPoolFlags bits (internals.md 12.1, 13.2)
EXP_VERIFIER = 0x8
EXP_SPECIAL_POOL = 0x20
EXP_DEFERRED_FREES = 0x200

KERNEL_MODULES = frozenset({"nt", "hal"})
LOG_LENGTH = 0x10000                  # VfPoolTracesLength: records in the ring
DRIVER_VERIFIER_DETECTED_VIOLATION = 0xC4
C4_ZERO_BYTES = 0x00
C4_UNLOAD_WITH_ALLOCATIONS = 0x62

ALLOCATE_FRAMES = ("nt!VeAllocatePoolWithTagPriority+0x2b6", "nt!VerifierExAllocatePoolEx+0x1d")
FREE_FRAMES = ("nt!VfFreePoolNotification+0x4a", "nt!ExDeferredFreePool+0x107b")


@dataclass(frozen=True)
class VerifierSettings:
    """What `verifier /flags F /driver A.sys B.sys` (or `/all`) asks for."""

    flags: int = 0
    drivers: tuple[str, ...] = ()
    all_drivers: bool = False
    verify_start: bool = False        # special pool catches underruns (GFlags "Verify Start")

    @property
    def enabled(self) -> bool:
        return bool(self.flags) and (self.all_drivers or bool(self.drivers))

    def verifies(self, module: "Module") -> bool:
        if module.name in KERNEL_MODULES:
            return False
        if self.all_drivers:
            return True
        names = {d.lower() for d in self.drivers}
        return module.image.lower() in names or module.name.lower() in names


def parse_settings(text: str) -> VerifierSettings:
    """Settings from the real `verifier` syntax; ValueError names what is wrong."""
    words = text.split()
    flags: int | None = None
    drivers: list[str] = []
    all_drivers = verify_start = reset = False
    i = 0
    while i < len(words):
        word = words[i].lower()
        i += 1
        if word == "/flags":
            if i >= len(words):
                raise ValueError("/flags needs a value (e.g. /flags 0x9)")
            try:
                flags = int(words[i], 0)
            except ValueError:
                raise ValueError(f"invalid /flags value '{words[i]}'") from None
            if flags < 0 or flags & ~KNOWN_FLAGS:
                raise ValueError(f"unsupported /flags value '{words[i]}'")
            i += 1
        elif word == "/standard":
            flags = STANDARD_FLAGS
        elif word == "/driver":
            start = i
            while i < len(words) and not words[i].startswith("/"):
                drivers.append(words[i])
                i += 1
            if i == start:
                raise ValueError("/driver needs at least one driver name")
        elif word == "/all":
            all_drivers = True
        elif word == "/verifystart":
            verify_start = True
        elif word == "/verifyend":
            verify_start = False
        elif word == "/reset":
            reset = True
        else:
            raise ValueError(f"unknown option '{words[i - 1]}'")
    if reset:
        if flags is not None or drivers or all_drivers:
            raise ValueError("/reset takes no other option")
        return VerifierSettings()
    if flags is None:
        if not (drivers or all_drivers):
            raise ValueError("nothing to set: give /flags and /driver (or /all)")
        flags = STANDARD_FLAGS
    if flags and not (drivers or all_drivers):
        raise ValueError("/flags needs the drivers to verify: /driver NAME ... or /all")
    return VerifierSettings(flags, tuple(drivers), all_drivers, verify_start)


def as_settings(value: "VerifierSettings | str | None") -> VerifierSettings:
    if value is None:
        return VerifierSettings()
    if isinstance(value, str):
        return parse_settings(value)
    return value


class Verifier:
    """The verifier's kernel state.  Its globals exist on every machine (zero when the
    verifier is off); the pool hook, threads, log, special pool and driver entries only when
    the settings verify something."""

    def __init__(self, machine: Host, settings: "VerifierSettings | str | None" = None):
        self.machine = machine
        self.settings = as_settings(settings)
        self.pending = self.settings          # what `.verifier` set for the next boot
        arch = machine.arch
        self.arch = arch
        self.memory = machine.memory
        self.pool = machine.pool
        self.P = arch.ptr_size
        L = self.layouts = profile_for(arch)
        g = machine.g
        self.sym_data = g.var("MmVerifierData", L.verifier_data.sizeof())
        self.sym_traces = g.var("VfPoolTraces")
        self.sym_index = g.var("VfPoolTracesIndex", 4)
        self.sym_length = g.var("VfPoolTracesLength", 4)
        self.sym_drivers = g.var("MiSuspectDriverList", 2 * self.P)
        self.sym_overruns = g.var("MmSpecialPoolCatchOverruns", 4)
        g.write_ptr(self.sym_drivers, self.sym_drivers)          # an empty list
        g.write_ptr(self.sym_drivers + self.P, self.sym_drivers)
        ptr = "Q" if self.P == 8 else "I"
        self.ptr = struct.Struct("<" + ptr)
        self.u32 = struct.Struct("<I")
        self.record = struct.Struct(f"<3{ptr}{POOL_TRACE_FRAMES}{ptr}")
        self.entry = struct.Struct(f"<4{ptr}")
        self.special: SpecialPool | None = None
        self.threads: Threads | None = None
        self.traces = 0
        self.entries: dict[str, int] = {}         # verified module name -> driver entry
        # tracked block -> (its _VI_POOL_ENTRY, driver entry, bytes, paged); free entries
        self.tracked: dict[int, tuple[int, int, int, bool]] = {}
        self.free_slots: dict[int, list[int]] = {}
        self._callers: dict[tuple[int, ...], tuple[int, int]] = {}
        self._offsets: dict[tuple[str, str], int] = {}
        self.allocate_frames = resolve_frames(machine.symbols, ALLOCATE_FRAMES)
        self.free_frames = resolve_frames(machine.symbols, FREE_FRAMES)
        if self.settings.enabled:
            self._enable()

    # -- boot ---------------------------------------------------------------------------------
    def _enable(self) -> None:
        machine, pool, s = self.machine, self.pool, self.settings
        pool.flush_pending()
        pool.settings.deferred_frees = False
        pool.disable_lookasides()
        exp = machine.g.read_u32(pool.sym_flags) & ~EXP_DEFERRED_FREES | EXP_VERIFIER
        self._set_data("Level", s.flags)
        self.threads = Threads(pool, machine.processors)
        nbytes = LOG_LENGTH * self.layouts.pool_trace.sizeof()
        self.traces = pool.allocate_normal(NONPAGED, nbytes, tag_to_ulong("VfPT"))
        if self.traces:
            machine.g.write_ptr(self.sym_traces, self.traces)
            machine.g.write_u32(self.sym_length, LOG_LENGTH)
        if s.flags & SPECIAL_POOL:
            exp |= EXP_SPECIAL_POOL
            machine.g.write_u32(self.sym_overruns, 0 if s.verify_start else 1)
            self.special = SpecialPool(self.arch, self.memory, machine.mm, pool.tracker,
                                       lambda: machine.workload.t, s.verify_start)
        machine.g.write_u32(pool.sym_flags, exp)
        for module in machine.symbols.modules:
            if s.verifies(module):
                self.entries[module.name.lower()] = self._driver_entry(module)
        pool.hook = self

    def _driver_entry(self, module: "Module") -> int:
        """A _MI_VERIFIER_DRIVER_ENTRY with its name, at the tail of MiSuspectDriverList."""
        L, P = self.layouts, self.P
        size = L.driver_entry.sizeof()
        name = module.image.encode("utf-16-le")
        entry = self.pool.allocate_normal(NONPAGED, size + len(name), tag_to_ulong("ViIn"))
        head = self.sym_drivers
        last = self._rptr(head + P)
        self.memory.write(entry, L.driver_entry.build({
            "Links": {"Flink": head, "Blink": last},
            "Loads": 1, "Unloads": 0,
            "BaseName": {"Length": len(name), "MaximumLength": len(name),
                         "Buffer": entry + size},
            "StartAddress": module.base, "EndAddress": module.base + module.size,
            "Flags": VI_VERIFYING_DIRECTLY, "Signature": VERIFIER_ENTRY_SIGNATURE,
            "PoolPageHeaders": self._empty_slist(), "PoolTrackers": self._empty_slist(),
            "CurrentPagedPoolAllocations": 0, "CurrentNonPagedPoolAllocations": 0,
            "PeakPagedPoolAllocations": 0, "PeakNonPagedPoolAllocations": 0,
            "PagedBytes": 0, "NonPagedBytes": 0, "PeakPagedBytes": 0, "PeakNonPagedBytes": 0,
        }) + name)
        self._wptr(last, entry)                 # last.Flink (the head itself when empty)
        self._wptr(head + P, entry)
        self._add_data("Loads", 1)
        self.free_slots[entry] = []
        return entry

    def _empty_slist(self) -> dict[str, int]:
        if self.P == 8:
            return {"Alignment": 0, "NextEntry": 0}
        return {"Next": 0, "Depth": 0, "Sequence": 0}

    # -- small memory helpers -----------------------------------------------------------------
    def _rptr(self, a: int) -> int:
        return self.ptr.unpack(self.memory.read(a, self.P))[0]

    def _wptr(self, a: int, v: int) -> None:
        self.memory.write(a, self.ptr.pack(v & self.arch.ptr_mask))

    def _field(self, struct_name: str, base: int, name: str) -> tuple[int, struct.Struct]:
        """Address and format of a counter: the byte counts are SIZE_T, the others ULONG."""
        key = (struct_name, name)
        offset = self._offsets.get(key)
        if offset is None:
            offset = self._offsets[key] = self.layouts.offset(struct_name, name)
        return base + offset, self.ptr if name.endswith("Bytes") else self.u32

    def _add(self, struct_name: str, base: int, name: str, delta: int) -> int:
        at, fmt = self._field(struct_name, base, name)
        value = (fmt.unpack(self.memory.read(at, fmt.size))[0] + delta) & ((1 << 8 * fmt.size) - 1)
        self.memory.write(at, fmt.pack(value))
        return value

    def _raise_peak(self, struct_name: str, base: int, name: str, value: int) -> None:
        at, fmt = self._field(struct_name, base, "Peak" + name)
        if fmt.unpack(self.memory.read(at, fmt.size))[0] < value:
            self.memory.write(at, fmt.pack(value))

    def _add_data(self, name: str, delta: int) -> int:
        return self._add("verifier_data", self.sym_data, name, delta)

    def _set_data(self, name: str, value: int) -> None:
        at, fmt = self._field("verifier_data", self.sym_data, name)
        self.memory.write(at, fmt.pack(value))

    # -- the hook -----------------------------------------------------------------------------
    def current_thread(self, cpu: int) -> int:
        return self.threads.current(cpu, self.machine.workload.t) if self.threads else 0

    def _caller(self, stack: tuple[int, ...]) -> tuple[int, int]:
        """(driver entry or 0, the return address into the driver) of an allocation."""
        found = self._callers.get(stack)
        if found is None:
            found = (0, 0)
            for address in stack:
                module = self.machine.symbols.module_at(address)
                if module is None or module.name in KERNEL_MODULES:
                    continue
                found = (self.entries.get(module.name.lower(), 0), address)
                break
            self._callers[stack] = found
        return found

    def allocate(self, pool_type: int, nbytes: int, tag: int, cpu: int = 0,
                 stack: tuple[int, ...] = (), process: int = 0) -> int:
        entry, caller = self._caller(stack)
        if not entry:
            return self.pool.allocate_normal(pool_type, nbytes, tag, cpu, process)
        self._add_data("AllocationsAttempted", 1)
        if nbytes == 0:
            raise raised_in(BugCheck(DRIVER_VERIFIER_DETECTED_VIOLATION, C4_ZERO_BYTES, 0,
                                     pool_type, 0), "VerifierExAllocatePoolWithTag", stack)
        if not tag:
            self._add_data("AllocationsWithNoTag", 1)
        paged = bool(pool_type & PAGED)
        address = 0
        if self.special is not None and nbytes <= self.arch.max_small:
            address = self.special.allocate(paged, nbytes, tag)
        special = bool(address)
        tracking = bool(self.settings.flags & POOL_TRACKING)
        if not address:
            address = self.pool.allocate_normal(pool_type | (VERIFIER if tracking else 0),
                                                nbytes, tag, cpu, process)
        if not address:
            self._add_data("AllocationsFailed", 1)
            return 0
        self._add_data("AllocationsSucceeded", 1)
        if special:
            self._add_data("AllocationsSucceededSpecialPool", 1)
        if tracking:
            self._track(entry, address, nbytes, tag, caller, paged)
        if self.traces:
            self._log(address, nbytes, cpu, self.allocate_frames + stack)
        return address

    def free(self, address: int, tag: int = 0, cpu: int = 0, stack: tuple[int, ...] = ()) -> None:
        address &= self.arch.ptr_mask
        special = self.special if self.special and self.special.contains(address) else None
        if self.traces:
            size = special.requested(address) if special else self._block_bytes(address)
            self._log(address, size, cpu, self.free_frames + stack)
        if special:
            try:
                special.free(address)
            except BugCheck as bc:
                raise raised_in(bc, ("MmFreeSpecialPool", "ExFreePoolWithTag"), stack)
        else:
            self.pool.free_normal(address, tag, cpu)
        if address in self.tracked:
            self._untrack(address)

    def _block_bytes(self, address: int) -> int:
        """The bytes the block at `address` holds from that address on (its header, before
        the address, excluded, in the unsigned arithmetic of a SIZE_T: a corrupted BlockSize 0
        wraps), or 0 if it is not a readable block."""
        small = bool(address & (PAGE_SIZE - 1))
        if small and not self.memory.is_mapped(address - self.arch.header):
            return 0
        try:
            charged = self.pool.block_info(address)[1]
        except BugCheck:
            return 0
        return (charged - self.arch.header) & self.arch.ptr_mask if small else charged

    def _log(self, address: int, size: int, cpu: int, frames: tuple[int, ...]) -> None:
        """ViPoolLogStackTrace: the next record of the ring."""
        index = (self.machine.g.read_u32(self.sym_index) + 1) & 0xFFFFFFFF
        self.machine.g.write_u32(self.sym_index, index)
        slot = self.traces + (index & (LOG_LENGTH - 1)) * self.record.size
        trace = (frames + (0,) * POOL_TRACE_FRAMES)[:POOL_TRACE_FRAMES]
        self.memory.write(slot, self.record.pack(address, size, self.current_thread(cpu), *trace))

    # -- pool tracking ------------------------------------------------------------------------
    def _track(self, entry: int, address: int, nbytes: int, tag: int, caller: int,
               paged: bool) -> None:
        slots = self.free_slots[entry]
        if not slots and not self._grow(entry):
            self._add_data("UnTrackedPool", 1)
            return
        slot = slots.pop()
        self.memory.write(slot, self.entry.pack(address, caller, nbytes, tag & 0xFFFFFFFF))
        self.tracked[address] = (slot, entry, nbytes, paged)
        self._count(entry, paged, nbytes, 1)

    def _untrack(self, address: int) -> None:
        slot, entry, nbytes, paged = self.tracked.pop(address)
        self.memory.write(slot, bytes(self.entry.size))
        self.free_slots[entry].append(slot)
        self._count(entry, paged, nbytes, -1)

    def _grow(self, entry: int) -> bool:
        """Another page of _VI_POOL_ENTRYs for a driver, pushed on its PoolPageHeaders."""
        page = self.pool.allocate_normal(NONPAGED, PAGE_SIZE, tag_to_ulong("Vepp"))
        if not page:
            return False
        L = self.layouts
        first_page = "NextEntry" if self.P == 8 else "Next"
        link = entry + L.offset("driver_entry", f"PoolPageHeaders.{first_page}")
        self.memory.write(page, L.pool_page_header.build({
            "NextPage": self._rptr(link), "VerifierEntry": entry,
            "Signature": VERIFIER_ENTRY_SIGNATURE}))
        self._wptr(link, page)
        size = self.entry.size
        first = -(-L.pool_page_header.sizeof() // size) * size
        self.free_slots[entry] += reversed(range(page + first, page + PAGE_SIZE, size))
        return True

    def _count(self, entry: int, paged: bool, nbytes: int, sign: int) -> None:
        kind = "Paged" if paged else "NonPaged"
        for struct_name, base in (("driver_entry", entry), ("verifier_data", self.sym_data)):
            count = self._add(struct_name, base, f"Current{kind}PoolAllocations", sign)
            total = self._add(struct_name, base, f"{kind}Bytes", sign * nbytes)
            if sign > 0:
                self._raise_peak(struct_name, base, f"{kind}PoolAllocations", count)
                self._raise_peak(struct_name, base, f"{kind}Bytes", total)

    def disable(self) -> None:
        """`!verifier -disable`: stop verifying new allocations until the next boot; blocks
        already in special pool or tracked are still freed through the hook."""
        self._set_data("Level", 0)
        self.entries.clear()
        self._callers.clear()

    # -- unloading ----------------------------------------------------------------------------
    def driver_unloading(self, name: str, stack: tuple[int, ...] = ()) -> None:
        """MmUnloadSystemImage of a verified driver: with pool tracking, allocations it has not
        freed are bug check 0xC4/0x62 (name, its verifier entry, how many)."""
        entry = self.entries.get(name.lower().removesuffix(".sys"))
        if not entry:
            return
        left = sum(1 for _, e, _, _ in self.tracked.values() if e == entry)
        if left:
            name_at = entry + self.layouts.offset("driver_entry", "BaseName")
            raise raised_in(BugCheck(DRIVER_VERIFIER_DETECTED_VIOLATION,
                                     C4_UNLOAD_WITH_ALLOCATIONS, name_at, entry, left),
                            ("MmUnloadSystemImage", "IopUnloadDriver"), stack)
        self._add("driver_entry", entry, "Unloads", 1)
        self._add_data("Unloads", 1)
