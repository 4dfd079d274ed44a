"""`k`, `kb`, `kn` (the stack of the current processor) and `.bugcheck` (the stop's code).

The stack is walked as the debugger walks it: the processor's KPRCB (through
nt!KiProcessorBlock) holds the context the target stopped in (ProcessorState.ContextFrame:
instruction, stack and frame pointers); from there each frame in the kernel stack gives the
caller's frame, the return address and the arguments (kdsim/stop.py declares both layouts).
Layouts of the Win7-era debugger:

    ChildEBP RetAddr                       (x86, `k`)
    8d5a3b2c 82b30fde nt!KeBugCheckEx+0x1e
    Child-SP          RetAddr           Call Site                      (x64, `k`)
    fffff880`035a5728 fffff800`02ad4b22 nt!KeBugCheckEx

`kb` adds the first three (x86) or four (x64, between colons) arguments, `kn` the frame
number in front.  `.bugcheck` prints `Bugcheck code %08X` and the four arguments as pointers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.layouts import field_offsets
from kdsim.target import MemoryFault

from ..expr import evaluate
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

DEFAULT_FRAMES = 0x100               # .kframes default
X86_ARGS = 3


@dataclass
class Frame:
    child: int                       # ChildEBP / Child-SP
    ret: int                         # RetAddr
    site: int                        # the instruction the frame is at
    args: tuple[int, ...]


def read_stack(target: "Target", processor: int, limit: int = DEFAULT_FRAMES) -> list[Frame]:
    """The frames of `processor`'s stopped context, innermost first."""
    arch = target.arch
    block = target.resolve("nt!KiProcessorBlock")
    if block is None:
        return []
    prcb = target.read_ptr(block + processor * arch.ptr_size)
    fields = field_offsets(target.profile.kprcb)
    ip_name, _, fp_name = target.profile.context_registers
    site = target.read_ptr(prcb + fields[ip_name])
    at = target.read_ptr(prcb + fields[fp_name])
    layout = target.profile.stack_frame
    frames: list[Frame] = []
    while at and site and len(frames) < limit:
        try:
            record = layout.parse(target.read(at, layout.sizeof()))
        except MemoryFault:
            break
        frames.append(Frame(at, record.ReturnAddress, site, tuple(record.Args)))
        at, site = record.Next, record.ReturnAddress
    return frames


def symbol_of(target: "Target", address: int) -> str:
    """A code address as a call site: `nt!KeBugCheckEx+0x1e`, `DrvA+0x1c00`, or the number."""
    return target.symbolize(address) or f"0x{address:x}"


def current_thread(target: "Target", processor: int) -> int:
    """KPRCB.CurrentThread of `processor`."""
    arch = target.arch
    prcb = target.read_ptr(target.symbol("nt!KiProcessorBlock") + processor * arch.ptr_size)
    return target.read_ptr(prcb + target.profile.offset("kprcb", "CurrentThread"))


# -- k ---------------------------------------------------------------------------------------
@dataclass
class StackTrace:
    frames: list[Frame]
    sites: list[str]
    args: bool
    numbers: bool


def _header(arch: "Arch", args: bool, numbers: bool) -> str:
    number = " # " if numbers else ""
    if arch.ptr_size == 4:
        return number + ("ChildEBP RetAddr  Args to Child              " if args
                         else "ChildEBP RetAddr  ")
    if args:
        return (number + "Child-SP          RetAddr           : "
                + "Args to Child".ljust(4 * 18 - 1) + " : Call Site")
    return number + "Child-SP          RetAddr           Call Site"


def stack_lines(arch: "Arch", frames: list[Frame], sites: list[str], args: bool,
                numbers: bool = False) -> list[str]:
    """The rows of `k`/`kb` (and of !analyze's STACK_TEXT, which is `kb` without header)."""
    lines = []
    for i, (frame, site) in enumerate(zip(frames, sites)):
        number = f"{i:02x} " if numbers else ""
        if arch.ptr_size == 4:
            values = frame.args[:X86_ARGS] if args else ()
            cells = " ".join(f"{v:08x}" for v in (frame.child, frame.ret, *values))
            lines.append(f"{number}{cells} {site}")
        elif args:
            shown = " ".join(arch.fmt_addr(v) for v in frame.args)
            lines.append(f"{number}{arch.fmt_addr(frame.child)} {arch.fmt_addr(frame.ret)} : "
                         f"{shown} : {site}")
        else:
            lines.append(f"{number}{arch.fmt_addr(frame.child)} {arch.fmt_addr(frame.ret)} "
                         f"{site}")
    return lines


def render_stack(result: StackTrace, session: "Session") -> str:
    arch = session.target.arch
    return "\n".join([_header(arch, result.args, result.numbers),
                      *stack_lines(arch, result.frames, result.sites, result.args,
                                   result.numbers)])


def backtrace(session: "Session", args: str, with_args: bool, numbers: bool) -> StackTrace:
    target = session.target
    text = args.strip()
    limit = DEFAULT_FRAMES
    if text:
        limit = evaluate(text, target, session.settings["radix"], offset=args.index(text))
    frames = read_stack(target, session.processor, limit)
    return StackTrace(frames, [symbol_of(target, f.site) for f in frames], with_args, numbers)


_K_WALK = ("The stack the current processor stopped in, walked from the context in its "
           "KPRCB.\nColumns: ChildEBP (x86) or Child-SP (x64), RetAddr, call site.")


@command("k", syntax="k [FrameCount]", render=render_stack,
         help=f"Display the call stack of the current processor. {_K_WALK}")
def k(session: "Session", args: str) -> StackTrace:
    return backtrace(session, args, with_args=False, numbers=False)


@command("kb", syntax="kb [FrameCount]", render=render_stack,
         help=f"Display the call stack with the first arguments of each frame. {_K_WALK}")
def kb(session: "Session", args: str) -> StackTrace:
    return backtrace(session, args, with_args=True, numbers=False)


@command("kn", syntax="kn [FrameCount]", render=render_stack,
         help=f"Display the call stack with frame numbers. {_K_WALK}")
def kn(session: "Session", args: str) -> StackTrace:
    return backtrace(session, args, with_args=False, numbers=True)


# -- .bugcheck -------------------------------------------------------------------------------
@dataclass
class BugcheckData:
    """A bug check code and its four parameters: what `.bugcheck` reads from
    nt!KiBugCheckData, and what `!analyze -show` is asked to describe."""

    code: int
    params: tuple[int, int, int, int]


def render_bugcheck(result: BugcheckData, session: "Session") -> str:
    args = " ".join(session.target.arch.fmt_addr(p) for p in result.params)
    return f"Bugcheck code {result.code:08X}\nArguments {args}"


@command(".bugcheck", syntax=".bugcheck", render=render_bugcheck,
         help="Display the bug check code and its four arguments (nt!KiBugCheckData).")
def bugcheck(session: "Session", args: str) -> BugcheckData:
    stop = session.target.stop_state()
    if stop is None:
        return BugcheckData(0, (0, 0, 0, 0))
    return BugcheckData(stop.code, stop.params)
