"""`!analyze [-v]`, `!analyze -show Code [Params]`: the bug check the target stopped at, who is
blamed, and why, in the Win7-era debugger's layout (formats.md 11).

Everything comes from memory: the code and parameters from nt!KiBugCheckData, the owning
processor from nt!KeBugCheckOwner, the stack from that processor's context (core/stack.py).
The followup is the frame the real analyzer settles on: the first frame below KeBugCheckEx
outside the kernel (the driver that called into the pool, or the driver whose instruction
faulted on a special-pool guard page).  When only kernel frames are left, a pool bug check
(0x19, 0xC2, 0xC5) is blamed on `Pool_Corruption` as the real triage does, anything else on
nt; 0xC4/0x62 names the driver in its second parameter.  Without special pool this blames the
victim whose header was found corrupt; with it, the culprit caught at the guard page.

`-v` prints the banner, the bug check's name and description, the arguments with their
meanings, `Debugging Details` (BUGCHECK_STR, the address and its pool region, STACK_TEXT, the
followup keys, FAILURE_BUCKET_ID); without `-v` the short summary (`BugCheck 19, {...}`,
`Probably caused by : ...`), which kd also prints when it opens a crash dump.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.target import BUGCHECK_NAMES, MemoryFault

from ..core.stack import (BugcheckData, Frame, current_thread, read_stack, stack_lines,
                          symbol_of)
from ..errors import DebuggerError
from ..expr import parse_leading
from ..objread import image_name, read_field, unicode_at
from ..poolread import PoolReader
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

BANNER = (
    "*" * 79,
    "*" + " " * 77 + "*",
    "*" + " " * 24 + "Bugcheck Analysis" + " " * 36 + "*",
    "*" + " " * 77 + "*",
    "*" * 79,
)
KERNEL_MODULES = ("nt", "hal")
# what the analyzer says when it cannot find the kernel's bug-check data among the symbols
WRONG_SYMBOLS = "***** Kernel symbols are WRONG. Please fix symbols to do analysis."
POOL_CORRUPTION_CODES = (0x19, 0xC2, 0xC5)
FAULT_CODES = (0x50, 0xCC, 0xCD, 0xD5, 0xD6)

_PAGE_FAULT_ARGS = ("memory referenced", "value 0 = read operation, 1 = write operation",
                    "if non-zero, the address which referenced memory.", "(reserved)")
_SPECIAL_FAULT_TEXT = (
    "This cannot be protected by try-except.",
    "When possible, the guilty driver's name (Unicode string) is printed on",
    "the bugcheck screen and saved in KiBugCheckDriver.",
)
_BEYOND_END = ("N bytes of memory was allocated and more than N bytes are being referenced.",
               *_SPECIAL_FAULT_TEXT)
_FREED = ("Memory was referenced after it was freed.", *_SPECIAL_FAULT_TEXT)
_VERIFIER = (
    "A device driver attempting to corrupt the system has been caught.  This is",
    "because the driver was specified in the registry as being suspect (by the",
    "administrator) and the kernel has enabled substantial checking of this driver.",
    "If the driver attempts to corrupt the system, bugchecks 0xC4, 0xC1 and 0xA will",
    "be among the most commonly seen crashes.",
)

DESCRIPTIONS: dict[int, tuple[str, ...]] = {
    0x19: (
        "The pool is already corrupt at the time of the current request.",
        "This may or may not be due to the caller.",
        "The internal pool links must be walked to figure out a possible cause of",
        "the problem, and then special pool applied to the suspect tags or the driver",
        "verifier to a suspect driver.",
    ),
    0x50: (
        "Invalid system memory was referenced.  This cannot be protected by try-except.",
        "Typically the address is just plain bad or it is pointing at freed memory.",
    ),
    0xC1: (
        "Special pool has detected memory corruption.  Typically the current thread's",
        "stack backtrace will reveal the guilty party.",
    ),
    0xC2: ("The current thread is making a bad pool request.  Typically this is at a bad IRQL "
           "level or double freeing the same allocation, etc.",),
    0xC4: _VERIFIER,
    0xC5: (
        "An attempt was made to access a pageable (or completely invalid) address at an",
        "interrupt request level (IRQL) that is too high.  This is",
        "caused by drivers that have corrupted the system pool.  Run the driver",
        "verifier against any new (or suspect) drivers, and if that doesn't turn up",
        "the culprit, then use gflags to enable special pool.",
    ),
    0xCC: _FREED,
    0xCD: _BEYOND_END,
    0xD5: _FREED,
    0xD6: _BEYOND_END,
}

# Arguments' meanings: per code, per Arg1 (or Arg4 for 0xC1) where they depend on it.
_BAD_POOL_HEADER_ARGS: dict[int, tuple[str, ...]] = {
    0x3: ("the pool freelist is corrupt.", "the pool entry being checked.",
          "the read back flink freelist value (should be the same as 2).",
          "the read back blink freelist value (should be the same as 2)."),
    0x5: ("the adjacent pool block headers are inconsistent.", "one of the pool entries.",
          "(reserved)", "the other pool entry."),
    0x6: ("the pool block header previous size is too large.",
          "the incorrectly calculated previous entry.", "(reserved)", "the bad pool entry."),
    0x7: ("the pool block header size is corrupt.", "0", "(reserved)", "the bad pool entry."),
    0x8: ("the pool block header size is zero.", "0", "(reserved)", "the bad pool entry."),
    0x9: ("the pool block header size is too large.", "the incorrectly calculated next entry.",
          "(reserved)", "the bad pool entry."),
    0xA: ("the pool block header size is corrupt.", "the pool entry that should have been found.",
          "(reserved)", "the virtual address of the page."),
    0x20: ("a pool block header size is corrupt.",
           "The pool entry we were looking for within the page.", "The next pool entry.",
           "(reserved)"),
}
_BAD_POOL_CALLER_ARGS: dict[int, tuple[str | None, ...]] = {
    0x7: ("Attempt to free pool which was already freed", "(reserved)",
          "Memory contents of the pool block", "Address of the block of pool being deallocated"),
    0x42: ("Attempt to free a virtual address which was never in any pool",
           "Address being freed.", "(reserved)", "(reserved)"),
}
_SPECIAL_POOL_ARGS: dict[int, tuple[str, ...]] = {
    0x20: ("address trying to free", "(reserved)", "(reserved)",
           "caller is trying to free pool which is not allocated"),
    0x21: ("address trying to free", "bytes requested", "bytes calculated",
           "caller is trying to free a bad address"),
    0x22: ("address trying to free", "bytes requested", "bytes calculated",
           "caller is trying to free a bad address"),
    0x23: ("address trying to free", "address where bits are corrupted", "(reserved)",
           "caller is freeing an address where nearby bytes within the same page have been "
           "corrupted"),
    0x24: ("address trying to free", "address where bits are corrupted", "(reserved)",
           "caller is freeing an address where bytes after the end of the allocation have been "
           "overwritten"),
}
_VERIFIER_ARGS: dict[int, tuple[str, ...]] = {
    0x00: ("caller is trying to allocate zero bytes", "current IRQL", "pool type",
           "number of bytes"),
    0x62: ("A driver has forgotten to free its pool allocations prior to unloading.",
           "name of the driver having the issue.",
           "verifier internal structure with driver information.",
           "total # of (paged+nonpaged) allocations that weren't freed.\n"
           "\tType !verifier 3 drivername.sys for info on the allocations\n"
           "\tthat were leaked that caused the bugcheck."),
}


def argument_meanings(code: int, params: tuple[int, ...]) -> tuple[str | None, ...]:
    """The description after each `ArgN: value, ` (None: the value alone)."""
    if code == 0x19:
        return _BAD_POOL_HEADER_ARGS.get(params[0], ("", None, None, None))
    if code == 0xC2:
        return _BAD_POOL_CALLER_ARGS.get(
            params[0], ("type of pool violation the caller is guilty of.", None, None, None))
    if code == 0xC1:
        return _SPECIAL_POOL_ARGS.get(params[3], ("address trying to free", None, None,
                                                  "subclass of driver violation."))
    if code == 0xC4:
        return _VERIFIER_ARGS.get(params[0], ("", None, None, None))
    if code == 0xC5:
        return ("memory referenced", "IRQL", "value 0 = read operation, 1 = write operation",
                "address which referenced memory")
    if code == 0x50:
        return ("memory referenced.", "value 0 = read operation, 1 = write operation.",
                "If non-zero, the instruction address which referenced the bad memory\n"
                "\taddress.", "(reserved)")
    if code in FAULT_CODES:
        return _PAGE_FAULT_ARGS
    return (None, None, None, None)


def bugcheck_string(code: int, params: tuple[int, ...]) -> str:
    """BUGCHECK_STR: the code, with the subcode for the pool bug checks."""
    if code in (0x19,):
        return f"0x19_{params[0]:x}"
    if code in (0xC2, 0xC4):
        return f"0x{code:x}_{params[0]:x}"
    if code == 0xC5:
        return f"0xC5_{params[1]:x}"
    if code == 0xC1:
        return f"0xC1_{params[3]:x}"
    return f"0x{code:X}"


def analyzer_symbol(name: str) -> str:
    """`nt!ExFreePoolWithTag+0x1b1` as the analyzer writes it: `nt!ExFreePoolWithTag+1b1`."""
    return name.replace("+0x", "+")


# -- the analysis -------------------------------------------------------------------------------
@dataclass
class Blame:
    frame: Frame | None
    index: int                 # in STACK_TEXT
    symbol: str                # SYMBOL_NAME
    module: str
    image: str
    followup: str              # FOLLOWUP_NAME
    bucket_symbol: str         # what FAILURE_BUCKET_ID ends with


@dataclass
class Analysis:
    code: int
    params: tuple[int, int, int, int]
    name: str
    description: tuple[str, ...]
    meanings: tuple[str | None, ...]
    bugcheck_str: str
    address_key: str | None                     # POOL_ADDRESS / WRITE_ADDRESS / READ_ADDRESS
    address: int
    region: str
    irql: int | None
    frames: list[Frame]                         # STACK_TEXT, from KeBugCheckEx on
    sites: list[str]
    blame: Blame
    verbose: bool
    process_name: str | None = None             # the stopped thread's process, when readable


def _owner(target: "Target") -> int:
    owner = target.resolve("nt!KeBugCheckOwner")
    return target.read_u32(owner) if owner is not None else 0


def _blame(target: "Target", code: int, params: tuple[int, ...], frames: list[Frame],
           sites: list[str]) -> Blame:
    if code == 0xC4 and params[0] == 0x62:
        image = unicode_at(target, params[1])
        module = target.symbols.module(image)
        name = module.name if module else image.rsplit(".", 1)[0]
        return Blame(None, 0, image, name, image, "MachineOwner",
                     f"LEAKED_POOL_IMAGE_{image}")
    for i, frame in enumerate(frames[1:], 1):
        module = target.symbols.module_at(frame.site)
        if module is not None and module.name not in KERNEL_MODULES:
            symbol = analyzer_symbol(sites[i])
            return Blame(frame, i, symbol, module.name, module.image, "MachineOwner", symbol)
    if len(frames) < 2:
        return Blame(None, 0, "", "Unknown_Module", "Unknown_Image", "MachineOwner",
                     "Unknown_Module")
    symbol = analyzer_symbol(sites[1])
    if code in POOL_CORRUPTION_CODES:
        return Blame(frames[1], 1, symbol, "Pool_Corruption", "Pool_Corruption",
                     "Pool_corruption", symbol)
    nt = target.symbols.module("nt")
    return Blame(frames[1], 1, symbol, "nt", nt.image if nt else "ntoskrnl.exe", "MachineOwner",
                 symbol)


def _address(code: int, params: tuple[int, ...]) -> tuple[str | None, int]:
    """The address the analysis annotates with its pool region."""
    if code in FAULT_CODES:
        return ("WRITE_ADDRESS" if params[1] else "READ_ADDRESS"), params[0]
    if code == 0x19 and params[0] in (0x3, 0xA, 0x20):
        return "POOL_ADDRESS", params[1]
    if code == 0x19 and params[0] in (0x5, 0x6, 0x7, 0x8, 0x9):
        return "POOL_ADDRESS", params[3]
    if code == 0xC2 and params[0] == 0x7:
        return "POOL_ADDRESS", params[3]
    if code == 0xC1:
        return "POOL_ADDRESS", params[0]
    return None, 0


def analyze(target: "Target", verbose: bool) -> Analysis:
    if target.resolve("nt!KiBugCheckData") is None:
        raise DebuggerError(WRONG_SYMBOLS)
    stop = target.stop_state()
    if stop is None:
        raise DebuggerError("The target has not stopped at a bug check: nothing to analyze "
                            "(nt!KiBugCheckData is zero).")
    code, params = stop.code, stop.params
    owner = _owner(target)
    frames = read_stack(target, owner)
    start = next((i for i, f in enumerate(frames)
                  if (target.symbolize(f.site) or "").startswith("nt!KeBugCheckEx")), 0)
    frames = frames[start:]
    sites = [symbol_of(target, f.site) for f in frames]
    key, address = _address(code, params)
    region = PoolReader(target).region(address) if key else ""
    return Analysis(code, params, BUGCHECK_NAMES.get(code, f"BUGCHECK_{code:X}"),
                    DESCRIPTIONS.get(code, ()), argument_meanings(code, params),
                    bugcheck_string(code, params), key, address, region,
                    params[1] if code == 0xC5 else None, frames, sites,
                    _blame(target, code, params, frames, sites), verbose,
                    _process_name(target, owner))


def _process_name(target: "Target", processor: int) -> str | None:
    """PROCESS_NAME: the image of the process whose thread the stopped processor runs (Idle
    for a stop in the idle loop), None when the thread or process cannot be read."""
    try:
        thread = current_thread(target, processor)
        return image_name(target, read_field(target, "ethread", thread, "Tcb.ApcState.Process"))
    except (KeyError, MemoryFault):
        return None


# -- rendering ----------------------------------------------------------------------------------
def header_lines(arch: "Arch", code: int, name: str, description: tuple[str, ...],
                 params: tuple[int, ...], meanings: tuple[str | None, ...]) -> list[str]:
    """`NAME (code)`, the description and the `ArgN:` lines (also `!analyze -show`)."""
    lines = [f"{name} ({code:x})", *description, "Arguments:"]
    for n, (value, meaning) in enumerate(zip(params, meanings), 1):
        text = f"Arg{n}: {arch.fmt_ptr(value)}"
        lines.append(text if meaning is None else f"{text}, {meaning}")
    return lines


def probably_caused_by(a: Analysis) -> str:
    if a.blame.frame is None and a.blame.module != "Unknown_Module":
        return f"Probably caused by : {a.blame.image}"
    return f"Probably caused by : {a.blame.image} ( {a.blame.symbol} )"


def short_lines(a: Analysis) -> list[str]:
    params = ", ".join(f"{p:x}" for p in a.params)
    return ["Use !analyze -v to get detailed debugging information.", "",
            f"BugCheck {a.code:X}, {{{params}}}", "", probably_caused_by(a), "",
            f"Followup: {a.blame.followup}", "---------"]


def _verbose_lines(a: Analysis, arch: "Arch") -> list[str]:
    blame = a.blame
    prefix = "X64_" if arch.ptr_size == 8 else ""
    lines = header_lines(arch, a.code, a.name, a.description, a.params, a.meanings)
    lines += ["", "Debugging Details:", "------------------", "", "",
              f"BUGCHECK_STR:  {a.bugcheck_str}", ""]
    if a.address_key:
        lines += [f"{a.address_key}:  {arch.fmt_ptr(a.address)} {a.region}", ""]
    lines += ["DEFAULT_BUCKET_ID:  VISTA_DRIVER_FAULT", ""]
    if a.process_name:
        lines += [f"PROCESS_NAME:  {a.process_name}", ""]
    if a.irql is not None:
        lines += [f"CURRENT_IRQL:  {a.irql:x}", ""]
    if a.frames:
        lines += [f"LAST_CONTROL_TRANSFER:  from {arch.fmt_ptr(a.frames[0].ret)} to "
                  f"{arch.fmt_ptr(a.frames[0].site)}", ""]
    lines += ["STACK_TEXT:  ", *stack_lines(arch, a.frames, a.sites, args=True), "", "",
              "STACK_COMMAND:  kb", ""]
    if blame.frame is not None:
        lines += ["FOLLOWUP_IP: ", blame.symbol,
                  f"{arch.fmt_addr(blame.frame.site)} ??              ???", "",
                  f"SYMBOL_STACK_INDEX:  {blame.index:x}", "", f"SYMBOL_NAME:  {blame.symbol}",
                  ""]
    lines += [f"FOLLOWUP_NAME:  {blame.followup}", "", f"MODULE_NAME: {blame.module}", "",
              f"IMAGE_NAME:  {blame.image}", ""]
    bucket = f"{prefix}{a.bugcheck_str}_{blame.bucket_symbol}"
    lines += [f"FAILURE_BUCKET_ID:  {bucket}", "", f"BUCKET_ID:  {bucket}", "",
              f"Followup: {blame.followup}", "---------"]
    return lines


def analysis_text(result: Analysis, arch: "Arch") -> str:
    body = _verbose_lines(result, arch) if result.verbose else short_lines(result)
    return "\n".join([*BANNER, "", *body])


def render_analysis(result: Analysis, session: "Session") -> str:
    return analysis_text(result, session.target.arch)


def crash_dump_text(target: "Target") -> str:
    """What kd prints about the bug check when it opens a crash dump (the short analysis),
    or '' when the target has not bug-checked."""
    if target.stop_state() is None:
        return ""
    return analysis_text(analyze(target, verbose=False), target.arch)


def render_show(result: BugcheckData, session: "Session") -> str:
    """`!analyze -show`: a code's name, description and arguments only."""
    code, params = result.code, result.params
    return "\n".join(header_lines(session.target.arch, code,
                                  BUGCHECK_NAMES.get(code, f"BUGCHECK_{code:X}"),
                                  DESCRIPTIONS.get(code, ()), params,
                                  argument_meanings(code, params)))


