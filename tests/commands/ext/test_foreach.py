"""`!for_each_module`: one run of a command per loaded module, with the module's aliases."""
from __future__ import annotations

import pytest

from commands.ext.foreach import expand
from commands.core.modules import LoadedModule
from commands.session import Session
from commands.testing import run
from kdsim.arch import X64, X86
from kdsim.scenarios import boot
from tests.support import build_target

MODULES = (("nt", "ntoskrnl.exe", 0x82A0F000, 0x5F7000, {"KeBugCheckEx": 0x82A8F000}),
           ("myfault", "myfault.sys", 0x8E687000, 0x7000, {}))


@pytest.fixture
def x86() -> Session:
    return Session(build_target(X86, modules=MODULES,
                                memory=((0x8E6881ED, b"\x68Leak\x6a\x00"),)))


def test_aliases() -> None:
    module = LoadedModule("myfault", "myfault.sys", 0xFFFFF88004287000, 0xFFFFF8800428E000,
                          False)
    assert expand("@#ModuleName @#ImageName @#Base @#End @#Size", module, X64) == (
        "myfault myfault.sys fffff880`04287000 fffff880`0428e000 7000")


def test_each_module_runs_the_command(x86: Session) -> None:
    assert run(x86, '!for_each_module ".echo @#ModuleName @#Base @#End"') == (
        "nt 82a0f000 83006000\nmyfault 8e687000 8e68e000\n")
    assert run(x86, "!for_each_module -q .echo @#ImageName") == (
        "ntoskrnl.exe\nmyfault.sys\n")


def test_a_search_of_every_image_finds_the_tag(x86: Session) -> None:
    assert run(x86, '!for_each_module "s -a @#Base @#End \\"Leak\\""') == (
        "8e6881ee  4c 65 61 6b 6a 00 00 00-00 00 00 00 00 00 00 00  Leakj...........\n")


def test_a_failing_run_does_not_stop_the_others(x86: Session) -> None:
    assert run(x86, '!for_each_module "dd @#ModuleName+0x1000 L1"') == (
        "82a10000  ????????\n8e688000  00000000\n")
    assert run(x86, '!for_each_module "? @#ModuleName!KeBugCheckEx"') == (
        "Evaluate expression: -2102857728 = 82a8f000\n"
        "Couldn't resolve error at 'myfault!KeBugCheckEx'\n")


def test_no_command(x86: Session) -> None:
    assert run(x86, "!for_each_module") == (
        'Usage: !for_each_module [-q] "Command" (aliases @#Base @#End @#Size @#ModuleName '
        "@#ImageName)\n")


def test_on_a_machine_the_leak_tag_is_found_only_in_myfault() -> None:
    machine = boot("x64", seed=1, scenario="leak", scale=0.05)
    text = run(Session(machine.target()), '!for_each_module "s -a @#Base @#End \\"Leak\\""')
    module = machine.symbols.module("myfault")
    hits = [int(line.split()[0].replace("`", ""), 16) for line in text.splitlines()]
    assert hits and all(module.base <= hit < module.base + module.size for hit in hits)
