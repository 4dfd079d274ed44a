"""`!process`, `!thread`, `.process`, `.thread`: processes and threads as the object manager
keeps them in memory (commands/objread.py walks them), in the Win7-era layouts:

    kd> !process 0 0
    **** NT ACTIVE PROCESS DUMP ****
    PROCESS 8514c020  SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000
        DirBase: 00185000  ObjectTable: 89601b28  HandleCount: 497.
        Image: System

On x64 the process's address is alone on the PROCESS line and SessionId starts the next.
Flags: 1 adds the quota, working-set, time and priority lines the model keeps; 2 or 4 list
the threads, one line each (their wait blocks and stacks are not modelled).  Process is an
EPROCESS address, a process ID, 0 (all; `0 Flags Image.exe` filters by image) or -1 (the
current process).  A list whose link is corrupt stops there and says so.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdsim.target import MemoryFault

from ..errors import DebuggerError
from ..expr import MASK64, evaluate64
from ..objread import (
    TICK_100NS, image_name, is_process, is_thread, processes, read_bytes, read_field,
    session_id, threads, ticks_text,
)
from ..poolsnapshots import read_tick
from ..registry import command
from ..core.stack import current_thread, read_stack, stack_lines, symbol_of

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

    from ..session import Session

THREAD_STATES = ("Initialized", "READY", "RUNNING", "STANDBY", "TERMINATED", "WAIT",
                 "TRANSITION", "DEFERREDREADY")
WAIT_REASONS = (
    "Executive", "FreePage", "PageIn", "PoolAllocation", "DelayExecution", "Suspended",
    "UserRequest", "WrExecutive", "WrFreePage", "WrPageIn", "WrPoolAllocation",
    "WrDelayExecution", "WrSuspended", "WrUserRequest", "WrEventPair", "WrQueue",
    "WrLpcReceive", "WrLpcReply", "WrVirtualMemory", "WrPageOut", "WrRendezvous",
    "WrKeyedEvent", "WrTerminated", "WrProcessInSwap", "WrCpuRateControl",
    "WrCalloutStack", "WrKernel", "WrResource", "WrPushLock", "WrMutex", "WrQuantumEnd",
    "WrDispatchInt", "WrPreempted", "WrYieldExecution", "WrFastMutex", "WrGuardedMutex",
    "WrRundown")
WAIT_MODES = ("KernelMode", "UserMode")
RUNNING = 2
ALL_DETAILS = 0xF                   # the default flags for one process named by address or ID
LIST_DEFAULT = 3                    # ... for all processes and for the current one

# the implicit process and thread `.process` and `.thread` set, per session
_IMPLICIT: "weakref.WeakKeyDictionary[Session, dict[str, int]]" = weakref.WeakKeyDictionary()


# -- results -----------------------------------------------------------------------------------
@dataclass
class ThreadLine:
    address: int
    pid: int
    tid: int
    teb: int
    win32: int
    state: str                      # `WAIT: (Executive) KernelMode Non-Alertable`


@dataclass
class ProcessDetails:
    """What flag 1 adds, from the fields the model keeps."""

    device_map: int
    token: int
    elapsed: str
    user_time: str
    kernel_time: str
    quota_paged: int
    quota_nonpaged: int
    working_set: tuple[int, int, int]
    peak_working_set: int
    virtual_mb: int
    peak_virtual_mb: int
    page_faults: int
    base_priority: int
    commit: int


@dataclass
class ProcessBlock:
    address: int
    session: int | None
    pid: int
    peb: int
    parent: int
    dir_base: int
    object_table: int
    handles: int | None
    image: str
    details: ProcessDetails | None = None
    threads: list[ThreadLine] = field(default_factory=list)
    bad_thread_link: int | None = None


@dataclass
class ProcessDump:
    all_processes: bool             # `**** NT ACTIVE PROCESS DUMP ****` first
    processes: list[ProcessBlock]
    bad_link: int | None = None     # where a walk stopped: `Memory read error ...`


# -- reading -----------------------------------------------------------------------------------
def _fast_ref(target: "Target", value: int) -> int:
    return value & ~(0x7 if target.arch.ptr_size == 4 else 0xF)


def thread_state(target: "Target", thread: int, running_on: dict[int, int]) -> str:
    if thread in running_on:
        return f"RUNNING on processor {running_on[thread]}"
    state = read_field(target, "ethread", thread, "Tcb.State")
    name = THREAD_STATES[state] if state < len(THREAD_STATES) else f"State {state}"
    if state != THREAD_STATES.index("WAIT"):
        return name
    reason = read_field(target, "ethread", thread, "Tcb.WaitReason")
    mode = read_field(target, "ethread", thread, "Tcb.WaitMode")
    return (f"WAIT: ({WAIT_REASONS[reason] if reason < len(WAIT_REASONS) else reason}) "
            f"{WAIT_MODES[mode & 1]} Non-Alertable")


def running_threads(target: "Target") -> dict[int, int]:
    """The thread each processor is running (its KPRCB.CurrentThread), by thread."""
    found: dict[int, int] = {}
    for cpu in range(target.processors):
        try:
            found[current_thread(target, cpu)] = cpu
        except (KeyError, MemoryFault):
            continue
    return found


def thread_line(target: "Target", thread: int, running_on: dict[int, int]) -> ThreadLine:
    def get(path: str) -> int:
        return read_field(target, "ethread", thread, path)
    return ThreadLine(thread, get("Cid.UniqueProcess"), get("Cid.UniqueThread"),
                      get("Tcb.Teb"), get("Tcb.Win32Thread"),
                      thread_state(target, thread, running_on))


def _details(target: "Target", process: int) -> ProcessDetails:
    def get(path: str) -> int:
        return read_field(target, "eprocess", process, path)
    # elapsed since its creation: the clock's ticks since boot, less the time between the
    # first process's creation (the boot) and this one's
    first = processes(target).entries[:1]
    boot = read_field(target, "eprocess", first[0], "CreateTime") if first else 0
    since_boot = (get("CreateTime") - boot) // TICK_100NS if boot else 0
    elapsed = max(0, (read_tick(target) or 0) - since_boot)
    P = target.arch.ptr_size
    quota = read_bytes(target, "eprocess", process, "ProcessQuotaUsage")
    nonpaged, paged = (int.from_bytes(quota[i:i + P], "little") for i in (0, P))
    return ProcessDetails(
        get("DeviceMap"), _fast_ref(target, get("Token")), ticks_text(elapsed),
        ticks_text(get("Pcb.UserTime")), ticks_text(get("Pcb.KernelTime")), paged, nonpaged,
        (get("Vm.WorkingSetSize"), get("Vm.MinimumWorkingSetSize"),
         get("Vm.MaximumWorkingSetSize")),
        get("Vm.PeakWorkingSetSize"), get("VirtualSize") >> 20, get("PeakVirtualSize") >> 20,
        get("Vm.PageFaultCount"), get("Pcb.BasePriority"), get("CommitCharge"))


def process_block(target: "Target", process: int, flags: int,
                  running_on: dict[int, int]) -> ProcessBlock:
    def get(path: str) -> int:
        return read_field(target, "eprocess", process, path)
    table = get("ObjectTable")
    try:
        handles: int | None = read_field(target, "handle_table", table, "HandleCount") \
            if table else 0
    except MemoryFault:
        handles = None
    block = ProcessBlock(process, session_id(target, process), get("UniqueProcessId"),
                         get("Peb"), get("InheritedFromUniqueProcessId"),
                         get("Pcb.DirectoryTableBase"), table, handles,
                         image_name(target, process))
    if flags & 1:
        block.details = _details(target, process)
    if flags & 6:
        walk = threads(target, process)
        block.threads = [thread_line(target, t, running_on) for t in walk.entries]
        block.bad_thread_link = walk.bad_link
    return block


def _running(session: "Session") -> int:
    """The thread the session's processor runs (KPRCB.CurrentThread)."""
    try:
        return current_thread(session.target, session.processor)
    except (KeyError, MemoryFault):
        raise DebuggerError("Unable to get the current thread") from None


