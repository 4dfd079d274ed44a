"""A command's result on its way to the screen: its rendered pieces are gathered into writes
of a few kilobytes through `Session.write` (the one output path), so a long result prints as
it is produced, a Ctrl+C stops it between two pieces, and the `max_output_lines` setting can
cut a runaway command short for scripted runs."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

BATCH_BYTES = 1 << 15          # text gathered before a write
BATCH_SECONDS = 0.05           # ... unless it has waited this long (rows that come slowly)


def limit_message(limit: int) -> str:
    return (f"Output stopped after {limit} lines (max_output_lines; "
            f".settings set max_output_lines=0 removes the limit)")


def write_result(session: "Session", pieces: Iterable[str]) -> None:
    """Write newline-terminated pieces of text; past `max_output_lines` lines (0: no limit)
    the rest is not produced and a message says so on its own line."""
    limit: int = session.settings.get("max_output_lines") or 0
    batch: list[str] = []
    size = lines = 0
    since = time.monotonic()
    stream = iter(pieces)
    while True:
        try:
            piece = next(stream)
        except StopIteration:
            break
        except Exception:         # an error part way: what came before it is printed first
            session.write("".join(batch))
            raise
        if limit:
            count = piece.count("\n")
            if lines + count > limit:
                batch.extend(line + "\n" for line in piece.split("\n")[:limit - lines])
                session.write("".join(batch))
                session.write(limit_message(limit) + "\n", "error")
                return
            lines += count
        batch.append(piece)
        size += len(piece)
        if size >= BATCH_BYTES or time.monotonic() - since >= BATCH_SECONDS:
            session.write("".join(batch))
            batch.clear()
            size = 0
            since = time.monotonic()
    session.write("".join(batch))
