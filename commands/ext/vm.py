"""`!vm [Flags]`: virtual memory usage from the memory manager's counters and the pool
descriptors, in the classic (Win7-era debugger) or the new (Win8+ debugger) layout.

Every number is read from memory: the MM counters at their nt! symbols, each paged pool's
usage as its descriptor's TotalPages + TotalBigPages (pool 0 also holds the paged big
allocations), failed pool allocations from nt!ExPoolFailures.

* classic (the first seed case's set of lines, formats.md 8.2 old-debugger columns): a blank
  line and `*** Virtual Memory Usage ***`, then lines indented by six blanks, as both the seed
  and the docs' `!vm 1` sample have them; label and page count fill 26 columns, then
  `   (%8d Kb)`; the page-file lines as the seed has them, `Kb` after a blank.  The seed's
  `Free NP PTEs` / `Free Special NP` lines belong to XP's static system VA: they are printed
  only for a kernel that has nt!MmFreeNonPagedPtes, which Windows 7's has not.
* new (Win7 target under the Win8+ debugger, formats.md 8.3): page files first, then each
  counter's pages ending at column 33 and the Kb in 11 columns.

A non-zero nt!ExPoolFailures adds `********** N pool allocations have failed **********` as a
paragraph after PagedPool Maximum (its wording and place are not in a public transcript we
could read; the Win11 sample's PTE-failure paragraph sets the shape).  The new layout also has
the Win11 sample's warning when the system commit exceeds the total.

Flag 4 adds `Terminal Server Memory Usage By Session:` and a paragraph per session on
nt!MiSessionWsList (formats.md 8.2's `!vm 4`; nothing on a target without sessions): its
paged pool (its descriptor's pages), its nonpageable pages and its commit, in Kb ending at
column 26.  The machine models no processes or memory-manager threads, so the per-process list
(flag 0), the thread stacks (2, 0x10), the page-file write log (8) and the kernel VA table
(0x20) print nothing; `Total Private` is 0 in the new layout.  Counters the kernel does not
keep (Processor Commit, Pages For MDLs, ...) are 0, as on the Win7 sample where most of them
are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_SIZE, field_path_offset
from kdsim.layouts.session import mm_session_space

from ..errors import couldnt_resolve, nt_global
from ..expr import evaluate
from ..registry import command
from ..sessions import sessions

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

KB_PER_PAGE = PAGE_SIZE // 1024
SESSIONS = 0x4                      # flag: the sessions' memory
MASK64 = (1 << 64) - 1              # the debugger's arithmetic: a garbage count wraps its Kb
# The kernel does not publish its paging file's name; the one the seed case shows.
PAGE_FILE_NAME = "\\??\\C:\\pagefile.sys"
CLASSIC_INDENT = " " * 6


@dataclass(frozen=True)
class PageFile:
    name: str
    current_kb: int
    free_kb: int
    minimum_kb: int
    maximum_kb: int


@dataclass(frozen=True)
class SessionUsage:
    """One session's memory, in pages."""

    session_id: int
    address: int                    # its _MM_SESSION_SPACE
    paged_pool: int
    nonpaged: int
    commit: int


@dataclass(frozen=True)
class VmUsage:
    """Page counts (pages of 4 KB) unless the name says Kb."""

    flags: int
    page_files: list[PageFile]
    physical: int
    available: int
    resident_available: int
    locked_io: int
    free_system_ptes: int
    free_nonpaged_ptes: int | None       # XP's nonpaged PTE pool: None on a Windows 7 kernel
    free_special_nonpaged: int | None    # printed with it (the XP-era pair of lines)
    modified: int
    modified_pagefile: int
    nonpaged_usage: int
    nonpaged_max: int
    paged_pools: list[int]          # PagedPool 0 .. N usage
    paged_max: int
    session_commit: int
    shared_commit: int
    special_pool: int
    process_commit: int             # `Shared Process` in the classic layout
    kernel_stacks: int
    paged_commit: int
    driver_commit: int
    committed: int
    commit_limit: int
    pool_failures: int
    sessions: list[SessionUsage] = field(default_factory=list)     # flag 4

    @property
    def paged_usage(self) -> int:
        return sum(self.paged_pools)


def _symbol(target: "Target", name: str) -> int:
    address = target.resolve(f"nt!{name}")
    if address is None:
        raise couldnt_resolve(f"nt!{name}")
    return address


