"""Commands that act on the simulated machine, and what KD prints when the machine stops.

* `g [Ticks]` lets the workload run (0x2710 ticks by default, or until Ctrl+C) and breaks back
  in; when the machine bug-checks meanwhile, KD's `*** Fatal System Error` banner is printed and
  the prompt moves to the processor that owns the bug check.
* `.verifier ...` changes the Driver Verifier settings with the real `verifier` syntax; as on a
  real machine they take effect when it boots again, at `.reboot`.
* `.reboot` restarts the machine from boot: same scenario and seed, the pending verifier
  settings.

They act through the target's control surface (kdsim/control.py), the only commands that may;
none of them can act on a dump: kd answers `No runnable debuggees` there.  The banners are
read from memory (nt!KiBugCheckData, nt!KeBugCheckOwner, nt!MiSuspectDriverList), so opening a
crashed machine or its dump prints the same text (`fatal_error_text`).
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from kdsim.control import FLAG_NAMES, MachineStopped, Stop, VerifierSettings, parse_settings

from .errors import DebuggerError, ParseError
from .expr import evaluate
from .ext.verifier import read_drivers
from .interrupt import INTERRUPTS
from .poolsnapshots import REBOOTED
from .progress import boot_progress, on_terminal
from .registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.control import Control
    from kdsim.target import Target

    from .session import Session

DEFAULT_TICKS = 10000
MAX_TICKS = 0x1000000
BUILD = 7601
BREAK_IN_BANNER = (
    "*" * 79,
    "*" + " " * 77 + "*",
    "*   You are seeing this message because you pressed either                    *",
    "*       CTRL+C (if you run console kernel debugger) or,                       *",
    "*       CTRL+BREAK (if you run GUI kernel debugger),                          *",
    "*   on your debugger machine's keyboard.                                      *",
    "*" + " " * 77 + "*",
    "*                   THIS IS NOT A BUG OR A SYSTEM CRASH                       *",
    "*" + " " * 77 + "*",
    "* If you did not intend to break into the debugger, press the \"g\" key, then   *",
    "* press the \"Enter\" key now.  This message might immediately reappear.  If it *",
    "* does, press \"g\" and \"Enter\" again.                                          *",
    "*" + " " * 77 + "*",
    "*" * 79,
)
TOKEN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
REBOOT_REQUIRED = "The system reboot is required for the changes to take effect."


# -- what KD prints when the target stops ------------------------------------------------------
def stop_processor(target: "Target") -> int:
    """The processor that owns the bug check (0 when the target has not bug-checked)."""
    owner = target.resolve("nt!KeBugCheckOwner")
    if target.stop_state() is None or owner is None:
        return 0
    return target.read_u32(owner)


def _instruction_at(target: "Target", symbol: str) -> list[str]:
    """The `int 3` the processor stopped on, as kd disassembles it."""
    return [f"{symbol}:", f"{target.arch.fmt_addr(target.symbol(symbol))} cc              int     3"]


def _break_instruction(target: "Target") -> list[str]:
    return _instruction_at(target, "nt!RtlpBreakWithStatusInstruction")


def fatal_error_text(target: "Target") -> str:
    """The banner KD prints when the target bug-checks (formats.md 1.7), or '' if it has not."""
    stop = target.stop_state()
    if stop is None:
        return ""
    width = target.arch.hex_digits
    params = ",".join(f"0x{p:0{width}X}" for p in stop.params)
    return "\n".join([
        f"*** Fatal System Error: 0x{stop.code:08x}", " " * 23 + f"({params})", "",
        "Break instruction exception - code 80000003 (first chance)", "",
        "A fatal system error has occurred.",
        "Debugger entered on first try; Bugcheck callbacks have not been invoked.", "",
        "A fatal system error has occurred.", "",
        "For analysis of this file, run !analyze -v", *_break_instruction(target)])


def break_in_text(target: "Target") -> str:
    """What KD prints when it breaks into a running target."""
    return "\n".join(["Break instruction exception - code 80000003 (first chance)",
                      *BREAK_IN_BANNER, *_break_instruction(target)])


def verifier_banner(target: "Target") -> list[str]:
    """Driver Verifier's boot message for each verified driver that is loaded."""
    seed = target.meta.get("seed", 0)
    lines: list[str] = []
    for driver in read_drivers(target):
        if not driver.loaded:
            continue
        # the build's random-looking checkin string, here a function of the machine
        digest = hashlib.sha256(f"{seed}:{driver.name}".encode()).digest()
        token = "".join(TOKEN_ALPHABET[b % len(TOKEN_ALPHABET)] for b in digest[:22])
        lines += ["*" * 79, "*", "* This is the string you add to your checkin description",
                  f"* Driver Verifier: Enabled for {driver.name} on Build {BUILD} {token}",
                  "*", "*" * 79]
    return lines


# -- helpers ----------------------------------------------------------------------------------
def _live(session: "Session", name: str, args: str) -> "Control":
    """The live machine's control; on a dump kd's caret error under the command (a caret
    column counts from the arguments, which follow the name and, when present, one blank)."""
    control = session.target.control
    if control is None:
        raise ParseError("No runnable debuggees", -len(name) - (1 if args.strip() else 0))
    return control


