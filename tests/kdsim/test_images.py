"""Driver images in memory: headers on the first page, each allocation site's tag load and
call just before the return address its pattern's stack shows."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.images import DriverImages
from kdsim.layouts import PAGE_SIZE
from kdsim.memory import AddressSpace
from kdsim.modules import load_modules, seed_modules
from kdsim.scenarios import boot


@pytest.mark.parametrize("arch,code", [
    ("x64", b"\x41\xb8Leak\xe8\x00\x00\x00\x00"),
    ("x86", b"\x68Leak\x6a\x00\xe8\x00\x00\x00\x00"),
])
def test_an_allocation_site_holds_its_tag(arch: str, code: bytes) -> None:
    spec = get_arch(arch)
    memory = AddressSpace()
    symbols, _ = load_modules(spec, seed_modules("myfault"))
    images = DriverImages(spec, memory, symbols)
    module = symbols.module("myfault")
    assert memory.read(module.base, 2) == b"MZ"
    ret = module.base + 0x11F6
    images.hold_tag("Leak", (ret, symbols.resolve("nt!IofCallDriver") or 0))
    assert memory.read(ret - len(code), len(code)) == code
    assert not memory.is_mapped(module.base + 2 * PAGE_SIZE)       # the rest is not mapped


def test_nt_sites_and_sites_in_the_headers_are_left_alone() -> None:
    spec = get_arch("x64")
    memory = AddressSpace()
    symbols, nt = load_modules(spec, seed_modules("DrvA"))
    images = DriverImages(spec, memory, symbols)
    pages = set(memory.pages)
    images.hold_tag("File", (nt.base + 0x399000,))
    images.hold_tag("Drva", (symbols.module("DrvA").base + 4,))
    images.hold_tag("None", ())
    assert set(memory.pages) == pages


def test_every_driver_pattern_of_a_machine_has_its_tag_in_its_image() -> None:
    """Where the allocator is called from a driver, the tag sits before the call; a site
    several tags share (win32k's GDI objects take theirs from the object type) holds one."""
    machine = boot("x64", seed=3, scale=0.02)
    sites: dict[int, set[bytes]] = {}
    for act in machine.workload.activities:
        tag, stack = getattr(act, "tag", None), getattr(act, "stack", ())
        module = machine.symbols.module_at(stack[0]) if tag is not None and stack else None
        if module is not None and module.name != "nt":
            sites.setdefault(stack[0], set()).add(tag.encode("latin-1"))
    assert len(sites) > 50
    for ret, tags in sites.items():
        assert machine.memory.read(ret - 9, 4) in tags, (tags, hex(ret))
