"""`!poolval Address [DisplayLevel]`: validate every pool header of a page (formats.md 5).

```
Pool page <addr> region is <region>

Validating Pool headers for pool page: <page>

Pool page [ <page> ] is INVALID.

Analyzing linked list...
[ <addr> ]: invalid previous size [ 0x41 ] should be [ 0x0 ]


Scanning for single bit errors...

None found
```

Only that shape is evidenced (an invalid page and an unreadable one).  Inferred, and kept in
the same style: a valid page at level 0 ends after `is VALID.`; a header the walk cannot get
past (size zero or beyond the page) is reported as the older debuggers did, as
`[ <from> --> <to> (size = 0x<n> bytes)]: Corrupt region` up to the next header from which a
consistent chain reaches the end of the page; a wrong PreviousSize that differs from the right
one in a single bit is listed under the single-bit scan.  DisplayLevel 1 always shows the
linked-list analysis, 2 adds one `!pool`-style line per header, 3 adds every header field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_MASK

from ..expr import address_and_number
from ..poolread import PageCheck, PoolReader, row_text
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch

    from ..session import Session

LINKED_LISTS, BASIC_HEADERS, FULL_HEADERS = 1, 2, 3


@dataclass
class PoolValidation:
    address: int
    page: int
    region: str
    level: int
    check: PageCheck
    fields: list[dict[str, int]] = field(default_factory=list)   # level 3: one per header


def validate(session: "Session", address: int, level: int = 0) -> PoolValidation:
    reader = PoolReader(session.target)
    check = reader.check_page(address)
    result = PoolValidation(address, address & ~PAGE_MASK, reader.region(address), level, check)
    if level >= FULL_HEADERS:
        result.fields = [reader.header_fields(h) for h in check.headers]
    return result


def analysis_lines(arch: "Arch", check: PageCheck, level: int = 0) -> list[str]:
    """From `Pool page [ ... ] is VALID.|INVALID.` on; `!pool`'s diagnosis prints this too."""
    state = "VALID" if check.valid else "INVALID"
    lines = [f"Pool page [ {arch.fmt_ptr(check.page)} ] is {state}."]
    if check.valid and level < LINKED_LISTS:
        return lines
    lines += ["", "Analyzing linked list..."]
    for p in check.problems:
        a = arch.fmt_ptr(p.address)
        if p.kind == "previous":
            lines.append(f"[ {a} ]: invalid previous size [ 0x{p.found:x} ] should be "
                         f"[ 0x{p.expected:x} ]")
        else:
            lines.append(f"[ {a} --> {arch.fmt_ptr(p.end)} (size = 0x{p.end - p.address:x} "
                         f"bytes)]: Corrupt region")
    lines += ["", "", "Scanning for single bit errors...", ""]
    flips = [p for p in check.problems if p.single_bit]
    for p in flips:
        lines.append(f"[ {arch.fmt_ptr(p.address)} ]: single bit error in previous size "
                     f"[ 0x{p.found:x} ] should be [ 0x{p.expected:x} ]")
    if not flips:
        lines.append("None found")
    return lines


def _header_lines(arch: "Arch", result: PoolValidation) -> list[str]:
    lines = [""]
    for i, h in enumerate(result.check.headers):
        lines.append(row_text(arch, h))
        if result.fields:
            lines.append("    " + ", ".join(f"{name} 0x{value:x}"
                                            for name, value in result.fields[i].items()))
    return lines


def render_poolval(result: PoolValidation, session: "Session") -> str:
    arch = session.target.arch
    lines = [f"Pool page {arch.fmt_ptr(result.address)} region is {result.region}", "",
             f"Validating Pool headers for pool page: {arch.fmt_ptr(result.page)}", ""]
    lines += analysis_lines(arch, result.check, result.level)
    if result.level >= BASIC_HEADERS and result.check.headers:
        lines += _header_lines(arch, result)
    return "\n".join(lines) + "\n"


@command("!poolval", syntax="!poolval Address [DisplayLevel]", render=render_poolval,
         help="Validate the pool headers of the page holding Address: the linked list of "
              "headers and single-bit errors.\n"
              "DisplayLevel: 0 basic (default), 1 linked header lists, 2 basic header "
              "information, 3 full header information.")
def poolval(session: "Session", args: str) -> PoolValidation:
    address, level = address_and_number(args, session.target, session.settings["radix"])
    return validate(session, address, level)
