"""The real pooltag.txt, for the tests that reproduce real output word for word, and the file
the seed cases were captured with."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import POOLTAG_TXT

# The seeds' debugger had an older file: seed 000 prints LSwi as "initial work context" with no
# binary, where today's file names srv.sys and says SMB1.  Every other description the seeds
# print is today's.
_SEED_ERA_LINES = {b"LSwi": b"LSwi - <unknown>    - initial work context"}


def real_pooltag() -> Path:
    """The real pooltag.txt; the calling test is skipped where it is absent."""
    if not POOLTAG_TXT.is_file():
        pytest.skip(f"{POOLTAG_TXT} is not present")
    return POOLTAG_TXT


def seed_era_pooltag(directory: Path) -> Path:
    """The real file as the seeds' debugger had it, written to `directory`; skips the calling
    test where the real file is absent."""
    lines = real_pooltag().read_bytes().split(b"\r\n")
    replaced = 0
    for i, line in enumerate(lines):
        tag = line[:4]
        if tag in _SEED_ERA_LINES and line[4:].lstrip().startswith(b"-"):
            lines[i] = _SEED_ERA_LINES[tag]
            replaced += 1
    assert replaced == len(_SEED_ERA_LINES), "the real file changed: check the seed-era lines"
    path = directory / "pooltag.txt"
    path.write_bytes(b"\r\n".join(lines))
    return path
