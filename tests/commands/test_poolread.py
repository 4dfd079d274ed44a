"""The pool reader's big-page lookup: indexed once per reader, the same answer as a walk of the
table in order, also when a damaged table has two entries over one page."""
from __future__ import annotations

import pytest

from commands.poolread import PoolReader
from kdsim.layouts import PAGE_SIZE, struct_of
from kdsim.scenarios import boot


def _scan(reader: PoolReader, address: int):
    return next((b for b in reader.big_pages() if b.contains(address)), None)


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_big_page_at_agrees_with_a_walk_of_the_table(arch: str) -> None:
    target = boot(arch, seed=2, scale=0.05).target()
    reader = PoolReader(target)
    bigs = reader.big_pages()
    assert len(bigs) > 20
    probes = {a for b in bigs for a in (b.va - 1, b.va, b.va + b.span // 2, b.va + b.span - 1,
                                        b.va + b.span)}
    for address in sorted(probes):
        assert reader.big_page_at(address) == _scan(reader, address), hex(address)


def test_a_damaged_table_answers_with_its_first_entry_over_the_page() -> None:
    target = boot("x64", seed=2, scale=0.05).target()
    reader = PoolReader(target)
    table, entries = reader.big_table()
    layout = struct_of(target.profile.big_page)
    rows = list(layout.iter_unpack(target.read(table, entries * layout.size)))
    live = [i for i, row in enumerate(rows) if not row[0] & 1]
    first, second = live[0], live[-1]
    wide = list(rows[second])
    wide[0], wide[-1] = rows[first][0] - PAGE_SIZE, 16 * PAGE_SIZE   # spans the first one's page
    target.write(table + second * layout.size, layout.pack(*wide))
    fresh = PoolReader(target)
    va = rows[first][0]
    assert fresh.big_page_at(va) == _scan(fresh, va) and fresh.big_page_at(va).va == va
    assert fresh.big_page_at(va - PAGE_SIZE).va == va - PAGE_SIZE
