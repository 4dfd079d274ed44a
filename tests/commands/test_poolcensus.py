"""The census of a pool's pages (commands/poolcensus.py): what a pinned page is, at its
boundaries."""
from __future__ import annotations

import pytest

from commands.poolcensus import (CORRUPT, LARGE, PINNED_BLOCKS, PINNED_BYTES, SMALL,
                                 PageSummary)


@pytest.mark.parametrize("kind, used, cached, blocks, pinned", [
    (SMALL, PINNED_BYTES, 0, 1, True),
    (SMALL, PINNED_BYTES - 0x18, 0x18, PINNED_BLOCKS, True),          # freed blocks hold too
    (SMALL, PINNED_BYTES + 8, 0, 1, False),
    (SMALL, 0x40, 0, PINNED_BLOCKS + 1, False),
    (SMALL, 0, 0, 0, False),                  # an empty page is not held (it is given back)
    (LARGE, 0x1000, 0, 1, False),
    (CORRUPT, 0x18, 0, 1, False),
])
def test_pinned_means_mostly_free_and_held_by_a_few_blocks(kind, used, cached, blocks, pinned):
    page = PageSummary(0, kind, used, cached, 0x1000 - used - cached, blocks)
    assert page.pinned is pinned
