"""How the machine stops: the processor, thread and call stack of a bug check, in memory.

KeBugCheckEx records the code and parameters in nt!KiBugCheckData (machine.py); this module
records the rest of what the debugger shows after a stop, where a dump carries it: the
processor that owns the bug check (nt!KeBugCheckOwner), its current thread
(KPRCB.CurrentThread), and its stack.  The stack is a chain of frames in that processor's
kernel stack, each [caller's frame, return address, four arguments] (the x86 EBP frame; x64
is modelled the same way), and the debugger starts from the context in
KPRCB.ProcessorState.ContextFrame (instruction, stack and frame pointers) as it does on a
real target.

The kernel routine that raised a bug check and its caller's return addresses are attached to
the exception with `raised_in` (innermost first: a routine that already attached its place
keeps it); the stop adds the frames of the debugger break on top:
RtlpBreakWithStatusInstruction <- KiBugCheckDebugBreak <- KeBugCheck2 <- KeBugCheckEx.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

from construct import Array, Construct, Int8ul, Int16ul, Int32ul, Int64ul, Padding, Struct

from .arch import Arch
from .bugcheck import BugCheck
from .layouts import field_offsets
from .modules import frames as resolve_frames

if TYPE_CHECKING:  # pragma: no cover
    from .memory import AddressSpace
    from .ntdata import KernelGlobals
    from .symbols import Module, SymbolTable


class Host(Protocol):
    """What the stop recorder uses of its machine."""

    arch: Arch
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

# The frames of each routine that raises bug checks, by logical name, as `Function+0xoffset`.
ROUTINES: dict[str, dict[str, str]] = {
    "x86": {
        "ExAllocatePoolWithTag": "ExAllocatePoolWithTag+0x4f1",
        "ExFreePoolWithTag": "ExFreePoolWithTag+0x1b1",
        "MmAccessFault": "MmAccessFault+0x10c6",
        "KiPageFault": "KiTrap0E+0xdc",
        "MmFreeSpecialPool": "MmFreeSpecialPool+0x15c",
        "VerifierExAllocatePoolWithTag": "VerifierExAllocatePoolWithTag+0x21",
        "VerifierFreePoolWithTag": "VerifierFreePoolWithTag+0x1d",
        "MmUnloadSystemImage": "MmUnloadSystemImage+0x1d0",
        "IopUnloadDriver": "IopUnloadDriver+0x2a6",
    },
    "x64": {
        "ExAllocatePoolWithTag": "ExAllocatePoolWithTag+0x5d3",
        "ExFreePoolWithTag": "ExFreePoolWithTag+0x780",
        "MmAccessFault": "MmAccessFault+0x1f2d",
        "KiPageFault": "KiPageFault+0x16e",
        "MmFreeSpecialPool": "MmFreeSpecialPool+0x2a4",
        "VerifierExAllocatePoolWithTag": "VerifierExAllocatePoolWithTag+0x45",
        "VerifierFreePoolWithTag": "VerifierFreePoolWithTag+0x30",
        "MmUnloadSystemImage": "MmUnloadSystemImage+0x2e0",
        "IopUnloadDriver": "IopUnloadDriver+0x3f1",
    },
}
BREAK_FRAMES: dict[str, tuple[str, ...]] = {
    "x86": ("RtlpBreakWithStatusInstruction", "KiBugCheckDebugBreak+0x1c",
            "KeBugCheck2+0x68b", "KeBugCheckEx+0x1e"),
    "x64": ("RtlpBreakWithStatusInstruction", "KiBugCheckDebugBreak+0x12",
            "KeBugCheck2+0x71e", "KeBugCheckEx+0x104"),
}
BREAK_IN_FRAMES = ("RtlpBreakWithStatusInstruction", "KdCheckForDebugBreak+0x22",
                   "KeUpdateRunTime+0x51", "KiIdleLoop+0x1a")

KSTACK_SIZE = 0x6000
KSTACK_REGION = 0x5000000            # kernel stacks start this far after the first driver image
FRAME_ARGS = 4

# The start of a KPRCB, through ProcessorState.ContextFrame's stack, frame and instruction
# pointers (Windows 7 SP1 offsets).
KPRCB_X86 = Struct(
    "MinorVersion" / Int16ul,
    "MajorVersion" / Int16ul,
    "CurrentThread" / Int32ul,
    "NextThread" / Int32ul,
    "IdleThread" / Int32ul,
    Padding(0x18 - 0x10 + 0xB4),     # ProcessorState at 0x18, ContextFrame.Ebp at +0xb4
    "Ebp" / Int32ul,
    "Eip" / Int32ul,
    "SegCs" / Int32ul,
    "EFlags" / Int32ul,
    "Esp" / Int32ul,
)
KPRCB_X64 = Struct(
    "MxCsr" / Int32ul,
    "LegacyNumber" / Int8ul,
    "ReservedMustBeZero" / Int8ul,
    "InterruptRequest" / Int8ul,
    "IdleHalt" / Int8ul,
    "CurrentThread" / Int64ul,
    "NextThread" / Int64ul,
    "IdleThread" / Int64ul,
    Padding(0x40 - 0x20 + 0xE0 + 0x98),   # ProcessorState at 0x40, ContextFrame at +0xe0
    "Rsp" / Int64ul,
    "Rbp" / Int64ul,
    Padding(0xF8 - 0xA8),
    "Rip" / Int64ul,
)
KPRCB: dict[str, Construct] = {"x86": KPRCB_X86, "x64": KPRCB_X64}
# (instruction, stack, frame) pointer field names
CONTEXT_REGISTERS: dict[str, tuple[str, str, str]] = {
    "x86": ("Eip", "Esp", "Ebp"), "x64": ("Rip", "Rsp", "Rbp")}


def stack_frame(arch: Arch) -> Construct:
    """One frame of a stop stack: the caller's frame, the return address, the arguments."""
    ptr = Int64ul if arch.ptr_size == 8 else Int32ul
    return Struct("Next" / ptr, "ReturnAddress" / ptr, "Args" / Array(FRAME_ARGS, ptr))


