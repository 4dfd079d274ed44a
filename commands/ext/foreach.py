"""`!for_each_module`: run a command once per loaded module, with the module's aliases.

    !for_each_module [-q] "s -a @#Base @#End \\"Leak\\""

Before each run the aliases are replaced by the module's values: `@#Base`, `@#End` (one
past the image), `@#Size`, `@#ModuleName` (`myfault`) and `@#ImageName` (`myfault.sys`).
The command may be quoted (`\\"` inside) or written as the rest of the line.  A module whose
command fails prints the error and the next module runs, as kd goes on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.modules import LoadedModule, loaded_modules
from ..dispatch import execute
from ..errors import DebuggerError
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch

    from ..session import Session

USAGE = 'Usage: !for_each_module [-q] "Command" (aliases @#Base @#End @#Size @#ModuleName ' \
        '@#ImageName)'


def _command_text(args: str) -> str:
    text = args.strip()
    if text.startswith("-q"):
        text = text[2:].lstrip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"')
    return text


def expand(text: str, module: LoadedModule, arch: "Arch") -> str:
    """The command with `module`'s aliases replaced, longest names first."""
    values = {"@#ModuleName": module.name, "@#ImageName": module.image,
              "@#Base": arch.fmt_addr(module.base), "@#End": arch.fmt_addr(module.end),
              "@#Size": f"{module.end - module.base:x}"}
    for alias in sorted(values, key=len, reverse=True):
        text = text.replace(alias, values[alias])
    return text


@command("!for_each_module", syntax='!for_each_module [-q] "Command"',
         help="Run a command once for each loaded module; @#Base, @#End, @#Size, "
              "@#ModuleName and @#ImageName stand for the module's values.")
def for_each_module(session: "Session", args: str) -> None:
    text = _command_text(args)
    if not text:
        raise DebuggerError(USAGE)
    for module in loaded_modules(session.target):
        execute(session, expand(text, module, session.target.arch))
