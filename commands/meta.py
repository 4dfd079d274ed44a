"""The session's own commands: help, echo, logs, clearing, quitting and settings.

`.help` and `!help` are generated from the registry, so a new command documents itself.
`.settings list|set|help` follows the real `.settings` syntax (`.settings set name=value`) over
our settings; `.more` and `.output` are shortcuts for the two settings people flip most.
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pooltag import check_file

from .errors import DebuggerError, syntax_error
from .registry import CATEGORIES, Command, all_commands, command, lookup
from .session import SETTINGS

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

DEFAULT_LOG = "Dbgeng.log"
MACHINE_MARK = "[machine]"
HELP_WIDTH = 30
_TITLES = {
    "core": "Core commands",
    "extension": "Extension commands",
    "meta": "Meta-commands and scripts",
    "target": "Target control",
    "lab": "Lab",
}


# -- help -------------------------------------------------------------------------------------
def help_text(commands: list[Command]) -> str:
    """The command table `.help` and `!help` print, grouped by category."""
    width = min(max((len(c.syntax) for c in commands), default=0), HELP_WIDTH)
    lines: list[str] = []
    if any(c.target_action for c in commands):
        lines += [f"{MACHINE_MARK} acts on the simulated machine (not available on a dump)", ""]
    for category in CATEGORIES:
        group = [c for c in commands if c.category == category]
        if not group:
            continue
        lines.append(f"{_TITLES.get(category, category)}:")
        for cmd in group:
            text = f"{summary(cmd)} {MACHINE_MARK}" if cmd.target_action else summary(cmd)
            if len(cmd.syntax) > width:     # a long syntax gets its own line
                lines += [f"   {cmd.syntax}", f"   {'':<{width}}  {text}".rstrip()]
            else:
                lines.append(f"   {cmd.syntax:<{width}}  {text}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def summary(cmd: Command) -> str:
    """The first sentence of a command's help."""
    first = cmd.help.split("\n", 1)[0]
    end = first.find(". ")
    return first[:end + 1] if end >= 0 else first


def command_help(cmd: Command) -> str:
    lines = [cmd.syntax, *(f"   {line}" for line in cmd.help.split("\n") if line)]
    if cmd.aliases:
        lines.append(f"   Also: {', '.join(cmd.aliases)}")
    if cmd.target_action:
        lines.append("   Acts on the simulated machine; not available on a dump.")
    return "\n".join(lines)


def _help_for(args: str, extensions_only: bool) -> str:
    name = args.split()[0] if args.split() else ""
    if name:
        if extensions_only and not name.startswith("!"):
            name = "!" + name
        cmd = lookup(name)
        if cmd is None:
            raise DebuggerError(f"No help for '{name}'")
        return command_help(cmd)
    commands = [c for c in all_commands() if not extensions_only or c.category == "extension"]
    return help_text(commands)


@command(".help", syntax=".help [Command]", help="List every command, or describe one.")
def _help(session: "Session", args: str) -> str:
    return _help_for(args, extensions_only=False)


@command("!help", syntax="!help [Extension]", help="List the extension commands, or describe one.")
def _ext_help(session: "Session", args: str) -> str:
    return _help_for(args, extensions_only=True)


# -- echo, clear, quit ------------------------------------------------------------------------
@command(".echo", syntax='.echo [String | "String"]',
         help="Print the string; an unquoted string ends at ';'.")
def _echo(session: "Session", args: str) -> str:
    text = args.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    return text + "\n"


@command(".cls", syntax=".cls", help="Clear the screen (ignored inside a script file).")
def _cls(session: "Session", args: str) -> None:
    if session.script_depth == 0:
        session.clear_screen()


@command("q", syntax="q", help="Quit the debugger.")
def _quit(session: "Session", args: str) -> str:
    session.quit_requested = True
    return "quit:"


@command("qq", syntax="qq", help="Quit the debugger (all sessions).")
def _quit_all(session: "Session", args: str) -> str:
    return _quit(session, args)


# -- logs -------------------------------------------------------------------------------------
def _log_args(args: str, allowed: str) -> tuple[set[str], str]:
    """Split `/t /u name` into its options and the file name (a path may start with '/')."""
    options: set[str] = set()
    rest = args.strip()
    while len(rest) >= 2 and rest[0] == "/" and rest[1] in allowed and rest[2:3] in ("", " "):
        options.add(rest[1])
        rest = rest[2:].lstrip()
    if rest.startswith('"'):
        rest = rest[1:].split('"', 1)[0]
    return options, rest or DEFAULT_LOG


def timestamped(name: str, when: datetime | None = None, pid: int | None = None) -> str:
    """`.logopen /t`: the name with `_<pid>_<date>_<time>` before its extension."""
    when = when or datetime.now()
    pid = os.getpid() if pid is None else pid
    stem, dot, ext = name.rpartition(".")
    if not dot or "/" in ext or "\\" in ext:
        stem, dot, ext = name, "", ""
    stamp = when.strftime("%Y-%m-%d_%H-%M-%S-") + f"{when.microsecond // 1000:03d}"
    return f"{stem}_{pid & 0xFFFF:04X}_{stamp}{dot}{ext}"


