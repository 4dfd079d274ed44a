"""The simulated Windows 7 machine: memory, modules, the pool, the workload, and how it stops.

A scenario boots a machine and plays its boot workload (`kdsim.scenarios.boot`); `step(n)` lets
the workload run on; a BugCheck raised anywhere in the kernel is recorded in nt!KiBugCheckData
(what the debugger reads) and stops the machine, as KeBugCheckEx would.  `target()` is the
debugger's view of it, with the live control surface (kdsim/live.py).
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Protocol

from .arch import Arch
from .bugcheck import KMODE_EXCEPTION_NOT_HANDLED, BugCheck
from .images import DriverImages
from .layouts import profile_for
from .live import LiveControl
from .memory import AddressSpace, MemoryFault
from .mm import DEFAULT_MEMORY, MachineMemory, MemoryManager
from .modules import ModuleSpec, load_modules
from .ntdata import KernelGlobals
from .objects import ObjectManager
from .pool import PoolManager, PoolSettings
from .stop import StopRecorder, raised_in
from .target import Target
from .verifier import KERNEL_MODULES, Verifier, VerifierSettings
from .workload import Workload

DEFAULT_PROCESSORS = 2
Progress = Callable[[str, int, int], None]    # a cold boot's (phase, ticks done, ticks in all)
STATUS_ASSERTION_FAILURE = 0xC0000420


class Booter(Protocol):
    """What booted a machine (a scenario), so that a reboot boots it the same way."""

    def boot(self, arch: str | None = None, seed: int = 0, scale: float = 1.0,
             progress: Progress | None = None, **options: Any) -> "Machine": ...


class Machine:
    def __init__(self, arch: Arch, seed: int = 0, processors: int = DEFAULT_PROCESSORS,
                 memory: MachineMemory | None = None, settings: PoolSettings | None = None,
                 scenario: str = "default", verifier: "VerifierSettings | str | None" = None,
                 modules: tuple[ModuleSpec, ...] = ()):
        self.arch = arch
        self.seed = seed
        self.scenario = scenario
        self.scale = 1.0                   # the scenario's size (set by Scenario.boot)
        self.booted_by: Booter | None = None      # the scenario that booted it, if any
        self.processors = processors
        self.memory = AddressSpace()
        self.symbols, self.nt = load_modules(arch, modules)   # a lab's drivers too
        self.images = DriverImages(arch, self.memory, self.symbols)
        self.g = KernelGlobals(arch, self.memory, self.nt)
        P = arch.ptr_size
        self.sym_bugcheck = self.g.var("KiBugCheckData", 5 * P)
        self.g.write_u32(self.g.var("KeNumberProcessors", 4), processors)
        self.config = memory or DEFAULT_MEMORY[arch.name]
        self.settings = settings or PoolSettings(
            paged_pools=4 if processors > 1 else 2,
            deferred_frees=self.config.physical_pages >= 127 * 1024)
        self.mm = MemoryManager(arch, self.memory, self.g, self.config)
        self.pool = PoolManager(arch, self.memory, self.g, self.mm, processors, self.settings)
        self.objects = ObjectManager(self)       # its globals and objects come later
        self.workload = Workload(self, seed)
        self.crash: BugCheck | None = None
        # a Python exception the simulator raised while running (a bug of the simulator; see
        # `step`), kept for tests and debugging
        self.internal_error: Exception | None = None
        # published last, so that turning them on moves no address published before them
        self.stops = StopRecorder(self)
        self.verifier = Verifier(self, verifier)
        self.stops.record_break(0)
        self.objects.publish()
        self.system_time = profile_for(arch).system_time
        self.sym_tick = self.g.var("KeTickCount", self.system_time.sizeof())

    # -- life cycle ------------------------------------------------------------------------
    def reboot(self, progress: Progress | None = None) -> "Machine":
        """The machine booted again as it was (its scenario, arch, seed and scale; a machine
        built directly, from its arch, seed, processors and memory) with the Driver Verifier
        settings left for the next boot; a cold boot reports to `progress`."""
        pending = self.verifier.pending
        if self.booted_by is None:
            return Machine(self.arch, self.seed, self.processors, self.config,
                           scenario=self.scenario, verifier=pending)
        return self.booted_by.boot(self.arch.name, self.seed, self.scale, progress=progress,
                                   verifier=pending)

    def step(self, n: int) -> BugCheck | None:
        """Let the workload run n ticks; returns the bug check if the machine stopped."""
        if self.crash is not None:
            return self.crash
        try:
            self.workload.step(n)
        except BugCheck as bc:
            self.stop(bc)
        except Exception as exc:  # the last resort: never the debugger's crash
            # Every stop of the simulated kernel is a BugCheck raised where Windows stops; any
            # other exception is a bug of the simulator.  The machine stops as on an unhandled
            # kernel assertion rather than taking the debugger down, and keeps the exception
            # (tests/kdsim/test_corruption.py proves this never happens).
            self.internal_error = exc
            self.stop(BugCheck(KMODE_EXCEPTION_NOT_HANDLED, STATUS_ASSERTION_FAILURE, 0, 0, 0))
        self._publish_ticks()
        return self.crash

    def _publish_ticks(self) -> None:
        """nt!KeTickCount: the workload's clock, in ticks since boot, as Windows keeps it."""
        t = self.workload.t
        self.memory.write(self.sym_tick, self.system_time.build(
            {"LowPart": t & 0xFFFFFFFF, "High1Time": t >> 32, "High2Time": t >> 32}))

    def stop(self, bc: BugCheck) -> None:
        """KeBugCheckEx: record the code and parameters where the debugger reads them."""
        self.crash = bc
        fmt = "<5" + ("I" if self.arch.ptr_size == 4 else "Q")
        mask = self.arch.ptr_mask
        self.memory.write(self.sym_bugcheck,
                          struct.pack(fmt, bc.code, *(p & mask for p in bc.params)))
        cpu = self.workload.cpu
        self.stops.record(bc, cpu, self.current_thread(cpu))

    def target(self) -> Target:
        return Target(self.arch, self.memory, self.symbols, self.processors,
                      control=LiveControl(self),
                      meta={"seed": self.seed, "scenario": self.scenario})

    # -- what drivers do ---------------------------------------------------------------------
    def current_process(self) -> int:
        """The EPROCESS the running thread belongs to (0 before the processes exist)."""
        return self.objects.current_process(self.workload.t) if self.objects.booted else 0

    def current_thread(self, cpu: int) -> int:
        """The ETHREAD running on `cpu`: the verifier's when it keeps its own (they are
        System's threads), else a thread of the current process (0 before boot)."""
        if self.verifier.threads is not None:
            return self.verifier.current_thread(cpu)
        return self.objects.processes.current_thread(cpu, self.workload.t)

    def driver_write(self, address: int, data: bytes, ip: int = 0,
                     stack: tuple[int, ...] = ()) -> None:
        """A driver's store from instruction `ip` (its callers' return addresses in `stack`):
        a fault on a bad page is a page fault the kernel bug-checks on, 0x50 or, inside
        special pool, the code KeBugCheck2 rewrites it to (internals.md 12.4)."""
        try:
            self.memory.write(address, data)
        except MemoryFault as fault:
            code = 0x50
            special = self.verifier.special
            if special is not None and special.contains(fault.address):
                module = self.symbols.module_at(ip)
                code = special.fault_code(fault.address, module is not None
                                          and module.name not in KERNEL_MODULES)
            bc = BugCheck(code, fault.address, 1, ip, 0)
            raise raised_in(bc, ("MmAccessFault", "KiPageFault"), (ip, *stack)) from None
