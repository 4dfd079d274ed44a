"""`kdsim`: open a simulated machine (or a dump) and debug it, as `kd` would.

    kdsim [--arch x86|x64] [--scenario NAME | --lab FILE] [--seed N] [-c "cmds"] [-cf FILE]
    kdsim -z DUMP | --resume SNAPSHOT [-c "cmds"] [-cf FILE]
    kdsim --check-lab FILE | --answers LAB [--seeds RANGE] | --list-scenarios

`-c` and `-cf` run first, in the order given, echoed like typed commands (as in kd); then
commands are read until `q` or the end of input, from a prompt on a terminal or line by line
from a pipe.  A failing command stops its `-cf` file (or `-c` line) as kd stops a script, with a
line saying where; in a batch run (standard input not a terminal) it also ends the run with
status 1, unless `--keep-going` runs everything on (the status is still 1).  The exit status is
otherwise 0 after `q` or end of input; unusable arguments or an unreadable file give 2 and one
line saying why.  No traceback ever reaches the user (KDSIM_DEBUG=1 shows them on stderr).

The machine, dump or snapshot is opened through the Python API's functions (commands/api.py),
so the CLI and programs check their arguments alike.  `--json` prints JSON Lines
(commands/jsonl.py), `--safe` refuses commands that write files.
"""
from __future__ import annotations

import argparse
import errno
import io
import os
import sys
import traceback
from typing import TYPE_CHECKING

from prompt_toolkit.history import InMemoryHistory

from kdsim.control import version

from . import api
from .dispatch import debug_enabled, load_commands
from .interrupt import INTERRUPTS
from .progress import boot_progress, on_terminal
from .lab import current_lab
from .repl import history_path, open_history, run_interactive, run_plain
from .sanitize import sanitize
from .scripts import read_script, run_lines
from .session import OutputClosed, Session
from .target_cmds import fatal_error_text, stop_processor

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

PROG = "kdsim"
DEFAULT_SEEDS = "1-30"          # --answers: a class of thirty, each student a seed
MAX_SEEDS = 10_000


class UsageError(Exception):
    """Unusable arguments or an unreadable file: exit status 2."""

    def __init__(self, message: str, hint: str = f"see {PROG} -h"):
        super().__init__(message)
        self.hint = hint


class StartupError(Exception):
    """The machine could not be opened: exit status 1."""


