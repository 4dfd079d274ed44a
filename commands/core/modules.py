"""Symbols and modules: `ln` (nearest symbols), `x` (symbols matching a pattern) and
`.reload` (symbols are built in, so it only says what kd says).

The symbols are the target's debug information (a dump carries them with its pages), as
kd's come from PDBs: public symbols, so every match reads `<no type information>`, and the
simulated third-party drivers have none (`myfault+0x11f6`).  Layouts of the Win7-era
debugger:

    kd> ln 82a8ea32
    (82a8ea10)   nt!KdCheckForDebugBreak+0x22   |  (82a8eb80)   nt!KeUpdateRunTime
    kd> ln nt!KeBugCheckEx
    (82a8f000)   nt!KeBugCheckEx   |  (82a8f600)   nt!KiBugCheckDebugBreak
    Exact matches:
        nt!KeBugCheckEx = <no type information>
    kd> x nt!ExAllocatePool*
    82bb7010 nt!ExAllocatePoolWithTag = <no type information>
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.target import MemoryFault

from ..context import read_register
from ..errors import DebuggerError, couldnt_resolve, syntax_error
from ..expr import evaluate
from ..objread import read_field, read_unicode, walk
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

NO_TYPE = "<no type information>"


@dataclass(frozen=True)
class LoadedModule:
    name: str                       # "myfault"
    image: str                      # "myfault.sys"
    base: int
    end: int                        # one past the image
    symbols: bool                   # public symbols (nt, hal) or none (third-party drivers)
    path: str = ""                  # where it was loaded from (FullDllName)


def loaded_modules(target: "Target") -> list[LoadedModule]:
    """The target's loaded modules in load order, walked from nt!PsLoadedModuleList (each a
    _KLDR_DATA_TABLE_ENTRY); a target without the list (a bare one) gives its debug
    information's modules, by base."""
    return module_list(target)[0]


def module_list(target: "Target") -> tuple[list[LoadedModule], int | None]:
    """The loaded modules and, when the walk stopped at a link it could not read, where."""
    head = target.resolve("nt!PsLoadedModuleList")
    if head is None:
        return [LoadedModule(m.name, m.image, m.base, m.base + m.size, bool(m.symbols),
                             m.image) for m in target.symbols.modules], None
    profile = target.profile
    found = walk(target, head, profile.offset("ldr_entry", "InLoadOrderLinks"))
    modules: list[LoadedModule] = []
    for entry in found.entries:
        try:
            base = read_field(target, "ldr_entry", entry, "DllBase")
            size = read_field(target, "ldr_entry", entry, "SizeOfImage")
        except MemoryFault:
            return modules, entry
        image = read_unicode(target, entry + profile.offset("ldr_entry", "BaseDllName"))
        path = read_unicode(target, entry + profile.offset("ldr_entry", "FullDllName"))
        known = target.symbols.module_at(base)
        name = known.name if known is not None and known.base == base else \
            image.rsplit(".", 1)[0]
        modules.append(LoadedModule(name, image, base, base + size,
                                    bool(known is not None and known.symbols), path))
    return modules, found.bad_link


# -- lm ---------------------------------------------------------------------------------------
@dataclass
class ModuleList:
    modules: list[LoadedModule]
    verbose: bool
    bad_link: int | None = None     # where the walk of the module list stopped early


def _symbol_state(module: LoadedModule) -> str:
    return "(pdb symbols)" if module.symbols else "(no symbols)"


def render_modules(result: ModuleList, session: "Session") -> str:
    arch = session.target.arch
    width = len(arch.fmt_addr(0))
    lines = [f"{'start':<{width}} {'end':<{width}}   module name"]
    for m in result.modules:
        lines.append(f"{arch.fmt_addr(m.base)} {arch.fmt_addr(m.end)}   {m.name:<8}   "
                     f"{_symbol_state(m):<22} ")
        if result.verbose:
            lines += [f"    Loaded symbol image file: {m.image}",
                      f"    Image path: {m.path}",
                      f"    Image name: {m.image}",
                      f"    ImageSize:        {m.end - m.base:08X}"]
    if result.bad_link is not None:
        lines.append(f"Memory read error {arch.fmt_addr(result.bad_link)}")
    return "\n".join(lines)


def _lm_options(text: str) -> tuple[bool, str | None, str | None]:
    """(verbose, module pattern, address text) of lm's options: `v`, `k`, `m Pattern`,
    `a Address`, run together as kd allows (`lmvm myfault`, `lm vm myfault`)."""
    verbose, pattern, address = False, None, None
    words = text.split()
    i = 0
    while i < len(words):
        word = words[i].lower()
        rest = words[i + 1] if i + 1 < len(words) else None
        flags = word
        for j, flag in enumerate(flags):
            if flag == "v":
                verbose = True
            elif flag == "k" or flag == "l" or flag == "o":
                pass                        # kernel modules, loaded symbols: all of them
            elif flag in "ma":
                value = words[i][j + 1:] or rest
                if value is None:
                    raise syntax_error(len(" ".join(words[:i + 1])))
                if value is rest:
                    i += 1
                if flag == "m":
                    pattern = value
                else:
                    address = value
                break
            else:
                raise syntax_error(len(" ".join(words[:i])) + (1 if i else 0) + j)
        i += 1
    return verbose, pattern, address


@command("lm", syntax="lm [v] [k] [m Pattern | a Address]", render=render_modules,
         help="List the loaded modules: start, end, name and symbol state.  v: verbose, "
              "m Pattern: only matching names (* and ?), a Address: the module holding it.")
