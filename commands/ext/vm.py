"""`!vm [Flags]`: virtual memory usage from the memory manager's counters, the pool
descriptors and the process list, in the classic (Win7-era debugger) or the new (Win8+
debugger) layout.

Every number is read from memory: the MM counters at their nt! symbols, each paged pool's
usage as its descriptor's TotalPages + TotalBigPages (pool 0 also holds the paged big
allocations), failed pool allocations from nt!ExPoolFailures, each process's private commit
from its EPROCESS on nt!PsActiveProcessHead (CommitCharge, pages).

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

The flags select sections after the counters (the docs' `!vm` page), printed in this order
(no public transcript shows two of them together):

* bit 0 clear (`!vm`, `!vm 0`): the per-process private commit list, largest first.  Classic:
  a blank line, `Total Private:` as a counter line, then a line per process: its PID in four
  hex digits, its image name, pages and `(Kb)` -- the order and fields of Windows Internals
  6th ed.'s Win7 x86 `!vm` (whose copy collapses runs of blanks, so the widths follow the
  counters': 9 blanks first, as the docs' NT4 `!vm` elides its list, ImageFileName's 15
  characters, the Kb in 8).  New: the Win7 x64 `!vm` of a FLARE-ON 2019 (man.sys) write-up
  (repo not resolved) under the Win10 debugger: a blank line, `  Pid ImageName ... Commit
  SharedCommit        Debt`, a blank line, then `%5x` PID, the name, the commit in Kb ending
  at column 41 and SharedCommit and Debt (0 on Windows 7, as there) in Kb; `Total Private` is
  a counter line for every flag.  Seed 000 is a `!vm` that shows no list: its blog cuts the
  output after `Commit limit` (the post goes on with its own text), so the lines it shows are
  the first lines of ours; the docs' NT4 `!vm` and the Windows Internals Win7 one show the
  list after the counters.  A process list cut by a bad link ends with `Memory read error
  ADDRESS`, as `!process 0 0` ends.
* 2: the `!thread` block of each memory-manager system thread (a System thread starting at
  nt!MiModifiedPageWriter, nt!KeBalanceSetManager ...).  The model starts System's threads
  in drivers' routines and none at those, so this prints a line saying so and pointing at
  `!process 4 6`; a thread made to start there (`ep`/`eq` on its StartAddress) is shown.
* 4: `Terminal Server Memory Usage By Session:` and a paragraph per session on
  nt!MiSessionWsList (formats.md 8.2's `!vm 4`; nothing on a target without sessions): its
  paged pool (its descriptor's pages), its nonpageable pages and its commit, in Kb ending at
  column 26.
* 8, 0x10: the page-file write log and the working-set owner thread stacks; the model keeps
  neither (no paging I/O, no working-set locks), and each prints one line that says so.
* 0x20: the system region table in the Win10 debugger's layout (formats.md 4.3 and a Win10
  `!vm 21`; no Win7 transcript was found, so both layouts print it): `System Region`, `Base
  Address`, `NumberOfBytes`, a row per region by base address, for the regions whose bounds
  the kernel keeps in memory: nonpaged, paged and special pool (nt!MmNonPagedPoolStart ..
  End and the others) and session space (the sessions' MM_SESSION_SPACE and paged pools).
  System PTEs, the system cache, the PFN database and hyperspace have no published bounds in
  the model and get no row.

Bits the extension does not know are ignored, as the real one tests only its own;
expression errors are the evaluator's (`Couldn't resolve error at 'xyz'`).  Counters the
kernel does not keep (Processor Commit, Pages For MDLs, ...) are 0, as on the Win7 sample
where most of them are.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kdsim.layouts import PAGE_SIZE, field_path_offset
from kdsim.layouts.session import mm_session_space
from kdsim.target import MemoryFault

from ..errors import nt_global, nt_symbol
from ..expr import MASK64, evaluate
from ..objread import image_name, processes, read_field, threads
from ..registry import command
from ..sessions import sessions
from .process import ThreadDump, render_thread, thread_dump

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.arch import Arch
    from kdsim.target import Target

    from ..session import Session

KB_PER_PAGE = PAGE_SIZE // 1024
NO_PROCESSES = 0x1                  # flags: omit the per-process list
MM_THREADS = 0x2                    # the memory manager's threads' stacks
SESSIONS = 0x4                      # the sessions' memory
WRITE_LOG = 0x8                     # the page-file write log
WS_OWNERS = 0x10                    # working-set owner threads' stacks
REGIONS = 0x20                      # kernel VA usage: the system region table
# The kernel does not publish its paging file's name; the one the seed case shows.
PAGE_FILE_NAME = "\\??\\C:\\pagefile.sys"
CLASSIC_INDENT = " " * 6
PROCESS_INDENT = " " * 9            # the classic per-process lines
# The memory manager's system threads start at these routines (those nt's symbols name).
MM_THREAD_ROUTINES = ("KeBalanceSetManager", "KeSwapProcessOrStack", "MiModifiedPageWriter",
                      "MiMappedPageWriter", "MiDereferenceSegmentThread")
# Regions whose bounds the kernel keeps in nt globals: (row name, start, end one past it).
REGION_GLOBALS = (("NonPagedPool", "MmNonPagedPoolStart", "MmNonPagedPoolEnd"),
                  ("PagedPool", "MmPagedPoolStart", "MmPagedPoolEnd"),
                  ("SpecialPool", "MmSpecialPoolStart", "MmSpecialPoolEnd"))
# What the flags ask for that the model does not keep: one line each, in unmodelled.py's words.
NOT_MODELLED = {
    MM_THREADS: "Memory management thread stacks are not modelled by kdsim (no System thread "
                "starts at nt!MiModifiedPageWriter, nt!KeBalanceSetManager ...); instead: "
                "!process 4 6",
    WRITE_LOG: "The page file write log is not modelled by kdsim (no paging I/O is "
               "simulated); instead: the Page File and Modified PF Pages lines",
    WS_OWNERS: "Working set owner thread stacks are not modelled by kdsim (no working set "
               "lock is held); instead: !process 4 6",
}


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
class ProcessCommit:
    """One process's private commit (its EPROCESS.CommitCharge, pages)."""

    pid: int
    image: str
    commit: int