def _open_log(session: "Session", name: str, append: bool, unicode: bool) -> str:
    if not append and session.log_holds(name):
        # Overwriting the open log would lose it: append to it, or close it first.
        raise DebuggerError(f"Log file '{name}' is already open (.logappend goes on "
                            f"writing to it, .logclose closes it)")
    try:
        session.open_log(name, append=append, unicode=unicode)
    except (OSError, ValueError):       # ValueError: a NUL in the name
        raise DebuggerError(f"Unable to open log file '{name}'") from None
    return f"Opened log file '{name}'"


@command(".logopen", syntax=".logopen [/t] [/u] [FileName]",
         writes_files=True,
         help="Open a log file (overwritten); everything printed from now on goes to it. "
              "/t adds the process id and date to the name, /u writes Unicode; the default "
              "name is Dbgeng.log.")
def _logopen(session: "Session", args: str) -> str:
    options, name = _log_args(args, "tu")
    if "t" in options:
        name = timestamped(name)
    return _open_log(session, name, append=False, unicode="u" in options)


@command(".logappend", syntax=".logappend [/u] [FileName]",
         writes_files=True,
         help="Open a log file for appending (default Dbgeng.log).")
def _logappend(session: "Session", args: str) -> str:
    options, name = _log_args(args, "u")
    return _open_log(session, name, append=True, unicode="u" in options)


@command(".logclose", syntax=".logclose", help="Close the open log file.")
def _logclose(session: "Session", args: str) -> None:
    session.close_log()


# -- settings ---------------------------------------------------------------------------------
def parse_setting(name: str, value: str) -> Any:
    """A typed value for a setting, or DebuggerError naming what is accepted."""
    setting = SETTINGS.get(name)
    if setting is None:
        raise DebuggerError(f"Unknown setting '{name}' (see .settings help)")
    text = value.strip().strip('"')
    if setting.parse is not None:
        try:
            return setting.parse(text)
        except ValueError as exc:
            raise DebuggerError(f"Invalid value '{text}' for {name} ({exc})") from None
    if setting.choices is None:
        return None if text.lower() in ("", "none") else text
    for choice in setting.choices:
        if text.lower() in _spellings(choice):
            return choice
    accepted = ", ".join(_spellings(c)[0] for c in setting.choices)
    raise DebuggerError(f"Invalid value '{text}' for {name} (expected {accepted})")


def _spellings(choice: Any) -> tuple[str, ...]:
    if choice is True:
        return ("on", "true", "1")
    if choice is False:
        return ("off", "false", "0")
    return (str(choice).lower(),)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)


@command(".settings", syntax=".settings [list [-v]|set N=V|help]",
         help="View or change the session settings: radix, poolused_layout, pooltag_file, "
              "color, more, output, max_output_lines, safe.")
def _settings(session: "Session", args: str) -> str:
    verb, _, rest = args.strip().partition(" ")
    verb = verb.lower()
    if verb in ("", "list"):
        verbose = rest.strip() == "-v"
        lines = []
        for name, setting in SETTINGS.items():
            line = f"    {name:<16} : {_shown(session.settings[name])}"
            lines.append(line + (f"    ({setting.help})" if verbose else ""))
        return "\n".join(lines)
    if verb == "help":
        return "\n".join(f"    {name:<16} - {s.help}" for name, s in SETTINGS.items())
    if verb == "set":
        name, eq, value = rest.partition("=")
        if not eq:
            raise syntax_error(len(".settings set ") + len(rest))
        name = name.strip()
        parsed = parse_setting(name, value)
        # A tag file that cannot be read is refused (the setting keeps its value); one that
        # does not exist yet is accepted, and reported by the first command that needs it.
        problem = (check_file(parsed, missing_ok=True) if name == "pooltag_file" and parsed
                   else None)
        if problem:
            raise DebuggerError(problem)
        if name == "safe" and session.settings["safe"] and not parsed:
            raise DebuggerError("Safe mode stays on for the rest of this session")
        session.settings[name] = parsed
        return ""
    raise syntax_error(len(".settings "))


def _toggle(session: "Session", name: str, args: str, label: str) -> str:
    if args.strip():
        session.settings[name] = parse_setting(name, args)
        return ""
    return f"{label} is {_shown(session.settings[name])}"


@command(".more", syntax=".more [on|off]", help="Page long output on a terminal, or stop paging.")
def _more(session: "Session", args: str) -> str:
    return _toggle(session, "more", args, "Paging")


@command(".output", syntax=".output [text|json|jsonl]",
         help="Print command results as the debugger's text, as JSON, or as JSON Lines: one "
              "object per command, for programs (docs/json.md).")
def _output(session: "Session", args: str) -> str:
    return _toggle(session, "output", args, "Output format")
