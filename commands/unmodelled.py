"""Real debugger commands kdsim does not model, and what to use instead.

A learner types what they would type on a real target.  A real command that kdsim lacks
gets one line saying so and naming the closest command kdsim has (the dispatcher prints it
instead of `Syntax error` or `No export`); a mistyped extension gets the real `No export`
line and, unless `.settings set hints=off`, the nearest extension kdsim has.
"""
from __future__ import annotations

import difflib
from typing import NamedTuple


class Unmodelled(NamedTuple):
    what: str          # what the real command does, in a few words
    instead: str       # the closest kdsim commands


_DISASSEMBLY = Unmodelled("disassembly: kdsim keeps no code bytes", "k, ln Address")
_BREAKPOINTS = Unmodelled("breakpoints", "ed nt!PoolHitTag 'Tag' then g (a pool tag break)")
_STEPPING = Unmodelled("stepping", "g")
_CONTEXTS = Unmodelled("context switching", "k, r")
_SYMBOLS = Unmodelled("symbol and extension loading: both are built in", ".help")
_OBJECTS = Unmodelled("I/O objects", "!pool Address (the object's pool block)")
_PAGES = Unmodelled("page tables", "!vm, !pool Address")
_USER = Unmodelled("user-mode state: kdsim simulates the kernel", "!poolused, !pool Address")
_SCHEDULER = Unmodelled("the scheduler's state", "k")

UNMODELLED: dict[str, Unmodelled] = {
    **dict.fromkeys(("u", "ub", "uf"), _DISASSEMBLY),
    **dict.fromkeys(("bp", "bu", "bm", "ba", "bl", "bc", "bd", "be"), _BREAKPOINTS),
    **dict.fromkeys(("p", "t", "pa", "ta", "pc", "tc", "gu", "wt"), _STEPPING),
    "dx": Unmodelled("the debugger data model", "dt, ??"),
    "dv": Unmodelled("local variables: kdsim has no private symbols", "dt, k"),
    **dict.fromkeys((".frame", ".cxr", ".trap", ".exr", ".ecxr"), _CONTEXTS),
    **dict.fromkeys((".symfix", ".sympath", ".load", ".loadby", ".unload", ".chain"),
                    _SYMBOLS),
    **dict.fromkeys(("!irp", "!devobj", "!drvobj", "!devstack", "!devnode", "!fileobj"),
                    _OBJECTS),
    **dict.fromkeys(("!pte", "!pfn", "!address", "!sysptes", "!memusage"), _PAGES),
    **dict.fromkeys(("!peb", "!teb", "!heap"), _USER),
    **dict.fromkeys(("!locks", "!stacks", "!running", "!ready", "!cpuinfo"), _SCHEDULER),
    "!handle": Unmodelled("handle tables", "!process 0 0, !object Address"),
}


def unmodelled(name: str) -> str | None:
    """The line for a real command kdsim does not model (`name` as typed), or None."""
    found = UNMODELLED.get(name.lower())
    if found is None:
        return None
    return f"{name} is not modelled by kdsim ({found.what}); instead: {found.instead}"


def closest(name: str, known: list[str]) -> str | None:
    """The known command nearest to a mistyped `name`, if one is near enough."""
    low = {k.lower(): k for k in known}
    match = difflib.get_close_matches(name.lower(), list(low), n=1, cutoff=0.75)
    return low[match[0]] if match else None