class _InOrder(argparse.Action):
    """`-c` and `-cf` into one list, (option, value), in the order given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        given = list(getattr(namespace, self.dest) or [])
        given.append((self.option_strings[0], values))
        setattr(namespace, self.dest, given)


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
    parser.add_argument("--lab", metavar="FILE", help="open a lab file (TOML; see docs/labs)")
    parser.add_argument("--check-lab", metavar="FILE",
                        help="check a lab file without booting it and exit")
    parser.add_argument("--answers", metavar="LAB",
                        help="print the answer key of a lab (a scenario name or a lab file) "
                             "for the seeds of --seeds, without booting, and exit")
    parser.add_argument("--seeds", metavar="RANGE",
                        help="the seeds --answers covers: N, N-M or a comma list of those "
                             f"(default {DEFAULT_SEEDS})")
    parser.add_argument("--no-history", action="store_true",
                        help="keep no command history on disk (a shared classroom machine)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="random seed of the workload (default 0)")
    parser.add_argument("--scale", type=float, metavar="X",
                        help="size of the scenario's machine (1 = its full size)")
    parser.add_argument("--verifier", metavar='"/flags F /driver D"',
                        help="Driver Verifier settings the machine boots with, in verifier.exe "
                             "syntax")
    parser.add_argument("-c", dest="startup", action=_InOrder, metavar='"cmds"',
                        help="commands to run first (';'-separated); -c and -cf run in the "
                             "order given")
    parser.add_argument("-cf", dest="startup", action=_InOrder, metavar="FILE",
                        help="script file to run first")
    parser.add_argument("--keep-going", action="store_true",
                        help="run -c and -cf on past a failing command (the exit status "
                             "still says a command failed)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per command (JSON Lines, docs/json.md); "
                             "diagnostics go to standard error")
    parser.add_argument("--safe", action="store_true",
                        help="refuse every command that writes files (.logopen, .dump, "
                             ".snapshot ...), for command files from others")
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
        with boot_progress(args.scenario or "default", on_terminal()) as progress:
            return api.machine_target(scenario=args.scenario, arch=args.arch, seed=args.seed,
                                      scale=args.scale, verifier=args.verifier,
                                      use_cache=not args.no_cache, progress=progress,
                                      spell=lambda name: f"--{name}")
    except ImportError as exc:
        raise StartupError(f"the simulated machine is not available ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def open_snapshot(path: str) -> "Target":
    """The live target of a snapshot (`--resume`); a damaged or foreign file is one line,
    status 1."""
    try:
        return api.snapshot_target(path)
    except api.OpenError as exc:
        raise StartupError(str(exc)) from None


def open_dump(path: str) -> "Target":
    """The target of a dump file (`-z`); a damaged or foreign file is one line, status 1."""
    try:
        return api.dump_target(path)
    except api.OpenError as exc:
        raise StartupError(str(exc)) from None


def dump_banner(path: str, target: "Target") -> str:
    """What kd prints when it opens a dump."""
    from kdsim.control import DUMP_TYPE_BANNERS
    lines = [f"Loading Dump File [{path}]",
             DUMP_TYPE_BANNERS[target.meta.get("dump_type", "full")]]
    if target.meta.get("comment"):
        lines.append(f"Comment: '{target.meta['comment']}'")
    return "\n".join(lines) + "\n\n"


def opening_banner(title: str, name: str, target: "Target", scale: float | None) -> str:
    """What a lab's machine says when it opens: which lab, seed and scale, and how to begin."""
    seed = target.meta.get("seed", 0)
    return (f"Lab: {title} (scenario {name}, seed {seed}, scale {scale or 1:g}).  "
            f"Type .lab to start.")


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
    except OutputClosed as closed:
        _silence_stdout()
        if closed.error.errno in (errno.EPIPE, errno.EBADF):
            return 0
        print(f"{PROG}: cannot write the output: {closed.error.strerror}", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug_enabled():
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {sanitize(str(exc))}",
              file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if sys.stdout is None:          # started with standard output closed: nothing to show
        return 0
    if args.version:
        print(f"{PROG} {version()}")
        return 0
    if args.list_scenarios:
        found = scenarios() or []
        width = max((len(name) for name, _ in found), default=0)
        for name, description in found:
            print(f"{name:<{width}}  {description}")
        return 0
    if args.seeds is not None and args.answers is None:
        raise UsageError("--seeds goes with --answers LAB")
    if args.answers is not None:
        return _answers(args)
    if args.check_lab is not None or args.lab is not None:
        failed = _open_lab(args)
        if failed is not None:
            return failed
    for option, path in (("-z", args.dump), ("--resume", args.resume)):
        if path is not None and not path.strip():
            raise UsageError(f"{option} needs a file name")
    startup = _startup(args.startup or [])
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
    if args.json:
        session.settings["output"] = "jsonl"
    session.settings["safe"] = args.safe
    load_commands()
    if args.dump:
        session.write(dump_banner(args.dump, target))
    session.write(stop_banner(target))
    session.processor = stop_processor(target)
    batch = not (sys.stdin and sys.stdin.isatty())
    failed = False
    try:
        lab_name, lab = current_lab(session)
        if interactive:
            print(f"{PROG} {version()}: {target.arch.name} target, {target.processors} "
                  f"processor(s). .help lists the commands, q quits.",
                  file=sys.stderr if args.json else sys.stdout)
            if lab is not None:
                print(opening_banner(lab.title, lab_name, target, args.scale),
                      file=sys.stderr if args.json else sys.stdout)
        with INTERRUPTS.installed():        # from here Ctrl+C breaks a command, never kdsim
            with INTERRUPTS.line(session):
                for source, lines in startup:
                    if not run_lines(session, lines, echo=True, source=source,
                                     keep_going=args.keep_going):
                        failed = True
                        if batch and not args.keep_going:
                            return 1
                    if session.quit_requested:
                        break
            if not session.quit_requested:
                if interactive:
                    run_interactive(session, history=InMemoryHistory() if args.no_history
                                    else open_history(history_path(lab_name if lab else "")))
                else:
                    run_plain(session, _stdin_lines())
    finally:
        session.close_log(announce=False)
    return 1 if failed and batch else 0


def _startup(given: list[tuple[str, str]]) -> list[tuple[str | None, list[str]]]:
    """The `-c` lines and `-cf` files' lines in the order given, each with the file it comes
    from (None for `-c`); every file is read before the machine opens."""
    startup: list[tuple[str | None, list[str]]] = []
    for option, value in given:
        if option == "-c":
            startup.append((None, [value]))
            continue
        if not value.strip():
            raise UsageError("argument -cf: expected a file name")
        try:
            startup.append((value, read_script(value)))
        except OSError as exc:
            raise UsageError(f"cannot read '{value}': {exc.strerror}") from None
    return startup


def _open_lab(args: argparse.Namespace) -> int | None:
    """`--check-lab FILE` (an exit status) and `--lab FILE` (the lab becomes --scenario): a
    lab file that does not check is one line, FILE:LINE: key: message, and status 2."""
    from kdsim.control import LabFileError, check_lab, register_lab
    if args.lab is not None and (args.scenario is not None or args.dump or args.resume):
        raise UsageError("--lab opens a lab file; --scenario, -z and --resume do not apply")
    try:
        if args.check_lab is not None:
            checked = check_lab(args.check_lab)
            print(f"{args.check_lab}: a lab, '{checked.lab['title']}' ("
                  f"{len(checked.data['drivers'])} driver(s), {len(checked.lab['hints'])} "
                  "hint(s))")
            return 0
        args.scenario = register_lab(args.lab)
    except LabFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    return None


def parse_seeds(text: str) -> list[int]:
    """`--seeds`: N, N-M, or a comma list of those, in the order given (each seed once)."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise UsageError(f"--seeds: '{part.strip()}' is not a seed (N) or a range (N-M)")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise UsageError(f"--seeds: {first}-{last} runs backwards")
        if last - first + len(seeds) >= MAX_SEEDS:
            raise UsageError(f"--seeds: more than {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    return list(dict.fromkeys(seeds))


def _answers(args: argparse.Namespace) -> int:
    """`--answers LAB`: the answer key of a class, seed by seed, from the labs alone (nothing
    boots).  LAB is a scenario name, or a lab file (a path or a name ending in .toml)."""
    from kdsim.control import LabFileError, register_lab, scenario_lab
    seeds = parse_seeds(args.seeds or DEFAULT_SEEDS)
    name = args.answers
    if name.endswith(".toml") or os.sep in name or os.path.isfile(name):
        try:
            name = register_lab(name)
        except LabFileError as exc:
            print(exc, file=sys.stderr)
            return 2
    try:
        labs = [(seed, scenario_lab(name, seed)) for seed in seeds]
    except ValueError as exc:
        raise UsageError(str(exc), "see --list-scenarios") from None
    key = [(seed, lab) for seed, lab in labs if lab is not None]
    if not key:
        raise UsageError(f"scenario '{name}' has no lab", "see --list-scenarios")
    first = key[0][1]
    print(f"Answer key: {first.title} (scenario {name}): {first.question}")
    width = max(len("seed"), len(str(max(seeds))))
    print(f"{'seed':>{width}}  answer (.check accepts any of them)")
    for seed, lab in key:
        print(f"{seed:>{width}}  {' | '.join(lab.answers)}")
    return 0


def _stdin_lines() -> io.TextIOBase | list[str]:
    """Standard input as text; undecodable bytes are replaced rather than fatal."""
    if sys.stdin is None:
        return []
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")


def _silence_stdout() -> None:
    """After a closed pipe (`kdsim | head`), let the interpreter exit without complaint."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):   # no descriptor left to replace: nothing will complain
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