def current_process(session: "Session") -> int:
    """The implicit process (`.process`), else the current thread's."""
    implicit = _IMPLICIT.get(session, {}).get("process")
    if implicit is not None:
        return implicit
    return read_field(session.target, "ethread", _running(session), "Tcb.ApcState.Process")


# -- !process ----------------------------------------------------------------------------------
def _hex(target: "Target", value: int) -> str:
    return f"{value:0{target.arch.hex_digits}x}"


def render_process_block(block: ProcessBlock, session: "Session") -> list[str]:
    target = session.target
    ident = (f"SessionId: {'none' if block.session is None else block.session}  "
             f"Cid: {block.pid:04x}    Peb: {block.peb:08x}  ParentCid: {block.parent:04x}")
    first = [f"PROCESS {_hex(target, block.address)}  {ident}"] if target.arch.ptr_size == 4 \
        else [f"PROCESS {_hex(target, block.address)}", f"    {ident}"]
    handles = "<Data Not Accessible>" if block.handles is None else f"{block.handles:>3}."
    lines = first + [f"    DirBase: {block.dir_base:08x}  ObjectTable: "
                     f"{_hex(target, block.object_table)}  HandleCount: {handles}",
                     f"    Image: {block.image}"]
    d = block.details
    if d is not None:
        now, low, high = d.working_set
        rows = [("DeviceMap", _hex(target, d.device_map)), ("Token", _hex(target, d.token)),
                ("ElapsedTime", d.elapsed), ("UserTime", d.user_time),
                ("KernelTime", d.kernel_time),
                ("QuotaPoolUsage[PagedPool]", str(d.quota_paged)),
                ("QuotaPoolUsage[NonPagedPool]", str(d.quota_nonpaged))]
        lines += [f"    {rows[0][0]} {rows[0][1]}"]
        lines += [f"    {name:<34}{value}" for name, value in rows[1:]]
        lines += [f"    Working Set Sizes (now,min,max)  ({now}, {low}, {high}) "
                  f"({now * 4}KB, {low * 4}KB, {high * 4}KB)"]
        lines += [f"    {name:<34}{value}" for name, value in (
            ("PeakWorkingSetSize", d.peak_working_set), ("VirtualSize", f"{d.virtual_mb} Mb"),
            ("PeakVirtualSize", f"{d.peak_virtual_mb} Mb"), ("PageFaultCount", d.page_faults),
            ("MemoryPriority", "BACKGROUND"), ("BasePriority", d.base_priority),
            ("CommitCharge", d.commit))]
    if block.threads or block.bad_thread_link is not None:
        lines.append("")
        for t in block.threads:
            lines += [f"        THREAD {_hex(target, t.address)}  Cid {t.pid:04x}.{t.tid:04x}  "
                      f"Teb: {_hex(target, t.teb)} Win32Thread: {_hex(target, t.win32)} "
                      f"{t.state}", ""]
        if block.bad_thread_link is not None:
            lines.append(f"Memory read error {_hex(target, block.bad_thread_link)}")
    return lines + [""]


