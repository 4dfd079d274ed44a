"""Processes and threads: `_EPROCESS` in `Proc` blocks on `nt!PsActiveProcessHead`, `_ETHREAD`
in `Thre` blocks on their process's thread lists, as a Windows 7 machine has them a while
after boot.

The boot set is the processes of a Windows 7 desktop (System, smss, the two csrss of sessions
0 and 1, wininit, winlogon, services, lsass, lsm, the svchost groups, explorer ...), each with
its PID, parent, session (its token's SessionId and EPROCESS.Flags; once the machine has its
session spaces, `set_session` joins each process to its session as MiSessionAddProcess does:
EPROCESS.Session points at the `_MM_SESSION_SPACE`, SessionProcessLinks is on its ProcessList
and the process holds a reference; System and smss belong to none), commit and working set, a
handle table (`Obtb`), a token (`Toke`) and its threads.  After boot, `ProcessChurn` starts
short-lived processes (conhost, dllhost, WmiPrvSE ...) and ends them, freeing their blocks.
Everything the debugger reads is in memory; the Python side keeps only the boot set (and the
session spaces), which a rebuilt machine creates again at the same addresses (a snapshot).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .layouts import NONPAGED, PAGED, PROTECTED_POOL, field_path_offset, tag_to_ulong
from .layouts.session import mm_session_space
from .modules import frames

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine
    from .objects import ObjectManager
    from .workload import Workload

QUANTUM = 64                     # ticks a process keeps charging quota before the next one
TICK = 156250                    # 100 ns units in a clock tick (15.625 ms)
BOOT_TIME = 130389541330000000   # FILETIME of the boot: 2014-03-11 08:02:13 UTC
PROCESS_PAGED_CHARGE = 0x1000   # the Process type's default paged pool charge
STATUS_PENDING = 0x103           # a running process's ExitStatus
# EPROCESS.Flags of a running process: CreateReported, AddressSpaceInitialized, HasAddressSpace,
# LaunchPrefetched, ImageNotifyDone, ProcessInserted, DefaultIoPriority 2
PROCESS_FLAGS = 0x144C0C01
IN_SESSION = 0x10000             # EPROCESS.Flags.ProcessInSession
SYSTEM_THREAD = 0x10             # ETHREAD.CrossThreadFlags.SystemThread
WAITING = 5                      # KTHREAD.State
EXECUTIVE, USER_REQUEST, WR_QUEUE = 0, 6, 15   # KTHREAD.WaitReason
KERNEL_STACK = {4: 0x3000, 8: 0x6000}           # bytes of a kernel stack
# where the model puts kernel stacks (system PTE space, clear of the driver images), one slot
# per thread ID (a stack, then a guard page before the next), reused after STACK_SLOTS IDs
STACKS = {4: 0xA0400000, 8: 0xFFFFF88005E00000}
STACK_SLOTS = {4: 0x3E00, 8: 0x10000}
INITIAL_FRAME = {4: 0x210, 8: 0x30}   # between StackBase and InitialStack (x86: the NPX area)
SYSTEM_DIRBASE = {4: 0x185000, 8: 0x187000}     # the system page directory (System, Idle)
USER_START = {4: 0x77A6B000, 8: 0x77C1F000}     # ntdll!RtlUserThreadStart's page
PROCESS_FRAMES = ("nt!PspAllocateProcess+0x9e", "nt!ObCreateObject+0x1a4")
THREAD_FRAMES = ("nt!PspAllocateThread+0x6b", "nt!ObCreateObject+0x1a4")
OBJECT_FRAMES = ("nt!ObpAllocateObject+0x12c", "nt!ObCreateObject+0x1a4")
EXIT_FRAMES = ("nt!ObfDereferenceObject+0x4e",)


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the boot set: image, PID, parent PID, session (None: no session),
    threads (at scale 1), private commit and working set in pages, base priority."""

    image: str
    pid: int
    parent: int
    session: int | None
    threads: int
    commit: int
    working_set: int
    priority: int = 8


