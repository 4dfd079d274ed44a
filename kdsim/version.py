"""kdsim's version: the installed distribution's, or pyproject.toml's in a source checkout.

Snapshots record it and the boot cache keys on it (kdsim/snapshot.py, kdsim/bootcache.py);
`kdsim --version` prints it.
"""
from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "kdsim"


@cache
def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source checkout
        import tomllib
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"