def render_processes(result: ProcessDump, session: "Session") -> str:
    lines = ["**** NT ACTIVE PROCESS DUMP ****"] if result.all_processes else []
    for block in result.processes:
        lines += render_process_block(block, session)
    if result.bad_link is not None:
        lines.append(f"Memory read error {_hex(session.target, result.bad_link)}")
    return "\n".join(lines)


def _arguments(session: "Session", args: str, count: int) -> tuple[list[int], list[str]]:
    """The first `count` words as expressions (Process, Flags), and the words after them."""
    words = args.split()
    values = [evaluate64(word, session.target, session.settings["radix"],
                         offset=args.index(word)) for word in words[:count]]
    return values, words[count:]


def _by_id_or_address(session: "Session", value: int) -> int:
    target = session.target
    address = value & target.arch.ptr_mask
    if address >= target.profile.system_range_start:
        if not is_process(target, address):
            raise DebuggerError(f"TYPE mismatch for process object at {_hex(target, address)}")
        return address
    for process in processes(target).entries:
        try:
            if read_field(target, "eprocess", process, "UniqueProcessId") == address:
                return process
        except MemoryFault:
            continue
    raise DebuggerError(f"No process has the ID {address:x}")


@command("!process", syntax="!process [Process [Flags [ImageName]]]", render=render_processes,
         help="Display a process (EPROCESS address or ID), all of them (0), the current one "
              "(-1 or none).  Flags: 1 times, quota and memory, 2|4 its threads.  "
              "`!process 0 0 Name.exe` shows only that image's processes.")
