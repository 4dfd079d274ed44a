""".report FileName: the pools as one self-contained HTML page, for looking at rather than reading.

Each pool is a grid of its pages in use (one cell per page, the same census as `!poolmap`,
commands/poolcensus.py), coloured by how full each page is (or by the tag holding most of
it); a click on a page shows its blocks exactly as `!pool` prints them; a tag filter marks the
pages holding a tag's blocks (the debugger's wildcards); each pool has its figures (pages,
bytes in use, free bytes, pinned pages) and its top tags from the tag tracker.  Growth over
time needs `!pooldiff` snapshots: `growth_chart` takes their series and the page charts each
top tag's bytes; until a session has snapshots the section says there are none.

The page is written from a Jinja2 template (report.html.j2 beside this module) with
autoescaping on, since tags and descriptions come from memory and from the user's tag file.
The pages' `!pool` texts are most of the report (about 40 MB at the first seed case's full
size): they are embedded as JSON compressed with gzip in base64, which the page's script
opens with the browser's DecompressionStream.  Nothing is fetched: CSS, script and
SVG are inline and a Content-Security-Policy forbids every request.  The file is written to a
temporary file in the same directory, then renamed over the target, so a reader never sees
half a report and a failed write leaves the old one; a target that exists and is not a
regular file (a directory, a device, a FIFO, a link) is refused.
"""
from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Sequence

import jinja2

from kdsim.control import NewFile, NotRegularFile
from kdsim.layouts import PAGE_SIZE
from pooltag import display_tag, poolused_description, tag_from_ulong

from ..errors import DebuggerError
from ..ext.pool import inspect_page, render_pool
from ..ext.poolused import tracker_entries
from ..freelists import cached_blocks
from ..glyphs import FULLNESS
from ..poolcensus import (CORRUPT, LARGE, NONPAGED_POOL, PAGED_POOL, PINNED_RULE, PageSummary,
                          PoolCensus, take_census)
from ..poolread import PoolReader
from ..registry import command
from ..tagdb import tag_database
from .dump import refuse_open_log

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session

TEMPLATE = "report.html.j2"
GRID_COLUMNS = 64              # page cells a row of the grid
TOP_TAGS = 10                  # rows of each pool's top-tag table
USAGE = "Usage: .report FileName.html"

# One !pooldiff snapshot's figures: (name, tick, {tag: bytes in use}).
GrowthSeries = tuple[str, int, dict[str, int]]


@dataclass(frozen=True)
class ReportWritten:
    path: str
    size: int                  # bytes in the file
    pages: dict[str, int]      # pages drawn per pool: what `!vm` counts


# -- what the page shows ----------------------------------------------------------------------
def _cell(page: PageSummary, fmt: str) -> dict[str, object]:
    if page.kind == LARGE:
        css = "large"
    elif page.kind == CORRUPT:
        css = "corrupt"
    elif page.pinned:
        css = "pinned"
    else:
        css = f"f{min(4 * page.used // PAGE_SIZE, len(FULLNESS) - 1)}"
    tags = [display_tag(tag) for tag, _ in sorted(page.tags.items(), key=lambda kv: -kv[1])]
    share = page.used * 100 // PAGE_SIZE
    title = f"{share} % in use" + (", pinned" if page.pinned else "") + (
        f", {', '.join(t.rstrip() for t in tags[:4])}" if tags else "")
    return {"address": fmt, "css": css, "tags": tags, "title": title}


def _top_tags(session: "Session", paged: bool) -> list[dict[str, object]]:
    db = tag_database(session)
    rows = [(key, (p if paged else np)) for key, np, p in tracker_entries(session.target)]
    rows = [(key, count) for key, count in rows if count.used or count.outstanding]
    rows.sort(key=lambda r: (-r[1].used, r[0]))
    return [{"tag": display_tag(key), "allocs": count.outstanding, "bytes": count.used,
             "description": poolused_description(db, key).strip()}
            for key, count in rows[:TOP_TAGS]]


def _pool_section(session: "Session", reader: PoolReader, census: PoolCensus,
                  texts: dict[str, str]) -> dict[str, object]:
    fmt = session.target.arch.fmt_ptr
    cells = []
    for page in census.pages:
        address = fmt(page.address)
        texts[address] = render_pool(inspect_page(session, page.address, reader=reader),
                                     session)
        cells.append(_cell(page, address))
    share = f"{census.pinned * 100 / census.in_use:.1f} %" if census.in_use else "0 %"
    return {"name": census.pool, "pages": census.in_use, "kb": census.in_use * PAGE_SIZE // 1024,
            "allocated": census.allocated, "free": census.free, "cached": census.cached,
            "pinned": census.pinned, "pinned_share": share, "cells": cells,
            "top": _top_tags(session, census.pool == PAGED_POOL)}


# -- growth over time: the seam for !pooldiff -----------------------------------------------------
GROWTH_WIDTH, GROWTH_HEIGHT = 720, 240
GROWTH_COLOURS = ("#d0309a", "#2f7fa8", "#e07b00", "#3b9c3b", "#7b4cc0", "#b03030")


