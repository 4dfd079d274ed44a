"""The loaded modules: every frame the population's stacks name is a symbol inside its module
and prints back as written; system calls enter through the arch's own entry."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.catalogue import load
from kdsim.modules import (DRIVER_FUNCTIONS, DRIVER_STRIDE, DRIVERS, NT_SIZE, SAME_FRAME,
                           SEED_DRIVERS, frames, load_modules, seed_modules)
from kdsim.ntdata import DATA_RVA
from kdsim.scenarios import get_scenario

ARCHES = ("x86", "x64")


def catalogue_frames() -> set[str]:
    return {frame for e in load().entries for frame in (*e.alloc, *e.free)}


@pytest.mark.parametrize("arch", ARCHES)
def test_every_catalogue_frame_prints_back_as_written(arch: str) -> None:
    table, _ = load_modules(get_arch(arch))
    for frame in sorted(catalogue_frames()):
        address, = frames(table, (frame,))
        printed = table.symbolize(address)
        assert printed in (frame, SAME_FRAME.get(frame)), (frame, printed)


@pytest.mark.parametrize("arch", ARCHES)
def test_allocation_and_free_sites_are_inside_their_module(arch: str) -> None:
    table, _ = load_modules(get_arch(arch))
    for entry in load().entries:
        for site in (entry.alloc[0], *entry.free[:1]):
            module = table.module_at(frames(table, (site,))[0])
            assert module is not None and module.name == entry.module, (entry.tag, site)


@pytest.mark.parametrize("arch, entry, thread", [("x86", "nt!KiFastCallEntry+0x12a",
                                                  "nt!KiThreadStartup+0x19"),
                                                 ("x64", "nt!KiSystemServiceCopyEnd+0x13",
                                                  "nt!KiStartSystemThread+0x16")])
def test_system_calls_enter_through_the_arch_entry(arch: str, entry: str, thread: str) -> None:
    table, _ = load_modules(get_arch(arch))
    for written in ("nt!KiSystemServiceCopyEnd+0x13", "nt!KiFastCallEntry+0x12a"):
        assert table.symbolize(frames(table, (written,))[0]) == entry
    assert table.symbolize(frames(table, ("nt!KiStartSystemThread+0x16",))[0]) == thread
    other = "KiSystemServiceCopyEnd" if arch == "x86" else "KiFastCallEntry"
    assert table.resolve(f"nt!{other}") is None


def test_modules_hold_their_functions_and_do_not_overlap() -> None:
    sizes = {name: size for name, _, _, size in DRIVERS}
    for name, functions in DRIVER_FUNCTIONS.items():
        assert (len(functions) + 1) * DRIVER_STRIDE <= sizes[name], name
    for arch in ARCHES:
        table, nt = load_modules(get_arch(arch))
        spans = sorted((m.base, m.base + m.size) for m in table.modules)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
        code = [a - nt.base for a in nt.symbols.values()]
        assert max(code) < DATA_RVA < NT_SIZE           # nt's routines stay out of its .data


SEEDS = {"myfault", "DrvA", "DrvB", "DrvC", "cmdrv"}


@pytest.mark.parametrize("arch", ARCHES)
def test_the_seed_drivers_load_only_on_their_labs_machines(arch: str) -> None:
    """Each lab's machine loads its own seed drivers at their seed addresses, and no other."""
    table, _ = load_modules(get_arch(arch))
    assert not SEEDS & {m.name for m in table.modules}
    spec = get_arch(arch)
    for lab, own in (("leak", {"myfault"}), ("overrun", {"DrvA", "DrvB", "DrvC"}),
                     ("overrun-special", {"DrvA", "DrvB", "DrvC"}), ("tour", {"DrvC"}),
                     ("fragmentation", {"cmdrv"}), ("fragmentation-pages", {"cmdrv"})):
        table, _ = load_modules(spec, get_scenario(lab).options["modules"])
        assert SEEDS & {m.name for m in table.modules} == own, lab
        for name in own:
            module = table.module(name)
            assert module is not None and module.size == SEED_DRIVERS[name].size
            assert module.base == (spec.driver_base + SEED_DRIVERS[name].offset) & spec.ptr_mask


def test_myfault_loads_where_the_second_seed_shows_it() -> None:
    table, _ = load_modules(get_arch("x64"), seed_modules("myfault"))
    assert table.symbolize(0xFFFFF880042881F6) == "myfault+0x11f6"
