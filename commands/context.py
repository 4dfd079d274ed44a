"""The register context of the processor the debugger is on, as kd names its registers.

A stopped processor's registers are where the stop saved them, as on a real target: the
`_CONTEXT` in its KPRCB.ProcessorState (the profile's `context`, reached through
nt!KiProcessorBlock), so `r`, `@reg` in any expression and `k` read the same bytes, on a
live machine and on a dump alike.  kd's names cover parts of the context's registers too
(`eax` is the low half of `rax` on x64, `ah` bits 8-15 of `eax`, `zf` one bit of `efl`);
`REGISTERS` maps each name to its field, shift and width.

Which processor an expression's registers come from is debugger state, not the target's:
the dispatcher runs each command `on_processor(session.processor)` so that the expression
evaluator, which sees only the target, reads the right context.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Iterator, NamedTuple

from kdsim.layouts import field_offsets
from kdsim.target import MemoryFault

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

_PROCESSOR: ContextVar[int] = ContextVar("processor", default=0)


@contextmanager
def on_processor(processor: int) -> Iterator[None]:
    """Registers read inside the block are those of `processor`."""
    token = _PROCESSOR.set(processor)
    try:
        yield
    finally:
        _PROCESSOR.reset(token)


def current_processor() -> int:
    return _PROCESSOR.get()


class Register(NamedTuple):
    field: str           # the _CONTEXT field it lives in
    shift: int
    bits: int


# the flag bits `r` decodes (name, bit, shown when set, shown when clear), in kd's order
FLAGS = (("of", 11, "ov", "nv"), ("df", 10, "dn", "up"), ("if", 9, "ei", "di"),
         ("sf", 7, "ng", "pl"), ("zf", 6, "zr", "nz"), ("af", 4, "ac", "na"),
         ("pf", 2, "pe", "po"), ("cf", 0, "cy", "nc"))
IOPL_SHIFT = 12
_SEGMENTS = ("cs", "ds", "es", "fs", "gs", "ss")


def _common(wide: bool) -> dict[str, Register]:
    """The names both architectures share; `wide`: the general registers are 64-bit."""
    table: dict[str, Register] = {}
    prefix = "R" if wide else "E"
    for name in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip"):
        field = prefix + name
        table["e" + name] = Register(field, 0, 32)
        table[name] = Register(field, 0, 16)
        if wide:
            table["r" + name] = Register(field, 0, 64)
    for name in "abcd":
        field = f"{prefix}{name}x"
        table[name + "l"] = Register(field, 0, 8)
        table[name + "h"] = Register(field, 8, 8)
    for name in _SEGMENTS:
        table[name] = Register("Seg" + name.capitalize(), 0, 16)
    for n in (0, 1, 2, 3, 6, 7):
        table[f"dr{n}"] = Register(f"Dr{n}", 0, 64 if wide else 32)
    table["efl"] = Register("EFlags", 0, 32)
    table["iopl"] = Register("EFlags", IOPL_SHIFT, 2)
    for name, bit, _, _ in FLAGS:
        table[name] = Register("EFlags", bit, 1)
    return table


def _x64() -> dict[str, Register]:
    table = _common(True)
    for name in ("si", "di", "bp", "sp"):
        table[name + "l"] = Register("R" + name, 0, 8)
    for n in range(8, 16):
        table[f"r{n}"] = Register(f"R{n}", 0, 64)
        table[f"r{n}d"] = Register(f"R{n}", 0, 32)
        table[f"r{n}w"] = Register(f"R{n}", 0, 16)
        table[f"r{n}b"] = Register(f"R{n}", 0, 8)
    return table


REGISTERS: dict[int, dict[str, Register]] = {4: _common(False), 8: _x64()}


def register_names(arch: "Arch") -> dict[str, Register]:
    """kd's register names on this architecture (lower case)."""
    return REGISTERS[arch.ptr_size]


def context_address(target: "Target", processor: int) -> int | None:
    """Where `processor`'s saved context is, or None when the target has no processor
    blocks (a bare test target) or cannot read them."""
    block = target.resolve("nt!KiProcessorBlock")
    if block is None or not 0 <= processor < target.processors:
        return None
    try:
        prcb = target.read_ptr(block + processor * target.arch.ptr_size)
    except MemoryFault:
        return None
    return prcb + target.profile.context_frame if prcb else None


def _slot(target: "Target", processor: int, name: str) -> tuple[Register, int, int] | None:
    """Register `name`, the address of its context field and the field's size."""
    reg = register_names(target.arch).get(name.lower())
    at = context_address(target, processor)
    if reg is None or at is None:
        return None
    context = target.profile.context
    size = next(sub.sizeof() for sub in context.subcons if sub.name == reg.field)
    return reg, at + field_offsets(context)[reg.field], size


def read_register(target: "Target", processor: int, name: str) -> int | None:
    """The value of register `name` (kd's spelling, any case) on `processor`; None when it
    is no register of this architecture or its context cannot be read."""
    slot = _slot(target, processor, name)
    if slot is None:
        return None
    reg, address, size = slot
    try:
        raw = int.from_bytes(target.read(address, size), "little")
    except MemoryFault:
        return None
    return (raw >> reg.shift) & ((1 << reg.bits) - 1)


def write_register(target: "Target", processor: int, name: str, value: int) -> bool:
    """Set register `name` (its bits only) in `processor`'s saved context, where the
    processor resumes from; False when there is no such register or context."""
    slot = _slot(target, processor, name)
    if slot is None:
        return False
    reg, address, size = slot
    mask = ((1 << reg.bits) - 1) << reg.shift
    try:
        raw = int.from_bytes(target.read(address, size), "little")
        target.write(address, ((raw & ~mask) | ((value << reg.shift) & mask))
                     .to_bytes(size, "little"))
    except MemoryFault:
        return False
    return True
