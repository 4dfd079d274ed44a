"""`kdsim`: open a simulated machine (or a dump) and debug it, as `kd` would.

    kdsim [--arch x86|x64] [--scenario NAME] [--seed N] [-c "cmds"] [-cf FILE] [-z DUMP]
    kdsim --resume SNAPSHOT [-c "cmds"] [-cf FILE]

`-cf` then `-c` run first, echoed like typed commands (as in kd); then commands are read until
`q` or the end of input, from a prompt on a terminal or line by line from a pipe.  The exit
status is 0 after `q` or end of input; unusable arguments or an unreadable file give 2 and one
line saying why.  No traceback ever reaches the user (KDSIM_DEBUG=1 shows them on stderr).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import traceback
from typing import TYPE_CHECKING

from kdsim.control import version

from .dispatch import debug_enabled, load_commands
from .interrupt import INTERRUPTS
from .progress import boot_progress, on_terminal
from .repl import run_interactive, run_plain
from .sanitize import sanitize
from .scripts import read_script, run_lines
from .session import Session
from .target_cmds import fatal_error_text, stop_processor

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

PROG = "kdsim"


class UsageError(Exception):
    """Unusable arguments or an unreadable file: exit status 2."""

    def __init__(self, message: str, hint: str = f"see {PROG} -h"):
        super().__init__(message)
        self.hint = hint


class StartupError(Exception):
    """The machine could not be opened: exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="A WinDbg-style kernel debugger over a simulated Windows 7 "
                                 "kernel whose pool allocator behaves like the real one.")
    parser.add_argument("--arch", choices=("x86", "x64"), help="target architecture")
    parser.add_argument("--scenario", metavar="NAME", help="boot into a scenario "
                        "(see --list-scenarios)")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed of the workload")
    parser.add_argument("--scale", type=float, metavar="X",
                        help="size of the scenario's machine (1 = its full size)")
    parser.add_argument("--verifier", metavar='"/flags F /driver D"',
                        help="Driver Verifier settings the machine boots with, in verifier.exe "
                             "syntax")
    parser.add_argument("-c", dest="commands", metavar='"cmds"',
                        help="commands to run first (';'-separated)")
    parser.add_argument("-cf", dest="command_file", metavar="FILE",
                        help="script file to run first")
    parser.add_argument("-z", dest="dump", metavar="DUMP", help="open a dump file")
    parser.add_argument("--resume", metavar="SNAPSHOT",
                        help="resume the live machine a snapshot holds (.snapshot saves one)")
    parser.add_argument("--no-cache", action="store_true",
                        help="boot the machine even if the boot cache holds it")
    parser.add_argument("--list-scenarios", action="store_true",
                        help="list the scenarios and exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def scenarios() -> list[tuple[str, str]] | None:
    """The scenarios the machine offers, or None while the simulator offers none."""
    try:
        from kdsim.control import list_scenarios
    except ImportError:
        return None
    return list(list_scenarios())


def open_machine(args: argparse.Namespace) -> "Target":
    if args.scenario is not None:
        known = scenarios()
        if known is not None and args.scenario not in {name for name, _ in known}:
            raise UsageError(f"unknown scenario '{args.scenario}'", "see --list-scenarios")
    try:
        from kdsim.control import open_machine as boot
    except ImportError as exc:
        raise StartupError(f"the simulated machine is not available ({exc})") from None
    if args.scale is not None and not 0 < args.scale <= 4:
        raise UsageError(f"--scale must be above 0 and at most 4, not {args.scale:g}")
    options = {"arch": args.arch, "seed": args.seed, "scenario": args.scenario,
               "scale": args.scale, "verifier": args.verifier}
    try:
        with boot_progress(args.scenario or "default", on_terminal()) as progress:
            return boot(**{k: v for k, v in options.items() if v is not None},
                        use_cache=not args.no_cache, progress=progress)
    except (ValueError, KeyError) as exc:
        raise UsageError(str(exc.args[0]) if exc.args else type(exc).__name__) from None


def open_snapshot(path: str) -> "Target":
    """The live target of a snapshot (`--resume`); a damaged or foreign file is one line,
    status 1."""
    from kdsim.control import SnapshotError, open_snapshot
    try:
        return open_snapshot(path)
    except SnapshotError as exc:
        raise StartupError(exc.message) from None


def open_dump(path: str) -> "Target":
    """The target of a dump file (`-z`); a damaged or foreign file is one line, status 1."""
    from kdsim.control import DumpError
    from kdsim.control import open_dump as load
    try:
        return load(path)
    except DumpError as exc:
        raise StartupError(exc.message) from None


def dump_banner(path: str, target: "Target") -> str:
    """What kd prints when it opens a dump."""
    from kdsim.control import DUMP_TYPE_BANNERS
    lines = [f"Loading Dump File [{path}]",
             DUMP_TYPE_BANNERS[target.meta.get("dump_type", "full")]]
    if target.meta.get("comment"):
        lines.append(f"Comment: '{target.meta['comment']}'")
    return "\n".join(lines) + "\n\n"


def stop_banner(target: "Target") -> str:
    """A machine that has already bug-checked opens as kd shows it: the Fatal System Error
    banner on a live machine, the short analysis on a crash dump."""
    if target.stop_state() is None:
        return ""
    if target.live:
        return fatal_error_text(target) + "\n"
    from .ext.analyze import crash_dump_text
    return crash_dump_text(target) + "\n"


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"{PROG}: {sanitize(str(exc))} ({exc.hint})", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"{PROG}: {sanitize(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:
        if debug_enabled():
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {sanitize(str(exc))}",
              file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"{PROG} {version()}")
        return 0
    if args.list_scenarios:
        found = scenarios() or []
        width = max((len(name) for name, _ in found), default=0)
        for name, description in found:
            print(f"{name:<{width}}  {description}")
        return 0
    startup: list[str] = []
    if args.command_file is not None:
        try:
            startup = read_script(args.command_file)
        except OSError as exc:
            raise UsageError(f"cannot read '{args.command_file}': {exc.strerror}") from None
    if args.resume is not None:
        given = [name for name, value in (("-z", args.dump), ("--arch", args.arch),
                                          ("--scenario", args.scenario), ("--seed", args.seed),
                                          ("--scale", args.scale), ("--verifier", args.verifier))
                 if value is not None]
        if given:
            raise UsageError(f"--resume opens the machine a snapshot holds; {given[0]} does "
                             f"not apply")
    interactive = bool(sys.stdin and sys.stdin.isatty() and sys.stdout.isatty())
    if args.dump:
        target = open_dump(args.dump)
    elif args.resume is not None:
        target = open_snapshot(args.resume)
    else:
        target = open_machine(args)

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    session = Session(target)
    load_commands()
    if args.dump:
        session.write(dump_banner(args.dump, target))
    session.write(stop_banner(target))
    session.processor = stop_processor(target)
    try:
        if interactive:
            print(f"{PROG} {version()}: {target.arch.name} target, {target.processors} "
                  f"processor(s). .help lists the commands, q quits.")
        with INTERRUPTS.installed():        # from here Ctrl+C breaks a command, never kdsim
            with INTERRUPTS.line(session):
                run_lines(session, startup, echo=True)
                if args.commands and not session.quit_requested:
                    run_lines(session, [args.commands], echo=True)
            if not session.quit_requested:
                if interactive:
                    run_interactive(session)
                else:
                    run_plain(session, _stdin_lines())
    finally:
        session.close_log(announce=False)
    return 0


def _stdin_lines() -> io.TextIOBase | list[str]:
    """Standard input as text; undecodable bytes are replaced rather than fatal."""
    if sys.stdin is None:
        return []
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")


def _silence_stdout() -> None:
    """After a closed pipe (`kdsim | head`), let the interpreter exit without complaint."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    raise SystemExit(main())