def read_vm(target: "Target", flags: int = 0) -> VmUsage:
    """The counters `!vm` prints, read from the target."""
    def counter(name: str) -> int:
        return nt_global(target, name)

    layout = target.profile
    total_pages = layout.offset("descriptor", "TotalPages")
    total_big = layout.offset("descriptor", "TotalBigPages")
    pools = target.read_u32(_symbol(target, "ExpNumberOfPagedPools")) + 1
    array = _symbol(target, "ExpPagedPoolDescriptor")
    paged = []
    for index in range(pools):
        descriptor = target.read_ptr(array + index * target.arch.ptr_size)
        paged.append(target.read_u32(descriptor + total_pages)
                     + target.read_u32(descriptor + total_big))
    # XP / Server 2003 kept nonpaged pool expansion in its own PTE pool; a kernel with dynamic
    # system VA (Windows 7) has no nt!MmFreeNonPagedPtes, and the debugger leaves out the two
    # lines it printed for that pool
    static_va = target.resolve("nt!MmFreeNonPagedPtes") is not None
    page_file = PageFile(PAGE_FILE_NAME, counter("MmPagingFileCurrentKb"),
                         counter("MmPagingFileFreeKb"), counter("MmPagingFileMinimumKb"),
                         counter("MmPagingFileMaximumKb"))
    return VmUsage(
        flags=flags, page_files=[page_file],
        physical=counter("MmNumberOfPhysicalPages"),
        available=counter("MmAvailablePages"),
        resident_available=counter("MmResidentAvailablePages"),
        locked_io=counter("MmLockedIoPages"),
        free_system_ptes=counter("MmFreeSystemPtes"),
        free_nonpaged_ptes=counter("MmFreeNonPagedPtes") if static_va else None,
        free_special_nonpaged=counter("MmFreeSpecialNonPagedPtes") if static_va else None,
        modified=counter("MmModifiedPageCount"),
        modified_pagefile=counter("MmModifiedPFPageCount"),
        nonpaged_usage=counter("MmAllocatedNonPagedPool"),
        nonpaged_max=counter("MmMaximumNonPagedPoolInPages"),
        paged_pools=paged,
        paged_max=counter("MmSizeOfPagedPoolInPages"),
        session_commit=counter("MmSessionCommit"),
        shared_commit=counter("MmSharedCommit"),
        special_pool=counter("MmSpecialPagesInUse"),
        process_commit=counter("MmProcessCommit"),
        kernel_stacks=counter("MmKernelStackPages"),
        paged_commit=counter("MmPagedPoolCommit"),
        driver_commit=counter("MmDriverCommit"),
        committed=counter("MmTotalCommittedPages"),
        commit_limit=counter("MmTotalCommitLimit"),
        pool_failures=target.read_u32(_symbol(target, "ExPoolFailures")),
        sessions=_sessions(target) if flags & SESSIONS else [],
    )


def _sessions(target: "Target") -> list[SessionUsage]:
    layout = mm_session_space(target.profile)
    pages = (field_path_offset(layout, "PagedPool") + target.profile.offset("descriptor", name)
             for name in ("TotalPages", "TotalBigPages"))
    paged = tuple(pages)
    nonpaged, commit = (field_path_offset(layout, name)
                        for name in ("NonPagablePages", "CommittedPages"))
    return [SessionUsage(s.session_id, s.address,
                         sum(target.read_u32(s.address + off) for off in paged),
                         target.read_ptr(s.address + nonpaged),
                         target.read_ptr(s.address + commit))
            for s in sessions(target)]


# -- rendering ----------------------------------------------------------------------------------
def _kb(pages: int) -> int:
    return pages * KB_PER_PAGE & MASK64


def _failures(vm: VmUsage, indent: str) -> list[str]:
    if not vm.pool_failures:
        return []
    return ["", f"{indent}********** {vm.pool_failures} pool allocations have failed **********",
            ""]


def _classic_line(label: str, pages: int) -> str:
    width = max(25 - len(label), 1)
    return f"{CLASSIC_INDENT}{label} {pages:{width}d}   ({_kb(pages):8d} Kb)"


def _classic(vm: VmUsage) -> list[str]:
    line, indent = _classic_line, CLASSIC_INDENT
    lines = ["", "*** Virtual Memory Usage ***", line("Physical Memory:", vm.physical)]
    for pf in vm.page_files:
        lines += [f"{indent}Page File: {pf.name}",
                  f"{indent}   Current: {pf.current_kb:9d} Kb Free Space: {pf.free_kb:9d} Kb",
                  f"{indent}   Minimum: {pf.minimum_kb:9d} Kb Maximum:    {pf.maximum_kb:9d} Kb"]
    lines += [line("Available Pages:", vm.available),
              line("ResAvail Pages:", vm.resident_available),
              line("Locked IO Pages:", vm.locked_io),
              line("Free System PTEs:", vm.free_system_ptes)]
    if vm.free_nonpaged_ptes is not None:
        lines.append(line("Free NP PTEs:", vm.free_nonpaged_ptes))
    if vm.free_special_nonpaged is not None:
        lines.append(line("Free Special NP:", vm.free_special_nonpaged))
    lines += [line("Modified Pages:", vm.modified),
              line("Modified PF Pages:", vm.modified_pagefile),
              line("NonPagedPool Usage:", vm.nonpaged_usage),
              line("NonPagedPool Max:", vm.nonpaged_max)]
    lines += [line(f"PagedPool {i} Usage:", pages) for i, pages in enumerate(vm.paged_pools)]
    lines += [line("PagedPool Usage:", vm.paged_usage),
              line("PagedPool Maximum:", vm.paged_max),
              *_failures(vm, CLASSIC_INDENT),
              line("Session Commit:", vm.session_commit),
              line("Shared Commit:", vm.shared_commit),
              line("Special Pool:", vm.special_pool),
              line("Shared Process:", vm.process_commit),
              line("PagedPool Commit:", vm.paged_commit),
              line("Driver Commit:", vm.driver_commit),
              line("Committed pages:", vm.committed),
              line("Commit limit:", vm.commit_limit)]
    return lines


