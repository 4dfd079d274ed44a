"""Tag lookup: the user's pooltag.txt first, then the built-in list.

The user's file is named by the session's setting or, when the session names none, by the
environment variable KDSIM_POOLTAG. Within each source an exact entry beats a wildcard one;
among wildcards the most specific (most literal characters) wins, then the earlier line, which
is what makes `Gh05` take `Gh?5`'s description rather than that of the earlier, more general
`G???`, as the real debugger does.

Parsed files are cached per (path, mtime, size), so building a new database when a setting
changes costs a stat(), not a parse.  A lookup costs the same however many wildcard lines a
file holds: a tag is matched against the few patterns that could match it (a `?` in any
position, a trailing `*` after any prefix), each one dictionary probe.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from itertools import product
from pathlib import Path

from .builtin import BUILTIN
from .parser import ParsedFile, ParseWarning, PoolTagEntry, UnusableFile, parse_file
from .tags import TAG_LEN, TagLike, normalize_pattern, normalize_tag

ENV_VAR = "KDSIM_POOLTAG"


def _patterns_matching(tag: str) -> Iterator[str]:
    """Every wildcard pattern, in normalize_pattern's form, that matches the 4-char `tag`:
    `?` in any set of positions, and a trailing `*` after any (partly `?`) prefix.  A valid
    pooltag wildcard has its `*` last (the parser refuses others), so these are all."""
    for mask in product((False, True), repeat=TAG_LEN):
        if any(mask):
            yield "".join("?" if wild else c for c, wild in zip(tag, mask))
    for length in range(TAG_LEN):
        for mask in product((False, True), repeat=length):
            yield "".join("?" if wild else c for c, wild in zip(tag, mask)) + "*"


class _Index:
    """One source's entries, ready for lookup."""

    def __init__(self, entries: Iterable[PoolTagEntry]) -> None:
        self.exact: dict[str, PoolTagEntry] = {}
        # pattern -> (rank, entry); rank orders most literal characters first, then file order
        self.wildcards: dict[str, tuple[tuple[int, int], PoolTagEntry]] = {}
        for order, entry in enumerate(entries):
            if entry.is_wildcard:
                pattern = normalize_pattern(entry.tag)
                literals = sum(c not in "*?" for c in pattern)
                self.wildcards.setdefault(pattern, ((-literals, order), entry))
            else:
                self.exact.setdefault(entry.tag, entry)    # first line wins

    def lookup(self, tag: str) -> PoolTagEntry | None:
        entry = self.exact.get(tag)
        if entry is None and self.wildcards:
            found = [self.wildcards[p] for p in _patterns_matching(tag) if p in self.wildcards]
            entry = min(found, key=lambda ranked: ranked[0])[1] if found else None
        return entry


@dataclass(frozen=True)
class _Loaded:
    parsed: ParsedFile
    index: _Index


_FILE_CACHE: dict[Path, tuple[int, int, _Loaded]] = {}
_CACHED_FILES = 8                  # a session switches between a few files at most


class TagFileError(Exception):
    """A user pooltag file that cannot be used; `message` is the one line to print,
    `missing` tells a file that does not exist (yet)."""

    def __init__(self, message: str, missing: bool = False):
        super().__init__(message)
        self.message = message
        self.missing = missing


def _shown(path: Path) -> str:
    """The path as typed, control characters escaped so they never reach the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


def _load(path: Path) -> _Loaded:
    """The file parsed and indexed, from the cache while its mtime and size are unchanged.

    Raises TagFileError.  The wording is assumed: no public transcript shows what the real
    debugger prints for a tag file it cannot use, so it reads like its other file errors
    (`Unable to read ...: <system message>`)."""
    try:
        absolute = Path(os.path.abspath(path))
        st = absolute.stat()
        cached = _FILE_CACHE.get(absolute)
        if cached and cached[:2] == (st.st_mtime_ns, st.st_size):
            return cached[2]
        parsed = parse_file(absolute)
    except FileNotFoundError as exc:
        raise TagFileError(_unable(path, exc.strerror or str(exc)), missing=True) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except UnusableFile as exc:
        reason = exc.reason
    except ValueError:                       # a NUL in the name
        reason = "Invalid file name"
    else:
        loaded = _Loaded(parsed, _Index(parsed.entries))
        if len(_FILE_CACHE) >= _CACHED_FILES:
            _FILE_CACHE.pop(next(iter(_FILE_CACHE)))
        _FILE_CACHE[absolute] = (st.st_mtime_ns, st.st_size, loaded)
        return loaded
    raise TagFileError(_unable(path, reason))


def _unable(path: Path, reason: str) -> str:
    return f"Unable to read pool tag file {_shown(path)}: {reason}"


def check_file(path: str | os.PathLike[str], *, missing_ok: bool = False) -> str | None:
    """Why a pooltag file cannot be used (one line), or None when it can (or, with
    `missing_ok`, does not exist yet); loading it here caches it for the commands."""
    try:
        _load(Path(path).expanduser())
    except TagFileError as exc:
        return None if exc.missing and missing_ok else exc.message
    return None


@cache
def _builtin_index() -> _Index:
    return _Index(BUILTIN)


class TagDatabase:
    """Pool tag descriptions for the commands. Never raises on a bad user file: the problem is
    kept in `error` (file unusable, one line) and `warnings` (lines skipped or read leniently)
    for the session to report, and lookups fall back to the built-in list."""

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
                loaded = _load(self.user_file)
            except TagFileError as exc:
                self.error = exc.message
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
