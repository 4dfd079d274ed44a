"""`!pool [Address [Flags]]`: the pool page holding an address, header by header.

Layout (formats.md 4.6): `Pool page <value of the argument> region is <region>`, then each
header of the page as `"%c%p size: %4x previous size: %4x  %-11s %c%-4s"` plus ` (Protected)`
for allocated blocks with the protected tag bit and ` Process: <p>` for quota blocks; the
entry holding the address is starred twice and followed by the tag's description line.
Flags: 1 dumps the first 32 bytes after each header, 2 shows only the starred entry,
0x80000000 drops the description line.

Where the walk of the page finds a header that cannot be right, the rows stop there and the
extension's diagnosis follows (`doesn't look like a valid small pool allocation ...`, the
large-pool checks, `Bad previous allocation size @...`, the `***` banner) and the `!poolval`
analysis of the page.  A page that is part of a large allocation prints the big-page table's
line for it (a session's, after `checking large session pool...`, for session pool); an
unreadable page prints the lines of a freed page (formats.md 4.3-4.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_MASK
from kdsim.target import MemoryFault
from pooltag import display_tag, pool_description

from ..explain import (BLOCK, Note, explain_large, explain_small, explain_special,
                       explain_unreadable, note_lines, notes_for)
from ..expr import address_and_number
from ..freelists import cached_blocks
from ..poolread import (PREVIOUS, SESSION_REGION, SPECIAL_REGION, TOO_LARGE, BigPage, PageCheck,
                        PoolHeader, PoolReader, SpecialBlock, WalkError, row_text, special_line)
from ..registry import command
from ..sessions import session_pool_at
from ..tagdb import tag_database
from .poolval import analysis_lines

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

DUMP_CONTENTS = 0x1
ONLY_ENTRY = 0x2
NO_DESCRIPTION = 0x80000000
NO_SESSION_TABLE = ("Unable to read large session pool table (Session data is not present in "
                    "mini and kernel-only dumps)")


def describe_for_pool(session: "Session", tag: int) -> str:
    """The description line `!pool` prints under the starred entry (two TABs first)."""
    return pool_description(tag_database(session), tag)


# -- results ------------------------------------------------------------------------------------
@dataclass
class PoolRow:
    header: PoolHeader
    marked: bool
    contents: list[int | None] | None = None      # flag 1: eight DWORDs after the header


@dataclass
class PoolPage:
    address: int                       # the argument's value, as the header line prints it
    page: int
    region: str
    flags: int
    live: bool                         # a live target (a dump has no session data)
    rows: list[PoolRow] = field(default_factory=list)
    description: str | None = None     # for the starred entry (or the large allocation)
    large: BigPage | None = None
    session_large: bool = False        # found in the session's big-page table
    special: SpecialBlock | None = None
    unreadable: bool = False
    error: WalkError | None = None
    check: PageCheck | None = None     # the diagnosis of a page whose walk failed
    notes: list[Note] = field(default_factory=list)   # explain mode: why each block is there


# -- computing ----------------------------------------------------------------------------------
def inspect_page(session: "Session", address: int, flags: int = 0,
                 reader: PoolReader | None = None) -> PoolPage:
    """`!pool address flags`; `reader`: one shared by a command that inspects many pages."""
    target = session.target
    reader = reader or PoolReader(target)
    page = address & ~PAGE_MASK
    result = PoolPage(address, page, reader.region(address), flags, target.live)
    describe = not flags & NO_DESCRIPTION
    if result.region == SPECIAL_REGION:
        result.special = reader.special_block(address)
        if result.special is None:
            result.unreadable = True
        elif describe:
            result.description = describe_for_pool(session, result.special.tag)
        return result
    data = reader.read_page(page)
    if data is None:
        result.unreadable = True
        return result
    walk = reader.walk(page, data)
    if walk.error is not None:
        result.large = reader.big_page_at(address)
        if result.large is None and result.region == SESSION_REGION:
            result.large = _session_big_page(target, reader, address)
            result.session_large = result.large is not None
        if result.large is not None:
            if describe:
                result.description = describe_for_pool(session, result.large.tag)
            return result
        result.error = walk.error
        result.check = reader.check_page(page)
    for h in walk.headers:
        marked = h.contains(address)
        if flags & ONLY_ENTRY and not marked:
            continue
        contents = _contents(target, h) if flags & DUMP_CONTENTS else None
        result.rows.append(PoolRow(h, marked, contents))
        if marked and describe:
            result.description = describe_for_pool(session, h.tag)
    return result


def _session_big_page(target: "Target", reader: PoolReader, address: int) -> BigPage | None:
    """The large allocation of the session's big-page table that holds `address`."""
    space = session_pool_at(target, address)
    if space is None:
        return None
    return next((b for b in reader.big_pages((space.big_table, space.big_entries))
                 if b.contains(address)), None)


