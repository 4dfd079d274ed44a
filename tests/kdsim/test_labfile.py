"""Lab files: the issue's example boots as written (its leak on top of !poolused 2, its driver
a module that symbolises its stacks), each bug a lab file can give a driver comes out of the
allocator, hostile files are one line each naming file, line and key, and the boot cache's
key follows the file's bytes."""
from __future__ import annotations

from pathlib import Path

import pytest

from commands.dispatch import load_commands
from commands.session import Session
from commands.testing import run
from kdsim import bootcache, labfile
from kdsim.layouts import QUOTA
from kdsim.recipe import Recipe
from kdsim.scenarios import open_lab
from tests.support import ROOT

EXAMPLE = ROOT / "tests" / "kdsim" / "labs" / "netflt.toml"

HEAD = """\
[lab]
title = "T"
question = "the driver at fault"
answers = ["bugdrv.sys"]
briefing = "b"
hints = ["h"]

[machine]
boot_ticks = 4000
population = 0.05
"""
DRIVER = """
[[driver]]
name = "bugdrv.sys"

[[driver.allocates]]
"""


def write(tmp_path: Path, text: str, name: str = "bug.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def booted(tmp_path: Path, machine: str, entry: str, scale: float = 1.0):
    path = write(tmp_path, HEAD + machine + DRIVER + entry)
    return open_lab(path).boot(seed=1, scale=scale)


def session_of(machine) -> Session:
    load_commands()
    return Session(machine.target())


def test_the_issue_example_boots_with_its_leak_on_top_and_its_driver_a_module() -> None:
    machine = open_lab(EXAMPLE).boot(seed=0)
    assert machine.arch.name == "x64" and machine.processors == 2
    s = session_of(machine)
    top = run(s, "!poolused /t1 2").splitlines()[5]
    assert top.split()[0] == "Nflt"
    module = machine.symbols.module("netflt.sys")
    assert module is not None and module.name == "netflt"
    assert machine.symbols.symbolize(module.base + 0x1a2b) == "netflt+0x1a2b"
    ndis = machine.symbols.resolve("ndis!ndisMIndicatePacket")
    assert ndis is not None and machine.symbols.symbolize(ndis + 0x52) == \
        "ndis!ndisMIndicatePacket+0x52"
    assert run(s, ".check netflt") == "Right: netflt is the driver that leaks nonpaged pool.\n"


def test_an_overrun_is_found_by_the_allocator_later(tmp_path: Path) -> None:
    machine = booted(tmp_path, "processors = 1\n", 'tag = "Bugd"\nsizes = [0x1f0]\n'
                     "lifetime = 50\noverrun = 64\nevery = 20\nweight = 3\n")
    for _ in range(50):
        if machine.step(2000) is not None:
            break
    assert machine.crash is not None and machine.crash.code in (0x19, 0xC2, 0xC5)


def test_a_write_after_free_stops_at_the_store_in_special_pool(tmp_path: Path) -> None:
    machine = booted(tmp_path, '[machine.verifier]\ndrivers = ["bugdrv.sys"]\n'
                     "special_pool = true\n", 'tag = "Bugd"\nsizes = [0x80]\n'
                     "use_after_free = true\nevery = 20\nweight = 3\n")
    assert machine.crash is not None and machine.crash.code == 0xD5


def test_an_underrun_hits_the_guard_page_in_verify_start_mode(tmp_path: Path) -> None:
    machine = booted(tmp_path, '[machine.verifier]\ndrivers = ["bugdrv.sys"]\n'
                     'special_pool = true\ncatch = "underruns"\n',
                     'tag = "Bugd"\nsizes = [0x80]\nunderrun = 8\nevery = 20\n'
                     "lifetime = 50\nweight = 3\n")
    assert machine.crash is not None and machine.crash.code == 0xD6


def test_a_double_free_stops_in_the_free(tmp_path: Path) -> None:
    machine = booted(tmp_path, '[machine.verifier]\ndrivers = ["bugdrv.sys"]\n'
                     "pool_tracking = true\n", 'tag = "Bugd"\nsizes = [0x80]\nlifetime = 50\n'
                     "double_free_every = 20\nweight = 3\n")
    assert machine.crash is not None and machine.crash.code in (0x19, 0xC2)
    assert "ExFreePoolWithTag" in machine.crash.where[0]


def test_a_quota_leak_is_charged_to_a_process(tmp_path: Path) -> None:
    machine = booted(tmp_path, "", 'tag = "Bugq"\nsizes = [0x100]\nquota = true\n'
                     "lifetime = 100\nleak_every = 5\nweight = 3\n")
    s = session_of(machine)
    found = run(s, "!poolfind Bugq")
    assert "(Allocated) Bugq Process: " in found
    assert machine.crash is None and QUOTA


def test_a_big_pool_leak_lands_in_the_big_page_table(tmp_path: Path) -> None:
    machine = booted(tmp_path, "", 'tag = "Bigl"\nsizes = [0x3000]\nlarge = true\n'
                     "weight = 0.2\n")
    assert ":large page allocation, Tag  is Bigl, size  is 0x3000 bytes" in run(
        session_of(machine), "!poolfind Bigl")


def test_a_burst_exhausts_nonpaged_pool(tmp_path: Path) -> None:
    machine = booted(tmp_path, "nonpaged_pool_pages = 2048\n",
                     'tag = "Brst"\nsizes = [0x800]\nburst = 100000\nburst_at = 2000\n')
    mm = machine.mm
    assert mm.nonpaged.in_use >= mm.nonpaged.max_pages - 8     # traffic freed a few since
    assert mm.get("ExPoolFailures") >= 1


def test_the_boot_cache_key_follows_the_lab_files_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.read_text(), "keyed.toml")
    first = bootcache.key(Recipe.for_scenario(open_lab(path).name))
    path.write_text(EXAMPLE.read_text().replace("weight = 3", "weight = 4"))
    second = bootcache.key(Recipe.for_scenario(open_lab(path).name))
    assert first and second and first != second


