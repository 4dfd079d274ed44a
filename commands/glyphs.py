"""The cells `!poolmap` draws with: one character each, so a map reads without colour
(`NO_COLOR`, logs), and the colour a terminal paints each in (commands/render.py paints the
finished text, so colour never moves a column and a log gets the plain characters).

A map row is a lead (an address or an offset, then two blanks) and its cells; `MAP_ROW`
recognises one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .poolcensus import PINNED_RULE


@dataclass(frozen=True)
class Glyph:
    char: str
    colour: str                # the ANSI sequence a terminal paints it with
    meaning: str               # as the legend says it


# -- a pool, one cell per page (or per N pages) -------------------------------------------------
LOW = Glyph(".", "\x1b[2m", "under 1/4 of the page in use")
QUARTER = Glyph(":", "\x1b[36m", "1/4 to 1/2")
HALF = Glyph("+", "\x1b[32m", "1/2 to 3/4")
FULL = Glyph("#", "\x1b[1;32m", "3/4 or more")
PINNED = Glyph("p", "\x1b[1;35m", f"pinned: {PINNED_RULE}")
LARGE = Glyph("L", "\x1b[34m", "large allocation")
CORRUPT = Glyph("!", "\x1b[1;31m", "headers that do not chain to the page end")
TAGGED = Glyph("@", "\x1b[1;33;7m", "holds a block of the tag")
FULLNESS = (LOW, QUARTER, HALF, FULL)            # by quarter of the page in use

# -- a page, one cell per pool block --------------------------------------------------------------
HEADER = Glyph("[", "\x1b[33m", "header of a block in use")
DATA = Glyph("=", "\x1b[33m", "data")
MARKED = Glyph("*", "\x1b[1;33;7m", "the block holding the address")
CACHED = Glyph("-", "\x1b[36m", "a freed block kept on a lookaside or deferred-free list")
FREE_HEADER = Glyph("(", "\x1b[32m", "header of a free chunk")
FREE = Glyph(".", "\x1b[2m", "free bytes")
BAD = Glyph("!", "\x1b[1;31m", "a header that cannot be right")
UNWALKED = Glyph("?", "\x1b[31m", "bytes the walk cannot follow")
SPECIAL_HEADER = Glyph("h", "\x1b[35m", "special pool's header")
FILL = Glyph("~", "\x1b[2m", "fill pattern, checked when the block is freed")
GUARD = Glyph("X", "\x1b[1;31m", "guard page (no access)")

GLYPHS = (LOW, QUARTER, HALF, FULL, PINNED, LARGE, CORRUPT, TAGGED, HEADER, DATA, MARKED,
          CACHED, FREE_HEADER, FREE, BAD, UNWALKED, SPECIAL_HEADER, FILL, GUARD)
COLOURS = {g.char: g.colour for g in GLYPHS}
MAP_ROW = re.compile(r"^(?P<lead> *-?[0-9a-f]+  )(?P<cells>[" + re.escape("".join(COLOURS))
                     + r"]+)$")
