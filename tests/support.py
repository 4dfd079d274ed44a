"""Plain helpers that several test modules import (fixtures live in conftest.py): where the
repository is, a target and a session stand-in built by hand for unit tests of one command,
golden-text helpers, the plain loop's transcript, and a machine stopped at a double free.

Running a command line the way the debugger does is `commands.testing.run`: the one run helper.
"""
from __future__ import annotations

import io
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from commands.registry import lookup
from commands.repl import run_plain
from commands.session import Session
from kdsim.arch import Arch, get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import PAGE_SIZE
from kdsim.machine import Machine
from kdsim.memory import AddressSpace
from kdsim.modules import frames, seed_modules
from kdsim.stop import raised_in
from kdsim.symbols import SymbolTable
from kdsim.target import Target

ROOT = Path(__file__).resolve().parent.parent
# A real tag database file beside the checkout (../shared/data), for tests against it; the
# project must not ship a copy.
POOLTAG_TXT = ROOT.parent / "shared" / "data" / "pooltag.txt"


# -- a target and session by hand, for one command without the dispatcher ----------------------
def build_target(arch: Arch, modules: tuple = (), memory: tuple = (),
                 noaccess: tuple = ()) -> Target:
    """modules: (name, image, base, size, {symbol: address}); memory: (address, bytes), pages
    mapped as needed; noaccess: guard-page addresses."""
    space, symbols = AddressSpace(), SymbolTable()
    for name, image, base, size, syms in modules:
        module = symbols.add_module(name, image, base, size)
        for sym, address in syms.items():
            module.add(sym, address)
    for address, data in memory:
        page = address & ~(PAGE_SIZE - 1)
        while page < address + len(data):
            if not space.is_mapped(page):
                space.map(page, PAGE_SIZE)
            page += PAGE_SIZE
        space.write(address, data)
    for address in noaccess:
        space.protect_noaccess(address, PAGE_SIZE)
    return Target(arch, space, symbols, 1)


class FakeSession:
    def __init__(self, target: Target, radix: int = 16):
        self.target = target
        self.settings: dict[str, Any] = {"radix": radix, "output": "text"}


def call(session: FakeSession, line: str) -> str:
    """One command as the session would print it, without the dispatcher: its errors raise."""
    name, _, args = line.partition(" ")
    cmd = lookup(name)
    assert cmd is not None, name
    result = cmd.func(session, args.strip())
    if result is None or isinstance(result, str):
        return result or ""
    text = cmd.render(result, session)
    return text if isinstance(text, str) else "\n".join(text)     # a renderer may stream


# -- golden text ----------------------------------------------------------------------------------
def lines(text: str) -> str:
    """A golden block without the indentation and first newline of the test source."""
    return textwrap.dedent(text).strip("\n")


def text(*rows: str) -> str:
    """Golden output given line by line: each line ends with a newline."""
    return "\n".join(rows) + "\n"


def transcript(session: Session, typed: list[str]) -> str:
    """What the plain loop prints for these input lines."""
    session.stdout = io.StringIO()
    run_plain(session, typed)
    return session.stdout.getvalue()


# -- a stopped machine ----------------------------------------------------------------------------
B_FRAMES = ("DrvB+0x2c10", "nt!IofCallDriver+0x63")


def double_free(arch: str) -> Machine:
    """Stopped as when DrvB frees a block twice: BAD_POOL_CALLER 7 in ExFreePoolWithTag."""
    m = Machine(get_arch(arch), 2, modules=seed_modules("DrvB"))
    block = m.arch.nonpaged_start + 0x35008 + (8 if arch == "x64" else 0)
    m.stop(raised_in(BugCheck(0xC2, 7, 0x1297, 0, block), "ExFreePoolWithTag",
                     frames(m.symbols, B_FRAMES)))
    return m


def resident_mb() -> float:
    """This process's resident memory now, in MB (Linux /proc; the peak where it is absent)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_mb()


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        2**20 if sys.platform == "darwin" else 2**10)


def big_page_vas(big: Any) -> set[int]:
    """The addresses a big-page table (kdsim.bigpages.BigPages) lists as live, read in one pass:
    a `find` that misses probes the whole table, as Windows' does, so asking it per page of a
    full-size pool takes a minute."""
    vas = (big._rptr(big.table + i * big.esize) for i in range(big.entries))
    return {va for va in vas if not va & 1}


def billed_process(m: Machine, address: int) -> int:
    """A stand-in EPROCESS at `address` on a machine without processes, for quota charges: its
    page mapped and its Header.Type a process object's (what a quota free checks)."""
    page = address & ~(PAGE_SIZE - 1)
    if not m.memory.is_mapped(page):
        m.memory.map(page, PAGE_SIZE)
    m.memory.write(address, b"\x03")
    return address