def render(result: object, session: "Session") -> str:
    if isinstance(result, BugcheckData):
        return render_show(result, session)
    assert isinstance(result, Analysis)
    return render_analysis(result, session)


@command("!analyze", syntax="!analyze [-v] | -show Code [Param1 [Param2 [Param3 [Param4]]]]",
         render=render,
         help="Analyze the bug check the target stopped at: its name, description and "
              "arguments, the stack, and the module the analyzer blames (-v: every detail).\n"
              "`-show Code [Params]` describes a bug check code.")
def analyze_command(session: "Session", args: str) -> BugcheckData | Analysis:
    target = session.target
    words = args.split()
    if words and words[0].lower() == "-show":
        rest = args[args.lower().index("-show") + len("-show"):].strip()
        values: list[int] = []
        while rest and len(values) < 5:
            leading = parse_leading(rest, target, session.settings["radix"])
            values.append(leading.value)
            rest = leading.rest.strip()
        if not values:
            raise DebuggerError("Missing bugcheck code")
        p1, p2, p3, p4 = (values[1:] + [0, 0, 0, 0])[:4]
        return BugcheckData(values[0], (p1, p2, p3, p4))
    verbose = any(w.lower().startswith("-v") for w in words)
    unknown = [w for w in words if not w.lower().startswith("-v")]
    if unknown:
        raise DebuggerError(f"Unknown option '{unknown[0]}'")
    return analyze(target, verbose)