GOOD = EXAMPLE.read_text()
# (what is wrong, the text, the line the error names, the key, a word of the message)
HOSTILE = [
    ("syntax", GOOD.replace('tag = "Nflt"', 'tag = "Nflt'), 24, "syntax", "illegal"),
    ("unknown key", GOOD.replace("weight = 3", "wieght = 3"), 27, "driver.allocates.wieght",
     "did you mean 'weight'"),
    ("wrong type", GOOD.replace("weight = 3", 'weight = "3"'), 27, "driver.allocates.weight",
     "must be a number"),
    ("size out of range", GOOD.replace("sizes = [0x180, 0x1c0]", "sizes = [0x100000]"), 26,
     "driver.allocates.sizes", "0x100000 is above the small-pool limit"),
    ("unknown pool", GOOD.replace('pool = "nonpaged"', 'pool = "nonpagd"'), 25,
     "driver.allocates.pool", "unknown pool type 'nonpagd'"),
    ("undeclared driver", GOOD.replace('"netflt+0x1f40"', '"tdifilt+0x1f40"'), 30,
     "driver.allocates.stack", "tdifilt is not a declared driver"),
    ("answers missing", GOOD.replace('answers = ["netflt", "netflt.sys"]\n', ""), 1, "lab",
     "'answers' is missing"),
    ("empty answers", GOOD.replace('["netflt", "netflt.sys"]', "[]"), 5, "lab.answers",
     "at least 1"),
    ("bad tag", GOOD.replace('tag = "Nflt"', 'tag = "Nflt5"'), 24, "driver.allocates.tag",
     "not a pool tag"),
    ("unknown arch", GOOD.replace('arch = "x64"', 'arch = "arm"'), 3, "lab.arch",
     "unknown architecture"),
    ("description gives the answer", GOOD.replace("[lab]\n", '[lab]\ndescription = "netflt '
     'leaks"\n'), 2, "lab.description", "gives the answer away"),
    ("a frame past its module", GOOD.replace("netflt+0x1f40", "netflt+0x9000"), 30,
     "driver.allocates.stack", "past the end of netflt"),
    ("leak without lifetime", GOOD.replace("lifetime = 400", ""), 29,
     "driver.allocates.leak_every", "needs a lifetime"),
    ("a second entry", GOOD + "\n[[driver.allocates]]\ntag = 5\nsizes = [16]\n", 33,
     "driver.allocates.tag", "must be a string"),
]


@pytest.mark.parametrize("what,text,line,key,message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_lab_file_is_one_line_naming_file_line_and_key(
        tmp_path: Path, what: str, text: str, line: int, key: str, message: str) -> None:
    path = write(tmp_path, text, "netflt.toml")
    with pytest.raises(labfile.LabFileError) as raised:
        labfile.load(path)
    said = str(raised.value)
    assert "\n" not in said
    assert said.startswith(f"{path}:{line}: {key}: "), said
    assert message in said


def test_files_that_are_not_lab_text_are_refused(tmp_path: Path) -> None:
    for data in (b"\xff\xfe[lab]", b"x" * (labfile.MAX_BYTES + 1)):
        path = tmp_path / "odd.toml"
        path.write_bytes(data)
        with pytest.raises(labfile.LabFileError, match=r"odd.toml:1: file: "):
            labfile.load(path)
    with pytest.raises(labfile.LabFileError, match="cannot read"):
        labfile.load(tmp_path / "missing.toml")
    with pytest.raises(labfile.LabFileError, match="cannot read"):
        labfile.load(tmp_path)


def test_key_lines_count_arrays_of_tables_and_skip_strings() -> None:
    lines = labfile.KeyLines('a = """\nb = 1\n"""\n[[d]]\nx = [\n  "y = 2",\n]\n[[d.e]]\n'
                             "z = 1\n[[d]]\nx = 3\n")
    assert lines.line(("a",)) == 1 and lines.line(("b",)) == 1
    assert lines.line(("d", 0, "x")) == 5 and lines.line(("d", 0, "e", 0, "z")) == 9
    assert lines.line(("d", 1, "x")) == 11 and lines.line(("d", 1, "nothing")) == 10