def process_command(session: "Session", args: str) -> ProcessDump:
    target = session.target
    values, rest = _arguments(session, args, 2)
    image = rest[0] if rest else ""
    running_on = running_threads(target)
    if not values or values[0] == MASK64:
        flags = values[1] if len(values) > 1 else LIST_DEFAULT
        chosen = [current_process(session)]
        return ProcessDump(False, [process_block(target, p, flags, running_on)
                                   for p in chosen])
    if values[0] == 0:
        flags = values[1] if len(values) > 1 else LIST_DEFAULT
        if target.resolve("nt!PsActiveProcessHead") is None:
            raise DebuggerError("Unable to get nt!PsActiveProcessHead")
        walk = processes(target)
        blocks = [process_block(target, p, flags, running_on) for p in walk.entries
                  if not image or image_name(target, p).lower() == image.lower()]
        return ProcessDump(not image, blocks, walk.bad_link)
    flags = values[1] if len(values) > 1 else ALL_DETAILS
    process = _by_id_or_address(session, values[0])
    return ProcessDump(False, [process_block(target, process, flags, running_on)])


# -- !thread -----------------------------------------------------------------------------------
@dataclass
class ThreadDump:
    line: ThreadLine
    process: int
    image: str
    device_map: int
    wait_start: int
    ticks: int
    context_switches: int
    user_time: str
    kernel_time: str
    start: int
    start_symbol: str
    stack_init: int
    stack_current: int
    stack_base: int
    stack_limit: int
    priority: int
    base_priority: int
    stack: list[str]                # kb's lines, for the thread a processor runs


def thread_dump(session: "Session", thread: int) -> ThreadDump:
    target = session.target
    if not is_thread(target, thread):
        raise DebuggerError(f"TYPE mismatch for thread object at {_hex(target, thread)}")
    running_on = running_threads(target)

    def get(path: str) -> int:
        return read_field(target, "ethread", thread, path)
    process = get("Tcb.Process")
    tick = read_tick(target) or 0
    wait = get("Tcb.WaitTime")
    start = get("Win32StartAddress")
    stack: list[str] = []
    if thread in running_on:
        frames = read_stack(target, running_on[thread])
        stack = stack_lines(target.arch, frames, [symbol_of(target, f.site) for f in frames],
                            True)
    device_map = read_field(target, "eprocess", process, "DeviceMap") if process else 0
    return ThreadDump(
        thread_line(target, thread, running_on), process, image_name(target, process),
        device_map, wait, max(0, tick - wait), get("Tcb.ContextSwitches"),
        ticks_text(get("Tcb.UserTime")), ticks_text(get("Tcb.KernelTime")), start,
        target.symbolize(start) or "", get("Tcb.InitialStack"), get("Tcb.KernelStack"),
        get("Tcb.StackBase"), get("Tcb.StackLimit"), get("Tcb.Priority"),
        get("Tcb.BasePriority"), stack)