def explain_page(target: "Target", result: PoolPage) -> list[Note]:
    """The explain-mode notes for a page `inspect_page` read."""
    if result.special is not None:
        return explain_special(target, result.special)
    if result.large is not None:
        return explain_large(target, result.large)
    if result.unreadable:
        return explain_unreadable(result.page)
    reader = PoolReader(target)
    data = reader.read_page(result.page)
    if data is None:
        return explain_unreadable(result.page)
    headers = reader.walk(result.page, data).headers
    return explain_small(target, result.page, headers, result.check, cached_blocks(target),
                         {row.header.address for row in result.rows})


def _contents(target: "Target", h: PoolHeader) -> list[int | None]:
    """Eight DWORDs from just after the header (unreadable ones None)."""
    values: list[int | None] = []
    for i in range(8):
        try:
            values.append(target.read_u32(h.address + h.unit + 4 * i))
        except MemoryFault:
            values.append(None)
    return values


# -- rendering ----------------------------------------------------------------------------------
def _content_lines(arch: "Arch", row: PoolRow) -> list[str]:
    def words(values: list[int | None]) -> str:
        return " ".join("????????" if v is None else f"{v:08x}" for v in values)

    base = row.header.address + row.header.unit
    assert row.contents is not None
    return [f" {arch.fmt_ptr(base)}  {words(row.contents[:4])}",
            f"    {arch.fmt_ptr(base + 16)}  {words(row.contents[4:])}", ""]


def large_line(arch: "Arch", big: BigPage) -> str:
    return (f"*{arch.fmt_ptr(big.va)} : large page allocation, tag is {display_tag(big.tag)}, "
            f"size is 0x{big.nbytes:x} bytes")


def freed_lines(arch: "Arch", page: int, live: bool) -> list[str]:
    """What the extension prints for a page it cannot read (formats.md 4.5)."""
    p = arch.fmt_ptr(page)
    lines = [f"{p} is not a valid large pool allocation, checking large session pool..."]
    if not live:
        lines.append(NO_SESSION_TABLE)
    return lines + [f"{p} is not valid pool. Checking for freed (or corrupt) pool",
                    f"Address {p} could not be read. It may be a freed, invalid or paged out page"]


def corruption_lines(arch: "Arch", result: PoolPage) -> list[str]:
    """The diagnosis after a walk that stopped at a header that cannot be right."""
    error = result.error
    assert error is not None and result.check is not None
    bad, page = arch.fmt_ptr(error.address), arch.fmt_ptr(result.page)
    lines = [f"{bad} doesn't look like a valid small pool allocation, checking to see",
             "if the entire page is actually part of a large page allocation...", "",
             f"{page} is not a valid large pool allocation, checking large session pool..."]
    if not result.live:
        lines.append(NO_SESSION_TABLE)
    lines.append(f"{page} is freed (or corrupt) pool")
    if error.kind == PREVIOUS:
        lines.append(f"Bad previous allocation size @{bad}, last size was {error.last_size:x}")
    elif error.kind == TOO_LARGE:
        lines.append(f"Bad allocation size @{bad}, too large")
    else:
        lines.append(f"Bad allocation size @{bad}, zero is invalid")
    lines += ["", "***", "*** An error (or corruption) in the pool was detected;",
              "*** Attempting to diagnose the problem.", "***",
              f"*** Use !poolval {page} for more details.", "", ""]
    return lines + analysis_lines(arch, result.check)


def render_pool(result: PoolPage, session: "Session") -> str:
    arch = session.target.arch
    lines = [f"Pool page {arch.fmt_ptr(result.address)} region is {result.region}"]
    if result.special is not None:
        lines.append(special_line(arch, result.special))
    elif result.large is not None:
        if result.session_large:
            lines.append(f"{arch.fmt_ptr(result.page)} is not a valid large pool allocation, "
                         "checking large session pool...")
        lines.append(large_line(arch, result.large))
    elif result.unreadable:
        lines += freed_lines(arch, result.page, result.live)
    if result.description is not None and (result.special or result.large):
        lines.append(result.description)
    for row in result.rows:
        star = "*" if row.marked else " "
        lines.append(row_text(arch, row.header, star, star))
        if row.marked and result.description is not None:
            lines.append(result.description)
        if row.contents is not None:
            lines += _content_lines(arch, row)
        lines += note_lines(notes_for(result.notes, row.header.address))
    if result.error is not None:
        lines += corruption_lines(arch, result)
    shown = {row.header.address for row in result.rows}
    lines += note_lines([n for n in result.notes if n.about != BLOCK or n.address not in shown])
    return "\n".join(lines) + "\n"


@command("!pool", syntax="!pool [Address [Flags]]", render=render_pool,
         help="Show the pool page holding Address, one line per pool header; the block holding "
              "the address is starred and its tag described.\n"
              "Flags: 1 also dumps the first bytes of each block, 2 shows only the starred "
              "block, 0x80000000 omits the tag description.")
def pool(session: "Session", args: str) -> PoolPage:
    address, flags = address_and_number(args, session.target, session.settings["radix"])
    result = inspect_page(session, address, flags & 0xFFFFFFFF)
    if session.settings.get("explain"):
        result.notes = explain_page(session.target, result)
    return result

