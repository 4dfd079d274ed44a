"""Explain mode (`.settings set explain=on`): the lines `!pool` and `!poolmap` add for learners,
saying why each thing is where it is.

Everything here is read from memory, as the commands read it: which list holds a free block
(the ListHeads entry of its descriptor, a processor's lookaside list, the deferred-free list:
commands/freelists.py), how much of a page is in use and what pins it
(commands/poolcensus.py), and why a header cannot be right (the page validation of
commands/poolread.py, and the bytes around the header).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_SIZE
from kdsim.target import MemoryFault
from pooltag import display_tag

from .freelists import LIST_HEADS, PENDING, Descriptor, Holder, descriptors, list_heads_holder
from .poolcensus import CORRUPT, PINNED_RULE, SMALL, PageSummary, small_page
from .poolread import BigPage, PageCheck, PoolHeader, SpecialBlock

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

BLOCK, PAGE = "block", "page"


@dataclass(frozen=True)
class Note:
    """One explanation: about a block (its header's address) or about the whole page."""

    about: str                 # "block" or "page"
    address: int               # the block's header, or the page
    text: str


def counted(n: int, word: str) -> str:
    """`1 block`, `2 blocks`."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _share(part: int, whole: int) -> str:
    return f"{part * 100 // whole} %" if whole else "0 %"


# -- blocks -------------------------------------------------------------------------------------
def block_note(target: "Target", h: PoolHeader, cached: dict[int, Holder],
               known: list[Descriptor]) -> Note | None:
    """Why a free block is where it is, or that a block whose header says Allocated is in
    fact free on a lookaside or deferred-free list; None for a block simply in use."""
    unit = h.unit
    if h.pool_type:
        holder = cached.get(h.address + unit)
        if holder is None:
            return None
        if holder.kind == PENDING:
            why = ("released to ListHeads when the list is flushed (at 32 entries, or when "
                   "an allocation finds no free chunk)")
        else:
            why = f"the next 0x{h.size:x}-byte allocation from that list takes it back"
        return Note(BLOCK, h.address, f"freed, though its header still says Allocated: "
                                      f"{holder.describe(unit)}; {why}")
    if h.block_size < 2:
        return Note(BLOCK, h.address,
                    f"free: a single block, too small for the list links that would follow "
                    f"its {unit}-byte header, so on no list; it is reused when a neighbour is "
                    f"freed and coalesces with it")
    holder = list_heads_holder(target, h, known)
    if holder is None or holder.kind != LIST_HEADS:
        return Note(BLOCK, h.address,
                    f"free, but not found on ListHeads[{h.block_size - 1}] of its descriptor: "
                    f"its links were overwritten or the list is broken")
    return Note(BLOCK, h.address,
                f"free: {holder.describe(unit)}, the list of free 0x{h.size:x}-byte chunks; "
                f"an allocation of up to 0x{h.size - unit:x} bytes may be cut from it")


# -- the page -----------------------------------------------------------------------------------
def page_notes(target: "Target", summary: PageSummary, headers: list[PoolHeader],
               cached: dict[int, Holder]) -> list[Note]:
    """How much of the page is in use, by what, and whether it is pinned."""
    fmt = target.arch.fmt_ptr
    page = summary.address
    holding = [h for h in headers if h.pool_type]
    in_use = [h for h in holding if h.address + h.unit not in cached]
    chunks = sum(1 for h in headers if not h.pool_type)
    text = (f"page {fmt(page)}: 0x{summary.used:x} of 0x{PAGE_SIZE:x} bytes in use "
            f"({_share(summary.used, PAGE_SIZE)}) by {counted(len(in_use), 'block')}, "
            f"0x{summary.free:x} free in {counted(chunks, 'chunk')}")
    if len(holding) > len(in_use):
        text += (f", {counted(len(holding) - len(in_use), 'freed block')} "
                 f"(0x{summary.cached:x} bytes) kept on lookaside or deferred-free lists")
    notes = [Note(PAGE, page, text)]
    if summary.kind == CORRUPT:
        notes.append(Note(PAGE, page, "the page's headers do not chain to its end: the pool "
                                      "cannot free or coalesce its blocks safely"))
    elif summary.pinned:
        holders = ", ".join(f"{display_tag(h.tag)} at {fmt(h.address)}" for h in holding)
        notes.append(Note(PAGE, page, f"pinned ({PINNED_RULE}): the page goes back to the "
                                      f"pool only when these are freed: {holders}"))
    elif holding:
        last = "block is" if len(holding) == 1 else f"{len(holding)} blocks are"
        notes.append(Note(PAGE, page, f"the page goes back to the pool when its last {last} "
                                      f"freed"))
    return notes


# -- headers that cannot be right ----------------------------------------------------------------
def _overrun_hint(target: "Target", address: int, unit: int,
                  before: PoolHeader | None) -> str | None:
    """When the bad header's bytes repeat the last bytes of the block in front of it, that
    block's owner most likely wrote past its end."""
    if before is None or before.address + before.size != address:
        return None
    try:
        header = target.read(address, unit)
        tail = target.read(address - unit, unit)
    except MemoryFault:
        return None
    if len(set(header + tail)) != 1 or not header[0]:
        return None
    owner = display_tag(before.tag)
    return (f"its bytes ({header[:4].hex(' ')} ...) repeat the last bytes of the block in "
            f"front of it ({owner} at {target.arch.fmt_ptr(before.address)}): that block's "
            f"owner most likely wrote past its end")


def header_notes(target: "Target", check: PageCheck) -> list[Note]:
    """Why each header the validation rejects cannot be right."""
    fmt, unit = target.arch.fmt_ptr, target.arch.block
    notes: list[Note] = []
    hinted: set[int] = set()
    for p in check.problems:
        before = next((h for h in reversed(check.headers) if h.address < p.address), None)
        if p.kind == "previous":
            text = (f"header invalid: its PreviousSize says the block in front is "
                    f"0x{p.found * unit:x} bytes, but the block in front is "
                    f"0x{p.expected * unit:x} bytes; the kernel checks that the two agree "
                    f"when either is freed (BAD_POOL_HEADER)")
        else:
            try:
                size = (target.read_u32(p.address) >> 16) & target.profile.codec.size_mask
            except MemoryFault:
                size = 0
            offset = p.address % PAGE_SIZE
            if size == 0:
                why = "its BlockSize is 0, and a block always holds at least its header"
            elif offset + size * unit > PAGE_SIZE:
                why = (f"its BlockSize (0x{size * unit:x} bytes) runs past the end of the "
                       f"page")
            else:
                why = (f"its BlockSize (0x{size * unit:x} bytes) is not confirmed by the "
                       f"header after it")
            text = (f"header invalid: {why}; the walk cannot follow the bytes up to "
                    f"{fmt(p.end)}, from where headers that agree reach the end of the page")
        notes.append(Note(BLOCK, p.address, text))
        hint = _overrun_hint(target, p.address, unit, before)
        if hint is not None and p.address not in hinted:
            hinted.add(p.address)
            notes.append(Note(BLOCK, p.address, hint))
    return notes


# -- whole pages ----------------------------------------------------------------------------------
def explain_small(target: "Target", page: int, headers: list[PoolHeader],
                  check: PageCheck | None, cached: dict[int, Holder],
                  only: set[int] | None = None) -> list[Note]:
    """The notes of a small-pool page: each block's (those in `only`, if given), the page's,
    and, when the walk failed, each rejected header's."""
    known = descriptors(target)
    notes = []
    for h in headers:
        if only is not None and h.address not in only:
            continue
        note = block_note(target, h, cached, known)
        if note is not None:
            notes.append(note)
    chain = check.headers if check is not None else headers
    summary = small_page(page, chain, cached, SMALL if check is None or check.valid else CORRUPT)
    notes += page_notes(target, summary, chain, cached)
    if check is not None:
        notes += header_notes(target, check)
    return notes


def explain_special(target: "Target", block: SpecialBlock) -> list[Note]:
    fmt = target.arch.fmt_ptr
    end = block.data + block.size
    if block.data == block.page:
        guard = block.page - PAGE_SIZE
        where = (f"the data starts the page, so the byte before it is in the guard page at "
                 f"{fmt(guard)}: an underrun faults at once")
    else:
        guard = block.page + PAGE_SIZE
        slack = block.page + PAGE_SIZE - end
        where = (f"the data (0x{block.size:x} bytes) is placed at the end of the page"
                 + (f", 0x{slack:x} bytes short of it to keep the block alignment"
                    if slack else "")
                 + f", so the first byte past the page is in the guard page at {fmt(guard)}: "
                   f"an overrun faults at once")
    guarded = "no access" if not target.is_valid(guard) else "readable (no guard)"
    return [Note(PAGE, block.page, f"special pool: {where} (the guard page is {guarded})"),
            Note(PAGE, block.page, "the rest of the page is filled with a pattern byte that "
                                   "is checked when the block is freed: a write that stays "
                                   "inside the page is caught then")]


def explain_large(target: "Target", big: BigPage) -> list[Note]:
    pages = max(-(-big.nbytes // PAGE_SIZE), 1)
    return [Note(PAGE, big.va, f"a large allocation: more than a small block can hold, so it "
                               f"takes {pages} whole pages and has no pool header; "
                               f"nt!PoolBigPageTable records its tag and size "
                               f"(0x{big.nbytes:x} bytes)")]


def explain_unreadable(page: int) -> list[Note]:
    return [Note(PAGE, page, "the page is not mapped: no pool uses it now (its last block was "
                             "freed and the page given back), or it was never in use")]


# -- printing -------------------------------------------------------------------------------------
NOTE_PREFIX = "    -- "


def note_lines(notes: list[Note]) -> list[str]:
    return [NOTE_PREFIX + n.text for n in notes]


def notes_for(notes: list[Note], address: int) -> list[Note]:
    """The notes about the block whose header is at `address`."""
    return [n for n in notes if n.about == BLOCK and n.address == address]