def render_thread(result: ThreadDump, session: "Session") -> str:
    target = session.target
    h = lambda value: _hex(target, value)      # noqa: E731
    t = result.line
    elapsed = ticks_text(result.ticks)
    lines = [f"THREAD {h(t.address)}  Cid {t.pid:04x}.{t.tid:04x}  Teb: {h(t.teb)} "
             f"Win32Thread: {h(t.win32)} {t.state}",
             "Not impersonating",
             f"{'DeviceMap':<26}{h(result.device_map)}",
             f"{'Owning Process':<26}{h(result.process)}       Image:         {result.image}",
             f"{'Attached Process':<26}{'N/A':<15}Image:         N/A",
             f"{'Wait Start TickCount':<26}{result.wait_start:<15}Ticks: {result.ticks} "
             f"(0:{elapsed})",
             f"{'Context Switch Count':<26}{result.context_switches:<15}IdealProcessor: 0",
             f"{'UserTime':<26}{result.user_time}",
             f"{'KernelTime':<26}{result.kernel_time}",
             f"Win32 Start Address {result.start_symbol or h(result.start)} "
             f"(0x{h(result.start)})",
             f"Stack Init {h(result.stack_init)} Current {h(result.stack_current)}",
             f"Base {h(result.stack_base)} Limit {h(result.stack_limit)} Call 0",
             f"Priority {result.priority} BasePriority {result.base_priority} UnusualBoost 0 "
             f"ForegroundBoost 0 IoPriority 2 PagePriority 5"]
    if result.stack:
        header = ("ChildEBP RetAddr  Args to Child              " if target.arch.ptr_size == 4
                  else "Child-SP          RetAddr           : " + "Args to Child".ljust(71)
                  + " : Call Site")
        lines += [header, *result.stack]
    return "\n".join(lines)


def current_thread_of(session: "Session") -> int:
    """The implicit thread (`.thread`), else the one the processor runs."""
    implicit = _IMPLICIT.get(session, {}).get("thread")
    return implicit if implicit is not None else _running(session)


@command("!thread", syntax="!thread [Address]", render=render_thread,
         help="Display a thread (ETHREAD address; default: the current thread): its process, "
              "state, times, stack limits and, for a thread a processor runs, its stack.")
def thread_command(session: "Session", args: str) -> ThreadDump:
    values, _ = _arguments(session, args, 1)
    thread = values[0] & session.target.arch.ptr_mask if values else current_thread_of(session)
    return thread_dump(session, thread)


# -- .process, .thread -------------------------------------------------------------------------
def _implicit(session: "Session", args: str, kind: str) -> str:
    target = session.target
    words = [w for w in args.split() if not w.startswith("/")]
    if words:
        value = evaluate64(" ".join(words), target, session.settings["radix"]) \
            & target.arch.ptr_mask
        valid = is_process if kind == "process" else is_thread
        if value and not valid(target, value):
            raise DebuggerError(f"TYPE mismatch for {kind} object at {_hex(target, value)}")
        chosen = _IMPLICIT.setdefault(session, {})
        if value:
            chosen[kind] = value
        else:
            chosen.pop(kind, None)
    current = current_process(session) if kind == "process" else current_thread_of(session)
    return f"Implicit {kind} is now {target.arch.fmt_addr(current)}"


@command(".process", syntax=".process [/r] [/p] [Process]",
         help="Show or set the implicit process (an EPROCESS address; 0: back to the current "
              "thread's) that !process uses when given none.")
def process_context(session: "Session", args: str) -> str:
    return _implicit(session, args, "process")


@command(".thread", syntax=".thread [Thread]",
         help="Show or set the implicit thread (an ETHREAD address; 0: back to the current "
              "processor's) that !thread uses when given none.")
def thread_context(session: "Session", args: str) -> str:
    return _implicit(session, args, "thread")
