"""`??`: sizeof, ((Type*)Address)->Field, #FIELD_OFFSET and @Register, as the C++
evaluator prints them."""
from __future__ import annotations

import struct
from typing import Callable

import pytest

from commands.session import Session
from commands.testing import run
from kdsim.arch import X64, X86
from kdsim.machine import Machine
from tests.support import build_target

HEADER_X86 = 0x85246428
HEADER_X64 = 0xFFFFFA8000C42000


@pytest.fixture
def x86() -> Session:
    return Session(build_target(X86, memory=(
        (HEADER_X86, struct.pack("<II", 0x04400017, 0x6B61654C)),)))


@pytest.fixture
def x64() -> Session:
    return Session(build_target(X64, memory=(
        (HEADER_X64, struct.pack("<IIQ", 0x02D00000, 0x636F7250, 0xFFFFFA8001234560)),)))


def test_sizeof(x86: Session, x64: Session) -> None:
    assert run(x86, "?? sizeof(nt!_POOL_HEADER)") == "unsigned int 0x8\n"
    assert run(x64, "?? sizeof(nt!_POOL_HEADER)") == "unsigned int64 0x10\n"
    assert run(x64, "?? sizeof(_POOL_DESCRIPTOR)") == "unsigned int64 0x1048\n"
    assert run(x86, "?? sizeof( nt!_LIST_ENTRY )") == "unsigned int 0x8\n"


def test_field_offset(x86: Session, x64: Session) -> None:
    assert run(x86, "?? #FIELD_OFFSET(nt!_POOL_HEADER, PoolTag)") == "long 0n4\n"
    assert run(x64, "?? #FIELD_OFFSET(nt!_POOL_HEADER, ProcessBilled)") == "long 0n8\n"
    assert run(x64, "?? #FIELD_OFFSET(nt!_POOL_DESCRIPTOR, ListHeads)") == "long 0n72\n"


def test_members(x86: Session, x64: Session) -> None:
    assert run(x86, "?? ((nt!_POOL_HEADER*)0x85246428)->PoolTag") == (
        "unsigned long 0x6b61654c\n")
    assert run(x86, "?? ((nt!_POOL_HEADER*)0x85246428)->BlockSize") == "unsigned short 0x40\n"
    assert run(x64, "?? ((nt!_POOL_HEADER *) 0xfffffa8000c42000)->BlockSize") == (
        "unsigned long 0xd0\n")
    assert run(x64, "?? ((nt!_POOL_HEADER*)0xfffffa8000c42000)->ProcessBilled") == (
        "struct _EPROCESS * 0xfffffa80`01234560\n")


def test_registers(booted: Callable[[str], Machine]) -> None:
    session = Session(booted("x64").target())
    rip = run(session, "r rip").split("=")[1].strip()
    assert run(session, "?? @rip") == f"unsigned int64 0x{rip[:8]}`{rip[8:]}\n"
    assert run(session, "?? @efl") == "unsigned int 0x246\n"


@pytest.mark.parametrize("line,message", [
    ("?? sizeof(nt!_NOPE)", "Couldn't resolve error at 'nt!_NOPE)'"),
    ("?? sizeof(hal!_POOL_HEADER)", "Couldn't resolve error at 'hal!_POOL_HEADER)'"),
    ("?? #FIELD_OFFSET(nt!_POOL_HEADER, Nope)", "Nope is not a member of _POOL_HEADER"),
    ("?? ((nt!_POOL_HEADER*)0x1000)->PoolTag", "Memory access error at ')->PoolTag'"),
    ("?? ((nt!_POOL_HEADER*)zz)->PoolTag", "Couldn't resolve error at 'zz)->PoolTag'"),
    ("?? ((nt!_POOL_DESCRIPTOR*)0x85246428)->ListHeads",
     "ListHeads is a [512] _LIST_ENTRY: kdsim's ?? shows scalar fields (dt shows the rest)"),
    ("?? 1+2", "kdsim's ?? takes sizeof(Type), ((Type*)Address)->Field, "
               "#FIELD_OFFSET(Type, Field) and @Register"),
    ("??", "Syntax error at '<EOL>'"),
    ("?? @foo", "Bad register error at '@foo'"),
])
def test_bad_input(x86: Session, line: str, message: str) -> None:
    assert run(x86, line) == message + "\n"
