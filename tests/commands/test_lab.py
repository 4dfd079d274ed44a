"""`.lab`, `.hint` and `.check`: exact texts, graduated hints, answers judged without giving
them away, and the lab found from the target's metadata (so a dump of a lab works).  The
shipped labs themselves are tested in tests/kdsim/test_scenarios.py."""
from __future__ import annotations

import pytest

import commands.lab  # noqa: F401  (registers .lab, .hint, .check)
import commands.target_cmds  # noqa: F401  (registers .reboot)
from commands import dispatch
from commands.registry import lookup
from commands.session import Session
from commands.testing import blank_target, run
from kdsim import dump
from kdsim.scenarios import Lab, boot, scenario

TEST_LAB = Lab(
    title="A test lab",
    briefing="A test lab\n\nFind the tag.  Answer with .check TAG.",
    hints=("Look at !poolused.", "It starts with an L.", "It is Leak."),
    answers=("Leak", "myfault.sys"),
    question="the tag to find",
)
scenario("test-lab", "an empty machine with a lab", arch="x86", lab=TEST_LAB)(
    lambda machine, scale: None)
scenario("test-lab-too", "another empty machine with the same lab", arch="x86", lab=TEST_LAB)(
    lambda machine, scale: None)

NO_LAB = ("No lab is loaded (scenario 'default' has none).  kdsim --list-scenarios lists\n"
          "the labs; open one with kdsim --scenario NAME.\n")


def lab_session(name: str = "test-lab") -> Session:
    return Session(boot("x86", 3, name).target())


def test_the_commands_are_wired_into_the_debugger() -> None:
    assert "commands.lab" in dispatch.COMMAND_MODULES, (
        "commands/dispatch.py must load commands.lab for kdsim to know .lab, .hint, .check")
    for name in (".lab", ".hint", ".check"):
        assert lookup(name).category == "lab"


def test_lab_prints_the_briefing_and_how_to_answer() -> None:
    assert run(lab_session(), ".lab") == (
        "A test lab\n\nFind the tag.  Answer with .check TAG.\n\n"
        ".hint gives a hint (3 in all, one at a time); .check ANSWER checks your answer:\n"
        "the tag to find.\n")


def test_hints_come_one_at_a_time_then_run_out() -> None:
    s = lab_session()
    assert run(s, ".hint") == "Hint 1 of 3: Look at !poolused.\n"
    assert run(s, ".hint 2") == "Hint 2 has not been given yet: .hint gives the next one.\n"
    assert run(s, ".hint") == "Hint 2 of 3: It starts with an L.\n"
    assert run(s, ".HINT 1") == "Hint 1 of 3: Look at !poolused.\n"
    assert run(s, ".hint") == "Hint 3 of 3: It is Leak.\n"
    last = ("No more hints: all 3 have been given (.hint N shows one again).  .check ANSWER\n"
            "when you have it.\n")
    assert run(s, ".hint") == last
    assert run(s, ".hint") == last
    for bad in ("0", "4", "x", "-1"):
        assert run(s, f".hint {bad}") == "There are 3 hints: .hint N takes N from 1 to 3.\n"


def test_hints_are_counted_per_session_and_per_lab() -> None:
    first, second = lab_session(), lab_session()
    run(first, ".hint")
    assert run(second, ".hint").startswith("Hint 1 of 3")
    assert run(first, ".hint").startswith("Hint 2 of 3")
    first.target = boot("x86", 3, "test-lab-too").target()
    assert run(first, ".hint").startswith("Hint 1 of 3")


def test_a_reboot_into_the_same_lab_keeps_the_hints_given() -> None:
    s = lab_session()
    run(s, ".hint")
    run(s, ".reboot")
    assert run(s, ".hint").startswith("Hint 2 of 3")


@pytest.mark.parametrize("answer", ["Leak", "leak", "LEAK", "'Leak'", '"leak"', "  leak ",
                                    "MyFault.sys"])
def test_check_accepts_the_answers_whatever_their_case(answer: str) -> None:
    shown = answer.strip().strip("'\"")
    assert run(lab_session(), f".check {answer}") == f"Right: {shown} is the tag to find.\n"