def raised_in(bc: BugCheck, routines: str | tuple[str, ...],
              stack: tuple[int, ...] = ()) -> BugCheck:
    """Attach where the kernel raised `bc`: its routines (innermost first, logical names of
    ROUTINES) and the caller's return addresses, unless an inner routine already did."""
    if bc.where is None:
        bc.where = ((routines,) if isinstance(routines, str) else tuple(routines), tuple(stack))
    return bc


class StopRecorder:
    """Publishes what a stop writes (nt!KeBugCheckOwner, the kernel stacks) and writes it."""

    def __init__(self, machine: Host):
        arch = machine.arch
        self.arch = arch
        self.machine = machine
        for name, rva in STOP_FUNCTIONS.items():
            if name not in machine.nt.symbols:
                machine.nt.add(name, arch.nt_base + rva)
        self.sym_owner = machine.g.var("KeBugCheckOwner", 4)
        self.stacks = (arch.driver_base + KSTACK_REGION) & arch.ptr_mask
        machine.memory.map(self.stacks, machine.processors * KSTACK_SIZE)
        self.frame = stack_frame(arch)
        self.prcb_fields = field_offsets(KPRCB[arch.name])
        self.registers = CONTEXT_REGISTERS[arch.name]
        self.ptr = struct.Struct("<Q" if arch.ptr_size == 8 else "<I")

    def _resolve(self, names: tuple[str, ...]) -> tuple[int, ...]:
        return resolve_frames(self.machine.symbols, tuple(f"nt!{n}" for n in names))

    def record(self, bc: BugCheck, cpu: int, thread: int) -> None:
        """The stop of `bc` on `cpu`: owner, current thread, the stack down to the caller."""
        routines, stack = bc.where or ((), ())
        table = ROUTINES[self.arch.name]
        code_args = (bc.code, *bc.params[:FRAME_ARGS - 1])
        none = (0,) * FRAME_ARGS
        breaks = self._resolve(BREAK_FRAMES[self.arch.name])
        chain = [(breaks[0], none)] + [(a, code_args) for a in breaks[1:]]
        chain += [(a, none) for a in self._resolve(tuple(table[r] for r in routines)) + stack]
        self.machine.g.write_u32(self.sym_owner, cpu)
        self._write(cpu, thread, chain)

    def record_hit(self, cpu: int, thread: int, routine: str, sign: int,
                   stack: tuple[int, ...]) -> None:
        """nt!PoolHitTag: the tag tracker executed DbgBreakPoint inside `routine`."""
        tracker = "ExpInsertPoolTracker+0x1c" if sign > 0 else "ExpRemovePoolTracker+0x1c"
        offset = "+0x1d1" if routine == "ExAllocatePoolWithTag" else "+0x1a7"
        none = (0,) * FRAME_ARGS
        chain = self._resolve(("DbgBreakPoint", tracker, routine + offset)) + stack
        self._write(cpu, thread, [(a, none) for a in chain])

    def record_break(self, cpu: int, thread: int) -> None:
        """A break-in on `cpu` (the debugger stopped a running machine)."""
        self._write(cpu, thread, [(a, (0,) * FRAME_ARGS)
                                  for a in self._resolve(BREAK_IN_FRAMES)])

    def _write(self, cpu: int, thread: int, chain: list[tuple[int, tuple[int, ...]]]) -> None:
        memory = self.machine.memory
        base = self.stacks + cpu * KSTACK_SIZE
        memory.fill(base, KSTACK_SIZE, 0)
        # frames from the outermost (near the top of the stack) down to the innermost
        at = base + KSTACK_SIZE - 0x100
        frames: list[int] = []
        for address, _ in reversed(chain):
            at -= 0x40 + ((address >> 4) & 7) * 0x10
            frames.append(at)
        frames.reverse()
        for i, (_, args) in enumerate(chain):
            outer = i + 1 < len(chain)
            memory.write(frames[i], self.frame.build({
                "Next": frames[i + 1] if outer else 0,
                "ReturnAddress": chain[i + 1][0] if outer else 0,
                "Args": [a & self.arch.ptr_mask for a in args]}))
        prcb = self.machine.g.read_ptr(self.machine.symbols.resolve("nt!KiProcessorBlock")
                                       + cpu * self.arch.ptr_size)
        ip, sp, fp = self.registers
        values = {ip: chain[0][0], sp: frames[0], fp: frames[0], "CurrentThread": thread}
        for name, value in values.items():
            memory.write(prcb + self.prcb_fields[name], self.ptr.pack(value & self.arch.ptr_mask))