# -- variants --------------------------------------------------------------------------------
VARIANTS = HEAD.replace('answers = ["bugdrv.sys"]', 'answers = ["{culprit}", "{culprit}.sys"]') + """
[variants]
culprit = ["aadrv", "bbdrv", "ccdrv"]
tag = ["AaDv", "BbDv", "CcDv"]
size = [0x100, 0x180, 0x200]

[[driver]]
name = "{culprit}.sys"

[[driver.allocates]]
tag = "{tag}"
sizes = ["{size}"]
weight = 3
stack = ["{culprit}+0x1000"]
"""


def test_the_seed_picks_a_variant_and_every_variants_driver_is_loaded(tmp_path: Path) -> None:
    lab = labfile.load(write(tmp_path, VARIANTS))
    assert [v["lab"]["answers"] for v in lab.variants] == [
        ("aadrv", "aadrv.sys"), ("bbdrv", "bbdrv.sys"), ("ccdrv", "ccdrv.sys")]
    assert lab.pick(0) is lab.data and lab.pick(4)["drivers"][0]["name"] == "bbdrv"
    assert lab.pick(5)["drivers"][0]["allocates"][0]["sizes"] == (0x200,)
    assert [m.name for m in labfile.module_specs(lab)] == ["aadrv", "bbdrv", "ccdrv"]
    scenario = open_lab(write(tmp_path, VARIANTS))
    assert [scenario.lab_of(seed).answers[0] for seed in (0, 1, 2, 3)] == [
        "aadrv", "bbdrv", "ccdrv", "aadrv"]
    machine = scenario.boot(seed=2, scale=0.5)
    top = run(session_of(machine), "!poolused /t1 2").splitlines()[5]
    assert top.split()[0] == "CcDv"
    assert run(session_of(machine), ".check ccdrv").startswith("Right: ccdrv")
    assert run(session_of(machine), ".check aadrv").startswith("Not right")


HOSTILE_VARIANTS = [
    ("uneven", VARIANTS.replace('size = [0x100, 0x180, 0x200]', 'size = [0x100, 0x180]'), 15,
     "variants.size", "has 2 alternatives where the others have 3"),
    ("one alternative", VARIANTS.replace('["AaDv", "BbDv", "CcDv"]', '["AaDv"]'), 14,
     "variants.tag", "2 to 64 alternatives"),
    ("a bad name", VARIANTS.replace("tag = [", "Tag = ["), 14, "variants.Tag",
     "not a variant name"),
    ("unknown placeholder", VARIANTS.replace('"{tag}"', '"{tags}"'), 21,
     "driver.allocates.tag", "unknown variant '{tags}'"),
    ("a bad value in one column", VARIANTS.replace('"CcDv"', '"CcDvX"'), 21,
     "driver.allocates.tag", "(variant 3 of 3: seeds 2, 5, ...)"),
    ("a placeholder in machine", VARIANTS.replace("boot_ticks = 4000", 'boot_ticks = "{size}"'),
     8, "machine", "takes no {variant}"),
    ("an answer in the description", VARIANTS.replace('[lab]\n', '[lab]\ndescription = "is it '
     'bbdrv?"\n'), 2, "lab.description", "(variant 2 of 3"),
]


@pytest.mark.parametrize("what,text,line,key,message", HOSTILE_VARIANTS,
                         ids=[h[0] for h in HOSTILE_VARIANTS])
def test_a_hostile_variant_is_one_line(tmp_path: Path, what: str, text: str, line: int,
                                       key: str, message: str) -> None:
    path = write(tmp_path, text, "v.toml")
    with pytest.raises(labfile.LabFileError) as raised:
        labfile.load(path)
    said = str(raised.value)
    assert "\n" not in said and said.startswith(f"{path}:{line}: {key}: "), said
    assert message in said


def test_a_solution_file_beside_the_lab_is_read_when_checked(tmp_path: Path) -> None:
    text = HEAD.replace('hints = ["h"]', 'hints = ["h"]\nsolution = "bug.cmd"')
    with pytest.raises(labfile.LabFileError, match=r"bug.toml:7: lab.solution: cannot read"):
        labfile.load(write(tmp_path, text))
    (tmp_path / "bug.cmd").write_text("* the solution\n.lab\n\n.check bugdrv.sys\n")
    lab = labfile.load(write(tmp_path, text))
    assert lab.lab["solution"] == ("* the solution", ".lab", ".check bugdrv.sys")
    assert open_lab(write(tmp_path, text)).lab.solution == "bug.cmd"
    with pytest.raises(labfile.LabFileError, match="not a command file name"):
        labfile.load(write(tmp_path, text.replace("bug.cmd", "../etc/passwd")))


def test_a_lab_file_named_like_a_built_in_replaces_it(tmp_path: Path) -> None:
    from kdsim.scenarios import SCENARIOS, get_scenario
    builtin = get_scenario("tour")
    try:
        open_lab(write(tmp_path, EXAMPLE.read_text(), "tour.toml"))
        assert get_scenario("tour").lab.title == "Where did nonpaged pool go?"
    finally:
        SCENARIOS["tour"] = builtin