# A Windows 7 SP1 desktop a while after logon: PIDs and parents as such a box shows them
# (wininit's and winlogon's parents are smss instances that have exited).
BOOT_PROCESSES: tuple[ProcessSpec, ...] = (
    ProcessSpec("System", 4, 0, None, 96, 12, 76, 8),
    ProcessSpec("smss.exe", 0x10C, 4, None, 2, 98, 230, 11),
    ProcessSpec("csrss.exe", 0x170, 0x164, 0, 9, 470, 1010, 13),
    ProcessSpec("wininit.exe", 0x1A4, 0x164, 0, 3, 360, 1050, 13),
    ProcessSpec("csrss.exe", 0x1B0, 0x19C, 1, 10, 520, 2700, 13),
    ProcessSpec("services.exe", 0x1DC, 0x1A4, 0, 8, 1310, 2250, 9),
    ProcessSpec("lsass.exe", 0x1EC, 0x1A4, 0, 8, 950, 2690, 9),
    ProcessSpec("lsm.exe", 0x1F4, 0x1A4, 0, 10, 650, 1190, 8),
    ProcessSpec("winlogon.exe", 0x21C, 0x19C, 1, 3, 650, 1470, 13),
    ProcessSpec("svchost.exe", 0x270, 0x1DC, 0, 10, 900, 2150, 8),
    ProcessSpec("svchost.exe", 0x2B4, 0x1DC, 0, 9, 850, 1840, 8),
    ProcessSpec("svchost.exe", 0x310, 0x1DC, 0, 21, 4100, 3900, 8),
    ProcessSpec("svchost.exe", 0x354, 0x1DC, 0, 19, 3100, 3300, 8),
    ProcessSpec("svchost.exe", 0x37C, 0x1DC, 0, 46, 6200, 7800, 8),
    ProcessSpec("svchost.exe", 0x3C0, 0x1DC, 0, 17, 2300, 3100, 8),
    ProcessSpec("svchost.exe", 0x120, 0x1DC, 0, 18, 2900, 2800, 8),
    ProcessSpec("spoolsv.exe", 0x450, 0x1DC, 0, 13, 1600, 2700, 8),
    ProcessSpec("svchost.exe", 0x474, 0x1DC, 0, 20, 2700, 2500, 8),
    ProcessSpec("taskhost.exe", 0x5A8, 0x1DC, 1, 8, 1800, 2100, 8),
    ProcessSpec("dwm.exe", 0x5E4, 0x354, 1, 5, 1400, 1100, 13),
    ProcessSpec("explorer.exe", 0x600, 0x5D8, 1, 31, 9800, 11200, 8),
    ProcessSpec("SearchIndexer.exe", 0x6E8, 0x1DC, 0, 13, 6100, 3600, 8),
    ProcessSpec("sppsvc.exe", 0x74C, 0x1DC, 0, 4, 790, 1950, 8),
    ProcessSpec("svchost.exe", 0x7A0, 0x1DC, 0, 6, 770, 1340, 8),
    ProcessSpec("wmpnetwk.exe", 0x7E4, 0x1DC, 0, 9, 1900, 2050, 8),
    ProcessSpec("audiodg.exe", 0x874, 0x37C, 0, 5, 4000, 3400, 8),
)
# what comes and goes after boot: (image, parent PID, session, threads)
TRANSIENT = (
    ("conhost.exe", 0x1B0, 1, 2), ("dllhost.exe", 0x270, 0, 6), ("WmiPrvSE.exe", 0x270, 0, 8),
    ("SearchProtocolHost.exe", 0x6E8, 0, 7), ("SearchFilterHost.exe", 0x6E8, 0, 5),
    ("taskeng.exe", 0x37C, 0, 5), ("consent.exe", 0x310, 1, 4), ("cmd.exe", 0x600, 1, 1),
    ("rundll32.exe", 0x600, 1, 3), ("TrustedInstaller.exe", 0x1DC, 0, 7),
)
FIRST_TRANSIENT_PID = 0x900
TOKEN_SOURCE = {None: b"*SYSTEM*", 0: b"*SYSTEM*", 1: b"User32  "}
LOGON = {None: 0x3E7, 0: 0x3E7, 1: 0x1A2F4}      # SYSTEM's logon session, the user's
PRIORITY_CLASS = {8: 2, 9: 2, 11: 2, 13: 3, 4: 1}


