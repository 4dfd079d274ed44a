"""Fixtures of the tag database tests: the real pooltag.txt and the built-in database."""
from __future__ import annotations

from pathlib import Path

import pytest

from pooltag import TagDatabase
from tests.pooltag.real_file import real_pooltag


@pytest.fixture(scope="session")
def pooltag_txt() -> Path:
    """The real pooltag.txt; a test that needs it is skipped where it is absent."""
    return real_pooltag()


@pytest.fixture
def builtin_db() -> TagDatabase:
    """The built-in database alone, whatever KDSIM_POOLTAG says."""
    return TagDatabase(environ={})