def growth_chart(series: Sequence[GrowthSeries], tags: Sequence[str]) -> dict[str, object] | None:
    """The growth chart of `tags` over `!pooldiff` snapshots (name, tick, {tag: bytes}), in
    tick order; None without at least one snapshot (the page then says there are none)."""
    if not series or not tags:
        return None
    ordered = sorted(series, key=lambda s: s[1])
    top = max((s[2].get(t, 0) for s in ordered for t in tags), default=0) or 1
    first, last = ordered[0][1], ordered[-1][1]
    left, right, low, high = 40, GROWTH_WIDTH - 60, GROWTH_HEIGHT - 20, 10

    def x(tick: int) -> float:
        return left + (right - left) * ((tick - first) / (last - first) if last > first else 0.5)

    def y(value: int) -> float:
        return low - (low - high) * value / top

    lines = []
    for i, tag in enumerate(tags[:len(GROWTH_COLOURS)]):
        points = [(x(tick), y(values.get(tag, 0))) for _, tick, values in ordered]
        lines.append({"tag": tag, "colour": GROWTH_COLOURS[i],
                      "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
                      "label_x": f"{points[-1][0] + 4:.1f}", "label_y": f"{points[-1][1]:.1f}"})
    ticks = [{"x": f"{x(tick):.1f}", "name": name} for name, tick, _ in ordered]
    return {"width": GROWTH_WIDTH, "height": GROWTH_HEIGHT, "lines": lines, "ticks": ticks}


def growth_series(session: "Session") -> list[GrowthSeries]:
    """The session's `!pooldiff` snapshots of the machine as it is now booted: each tag's
    outstanding bytes, nonpaged and paged together."""
    snapshots = session.pool_snapshots
    boot = snapshots.current_boot(session.target)
    return [(shot.name or f"#{shot.number}", shot.tick or 0,
             {tag_from_ulong(tag).rstrip(): np.used + paged.used
              for tag, (np, paged) in shot.tags.items()})
            for shot in snapshots.snapshots if shot.boot == boot]


# -- the page -------------------------------------------------------------------------------------
@cache
def _template() -> jinja2.Template:
    source = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.from_string(source)


def build_report(session: "Session", growth: Sequence[GrowthSeries] = ()) -> tuple[str, dict[str, int]]:
    """The HTML page and the pages drawn per pool."""
    target = session.target
    reader = PoolReader(target)
    cached = cached_blocks(target)
    texts: dict[str, str] = {}
    pools = [_pool_section(session, reader, take_census(reader, pool, cached), texts)
             for pool in (NONPAGED_POOL, PAGED_POOL)]
    scenario = target.meta.get("scenario") or "a machine"
    title = f"{scenario} ({target.profile.title})"
    machine = f"{target.profile.title}, {target.processors} processors" + (
        f", seed {target.meta['seed']}" if "seed" in target.meta else "")
    top = [str(row["tag"]) for pool in pools for row in pool["top"][:3]]  # type: ignore[index]
    packed = base64.b64encode(gzip.compress(json.dumps(texts).encode("utf-8"), mtime=0))
    html = _template().render(
        title=title, machine=machine, pools=pools, pages=packed.decode("ascii"),
        columns=GRID_COLUMNS,
        digits=target.arch.hex_digits, pinned_rule=PINNED_RULE,
        growth=growth_chart(growth, list(dict.fromkeys(top))))
    return html, {str(p["name"]): int(p["pages"]) for p in pools}  # type: ignore[call-overload]


# -- writing it ----------------------------------------------------------------------------------
def write_replacing(path: str, text: str) -> int:
    """Write the page through kdsim.files.NewFile (a temporary file beside `path`, renamed
    over it once whole; only a regular file is replaced); the bytes written.  DebuggerError
    (one line) for a target that is not a regular file or a directory that cannot take it."""
    data = text.encode("utf-8")
    try:
        with NewFile(path, overwrite=True) as handle:
            handle.write(data)
    except NotRegularFile:
        raise DebuggerError(f"Unable to write report '{path}': it exists and is not a regular "
                            f"file") from None
    except (OSError, ValueError) as err:
        raise DebuggerError(f"Unable to write report '{path}': {_reason(err)}") from None
    return len(data)


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return "not a usable file name"


def parse_report_args(args: str) -> str:
    text = args.strip()
    if text.startswith('"'):
        text = text[1:].split('"', 1)[0]
    if not text:
        raise DebuggerError(USAGE)
    return text


def render_written(result: ReportWritten, session: "Session") -> str:
    pools = ", ".join(f"{name} pool {pages} pages" for name, pages in result.pages.items())
    return f"Report written to {result.path} ({result.size} bytes): {pools}"


@command(".report", syntax=".report FileName", render=render_written, writes_files=True,
         help="Write the pools as one self-contained HTML page to FileName [writes a file]: "
              "each pool's pages as a grid coloured by fullness or tag, a click on a page shows "
              "its blocks as !pool prints them, a tag filter, the fragmentation figures and the "
              "top tags.\n"
              "An existing file is replaced only once the new page is complete; a target that "
              "is not a regular file is refused.")
def dot_report(session: "Session", args: str) -> ReportWritten:
    path = parse_report_args(args)
    refuse_open_log(session, path)
    html, pages = build_report(session, growth_series(session))
    return ReportWritten(path, write_replacing(path, html), pages)