class Processes:
    """Creating, linking and ending processes and threads in memory."""

    def __init__(self, objects: "ObjectManager", machine: "Machine"):
        self.objects = objects
        self.machine = machine
        self.memory = machine.memory
        self.pool = machine.pool
        self.fields = objects.fields
        self.profile = objects.profile
        self.P = machine.arch.ptr_size
        self.ptr = objects.ptr
        self.fast_ref = objects.fast_ref
        self.head = 0
        self.boot_set: list[int] = []               # the boot processes' EPROCESS, in order
        self.charging: list[int] = []               # those that charge quota (user mode)
        self.threads: dict[int, list[int]] = {}     # the boot set's threads, by process
        self.sessions: dict[int, int] = {}          # session id -> its session space
        self.system = 0
        self._next_thread = 0
        self._frames: dict[str, tuple[int, ...]] = {}

    def publish(self) -> None:
        self.head = self.objects.list_head("PsActiveProcessHead")

    def stack(self, which: tuple[str, ...]) -> tuple[int, ...]:
        """The return addresses of `which`'s frames (resolved once)."""
        key = which[0]
        found = self._frames.get(key)
        if found is None:
            found = self._frames[key] = frames(self.machine.symbols, which)
        return found

    # -- boot -----------------------------------------------------------------------------------
    def boot(self, scale: float) -> None:
        """The boot set; System adopts the verifier's threads (kdsim/threads.py) first."""
        used = {spec.pid for spec in BOOT_PROCESSES}
        self._next_thread = 8
        for spec in BOOT_PROCESSES:
            threads = max(1, round(spec.threads * min(scale, 1.0)))
            adopt: tuple[int, ...] = ()
            if spec.pid == 4 and self.machine.verifier.threads is not None:
                adopt = tuple(self.machine.verifier.threads.ethreads)
            process = self.start(spec.image, spec.pid, spec.parent, spec.session, spec.commit,
                                 spec.working_set, spec.priority, 0, threads, used, adopt)
            if not process:
                return
            self.boot_set.append(process)
            if spec.pid == 4:
                self.system = process
                self.machine.g.write_ptr(self.objects.sym_system, process)
                self.machine.stops.idle.share_handle_table(process)
            elif spec.session is not None:
                self.charging.append(process)

    def set_session(self, session: int, space: int) -> None:
        """Join the processes of `session` (its token's SessionId; the boot set now, those
        started later when they start) to `space`, the session's MM_SESSION_SPACE."""
        self.sessions[session] = space
        links = self.profile.offset("eprocess", "ActiveProcessLinks")
        token_session = self.profile.offset("token", "SessionId")
        entry, seen = self._rptr(self.head), 0
        while entry != self.head and seen < 4096:
            process = entry - links
            token = self._rptr(process + self.profile.offset("eprocess", "Token"))
            token &= ~self.fast_ref
            flags = struct.unpack("<I", self.memory.read(
                process + self.profile.offset("eprocess", "Flags"), 4))[0]
            if token and flags & IN_SESSION and struct.unpack("<I", self.memory.read(
                    token + token_session, 4))[0] == session:
                self._leave(process)                    # from a session it was in before
                self._join(process, space)
            entry, seen = self._rptr(entry), seen + 1

    def _session_field(self, space: int, name: str) -> int:
        return space + field_path_offset(mm_session_space(self.profile), name)

    def _join(self, process: int, space: int) -> None:
        """MiSessionAddProcess: EPROCESS.Session, the tail of the session's ProcessList, one
        more process reference (ReferenceCount and ProcessReferenceToSession)."""
        P = self.P
        self._wptr(process + self.profile.offset("eprocess", "Session"), space)
        head = self._session_field(space, "ProcessList")
        entry = process + self.profile.offset("eprocess", "SessionProcessLinks")
        last = self._rptr(head + P)
        self._wptr(entry, head)
        self._wptr(entry + P, last)
        self._wptr(last, entry)
        self._wptr(head + P, entry)
        self._count(space, 1)

    def _leave(self, process: int) -> None:
        """MiSessionRemoveProcess: off its session's ProcessList, its reference returned."""
        P = self.P
        on = process + self.profile.offset("eprocess", "Session")
        space = self._rptr(on)
        if not space:
            return
        entry = process + self.profile.offset("eprocess", "SessionProcessLinks")
        flink, blink = self._rptr(entry), self._rptr(entry + P)
        self._wptr(blink, flink)
        self._wptr(flink + P, blink)
        self._count(space, -1)

    def _count(self, space: int, delta: int) -> None:
        for name in ("ReferenceCount", "ProcessReferenceToSession"):
            at = self._session_field(space, name)
            value = struct.unpack("<I", self.memory.read(at, 4))[0] + delta
            self.memory.write(at, struct.pack("<I", value & 0xFFFFFFFF))

    def current(self, tick: int) -> int:
        """The user process whose thread runs at `tick` (what quota is charged to)."""
        charging = self.charging
        return charging[(tick // QUANTUM) % len(charging)] if charging else 0

    def current_thread(self, cpu: int, tick: int) -> int:
        """The thread running on `cpu` at `tick`: one of the current process's, each processor
        another."""
        threads = self.threads.get(self.current(tick)) or self.threads.get(self.system)
        return threads[(tick // QUANTUM + cpu) % len(threads)] if threads else 0

    # -- processes ----------------------------------------------------------------------------
    def start(self, image: str, pid: int, parent: int, session: int | None, commit: int,
              working_set: int, priority: int, tick: int, threads: int,
              used: set[int] | None = None, adopt: tuple[int, ...] = ()) -> int:
        """PspCreateProcess: the EPROCESS (System's without quota information), its handle
        table and token, linked at the tail of the active process list, then its threads
        (`adopt`: blocks already allocated for some of them).  `used` are the boot set's PIDs,
        which its thread IDs skip; None for a process started later.  Returns the EPROCESS,
        0 when the pool is exhausted."""
        F, P = self.fields, self.P
        system = pid == 4
        if used is None:                    # started after boot: its threads' IDs follow its own
            self._next_thread = pid + 4
        size = (0 if system else self.objects.quota_prefix) + self.objects.body \
            + F.size("eprocess")
        block = self.pool.allocate(NONPAGED, size, tag_to_ulong("Proc") | PROTECTED_POOL,
                                   0, self.stack(PROCESS_FRAMES))
        if not block:
            return 0
        buf, body = self.objects.header(block, "Process", F.size("eprocess"), not system,
                                        handles=4 + pid % 7, flags=2 if system else 0,
                                        paged_charge=PROCESS_PAGED_CHARGE)
        buf.extend(bytes(F.size("eprocess")))
        ep = block + body
        table = self._handle_table(ep, pid, threads)
        token = self._token(pid, session)
        head = self.head
        last = self._rptr(head + P)
        on = lambda name: ep + self.profile.offset("eprocess", name)   # noqa: E731
        user = session is not None
        image_base = 0 if system else 0x00D00000 + (pid * 0x3B000 & 0x3FF0000)
        created = BOOT_TIME + tick * TICK + (pid * 37 % 1000) * 10000
        F.put(buf, body, "eprocess", {
            "Pcb.Header.Type": 3, "Pcb.Header.Size": F.size("kprocess") // 4,
            "Pcb.Header.WaitListHead.Flink": on("Pcb.Header.WaitListHead"),
            "Pcb.Header.WaitListHead.Blink": on("Pcb.Header.WaitListHead"),
            "Pcb.ProfileListHead.Flink": on("Pcb.ProfileListHead"),
            "Pcb.ProfileListHead.Blink": on("Pcb.ProfileListHead"),
            "Pcb.DirectoryTableBase": self._directory_base(pid),
            "Pcb.ThreadListHead.Flink": on("Pcb.ThreadListHead"),
            "Pcb.ThreadListHead.Blink": on("Pcb.ThreadListHead"),
            "Pcb.ReadyListHead.Flink": on("Pcb.ReadyListHead"),
            "Pcb.ReadyListHead.Blink": on("Pcb.ReadyListHead"),
            "Pcb.BasePriority": priority, "Pcb.QuantumReset": 6,
            "Pcb.KernelTime": 3 + pid % 200 + commit // 50, "Pcb.UserTime": 0 if system
            else 1 + commit // 90,
            "CreateTime": created, "UniqueProcessId": pid,
            "ActiveProcessLinks.Flink": head, "ActiveProcessLinks.Blink": last,
            "QuotaBlock": self.objects.sym_quota_block,
            "CommitCharge": commit, "CommitChargePeak": commit * 9 // 8,
            "VirtualSize": self._virtual_size(commit, system),
            "PeakVirtualSize": self._virtual_size(commit, system) * 9 // 8,
            "ObjectTable": table, "Token": token | self.fast_ref if token else 0,
            "NumberOfPrivatePages": commit, "SectionBaseAddress": image_base,
            "Cookie": (pid * 0x9E3779B1) & 0xFFFFFFFF,
            "InheritedFromUniqueProcessId": parent,
            "PriorityClass": PRIORITY_CLASS.get(priority, 2),
            "ThreadListHead.Flink": on("ThreadListHead"),
            "ThreadListHead.Blink": on("ThreadListHead"),
            "Peb": 0 if system else self._peb(pid),
            "Vm.WorkingSetExpansionLinks.Flink": on("Vm.WorkingSetExpansionLinks"),
            "Vm.WorkingSetExpansionLinks.Blink": on("Vm.WorkingSetExpansionLinks"),
            "Vm.MinimumWorkingSetSize": 50, "Vm.MaximumWorkingSetSize": 345,
            "Vm.WorkingSetSize": working_set, "Vm.WorkingSetPrivateSize": working_set * 2 // 5,
            "Vm.PeakWorkingSetSize": working_set * 5 // 4,
            "Vm.PageFaultCount": working_set * 3 + pid,
            "MmProcessLinks.Flink": on("MmProcessLinks"),
            "MmProcessLinks.Blink": on("MmProcessLinks"),
            "Flags2": 0xD000, "Flags": PROCESS_FLAGS | (IN_SESSION if user else 0),
            "ExitStatus": STATUS_PENDING,
        })
        name = image.encode("ascii")[:15]
        at = body + self.profile.offset("eprocess", "ImageFileName")
        buf[at:at + len(name)] = name
        # bytes of pool charged so far, indexed as PS_QUOTA_TYPE: PsNonPagedPool 0, PsPagedPool 1
        usage = (0x800 + threads * 0x3A0, 0x2000 + commit * 0x30)
        for field, scale in (("ProcessQuotaUsage", 1), ("ProcessQuotaPeak", 5 / 4)):
            at = body + self.profile.offset("eprocess", field)
            for i, value in enumerate(usage):
                self.ptr.pack_into(buf, at + i * P, int(value * scale))
        self.memory.write(block, bytes(buf))
        self._wptr(last, on("ActiveProcessLinks"))           # last.Flink
        self._wptr(head + P, on("ActiveProcessLinks"))       # head.Blink
        if session is not None and session in self.sessions:
            self._join(ep, self.sessions[session])
        made = [self.thread(ep, pid, session, ethread, tick) for ethread in adopt]
        made += [self.thread(ep, pid, session, 0, tick, used)
                 for _ in range(threads - len(adopt))]
        if used is not None:                               # the boot set's: who runs when
            self.threads[ep] = [t for t in made if t]
        return ep

    def _handle_table(self, process: int, pid: int, threads: int) -> int:
        F = self.fields
        table = self.pool.allocate(PAGED, F.size("handle_table"), tag_to_ulong("Obtb"), 0,
                                   self.stack(OBJECT_FRAMES))
        if not table:
            return 0
        handles = 40 + threads * 12 + pid % 97
        buf = bytearray(F.size("handle_table"))
        links = table + self.profile.offset("handle_table", "HandleTableList")
        F.put(buf, 0, "handle_table", {
            "TableCode": 0, "QuotaProcess": 0 if pid == 4 else process,
            "UniqueProcessId": pid, "HandleTableList.Flink": links,
            "HandleTableList.Blink": links, "HandleCount": handles,
            "FirstFreeHandle": 4 * handles + 4, "NextHandleNeedingPool": 0x800,
            "HandleCountHighWatermark": handles + handles // 8})
        self.memory.write(table, bytes(buf))
        return table

    def _token(self, pid: int, session: int | None) -> int:
        """The process's primary token, a `Token` object in paged pool."""
        F = self.fields
        body_bytes = F.size("token")
        variable = 0x100
        size = self.objects.quota_prefix + self.objects.body + body_bytes + variable
        block = self.pool.allocate(PAGED, size, tag_to_ulong("Toke") | PROTECTED_POOL, 0,
                                   self.stack(OBJECT_FRAMES))
        if not block:
            return 0
        buf, body = self.objects.header(block, "Token", body_bytes + variable, True)
        buf.extend(bytes(body_bytes + variable))
        buf[body:body + 8] = TOKEN_SOURCE[session]
        F.put(buf, body, "token", {
            "TokenId": 0x3E000 + pid * 3, "AuthenticationId": LOGON[session],
            "SessionId": session or 0, "UserAndGroupCount": 12 if session == 1 else 4,
            "TokenType": 1, "ImpersonationLevel": 0, "TokenFlags": 0x2000})
        self.memory.write(block, bytes(buf))
        return block + body

    def _directory_base(self, pid: int) -> int:
        if pid == 4:
            return SYSTEM_DIRBASE[self.P]
        frame = 0x3E000 + (pid * 0x2F1 & 0x3FFF)
        return (frame << 12 | (pid * 0x20 & 0xFE0)) if self.P == 4 else frame << 12

    def _peb(self, pid: int) -> int:
        page = (pid // 4 * 7) & 0xF
        return (0x7FFD0000 if self.P == 4 else 0x7FFFFFD0000) + (page << 12)

    def _virtual_size(self, commit: int, system: bool) -> int:
        if system:
            return 0x1A0000 if self.P == 4 else 0x4A0000
        return (commit * 0x1000 * 5 + (0x3800000 if self.P == 4 else 0x4900000))

    # -- threads ------------------------------------------------------------------------------
    def thread(self, process: int, pid: int, session: int | None, ethread: int, tick: int,
               used: set[int] | None = None) -> int:
        """PspCreateThread: a thread of `process` in a new `Thre` block (or the block of
        `ethread`, adopted), at the tail of its process's two thread lists."""
        F, P, profile = self.fields, self.P, self.profile
        system = pid == 4
        if ethread:
            block = ethread - profile.thread_body_offset + self.machine.arch.header
        else:
            block = self.pool.allocate(NONPAGED, profile.thread_object_size,
                                       tag_to_ulong("Thre") | PROTECTED_POOL, 0,
                                       self.stack(THREAD_FRAMES))
            if not block:
                return 0
        buf, body = self.objects.header(block, "Thread", F.size("ethread"), True,
                                        handles=1 if system else 2, flags=2 if system else 0)
        buf.extend(bytes(F.size("ethread")))
        et = block + body
        tid = self._thread_id(used)
        n = tid // 4                                   # the thread's stack slot
        stack_base = (STACKS[P] + n % STACK_SLOTS[P] * (KERNEL_STACK[P] + 0x1000)
                      + KERNEL_STACK[P])
        initial = stack_base - INITIAL_FRAME[P]
        kthread_list = process + profile.offset("eprocess", "Pcb.ThreadListHead")
        ethread_list = process + profile.offset("eprocess", "ThreadListHead")
        k_last, e_last = self._rptr(kthread_list + P), self._rptr(ethread_list + P)
        on = lambda name: et + profile.offset("ethread", name)    # noqa: E731
        start = self._start_address(system, n)
        waiting = USER_REQUEST if not system else (WR_QUEUE if n % 3 else EXECUTIVE)
        F.put(buf, body, "ethread", {
            "Tcb.Header.Type": 6, "Tcb.Header.Size": F.size("kthread") // 4,
            "Tcb.Header.WaitListHead.Flink": on("Tcb.Header.WaitListHead"),
            "Tcb.Header.WaitListHead.Blink": on("Tcb.Header.WaitListHead"),
            "Tcb.CycleTime": 0x1A0000 + tid * 0x3F1, "Tcb.InitialStack": initial,
            "Tcb.StackLimit": stack_base - KERNEL_STACK[P],
            "Tcb.KernelStack": initial - 0x2A0 - (tid % 8) * 0x40,
            "Tcb.ApcState.Process": process,
            "Tcb.Priority": 8 if not system else 12 + n % 4, "Tcb.ContextSwitches": 50 + tid,
            "Tcb.State": WAITING, "Tcb.WaitMode": 0 if system else 1,
            "Tcb.WaitTime": max(1, tick - (tid % 500)), "Tcb.Teb": 0 if system
            else self._peb(pid) - 0x1000 * (1 + n % 8),
            "Tcb.BasePriority": 8, "Tcb.Process": process, "Tcb.WaitReason": waiting,
            "Tcb.StackBase": stack_base, "Tcb.KernelTime": tid % 40,
            "Tcb.UserTime": 0 if system else tid % 23,
            "Tcb.ThreadListEntry.Flink": kthread_list, "Tcb.ThreadListEntry.Blink": k_last,
            "CreateTime": BOOT_TIME + tick * TICK + tid * 2000,
            "StartAddress": start, "Win32StartAddress": start,
            "Cid.UniqueProcess": pid, "Cid.UniqueThread": tid,
            "IrpList.Flink": on("IrpList"), "IrpList.Blink": on("IrpList"),
            "ThreadListEntry.Flink": ethread_list, "ThreadListEntry.Blink": e_last,
            "CrossThreadFlags": SYSTEM_THREAD if system else 0,
        })
        apc = on("Tcb.ApcState.ApcListHead")
        for i in range(2):                                  # both APC lists empty
            self.ptr.pack_into(buf, apc - block + 2 * P * i, apc + 2 * P * i)
            self.ptr.pack_into(buf, apc - block + 2 * P * i + P, apc + 2 * P * i)
        self.memory.write(block, bytes(buf))
        for head, last, entry in ((kthread_list, k_last, on("Tcb.ThreadListEntry")),
                                  (ethread_list, e_last, on("ThreadListEntry"))):
            self._wptr(last, entry)
            self._wptr(head + P, entry)
        threads = process + profile.offset("eprocess", "ActiveThreads")
        count = struct.unpack("<I", self.memory.read(threads, 4))[0] + 1
        self.memory.write(threads, struct.pack("<I", count))
        peak = process + profile.offset("eprocess", "ActiveThreadsHighWatermark")
        self.memory.write(peak, struct.pack("<I", count))
        return et

    def _thread_id(self, used: set[int] | None) -> int:
        tid = self._next_thread
        while used is not None and tid in used:
            tid += 4
        self._next_thread = tid + 4
        return tid

    def _start_address(self, system: bool, n: int) -> int:
        if system:                                     # drivers' system threads
            modules = self.machine.symbols.modules
            module = modules[n % len(modules)]
            return module.base + 0x1000 + (n * 0x1D4 % max(module.size - 0x2000, 0x100) & ~0xF)
        return USER_START[self.P] + (n * 0x53 & 0x3F0)

    # -- the end of a process -----------------------------------------------------------------
    def end(self, process: int, cpu: int = 0) -> None:
        """PspExitProcess and the last dereference: off the active list, its threads, token,
        handle table and object freed."""
        profile, P = self.profile, self.P
        links = process + profile.offset("eprocess", "ActiveProcessLinks")
        flink, blink = self._rptr(links), self._rptr(links + P)
        self._wptr(blink, flink)
        self._wptr(flink + P, blink)
        self._leave(process)
        stack = self.stack(EXIT_FRAMES)
        head = process + profile.offset("eprocess", "ThreadListHead")
        entry = self._rptr(head)
        entry_offset = profile.offset("ethread", "ThreadListEntry")
        to_block = profile.thread_body_offset - self.machine.arch.header
        seen = 0
        while entry != head and seen < 4096:
            following = self._rptr(entry)
            self.pool.free(entry - entry_offset - to_block, tag_to_ulong("Thre") | PROTECTED_POOL,
                           cpu, stack)
            entry, seen = following, seen + 1
        token = self._rptr(process + profile.offset("eprocess", "Token")) & ~self.fast_ref
        if token:
            self.pool.free(token - self.objects.body - self.objects.quota_prefix,
                           tag_to_ulong("Toke") | PROTECTED_POOL, cpu, stack)
        table = self._rptr(process + profile.offset("eprocess", "ObjectTable"))
        if table:
            self.pool.free(table, tag_to_ulong("Obtb"), cpu, stack)
        self.pool.free(process - self.objects.body - self.objects.quota_prefix,
                       tag_to_ulong("Proc") | PROTECTED_POOL, cpu, stack)

    def transient(self) -> list[int]:
        """The processes on the active list that are not of the boot set, oldest first."""
        out: list[int] = []
        boot = set(self.boot_set)
        links = self.profile.offset("eprocess", "ActiveProcessLinks")
        entry = self._rptr(self.head)
        while entry != self.head and len(out) + len(boot) < 4096:
            if entry - links not in boot:
                out.append(entry - links)
            entry = self._rptr(entry)
        return out

    # -- memory helpers -----------------------------------------------------------------------
    def _rptr(self, a: int) -> int:
        return int(self.ptr.unpack(self.memory.read(a, self.P))[0])

    def _wptr(self, a: int, v: int) -> None:
        self.memory.write(a, self.ptr.pack(v & self.machine.arch.ptr_mask))


@dataclass
class ProcessChurn:
    """Short-lived processes after boot: each run starts one (up to `most` at once) or ends
    the oldest.  `next_pid` and `started` are its state (a snapshot keeps them)."""

    weight: float
    most: int = 4
    next_pid: int = FIRST_TRANSIENT_PID
    started: int = 0

    def run(self, engine: "Workload") -> None:
        machine = engine.machine
        processes = machine.objects.processes
        running = processes.transient()
        if len(running) < self.most and (not running or engine.rng.random() < 0.6):
            image, parent, session, threads = TRANSIENT[self.started % len(TRANSIENT)]
            self.started += 1
            pid = self.next_pid
            self.next_pid += 4 * (threads + 1)
            processes.start(image, pid, parent, session, 300 + 37 * (pid % 50),
                            700 + 13 * (pid % 90), 8, engine.t, threads)
        elif running:
            processes.end(running[0], engine.cpu)