def _new_line(label: str, pages: int) -> str:
    pad = max(19, len(label) + 1)
    return f"{label:<{pad}}{pages:{33 - pad}d} ({_kb(pages):11d} Kb)"


def _new(vm: VmUsage) -> list[str]:
    line = _new_line
    lines = []
    for pf in vm.page_files:
        lines += [f"Page File: {pf.name}",
                  f"  Current: {pf.current_kb:9d} Kb  Free Space: {pf.free_kb:9d} Kb",
                  f"  Minimum: {pf.minimum_kb:9d} Kb  Maximum:    {pf.maximum_kb:9d} Kb"]
    lines += ["",
              line("Physical Memory:", vm.physical),
              line("Available Pages:", vm.available),
              line("ResAvail Pages:", vm.resident_available),
              line("Locked IO Pages:", vm.locked_io),
              line("Free System PTEs:", vm.free_system_ptes),
              line("Modified Pages:", vm.modified),
              line("Modified PF Pages:", vm.modified_pagefile),
              line("Modified No Write Pages:", 0),
              line("NonPagedPool Usage:", vm.nonpaged_usage),
              line("NonPagedPool Max:", vm.nonpaged_max)]
    lines += [line(f"PagedPool {i:2d}:", pages) for i, pages in enumerate(vm.paged_pools)]
    system = [("Processor Commit:", 0), ("Session Commit:", vm.session_commit), None,
              ("Shared Commit:", vm.shared_commit), ("Special Pool:", vm.special_pool),
              ("Kernel Stacks:", vm.kernel_stacks), ("Pages For MDLs:", 0),
              ("Pages For AWE:", 0), ("NonPagedPool Commit:", 0),
              ("PagedPool Commit:", vm.paged_commit), ("Driver Commit:", vm.driver_commit),
              ("Boot Commit:", 0), ("System PageTables:", 0), ("VAD/PageTable Bitmaps:", 0),
              ("ProcessLockedFilePages:", 0), ("Pagefile Hash Pages:", 0)]
    lines += [line("PagedPool Usage:", vm.paged_usage),
              line("PagedPool Maximum:", vm.paged_max),
              *_failures(vm, "")]
    lines += ["Syspart SharedCommit 0" if item is None else line(*item) for item in system]
    system_sum = sum(item[1] for item in system if item is not None)
    private = 0                        # no processes are modelled
    lines += [line("Sum System Commit:", system_sum), line("Total Private:", private)]
    transient = vm.committed - system_sum - private
    if transient < 0:
        lines += ["", "********** Sum of individual system commit + Process commit exceeds "
                      f"overall commit by {-transient * KB_PER_PAGE} Kb ? ********"]
    else:
        lines.append(line("Misc/Transient Commit:", transient))
    lines += [line("Committed pages:", vm.committed), line("Commit limit:", vm.commit_limit)]
    return lines


def _session_lines(vm: VmUsage, arch: "Arch") -> list[str]:
    if not vm.sessions:
        return []
    lines = ["", "Terminal Server Memory Usage By Session:", ""]
    for s in vm.sessions:
        lines += [f"Session ID {s.session_id} @ {arch.fmt_ptr(s.address)}:",
                  *(f"{label}{_kb(pages):{26 - len(label)}d} Kb" for label, pages in (
                      ("Paged Pool Usage:", s.paged_pool), ("NonPaged Usage:", s.nonpaged),
                      ("Commit Usage:", s.commit))), ""]
    return lines[:-1]


def render_vm(result: VmUsage, session: "Session") -> str:
    new = session.settings.get("vm_layout") == "new"
    lines = _new(result) if new else _classic(result)
    return "\n".join(lines + _session_lines(result, session.target.arch))


@command("!vm", syntax="!vm [Flags]", render=render_vm,
         help="Virtual memory usage: physical pages, page file, pool usage and commit, from "
              "the memory manager's counters.\n"
              "Flags: 1 omits the per-process list; 4 adds each session's memory; 2, 8, 0x10 "
              "and 0x20 add thread stacks, the page-file write log, working-set owners and "
              "kernel VA usage (none of which this machine models).\n"
              "The layout follows the vm_layout setting (classic or new).")
def vm(session: "Session", args: str) -> VmUsage:
    text = args.strip()
    flags = evaluate(text, session.target, session.settings["radix"],
                     offset=args.index(text)) if text else 0
    return read_vm(session.target, flags)