# -- g ----------------------------------------------------------------------------------------
@command("g", syntax="g [Ticks]", category="target", target_action=True,
         help="Let the machine run, then break back in. It runs Ticks ticks of its workload "
              "(default 0n10000) or until Ctrl+C; a bug check stops it with KD's Fatal System "
              "Error banner.")
def go(session: "Session", args: str) -> str:
    control = _live(session, "g", args)
    target = session.target
    text = args.strip()
    ticks = DEFAULT_TICKS
    if text:
        ticks = evaluate(text, target, session.settings["radix"], offset=args.index(text))
        if ticks > MAX_TICKS:
            raise DebuggerError(f"g runs at most 0x{MAX_TICKS:x} ticks at a time")
    try:
        with INTERRUPTS.polled() as pressed:    # Ctrl+C breaks in between two chunks of ticks
            result = control.run(ticks, pressed)
    except MachineStopped:
        raise DebuggerError("The machine has stopped at a bug check; .reboot restarts it.") \
            from None
    session.processor = result.processor
    session.pool_snapshots.after_run(target, result.stop, pressed())
    if result.stop is Stop.BUGCHECK:
        return fatal_error_text(target)
    if result.stop is Stop.POOL_HIT:       # nt!PoolHitTag: DbgBreakPoint in the tag tracker
        return "\n".join(["Break instruction exception - code 80000003 (first chance)",
                          *_instruction_at(target, "nt!DbgBreakPoint")])
    if pressed():                          # only a Ctrl+C gets the Ctrl+C banner
        return break_in_text(target)
    return "\n".join(["Break instruction exception - code 80000003 (first chance)",
                      *_break_instruction(target)])


# -- .verifier --------------------------------------------------------------------------------
def settings_lines(settings: VerifierSettings) -> list[str]:
    """The settings as verifier.exe lists them."""
    lines = [f"{name}: {'Enabled' if settings.flags & bit else 'Disabled'}"
             for bit, name in FLAG_NAMES.items()]
    if settings.flags & 1:
        mode = "Verify Start" if settings.verify_start else "Verify End"
        lines.append(f"Special pool mode: {mode}")
    lines += ["", "Verified drivers:", ""]
    if settings.all_drivers:
        lines.append("All Drivers")
    else:
        lines += list(settings.drivers) or ["None"]
    return lines


@command(".verifier",
         syntax=".verifier [/flags Value | /standard] [/driver Name ... | /all] [/verifystart] "
                "| /reset",
         category="target", target_action=True,
         help="Set the Driver Verifier settings the machine boots with (verifier.exe syntax). "
              "They take effect at the next boot (.reboot).\n"
              "`/flags 0x1` special pool, `0x8` pool tracking (`/standard`: 0x9bb); "
              "`/driver myfault.sys ...` or `/all`: the drivers to verify; `/verifystart`: "
              "special pool catches underruns instead of overruns; `/reset` turns it off.\n"
              "Without arguments: the settings of the next boot.")
def verifier_settings(session: "Session", args: str) -> str:
    control = _live(session, ".verifier", args)
    text = args.strip()
    if not text or text.lower() == "/querysettings":
        pending = control.pending_verifier()
        lines = settings_lines(pending)
        if pending != control.verifier_settings():
            lines += ["", "", REBOOT_REQUIRED]
        return "\n".join(lines)
    try:
        settings = parse_settings(text)
    except ValueError as exc:
        raise DebuggerError(f"verifier: {exc}") from None
    control.set_pending_verifier(settings)
    if not settings.enabled:
        return "\n".join(["Deleting the verifier settings.", "", REBOOT_REQUIRED])
    return "\n".join(["New verifier settings:", "", *settings_lines(settings), "", "",
                      REBOOT_REQUIRED])


# -- .reboot ----------------------------------------------------------------------------------
@command(".reboot", syntax=".reboot", category="target", target_action=True,
         help="Restart the machine from boot. Same scenario and seed, with the verifier "
              "settings made by .verifier.")
def reboot(session: "Session", args: str) -> str:
    control = _live(session, ".reboot", args)
    with boot_progress(str(session.target.meta.get("scenario", "default")),
                       on_terminal()) as progress:
        session.target = control.reboot(progress)
    session.processor = 0
    session.pool_snapshots.record(session.target, REBOOTED)
    arch = session.target.arch
    lines = ["Shutdown occurred...unloading all symbol tables.", "Waiting to reconnect...",
             f"Connected to Windows 7 {BUILD} {'x64' if arch.ptr_size == 8 else 'x86 compatible'}"
             f" target, ptr64 {'TRUE' if arch.ptr_size == 8 else 'FALSE'}",
             "Kernel Debugger connection established.", *verifier_banner(session.target)]
    banner = fatal_error_text(session.target)
    if banner:
        session.processor = stop_processor(session.target)
        lines.append(banner)
    return "\n".join(lines)
