"""Loaded modules and their symbols: what turns an address into `nt!IopXxxControlFile+0x607`.

This is the debug information a real debugger gets from PDBs and the loaded-module list; a dump
file carries it along with the pages.  Modules without public symbols (our simulated third-party
drivers) symbolise as `myfault+0x11f6`, as they do in the seeds.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class Module:
    name: str                      # "nt", "myfault"
    image: str                     # "ntoskrnl.exe", "myfault.sys"
    base: int
    size: int
    symbols: dict[str, int] = field(default_factory=dict)   # name -> absolute address
    _sorted: list[tuple[int, str]] = field(default_factory=list, repr=False)

    def add(self, name: str, address: int) -> int:
        self.symbols[name] = address
        bisect.insort(self._sorted, (address, name))
        return address

    def add_all(self, symbols: Iterable[tuple[str, int]]) -> None:
        """`add` each (name, address), sorting once: a dump's symbols load in n log n time
        whatever their order."""
        pairs = list(symbols)
        self.symbols.update(pairs)
        self._sorted = sorted([*self._sorted, *((address, name) for name, address in pairs)])

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size

    def nearest(self, address: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self._sorted, (address, "\uffff")) - 1
        if i < 0:
            return None
        sym_addr, name = self._sorted[i]
        return name, address - sym_addr


class SymbolTable:
    """Modules ordered by base; `nt` is the default module for unqualified names."""

    def __init__(self) -> None:
        self.modules: list[Module] = []

    def add_module(self, name: str, image: str, base: int, size: int) -> Module:
        mod = Module(name, image, base, size)
        bisect.insort(self.modules, mod, key=lambda m: m.base)
        return mod

    def module(self, name: str) -> Module | None:
        low = name.lower()
        for mod in self.modules:
            if mod.name.lower() == low or mod.image.lower() == low:
                return mod
        return None

    def module_at(self, address: int) -> Module | None:
        for mod in self.modules:
            if mod.contains(address):
                return mod
        return None

    def resolve(self, name: str) -> int | None:
        """`nt!Sym`, `module` (its base), or an unqualified `Sym` (nt first). Case-insensitive,
        as the debugger's symbol matching is."""
        if "!" in name:
            mod_name, _, sym = name.partition("!")
            mod = self.module(mod_name)
            if mod is None or not sym:
                return None
            return _lookup(mod, sym)
        mod = self.module(name)
        if mod is not None:
            return mod.base
        ordered = sorted(self.modules, key=lambda m: m.name != "nt")
        for mod in ordered:
            found = _lookup(mod, name)
            if found is not None:
                return found
        return None

    def symbolize(self, address: int) -> str | None:
        mod = self.module_at(address)
        if mod is None:
            return None
        near = mod.nearest(address)
        if near is None:
            off = address - mod.base
            return f"{mod.name}+{off:#x}" if off else mod.name
        name, off = near
        return f"{mod.name}!{name}+{off:#x}" if off else f"{mod.name}!{name}"

    def names(self) -> list[str]:
        """Every qualified symbol name, for completion."""
        return [f"{m.name}!{s}" for m in self.modules for s in m.symbols]


def _lookup(mod: Module, sym: str) -> int | None:
    found = mod.symbols.get(sym)
    if found is not None:
        return found
    low = sym.lower()
    for name, addr in mod.symbols.items():
        if name.lower() == low:
            return addr
    return None
