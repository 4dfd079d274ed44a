"""`!lookaside [Address [Options [Depth]]]`, `!lookaside [0] [-all]`: lookaside lists.

The lists shown are the pool's own: each processor's KPRCB (found through nt!KiProcessorBlock)
holds PPNPagedLookasideList[32] and PPPagedLookasideList[32], a {P, L} pair per block size: P is
that processor's list, L the system-wide one the pairs share (internals.md 6).  Each list is
printed as in formats.md 9:

```
Lookaside "" @ 0x82f74000  Tag(hex): 0x6c6f6f50 "Pool"
    Type           =       0000  NonPagedPool
    Current Depth  =          0  Max Depth  =          4
    Size           =          8  Max Alloc  =         32
    AllocateMisses =          8  FreeMisses =          0
    TotalAllocates =         12  TotalFrees =          9
    Hit Rate       =         33% Hit Rate   =        100%
```

Current Depth is the number of blocks on the list, Max Depth the depth the balance-set manager
tuned it to, Max Alloc = Max Depth x Size; hit rates are truncated percentages.

Inferred (the docs list the forms but show only the display): without an address the
system-wide lists are shown (nonpaged then paged, by size), `-all` adds every processor's own
lists; both end with the four `Total ...` lines.  Options 1 (reset the counters) and 2 (set the
list's depth to Depth) write the list in memory and then display it.  A list's name is the
symbol at its address, empty for the pool's lists, which live in nonpaged pool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.layouts import POOL_SMALL_LISTS, struct_of
from pooltag import display_tag

from ..core.dt import POOL_TYPES
from ..errors import couldnt_resolve, syntax_error_at
from ..expr import evaluate, parse_leading
from ..registry import command

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

DISPLAY, RESET, SET_DEPTH = 0, 1, 2
RAISE_IF_ALLOCATION_FAILURE = 0x10
COUNTERS = ("TotalAllocates", "AllocateHits", "TotalFrees", "FreeHits", "LastTotalAllocates",
            "LastAllocateHits")


@dataclass(frozen=True)
class Lookaside:
    address: int
    name: str
    tag: int
    type: int
    current_depth: int
    max_depth: int
    size: int
    total_allocates: int
    allocate_hits: int
    total_frees: int
    free_hits: int

    @property
    def allocate_misses(self) -> int:
        return (self.total_allocates - self.allocate_hits) & 0xFFFFFFFF

    @property
    def free_misses(self) -> int:
        return (self.total_frees - self.free_hits) & 0xFFFFFFFF

    @property
    def max_alloc(self) -> int:
        return self.max_depth * self.size

    @property
    def paged(self) -> bool:
        return bool(self.type & 1)


@dataclass
class LookasideReport:
    lists: list[Lookaside] = field(default_factory=list)
    totals: bool = False                 # the list form ends with the Total lines


# -- reading ------------------------------------------------------------------------------------
def read_lookaside(target: "Target", address: int) -> Lookaside:
    """The _GENERAL_LOOKASIDE_POOL at `address` (MemoryFault if it cannot be read)."""
    layout = target.profile.lookaside
    fmt = struct_of(layout)
    names = [sub.name for sub in layout.subcons if sub.name]
    f = dict(zip(names, fmt.unpack(target.read(address, fmt.size))))
    symbol = target.symbolize(address) or ""
    return Lookaside(address, "" if "+" in symbol else symbol, f["Tag"], f["Type"],
                     f["ListDepth"], f["Depth"], f["Size"], f["TotalAllocates"],
                     f["AllocateHits"], f["TotalFrees"], f["FreeHits"])


def pool_lookasides(target: "Target", per_processor: bool) -> list[int]:
    """Addresses of the pool's lookaside lists: the system-wide (L) lists, nonpaged then
    paged by block size, then with `per_processor` every processor's (P) lists."""
    ptr = target.arch.ptr_size
    count = target.read_u32(_symbol(target, "nt!KeNumberProcessors"))
    block = _symbol(target, "nt!KiProcessorBlock")
    prcbs = [target.read_ptr(block + cpu * ptr) for cpu in range(count)]
    offsets = [target.profile.offset("kprcb", name)
               for name in ("PPNPagedLookasideList", "PPPagedLookasideList")]

    def pair(prcb: int, paged: int, i: int) -> tuple[int, int]:
        slot = prcb + offsets[paged] + i * 2 * ptr
        return target.read_ptr(slot), target.read_ptr(slot + ptr)

    first = target.read_ptr(block)          # the shared lists' pairs, even on a count of 0
    shared = [pair(first, paged, i)[1] for paged in (0, 1) for i in range(POOL_SMALL_LISTS)]
    own = [pair(prcb, paged, i)[0] for prcb in prcbs for paged in (0, 1)
           for i in range(POOL_SMALL_LISTS)] if per_processor else []
    return shared + own