@dataclass(frozen=True)
class SystemRegion:
    """A row of the system region table (flag 0x20)."""

    name: str
    base: int
    size: int                       # bytes


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
    total_private: int = 0          # the processes' commit, whatever the flags
    processes: list[ProcessCommit] | None = None    # largest first; None with flag 1
    bad_link: int | None = None     # where the process list walk stopped early
    mm_threads: list[ThreadDump] | None = None      # flag 2
    sessions: list[SessionUsage] = field(default_factory=list)     # flag 4
    regions: list[SystemRegion] | None = None       # flag 0x20

    @property
    def paged_usage(self) -> int:
        return sum(self.paged_pools)


def read_vm(target: "Target", flags: int = 0) -> VmUsage:
    """What `!vm Flags` prints, read from the target; the memory manager's threads (flag 2)
    are added by the command, whose `!thread` reader needs the session."""
    def counter(name: str) -> int:
        return nt_global(target, name)

    layout = target.profile
    total_pages = layout.offset("descriptor", "TotalPages")
    total_big = layout.offset("descriptor", "TotalBigPages")
    pools = target.read_u32(nt_symbol(target, "ExpNumberOfPagedPools")) + 1
    array = nt_symbol(target, "ExpPagedPoolDescriptor")
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
    commits, bad_link = _process_commits(target)
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
        pool_failures=target.read_u32(nt_symbol(target, "ExPoolFailures")),
        total_private=sum(p.commit for p in commits) & MASK64,
        processes=None if flags & NO_PROCESSES else
        sorted(commits, key=lambda p: p.commit, reverse=True),
        bad_link=bad_link,
        sessions=_sessions(target) if flags & SESSIONS else [],
        regions=_regions(target) if flags & REGIONS else None,
    )


def _process_commits(target: "Target") -> tuple[list[ProcessCommit], int | None]:
    """Every process's commit in list order, and where the walk stopped early (a bad link, or
    a process whose fields cannot be read)."""
    walk = processes(target)
    found: list[ProcessCommit] = []
    for process in walk.entries:
        try:
            found.append(ProcessCommit(
                read_field(target, "eprocess", process, "UniqueProcessId"),
                image_name(target, process),
                read_field(target, "eprocess", process, "CommitCharge")))
        except MemoryFault:
            return found, process
    return found, walk.bad_link


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


def _regions(target: "Target") -> list[SystemRegion]:
    """The regions whose bounds are in memory, by base address."""
    mask = target.arch.ptr_mask
    rows = []
    for name, start, end in REGION_GLOBALS:
        base = nt_global(target, start)
        rows.append(SystemRegion(name, base, nt_global(target, end) - base & mask))
    spaces = sessions(target)
    if spaces:
        base = min(min(s.address, s.pool_start) for s in spaces)
        rows.append(SystemRegion("Session", base,
                                 max(s.pool_end for s in spaces) - base & mask))
    return sorted(rows, key=lambda row: row.base)