def list_modules(session: "Session", args: str) -> ModuleList:
    verbose, pattern, address_text = _lm_options(args)
    listed, bad_link = module_list(session.target)
    modules = sorted(listed, key=lambda m: m.base)
    if pattern is not None:
        names = _pattern(pattern)
        modules = [m for m in modules if names.match(m.name)]
    if address_text is not None:
        address = evaluate(address_text, session.target, session.settings["radix"])
        modules = [m for m in modules if m.base <= address < m.end]
    return ModuleList(modules, verbose, bad_link)
DOTS_PER_LINE = 63                  # .reload prints a dot per module, 63 to a line


# -- ln ---------------------------------------------------------------------------------------
@dataclass
class NearSymbols:
    """The symbol at or before an address and the one after it, in the address's module."""

    address: int
    before: tuple[int, str] | None = None      # (its address, `nt!Name+0x22`)
    after: tuple[int, str] | None = None
    exact: list[str] = field(default_factory=list)


def near_symbols(target: "Target", address: int) -> NearSymbols:
    """What `ln` prints for `address`: nothing outside every module, the module and offset
    in a module without symbols."""
    found = NearSymbols(address)
    module = target.symbols.module_at(address)
    if module is None:
        return found
    ordered = sorted((a, n) for n, a in module.symbols.items())
    below = [(a, n) for a, n in ordered if a <= address]
    if not below:
        offset = address - module.base
        found.before = (module.base, f"{module.name}+{offset:#x}" if offset else module.name)
        return found
    at = below[-1][0]
    offset = address - at
    names = sorted(n for a, n in below if a == at)
    found.before = (at, f"{module.name}!{names[0]}" + (f"+{offset:#x}" if offset else ""))
    later = [(a, n) for a, n in ordered if a > at]
    if later:
        found.after = (later[0][0], f"{module.name}!{later[0][1]}")
    if not offset:
        found.exact = [f"{module.name}!{n}" for n in names]
    return found


def render_near(result: NearSymbols, session: "Session") -> str:
    fmt = session.target.arch.fmt_addr
    if result.before is None:
        return ""
    line = f"({fmt(result.before[0])})   {result.before[1]}"
    if result.after is not None:
        line += f"   |  ({fmt(result.after[0])})   {result.after[1]}"
    lines = [line]
    if result.exact:
        lines += ["Exact matches:", *(f"    {name} = {NO_TYPE}" for name in result.exact)]
    return "\n".join(lines)


@command("ln", syntax="ln [Address]", render=render_near,
         help="List the nearest symbols at or before Address and after it (default: the "
              "current instruction pointer).")
def list_near(session: "Session", args: str) -> NearSymbols:
    target = session.target
    if args.strip():
        address = evaluate(args, target, session.settings["radix"])
    else:
        ip = read_register(target, session.processor, "eip" if target.arch.ptr_size == 4
                           else "rip")
        if ip is None:
            raise DebuggerError("Unable to get register context of the current processor")
        address = ip
    return near_symbols(target, address)


# -- x ----------------------------------------------------------------------------------------
@dataclass
class SymbolMatches:
    matches: list[tuple[int, str]]             # (address, `nt!Name`), by address


def _pattern(text: str) -> re.Pattern[str]:
    """kd's symbol wildcards: `*` any run of characters, `?` one; case-insensitive."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"{body}\\Z", re.IGNORECASE)


def find_symbols(target: "Target", pattern: str) -> list[tuple[int, str]]:
    """Symbols matching `Module!Pattern` (both parts may hold wildcards; no module: all)."""
    module_text, bang, name_text = pattern.rpartition("!")
    modules = _pattern(module_text if bang else "*")
    names = _pattern(name_text)
    chosen = [m for m in target.symbols.modules
              if modules.match(m.name) or modules.match(m.image)]
    if bang and not chosen:
        raise couldnt_resolve(pattern)
    return sorted((a, f"{m.name}!{n}") for m in chosen for n, a in m.symbols.items()
                  if names.match(n))


def render_matches(result: SymbolMatches, session: "Session") -> str:
    fmt = session.target.arch.fmt_addr
    return "\n".join(f"{fmt(a)} {name} = {NO_TYPE}" for a, name in result.matches)


@command("x", syntax="x [Module!]Pattern", render=render_matches,
         help="List the symbols matching a pattern: * any characters, ? one character "
              "(`x nt!ExAllocatePool*`, `x *!Pool*`).")
def examine_symbols(session: "Session", args: str) -> SymbolMatches:
    words = list(re.finditer(r"\S+", args))
    if len(words) != 1:
        raise syntax_error(words[1].start() if words else 0)
    return SymbolMatches(find_symbols(session.target, words[0].group()))


# -- .reload ----------------------------------------------------------------------------------
def _reload_lines(target: "Target", names: list[str]) -> list[str]:
    if not names:
        count = len(loaded_modules(target))
        dots = ["." * min(DOTS_PER_LINE, count - i) for i in range(0, count, DOTS_PER_LINE)]
        return ["Loading Kernel Symbols", *dots, "Loading User Symbols", "",
                "Loading unloaded module list"]
    lines = []
    for name in names:
        module = target.symbols.module(name)
        if module is None:
            raise DebuggerError(f"Unable to find module '{name}'")
        if not module.symbols:
            lines.append("*** ERROR: Module load completed but symbols could not be loaded "
                         f"for {module.image}")
    return lines


@command(".reload", syntax=".reload [/f] [Module ...]",
         help="Reload symbols (they are built into kdsim, so nothing changes); a module "
              "without symbols says so, as kd does.")
def reload_symbols(session: "Session", args: str) -> str:
    names = [w for w in args.split() if not w.startswith("/")]
    return "\n".join(_reload_lines(session.target, names))