def _symbol(target: "Target", name: str) -> int:
    address = target.resolve(name)
    if address is None:
        raise couldnt_resolve(name)
    return address


def _update(target: "Target", address: int, option: int, depth: int) -> None:
    layouts = target.profile
    if option == RESET:
        for name in COUNTERS:
            target.write(address + layouts.offset("lookaside", name), bytes(4))
    else:
        target.write(address + layouts.offset("lookaside", "Depth"),
                     (depth & 0xFFFF).to_bytes(2, "little"))


# -- rendering ----------------------------------------------------------------------------------
def type_text(value: int) -> str:
    """`      0000  NonPagedPool`, `      0011  PagedPool RaiseIfAllocationFailure`."""
    words = [POOL_TYPES.get(value & ~RAISE_IF_ALLOCATION_FAILURE, f"{value:#x}")]
    if value & RAISE_IF_ALLOCATION_FAILURE:
        words.append("RaiseIfAllocationFailure")
    return f"{value:04x}".rjust(10) + "  " + " ".join(words)


def _rate(hits: int, total: int) -> int:
    return hits * 100 // total if total else 0


def list_lines(target: "Target", la: Lookaside) -> list[str]:
    address = target.arch.fmt_ptr(la.address)
    return [
        f'Lookaside "{la.name}" @ 0x{address}  Tag(hex): 0x{la.tag:08x} "{display_tag(la.tag)}"',
        f"    {'Type':<15}= {type_text(la.type)}",
        f"    {'Current Depth':<15}= {la.current_depth:10d}  {'Max Depth':<11}= {la.max_depth:10d}",
        f"    {'Size':<15}= {la.size:10d}  {'Max Alloc':<11}= {la.max_alloc:10d}",
        f"    {'AllocateMisses':<15}= {la.allocate_misses:10d}  "
        f"{'FreeMisses':<11}= {la.free_misses:10d}",
        f"    {'TotalAllocates':<15}= {la.total_allocates:10d}  "
        f"{'TotalFrees':<11}= {la.total_frees:10d}",
        f"    {'Hit Rate':<15}= {_rate(la.allocate_hits, la.total_allocates):10d}% "
        f"{'Hit Rate':<11}= {_rate(la.free_hits, la.total_frees):10d}%",
    ]


def render_lookaside(result: LookasideReport, session: "Session") -> str:
    target = session.target
    lines = []
    for la in result.lists:
        lines += ["", *list_lines(target, la)]
    if result.totals:
        lines.append("")
        def total(paged: bool, potential: bool) -> int:
            return sum(la.max_alloc if potential else la.current_depth * la.size
                       for la in result.lists if la.paged == paged)

        for paged, word in ((False, "NonPaged"), (True, "Paged")):
            lines.append(f"{f'Total {word} currently allocated for above lists':<51}= "
                         f"{total(paged, False):8d}")
            lines.append(f"{f'Total {word} potential for above lists':<51}= "
                         f"{total(paged, True):8d}")
    return "\n".join(lines) + "\n"


@command("!lookaside", syntax="!lookaside [Address [Options [Depth]]] | [0] [-all]",
         render=render_lookaside,
         help="Show lookaside lists: the system-wide pool lookaside lists (-all: every "
              "processor's as well), or the list at Address.\n"
              "Options: 0 display, 1 reset the list's counters, 2 set its depth to Depth.")
def lookaside(session: "Session", args: str) -> LookasideReport:
    target, radix = session.target, session.settings["radix"]
    words = args.split()
    every = "-all" in (w.lower() for w in words)
    text = " ".join(w for w in words if w.lower() != "-all")
    address = option = depth = 0
    if text:
        lead = parse_leading(text, target, radix)
        address, rest = lead.value, lead.rest
        if rest:
            more = parse_leading(rest, target, radix)
            if more.value == SET_DEPTH:
                depth = evaluate(more.rest, target, radix)
            elif more.rest or more.value not in (DISPLAY, RESET):
                raise syntax_error_at(rest)
            option = more.value
    if not address:
        lists = pool_lookasides(target, every)
        return LookasideReport([read_lookaside(target, a) for a in lists], totals=True)
    if option != DISPLAY:
        _update(target, address, option, depth)
    return LookasideReport([read_lookaside(target, address)])