def mm_thread_addresses(target: "Target") -> list[int]:
    """System's threads that start at one of the memory manager's thread routines."""
    starts = {address for address in (target.resolve(f"nt!{name}")
                                      for name in MM_THREAD_ROUTINES) if address is not None}
    system = target.global_ptr("PsInitialSystemProcess", default=0)
    if not starts or not system:
        return []
    found = []
    for thread in threads(target, system).entries:
        try:
            if read_field(target, "ethread", thread, "StartAddress") in starts:
                found.append(thread)
        except MemoryFault:
            break
    return found


# -- rendering ----------------------------------------------------------------------------------
def _kb(pages: int) -> int:
    """Pages as Kb in the debugger's 64-bit arithmetic: a garbage count wraps."""
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


def _classic_processes(vm: VmUsage) -> list[str]:
    if vm.processes is None:
        return []
    return ["", _classic_line("Total Private:", vm.total_private),
            *(f"{PROCESS_INDENT}{p.pid:04x} {p.image:<15} {p.commit:6d} ({_kb(p.commit):8d} Kb)"
              for p in vm.processes)]


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
    private = vm.total_private
    lines += [line("Sum System Commit:", system_sum), line("Total Private:", private)]
    transient = vm.committed - system_sum - private
    if transient < 0:
        lines += ["", "********** Sum of individual system commit + Process commit exceeds "
                      f"overall commit by {-transient * KB_PER_PAGE} Kb ? ********"]
    else:
        lines.append(line("Misc/Transient Commit:", transient))
    lines += [line("Committed pages:", vm.committed), line("Commit limit:", vm.commit_limit)]
    return lines


def _new_processes(vm: VmUsage) -> list[str]:
    if vm.processes is None:
        return []
    return ["", f"{'Pid':>5} {'ImageName':<17}{'Commit':>22}{'SharedCommit':>15}{'Debt':>12}",
            "", *(f"{p.pid:5x} {p.image:<17}{_kb(p.commit):19d} Kb{0:12d} Kb{0:9d} Kb"
                  for p in vm.processes)]


def _process_list_end(vm: VmUsage, arch: "Arch") -> list[str]:
    if vm.processes is None or vm.bad_link is None:
        return []
    return [f"Memory read error {arch.fmt_ptr(vm.bad_link)}"]


def _thread_lines(vm: VmUsage, session: "Session") -> list[str]:
    if vm.mm_threads is None:
        return []
    if not vm.mm_threads:
        return ["", NOT_MODELLED[MM_THREADS]]
    lines = []
    for dump in vm.mm_threads:
        lines += ["", render_thread(dump, session)]
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


def _unmodelled(vm: VmUsage, flag: int) -> list[str]:
    return ["", NOT_MODELLED[flag]] if vm.flags & flag else []


def _region_lines(vm: VmUsage) -> list[str]:
    if vm.regions is None:
        return []
    return ["", f"{'System Region':<28}Base Address{'NumberOfBytes':>17}", "",
            *(f"{r.name:<22}: {r.base:16x} {r.size:16x}" for r in vm.regions)]


def render_vm(result: VmUsage, session: "Session") -> str:
    arch = session.target.arch
    if session.settings.get("vm_layout") == "new":
        lines = _new(result) + _new_processes(result)
    else:
        lines = _classic(result) + _classic_processes(result)
    lines += [*_process_list_end(result, arch), *_thread_lines(result, session),
              *_session_lines(result, arch), *_unmodelled(result, WRITE_LOG),
              *_unmodelled(result, WS_OWNERS), *_region_lines(result)]
    return "\n".join(lines)


@command("!vm", syntax="!vm [Flags]", render=render_vm,
         help="Virtual memory usage: physical pages, page file, pool usage and commit, from "
              "the memory manager's counters, then each process's private commit.\n"
              "Flags: 1 omits the per-process list; 2 adds the memory manager's threads; 4 "
              "each session's memory; 0x20 the system region table (kernel VA).  8 (page-file "
              "write log) and 0x10 (working-set owners) say the machine models neither.\n"
              "The layout follows the vm_layout setting (classic or new).")
def vm(session: "Session", args: str) -> VmUsage:
    text = args.strip()
    flags = evaluate(text, session.target, session.settings["radix"],
                     offset=args.index(text)) if text else 0
    usage = read_vm(session.target, flags)
    if flags & MM_THREADS:
        usage = replace(usage, mm_threads=[thread_dump(session, thread) for thread
                                           in mm_thread_addresses(session.target)])
    return usage