@pytest.mark.parametrize("answer", ["Lea", "Leak2", "myfault.sy", "CM31"])
def test_a_wrong_answer_is_wrong_and_gives_nothing_away(answer: str) -> None:
    out = run(lab_session(), f".check {answer}")
    assert out == (f"Not right: {answer} is not the tag to find.  Look again (.hint gives a "
                   "hint).\n")
    assert "Leak" not in out.replace(answer, "") and "myfault" not in out.replace(answer, "")


def test_check_without_an_answer_says_what_it_asks() -> None:
    usage = "Usage: .check ANSWER, where ANSWER is the tag to find.\n"
    assert run(lab_session(), ".check") == usage
    assert run(lab_session(), '.check ""') == usage


def test_without_a_lab_every_lab_command_says_so(booted) -> None:
    s = Session(booted("x86").target())
    for command in (".lab", ".hint", ".check Leak"):
        assert run(s, command) == NO_LAB
    bare = Session(blank_target())
    assert run(bare, ".lab") == ("No lab is loaded (this target has none).  kdsim "
                                 "--list-scenarios lists the\nlabs; open one with kdsim "
                                 "--scenario NAME.\n")


def test_a_dump_of_a_lab_is_still_the_lab(tmp_path) -> None:
    live = lab_session()
    path = tmp_path / "lab.kdmp"
    dump.save(live.target, path)
    dead = Session(dump.load(path))
    for command in (".lab", ".hint", ".check leak", ".check nope"):
        assert run(dead, command) == run(lab_session(), command)


def test_help_lists_the_lab_commands_in_their_own_section() -> None:
    text = run(lab_session(), ".help")
    section = text.split("Lab:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in section] == [".check", ".hint", ".lab"]
    assert run(lab_session(), ".help .hint").startswith(".hint [Number]\n   Give the lab's next")


KIND_LAB = Lab(title="Kinds", briefing="Kinds\n\nAnswer with .check DRIVER.", hints=("h",),
               answers=("netflt",), question="the driver that leaks", kind="driver",
               drivers=("netflt", "netflt.sys", "other"), tags=("Nflt", "Othr"))
scenario("test-kinds", "an empty machine whose answer is a driver", arch="x86",
         lab=KIND_LAB)(lambda machine, scale: None)


def test_an_answer_of_the_wrong_kind_says_so() -> None:
    s = lab_session("test-kinds")
    assert run(s, ".check Nflt") == ("Not right: Nflt is a tag, and the question asks for a "
                                     "driver: the driver that\nleaks.\n")
    assert run(s, ".check other.sys").startswith("Not right: other.sys is not the driver")
    assert run(s, ".check NETFLT") == "Right: NETFLT is the driver that leaks.\n"


def test_a_briefing_is_wrapped_to_the_width_it_is_printed_at() -> None:
    from commands.lab import wrap_briefing
    text = ("Title line\n\nA paragraph whose one line runs on well past forty columns of text.\n"
            "Short.\n\n  1. An item that also runs on past the width,\n     and goes on.\n"
            "  2. Short item.")
    assert wrap_briefing(text, 40) == (
        "Title line\n\nA paragraph whose one line runs on well\npast forty columns of text.  "
        "Short.\n\n  1. An item that also runs on past the\n     width, and goes on.\n"
        "  2. Short item.")
    assert wrap_briefing(text, 100) == text


def test_check_follows_the_seeds_variant(tmp_path) -> None:
    from kdsim.scenarios import open_lab
    from tests.support import ROOT
    lab = tmp_path / "v.toml"
    lab.write_text((ROOT / "kdsim/scenarios/use-after-free.toml").read_text()
                   .replace('solution = "use-after-free.cmd"\n', ""))
    found = open_lab(lab)
    for seed, culprit in ((0, "pktmon"), (1, "qosflt"), (5, "vswitchx")):
        s = Session(found.machine(seed=seed, scale=0.01).target())
        assert run(s, f".check {culprit}.sys") == (
            f"Right: {culprit}.sys is the driver that writes to a block after freeing it.\n")
