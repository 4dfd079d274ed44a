"""The whole test session runs with the boot cache off (KDSIM_CACHE=off), so no test reads or
writes the user's cache and every machine a test opens is booted; the cache's own tests point
KDSIM_CACHE at a temporary directory (tests/test_bootcache.py)."""
from __future__ import annotations

from typing import Iterator

import pytest

from kdsim.bootcache import CACHE_ENV, OFF


@pytest.fixture(autouse=True, scope="session")
def _no_boot_cache() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, OFF)
        yield
