"""`?` and `.formats`: the value of a MASM expression as the debugger prints it.

Both show the 64-bit value dbgeng holds.  On an x86 target a value whose high half is zero, or
only the sign extension of its low half, prints as a 32-bit number (docs: Sign Extension,
"Displaying Sign-Extended and 64-Bit Numbers"); anything else, and everything on an x64 target,
prints as 16 digits split by a backtick.  The decimal is the signed 64-bit value, which is why an
x86 kernel address evaluates negative.
"""
from __future__ import annotations

import math
import re
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.arch import Arch

from .. import hints
from ..expr import evaluate64
from ..meta import help_text
from ..registry import all_commands, command

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session


@dataclass(frozen=True)
class Evaluation:
    value: int          # the 64-bit value
    decimal: int        # signed
    hex: str            # as printed: 8 digits, or 16 split by a backtick


@dataclass(frozen=True)
class Formats:
    value: int          # the 64-bit value
    wide: bool          # printed as 64 bits
    unsigned_line: bool  # x64 debuggers add `Decimal (unsigned)`


def shown_as_32(value: int, arch: Arch) -> bool:
    return arch.ptr_size == 4 and (value >> 32 == 0 or value >> 31 == 0x1FFFFFFFF)


def hex_text(value: int, arch: Arch) -> str:
    if shown_as_32(value, arch):
        return f"{value & 0xFFFFFFFF:08x}"
    return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"


def signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def render_evaluation(result: Evaluation, session: "Session") -> str:
    return f"Evaluate expression: {result.decimal} = {result.hex}"


@command("?", syntax="? Expression", render=render_evaluation,
         help="Evaluate a MASM expression (default radix 16) and print it in decimal and hex.\n"
              "0x/0n/0t/0y prefixes, poi() by() wo() dwo() qwo(), nt!Symbol, module+offset.\n"
              "A bare ? lists the commands.")
def evaluate_command(session: "Session", args: str) -> Evaluation | str:
    if not args.strip():
        return help_text(all_commands())
    value = evaluate64(args, session.target, session.settings["radix"])
    hints.say(session, hints.radix(session, args))
    return Evaluation(value, signed64(value), hex_text(value, session.target.arch))


def render_formats(result: Formats, session: "Session") -> str:
    value, wide = result.value, result.wide
    bits = 64 if wide else 32
    shown = value & ((1 << bits) - 1)
    raw = shown.to_bytes(bits // 8, "big")
    low, high = shown & 0xFFFFFFFF, shown >> 32
    lines = ["Evaluate expression:",
             f"  Hex:     {hex_text(value, session.target.arch)}",
             f"  Decimal: {signed64(value)}"]
    if result.unsigned_line:
        lines.append(f"  Decimal (unsigned) : {value}")
    lines += [f"  Octal:   {shown:0{(bits + 2) // 3}o}",
              f"  Binary:  {' '.join(f'{byte:08b}' for byte in raw)}",
              f"  Chars:   {''.join(chr(b) if 0x20 <= b < 0x7F else '.' for b in raw)}",
              f"  Time:    {_ctime(value)}",
              f"  Float:   low {_msvc_g(_as_float(low))} high {_msvc_g(_as_float(high))}",
              f"  Double:  {_msvc_g(struct.unpack('<d', struct.pack('<Q', shown))[0])}"]
    return "\n".join(lines)


def _as_float(value: int) -> float:
    return struct.unpack("<f", struct.pack("<I", value))[0]


def _ctime(value: int) -> str:
    """The value as a time_t in local time, as the debugger's C runtime prints it."""
    if value > 0xFFFFFFFF:
        return "***** Invalid"
    try:
        return time.asctime(time.localtime(value))
    except (OverflowError, OSError, ValueError):
        return "***** Invalid"


def _msvc_g(number: float) -> str:
    """printf("%g") as the Microsoft C runtime of the classic debuggers wrote it: three
    exponent digits (1.6778e+022) and its own names for infinities and NaNs."""
    if math.isnan(number):
        return "-1.#IND" if math.copysign(1.0, number) < 0 else "1.#QNAN"
    if math.isinf(number):
        return "-1.#INF" if number < 0 else "1.#INF"
    return re.sub(r"e([+-])(\d\d)$", r"e\g<1>0\2", f"{number:g}")


@command(".formats", syntax=".formats Expression", render=render_formats,
         help="Show a value in hex, decimal, octal, binary, characters, time and floating point.")
def formats_command(session: "Session", args: str) -> Formats:
    arch = session.target.arch
    value = evaluate64(args, session.target, session.settings["radix"])
    return Formats(value, not shown_as_32(value, arch), arch.ptr_size == 8)
