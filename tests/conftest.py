"""Fixtures shared across the test tree.  Plain helpers (hand-built targets, golden text, the
double-free machine) are in tests/support.py; running a command line is
`commands.testing.run(session, line)`, which returns what it printed.

The whole test session runs with the boot cache off (KDSIM_CACHE=off), so no test reads or
writes the user's cache and every machine a test opens is booted; the cache's own tests point
KDSIM_CACHE at a temporary directory (tests/kdsim/test_bootcache.py)."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from commands.session import Session
from commands.testing import blank_target
from kdsim.bootcache import CACHE_ENV, OFF
from kdsim.machine import Machine
from kdsim.scenarios import boot


@pytest.fixture(autouse=True, scope="session")
def _no_boot_cache() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, OFF)
        yield


@pytest.fixture
def session() -> Session:
    """A session on a bare x86 target: no memory, an `nt` module without symbols."""
    return Session(blank_target("x86"))


@pytest.fixture(scope="module")
def booted() -> Callable[[str], Machine]:
    """The default scenario booted once per arch for a test module (seed 7), for tests that only
    read it: a test that writes memory, runs `g` or reboots boots its own machine.  (Per module:
    two full-size machines held for the whole run would count in every later test's peak.)"""
    machines: dict[str, Machine] = {}

    def machine(arch: str) -> Machine:
        if arch not in machines:
            machines[arch] = boot(arch=arch, seed=7)
        return machines[arch]
    return machine
