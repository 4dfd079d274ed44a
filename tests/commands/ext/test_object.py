"""`!object`: an object's header, type and name, read from memory."""
from __future__ import annotations

import re
from typing import Callable

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.machine import Machine


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_the_system_process(booted: Callable[[str], Machine], arch: str) -> None:
    machine = booted(arch)
    session = Session(machine.target())
    digits = machine.arch.hex_digits
    system = machine.g.read_ptr(machine.nt.symbols["PsInitialSystemProcess"])
    header = system - machine.stops.profile.body_offset
    text = run(session, "!object poi(nt!PsInitialSystemProcess)").splitlines()
    assert re.fullmatch(rf"Object: {system:0{digits}x}  Type: \([0-9a-f]{{{digits}}}\) Process",
                        text[0])
    assert text[1] == f"    ObjectHeader: {header:0{digits}x} (new version)"
    assert re.fullmatch(r"    HandleCount: \d+  PointerCount: \d+", text[2])


def test_a_named_object_shows_its_name(booted: Callable[[str], Machine]) -> None:
    session = Session(booted("x64").target())
    text = run(session, "!object poi(nt!PsProcessType)").splitlines()
    assert text[0].endswith(") Type")
    assert text[3].endswith("Name: Process")


@pytest.mark.parametrize("line,message", [
    ("!object 0", "Object 00000000 has no readable object header of a known type"),
    ("!object", "Usage: !object Address (object directories are not modelled)"),
    ("!object \\Driver", "!object \\Driver: object directories are not modelled by kdsim; "
                         "give an object's address"),
])
def test_bad_input(booted: Callable[[str], Machine], line: str, message: str) -> None:
    assert run(Session(booted("x86").target()), line) == message + "\n"
