"""`r`: the registers of the processor the debugger is on, as the stop saved them.

    r                  every register, kd's layout, then the instruction at the ip
    r eax[, ebx ...]   the named registers, `eax=00000019`
    r eax=Expression   set one (a live machine only)

The values are read from the stopped processor's context in its KPRCB (commands/context.py),
so a dump shows what the live machine showed.  Layouts of the Win7-era debugger:

    eax=00000000 ebx=00000000 ecx=00000000 edx=00000000 esi=00000000 edi=00000000
    eip=82a8c110 esp=8d5a3b0c ebp=8d5a3b2c iopl=0         nv up ei pl zr na pe nc
    cs=0008  ss=0010  ds=0023  es=0023  fs=0030  gs=0000             efl=00000246

    rax=0000000000000000 rbx=0000000000000000 rcx=0000000000000019
    ...
     r8=0000000000000000  r9=0000000000000000 r10=0000000000000000
    r11=0000000000000000 r12=0000000000000000 r13=0000000000000000
    r14=0000000000000000 r15=0000000000000000
    iopl=0         nv up ei pl zr na po nc
    cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b             efl=00000246

The simulator keeps no code bytes, so the instruction line is kd's `???` for unreadable code,
except on the break instructions the stops are made of (`int 3`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..context import FLAGS, IOPL_SHIFT, read_register, register_names, write_register
from ..errors import DebuggerError, ParseError
from ..expr import evaluate64
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

# the routines the simulated processors stop on, each an `int 3`
BREAK_INSTRUCTIONS = ("nt!RtlpBreakWithStatusInstruction", "nt!DbgBreakPoint")
_GENERAL_X86 = (("eax", "ebx", "ecx", "edx", "esi", "edi"), ("eip", "esp", "ebp"))
_GENERAL_X64 = (("rax", "rbx", "rcx"), ("rdx", "rsi", "rdi"), ("rip", "rsp", "rbp"),
                ("r8", "r9", "r10"), ("r11", "r12", "r13"), ("r14", "r15"))
_SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
_ASSIGN = re.compile(r"^\s*([A-Za-z]\w*)\s*=(.*)$", re.DOTALL)


@dataclass
class RegisterDump:
    """Every register of the context (None where it cannot be read), the symbol of the
    instruction pointer and what kd would print as its instruction."""

    values: dict[str, int | None]
    site: str | None
    instruction: str


@dataclass(frozen=True)
class NamedRegister:
    name: str
    value: int
    bits: int


@dataclass
class RegisterValues:
    """`r eax, ebx`: the named registers, in the order typed."""

    registers: list[NamedRegister]


def _cell(name: str, value: int | None, digits: int) -> str:
    shown = "?" * digits if value is None else f"{value:0{digits}x}"
    return f"{name}={shown}"


def _flags(efl: int | None) -> str:
    if efl is None:
        return "iopl=?         " + " ".join("??" for _ in FLAGS)
    iopl = (efl >> IOPL_SHIFT) & 3
    return f"iopl={iopl}         " + " ".join(
        on if efl >> bit & 1 else off for _, bit, on, off in FLAGS)


def render_registers(result: RegisterDump | RegisterValues, session: "Session") -> str:
    if isinstance(result, RegisterValues):
        return " ".join(f"{r.name}={r.value:0{max(1, r.bits // 4)}x}"
                        for r in result.registers)
    arch = session.target.arch
    v = result.values
    segments = "  ".join(_cell(name, v[name], 4) for name in _SEGMENTS)
    segment_line = f"{segments}             {_cell('efl', v['efl'], 8)}"
    lines: list[str]
    if arch.ptr_size == 4:
        first, second = _GENERAL_X86
        lines = [" ".join(_cell(n, v[n], 8) for n in first),
                 " ".join(_cell(n, v[n], 8) for n in second) + " " + _flags(v["efl"]),
                 segment_line]
    else:
        lines = [" ".join(_cell(n.rjust(3), v[n], 16) for n in row) for row in _GENERAL_X64]
        lines += [_flags(v["efl"]), segment_line]
    if result.site is not None:
        lines.append(f"{result.site}:")
    lines.append(result.instruction)
    return "\n".join(lines)


def instruction_at(target: "Target", address: int) -> str:
    """kd's disassembly line at `address`: `int 3` on a break instruction, else `???`."""
    where = target.arch.fmt_addr(address)
    if any(target.resolve(name) == address for name in BREAK_INSTRUCTIONS):
        return f"{where} cc              int     3"
    return f"{where} ??              ???"


def register_dump(session: "Session") -> RegisterDump:
    target, cpu = session.target, session.processor
    names = [n for row in (_GENERAL_X86 if target.arch.ptr_size == 4 else _GENERAL_X64)
             for n in row]
    values = {n: read_register(target, cpu, n) for n in [*names, *_SEGMENTS, "efl"]}
    ip = values["eip" if target.arch.ptr_size == 4 else "rip"]
    if ip is None:
        raise DebuggerError("Unable to get register context of the current processor")
    return RegisterDump(values, target.symbolize(ip), instruction_at(target, ip))


def _name_error(args: str, name: str) -> ParseError:
    return ParseError("Bad register", args.find(name))


@command("r", syntax="r [Register[, Register ...]] | r Register=Expression",
         render=render_registers, action_forms=("Register=Expression",),
         help="Display the registers of the current processor as its stop saved them (its "
              "context in the KPRCB), or the named ones; on a live machine, "
              "`r Register=Expression` changes a saved register (the simulated workload does "
              "not run on it).")
def registers(session: "Session", args: str) -> RegisterDump | RegisterValues | None:
    target = session.target
    if not args.strip():
        return register_dump(session)
    assign = _ASSIGN.match(args)
    if assign is not None:
        name, expression = assign.group(1), assign.group(2)
        if name.lower() not in register_names(target.arch):
            raise _name_error(args, name)
        if not target.live:
            raise DebuggerError("Registers of a dump cannot be changed")
        value = evaluate64(expression, target, session.settings["radix"], offset=assign.start(2))
        if not write_register(target, session.processor, name, value):
            raise DebuggerError("Unable to get register context of the current processor")
        return None
    shown: list[NamedRegister] = []
    for name in (part.strip() for part in args.split(",")):
        reg = register_names(target.arch).get(name.lower())
        found = read_register(target, session.processor, name) if reg is not None else None
        if reg is None or found is None:
            raise _name_error(args, name or args.strip())
        shown.append(NamedRegister(name.lower(), found, reg.bits))
    return RegisterValues(shown)
