"""Tag lookup: the user's pooltag.txt first, then the built-in list.

The user's file is named by the session's setting or, when the session names none, by the
environment variable KDSIM_POOLTAG. Within each source an exact entry beats a wildcard one;
among wildcards the most specific (most literal characters) wins, then the earlier line, which
is what makes `Gh05` print `GDITAG_HMGR_SURF_TYPE` (from `Gh?5`) rather than `Gdi Objects`
(from the earlier `G???`) as the real debugger does.

Parsed files are cached per (path, mtime, size), so building a new database when a setting
changes costs a stat(), not a parse.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .builtin import BUILTIN
from .parser import ParsedFile, ParseWarning, PoolTagEntry, parse_file
from .tags import TagLike, compile_pattern, normalize_pattern, normalize_tag

ENV_VAR = "KDSIM_POOLTAG"


class _Index:
    """One source's entries, ready for lookup."""

    def __init__(self, entries: Iterable[PoolTagEntry]) -> None:
        self.exact: dict[str, PoolTagEntry] = {}
        ranked = []
        for order, entry in enumerate(entries):
            if entry.is_wildcard:
                literals = sum(c not in "*?" for c in normalize_pattern(entry.tag))
                ranked.append((-literals, order, entry))
            else:
                self.exact.setdefault(entry.tag, entry)    # first line wins
        ranked.sort(key=lambda r: r[:2])
        self.wildcards = tuple((compile_pattern(e.tag), e) for _, _, e in ranked)

    def lookup(self, tag: str) -> PoolTagEntry | None:
        entry = self.exact.get(tag)
        if entry is None:
            entry = next((e for rx, e in self.wildcards if rx.fullmatch(tag)), None)
        return entry


@dataclass(frozen=True)
class _Loaded:
    parsed: ParsedFile
    index: _Index


_FILE_CACHE: dict[Path, tuple[int, int, _Loaded]] = {}


def _load(path: Path) -> _Loaded:
    st = path.stat()
    cached = _FILE_CACHE.get(path)
    if cached and cached[:2] == (st.st_mtime_ns, st.st_size):
        return cached[2]
    parsed = parse_file(path)
    loaded = _Loaded(parsed, _Index(parsed.entries))
    _FILE_CACHE[path] = (st.st_mtime_ns, st.st_size, loaded)
    return loaded


@cache
def _builtin_index() -> _Index:
    return _Index(BUILTIN)


class TagDatabase:
    """Pool tag descriptions for the commands. Never raises on a bad user file: the problem is
    kept in `error` (file unreadable) and `warnings` (lines skipped or read leniently) for the
    session to report, and lookups fall back to the built-in list."""

    def __init__(self, user_file: str | os.PathLike[str] | None = None, *,
                 environ: Mapping[str, str] | None = None, builtin: bool = True) -> None:
        if user_file is None:
            user_file = (os.environ if environ is None else environ).get(ENV_VAR) or None
        self.user_file: Path | None = Path(user_file).expanduser() if user_file else None
        self.error: str | None = None
        self.warnings: tuple[ParseWarning, ...] = ()
        sources: list[_Index] = []
        if self.user_file is not None:
            try:
                loaded = _load(self.user_file.resolve())
            except OSError as exc:
                self.error = f"Unable to read pool tag file {self.user_file}: {exc.strerror or exc}"
            else:
                sources.append(loaded.index)
                self.warnings = loaded.parsed.warnings
        if builtin:
            sources.append(_builtin_index())
        self._sources = tuple(sources)
        self._memo: dict[str, PoolTagEntry | None] = {}

    def lookup(self, tag: TagLike) -> PoolTagEntry | None:
        """The entry describing a tag given as display text (`'Irp'`, `'Irp '`), its 4 bytes in
        memory order, or its ULONG value; None when no source knows it. The protected bit
        (bit 31) is ignored. Raises ValueError for text longer than 4 characters."""
        key = normalize_tag(tag)
        try:
            return self._memo[key]
        except KeyError:
            pass
        entry = next((e for e in (s.lookup(key) for s in self._sources) if e), None)
        self._memo[key] = entry
        return entry

    def known_tags(self) -> list[str]:
        """Every tag with an exact entry, 4 characters each, sorted by byte value (completion)."""
        return sorted({tag for source in self._sources for tag in source.exact})
