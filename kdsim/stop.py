"""How the machine stops: the processor, thread and call stack of a bug check, in memory.

KeBugCheckEx records the code and parameters in nt!KiBugCheckData (machine.py); this module
records the rest of what the debugger shows after a stop, where a dump carries it: the
processor that owns the bug check (nt!KeBugCheckOwner), its current thread
(KPRCB.CurrentThread), and the call stack on that thread's kernel stack, below its
InitialStack (the stack's pages mapped when first used).  A break-in stops a processor in its
idle thread (kdsim/idle.py); a bug check or a PoolHitTag break stops it in the thread the
machine says runs there, or in its idle thread when none does yet (before boot).  A thread
without a kernel stack yet (the verifier's threads on a machine whose object manager has not
booted) keeps its stack frames on the processor's idle stack.  Each frame is [caller's frame,
return address, four arguments] (the x86 EBP frame; x64 is modelled the same way), and the
debugger starts from the register context the stop saves in KPRCB.ProcessorState.ContextFrame
(the profile's `context`: instruction, stack and frame pointers, the kernel's segment
selectors and flags (the layout's defaults), and for a bug check on x64 the code and first
parameters in rcx, rdx, r8, r9, as KeBugCheckEx received them), as it does on a real target.

The kernel routine that raised a bug check and its caller's return addresses are attached to
the exception with `raised_in` (innermost first: a routine that already attached its place
keeps it); the stop adds the frames of the debugger break on top:
RtlpBreakWithStatusInstruction <- KiBugCheckDebugBreak <- KeBugCheck2 <- KeBugCheckEx.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

from .bugcheck import BugCheck
from .idle import IdleThreads
from .layouts import FRAME_ARGS, PAGE_MASK, PAGE_SIZE, profile_for
from .memory import MemoryFault
from .modules import frames as resolve_frames
from .processes import KERNEL_STACK

if TYPE_CHECKING:  # pragma: no cover
    from .arch import Arch
    from .memory import AddressSpace
    from .ntdata import KernelGlobals
    from .symbols import Module, SymbolTable


class Host(Protocol):
    """What the stop recorder uses of its machine."""

    arch: "Arch"
    memory: "AddressSpace"
    symbols: "SymbolTable"
    nt: "Module"
    g: "KernelGlobals"
    processors: int


# nt functions the stop stacks pass through that modules.NT_FUNCTIONS does not publish (RVA).
STOP_FUNCTIONS: dict[str, int] = {
    "RtlpBreakWithStatusInstruction": 0x7FA10,
    "KdCheckForDebugBreak": 0x7FA40,
    "KeUpdateRunTime": 0x7FB80,
    "KiIdleLoop": 0x7FD00,
    "KeBugCheck2": 0x80C10,
    "KiTrap0E": 0x81E00,
    "MmFreeSpecialPool": 0x1C2800,
    "MmUnloadSystemImage": 0x1C3400,
    "IopUnloadDriver": 0x3A4000,
}

BREAK_IN_FRAMES = ("RtlpBreakWithStatusInstruction", "KdCheckForDebugBreak+0x22",
                   "KeUpdateRunTime+0x51", "KiIdleLoop+0x1a")
FIRST_FRAME = 0x40                   # below InitialStack: the stop's trap frame


def raised_in(bc: BugCheck, routines: str | tuple[str, ...],
              stack: tuple[int, ...] = ()) -> BugCheck:
    """Attach where the kernel raised `bc`: its routines (innermost first, keys of the
    profile's `routines`) and the caller's return addresses, unless an inner routine already
    did."""
    if bc.where is None:
        bc.where = ((routines,) if isinstance(routines, str) else tuple(routines), tuple(stack))
    return bc


class StopRecorder:
    """Publishes what a stop writes (nt!KeBugCheckOwner; the Idle process and the idle
    threads, every processor idling from boot) and writes it."""

    def __init__(self, machine: Host):
        arch = machine.arch
        self.arch = arch
        self.machine = machine
        for name, rva in STOP_FUNCTIONS.items():
            if name not in machine.nt.symbols:
                machine.nt.add(name, arch.nt_base + rva)
        self.sym_owner = machine.g.var("KeBugCheckOwner", 4)
        self.idle = IdleThreads(machine)
        profile = self.profile = profile_for(arch)
        self.frame = profile.stack_frame
        self.prcb_thread = profile.offset("kprcb", "CurrentThread")
        self.registers = profile.context_registers
        self.ptr = struct.Struct("<Q" if arch.ptr_size == 8 else "<I")
        for cpu in range(machine.processors):
            self.record_idle(cpu)

    def _resolve(self, names: tuple[str, ...]) -> tuple[int, ...]:
        return resolve_frames(self.machine.symbols, tuple(f"nt!{n}" for n in names))

    def record(self, bc: BugCheck, cpu: int, thread: int) -> None:
        """The stop of `bc` on `cpu`: owner, current thread, the stack down to the caller."""
        routines, stack = bc.where or ((), ())
        table = self.profile.routines
        code_args = (bc.code, *bc.params[:FRAME_ARGS - 1])
        none = (0,) * FRAME_ARGS
        breaks = self._resolve(self.profile.break_frames)
        chain = [(breaks[0], none)] + [(a, code_args) for a in breaks[1:]]
        chain += [(a, none) for a in self._resolve(tuple(table[r] for r in routines)) + stack]
        self.machine.g.write_u32(self.sym_owner, cpu)
        names = self.profile.bugcheck_registers
        self._write(cpu, thread, chain, dict(zip(names, (bc.code, *bc.params))))

    def record_hit(self, cpu: int, thread: int, routine: str, sign: int,
                   stack: tuple[int, ...]) -> None:
        """nt!PoolHitTag: the tag tracker executed DbgBreakPoint inside `routine`."""
        tracker = "ExpInsertPoolTracker+0x1c" if sign > 0 else "ExpRemovePoolTracker+0x1c"
        offset = "+0x1d1" if routine == "ExAllocatePoolWithTag" else "+0x1a7"
        none = (0,) * FRAME_ARGS
        chain = self._resolve(("DbgBreakPoint", tracker, routine + offset)) + stack
        self._write(cpu, thread, [(a, none) for a in chain])

    def record_break(self, cpu: int) -> None:
        """A break-in on `cpu` (the debugger stopped a running machine): in its idle loop."""
        self._write(cpu, self.idle.threads[cpu], [(a, (0,) * FRAME_ARGS)
                                                  for a in self._resolve(BREAK_IN_FRAMES)])

    def record_idle(self, cpu: int) -> None:
        """`cpu` idling, as every processor does from boot: in KiIdleLoop on its idle
        thread's stack."""
        self._write(cpu, self.idle.threads[cpu], [(a, (0,) * FRAME_ARGS)
                                                  for a in self._resolve(BREAK_IN_FRAMES[-1:])])

    def _stack(self, thread: int) -> tuple[int, int] | None:
        """(StackLimit, InitialStack) of `thread`, its pages mapped; None when it has none
        (or the debugger wrote bounds no kernel stack has)."""
        memory, profile = self.machine.memory, self.profile
        field = lambda name: int(self.ptr.unpack(memory.read(   # noqa: E731
            thread + profile.offset("ethread", name), self.ptr.size))[0])
        try:
            initial, limit, base = (field("Tcb.InitialStack"), field("Tcb.StackLimit"),
                                    field("Tcb.StackBase"))
        except MemoryFault:
            return None
        if not (limit < initial < base and base - limit <= KERNEL_STACK[self.arch.ptr_size]
                and not limit & PAGE_MASK):
            return None
        for page in range(limit, base, PAGE_SIZE):
            if not memory.is_mapped(page):
                memory.map(page, PAGE_SIZE)
        return limit, initial

    def _write(self, cpu: int, thread: int, chain: list[tuple[int, tuple[int, ...]]],
               registers: dict[str, int] | None = None) -> None:
        """The stack of `chain` (innermost first) on `thread`'s kernel stack (see the
        module's docstring for a thread with none), the context that starts it (with
        `registers` besides the pointers) and the thread in `cpu`'s KPRCB."""
        memory = self.machine.memory
        thread = thread or self.idle.threads[cpu]
        found = self._stack(thread) or self._stack(self.idle.threads[cpu])
        assert found is not None, "an idle thread always has its kernel stack"
        limit, initial = found
        memory.fill(limit, initial - limit, 0)
        # frames from the outermost (just below InitialStack) down to the innermost
        at = initial - FIRST_FRAME
        frames: list[int] = []
        for address, _ in reversed(chain):
            at -= 0x40 + ((address >> 4) & 7) * 0x10
            frames.append(at)
        assert frames[-1] >= limit, "a stop's frames overflow the kernel stack"
        frames.reverse()
        for i, (_, args) in enumerate(chain):
            outer = i + 1 < len(chain)
            memory.write(frames[i], self.frame.build({
                "Next": frames[i + 1] if outer else 0,
                "ReturnAddress": chain[i + 1][0] if outer else 0,
                "Args": [a & self.arch.ptr_mask for a in args]}))
        prcb = self.machine.g.read_ptr(self.machine.nt.symbols["KiProcessorBlock"]
                                       + cpu * self.arch.ptr_size)
        ip, sp, fp = self.registers
        mask = self.arch.ptr_mask
        values = {name: value & mask for name, value in (registers or {}).items()}
        values.update({ip: chain[0][0] & mask, sp: frames[0], fp: frames[0]})
        memory.write(prcb + self.profile.context_frame, self.profile.context.build(values))
        memory.write(prcb + self.prcb_thread, self.ptr.pack(thread & mask))

