"""The tag catalogue (kdsim/catalogue/): the shipped file loads and holds a full-size Windows 7
population; every malformed entry is refused at load time with the entry and key named."""
from __future__ import annotations

import re

import pytest

from kdsim.catalogue import CatalogueError, load, parse
from kdsim.layouts import PAGED

GOOD_ENTRY = ('{ tag = "Abcd", module = "nt", pool = "paged", x86 = 0x40, x64 = [0x60, 0x90], '
              'boot = 10, rate = 1.0, life = 100, alloc = "nt!IopCreateFile+0x10", '
              'via = "io", free = "nt!IopCloseFile+0x20", free_via = "io" }')
PATHS = '[paths]\nio = ["nt!NtDeviceIoControlFile+0x56", "nt!KiSystemServiceCopyEnd+0x13"]\n'


def text(entry: str = GOOD_ENTRY, paths: str = PATHS, extra: str = "") -> str:
    return f"{extra}tags = [\n  {entry},\n]\n{paths}"


def test_a_good_entry_reads_back() -> None:
    entry, = parse(text(), "test").entries
    assert (entry.tag, entry.module, entry.pool_type, entry.boot) == ("Abcd", "nt", PAGED, 10)
    assert entry.sizes == {"x86": (0x40,), "x64": (0x60, 0x90)}
    assert entry.alloc == ("nt!IopCreateFile+0x10", "nt!NtDeviceIoControlFile+0x56",
                           "nt!KiSystemServiceCopyEnd+0x13")
    assert entry.free[0] == "nt!IopCloseFile+0x20" and entry.object_type == ""


BAD = {
    "not TOML": ("tags = [", "Invalid"),
    "unknown top-level key": (text(extra='version = 1\n'), "unknown key(s) version"),
    "no tags": (PATHS, "'tags' must be a non-empty list"),
    "a tag of three characters": (text(GOOD_ENTRY.replace('"Abcd"', '"Abc"')),
                                  "is not four printable characters"),
    "an unknown key": (text(GOOD_ENTRY.replace("boot = 10", "boot = 10, colour = 1")),
                       "unknown colour"),
    "a missing key": (text(GOOD_ENTRY.replace('x86 = 0x40, ', '')), "missing x86"),
    "an unknown pool": (text(GOOD_ENTRY.replace('"paged"', '"session"')),
                        "pool must be one of nonpaged, paged"),
    "a zero size": (text(GOOD_ENTRY.replace("x86 = 0x40", "x86 = 0")), "x86: a size is"),
    "a range upside down": (text(GOOD_ENTRY.replace("[0x60, 0x90]", "[0x90, 0x60]")),
                            "lo above hi"),
    "three sizes": (text(GOOD_ENTRY.replace("[0x60, 0x90]", "[1, 2, 3]")), "x64: a size is"),
    "a negative count": (text(GOOD_ENTRY.replace("boot = 10", "boot = -1")),
                         "boot must be a non-negative integer"),
    "a fractional count": (text(GOOD_ENTRY.replace("boot = 10", "boot = 1.5")),
                           "boot must be a non-negative integer"),
    "a rate without a life": (text(GOOD_ENTRY.replace("life = 100", "life = 0")),
                              "rate and life go together"),
    "nothing to do": (text(GOOD_ENTRY.replace("boot = 10", "boot = 0")
                           .replace("rate = 1.0, life = 100", "rate = 0, life = 0")),
                      "neither boot blocks nor traffic"),
    "a site outside its module": (text(GOOD_ENTRY.replace('"nt!IopCreateFile+0x10"',
                                                          '"Ntfs!NtfsCreateFcb+0x10"')),
                                  "'Ntfs!NtfsCreateFcb+0x10' is not in nt"),
    "a frame without an offset": (text(GOOD_ENTRY.replace("IopCreateFile+0x10", "IopCreateFile")),
                                  "is not a frame"),
    "an unknown path": (text(GOOD_ENTRY.replace('via = "io", free', 'via = "disk", free')),
                        "no path named 'disk'"),
    "a bad frame in a path": (text(paths='[paths]\nio = ["nt!Nt Create+0x1"]\n'),
                              "paths.io: 'nt!Nt Create+0x1' is not a frame"),
    "traffic that is never freed": (text(GOOD_ENTRY.replace(
        ', free = "nt!IopCloseFile+0x20", free_via = "io"', '')), "needs free and free_via"),
    "a free without its path": (text(GOOD_ENTRY.replace(', free_via = "io"', '')),
                                "free and free_via go together"),
    "protected that is not a boolean": (text(GOOD_ENTRY.replace("boot = 10",
                                                                "boot = 10, protected = 1")),
                                        "protected is true or false"),
    "traffic too big for a pool page": (text(GOOD_ENTRY.replace("x86 = 0x40", "x86 = 0x2000")),
                                        "traffic blocks fit a pool page"),
    "the same tag twice in a pool": (f"tags = [\n  {GOOD_ENTRY},\n  {GOOD_ENTRY},\n]\n{PATHS}",
                                     "'Abcd' twice in the same pool"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_malformed_catalogue_is_refused_with_its_place(name: str) -> None:
    bad, message = BAD[name]
    with pytest.raises(CatalogueError, match=re.escape(message)):
        parse(bad, "test")


def test_an_unknown_catalogue_is_an_error() -> None:
    with pytest.raises(CatalogueError, match="no tag catalogue 'win95'"):
        load("win95")


def test_the_shipped_catalogue_is_a_full_size_windows_7() -> None:
    entries = load().entries
    tags = {e.tag for e in entries}
    assert len(tags) >= 300
    assert not tags & {"Proc", "Thre", "MmLd"}            # kdsim/objects.py makes those
    busy = [e for e in entries if e.rate]
    assert len(busy) >= 0.9 * len(entries)               # nearly every tag churns
    objects = {e.tag: e.object_type for e in entries if e.object_type}
    assert {"File", "Even", "Muta", "Sema", "Key ", "Sect", "Toke", "Devi", "Driv",
            "IoCo", "ALPC"} <= set(objects)
    assert all(e.protected for e in entries if e.object_type)
    for entry in entries:
        assert entry.alloc[0].split("!")[0] == entry.module
        assert not entry.free or entry.free[0].split("!")[0] == entry.module
        assert not any("Allocate" in frame for frame in entry.free), entry.tag
