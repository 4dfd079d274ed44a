"""The Idle process and the processors' idle threads, where Windows 7 keeps them.

A processor with nothing else to run runs its idle thread in nt!KiIdleLoop, so a debugger
that breaks into a quiet machine finds that thread current.  The Idle process,
nt!KiInitialProcess, is an EPROCESS in nt's data (no object header, no pool block): PID 0,
image `Idle`, the system page directory, the kernel's handle table (System's, once it exists),
and never on nt!PsActiveProcessHead; nt!PsIdleProcess points at it.  Processor 0's idle
thread is nt!KiInitialThread, also in nt's data.  Every other processor's is in the data block
KeStartAllProcessors allocates for that processor (PCR and PRCB, TSS, panic stacks, the idle
thread: the scheme of the public Windows Server 2003 kernel sources, assumed unchanged in
Windows 7 on both arches).  The model keeps its KPRCBs beside the pool's lookaside arrays
(pool.py), so that block here is the page the idle thread occupies, just below the thread's
kernel stack.  Each idle thread has its own kernel stack (processor 0's is the loader's boot
stack; the model puts it with the others): slot `cpu` below the threads' stacks
(processes.STACKS), each a data page, a guard page and the stack.  The idle threads are on the
Idle process's thread lists with Cid 0000.0000; each KPRCB names its own in IdleThread and,
from boot, in CurrentThread.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .layouts import PAGE_SIZE
from .objects import Fields
from .processes import (BOOT_TIME, INITIAL_FRAME, KERNEL_STACK, STACKS, STATUS_PENDING,
                        SYSTEM_DIRBASE, SYSTEM_THREAD)

if TYPE_CHECKING:  # pragma: no cover
    from .stop import Host

RUNNING = 2                          # KTHREAD.State
IDLE_SLOT = {P: 2 * PAGE_SIZE + size for P, size in KERNEL_STACK.items()}
IDLE_IMAGE = b"Idle"


def idle_stack(ptr_size: int, cpu: int) -> tuple[int, int]:
    """(StackLimit, StackBase) of `cpu`'s idle thread: slot `cpu` below the threads' stacks."""
    base = STACKS[ptr_size] - cpu * IDLE_SLOT[ptr_size]
    return base - KERNEL_STACK[ptr_size], base


class IdleThreads:
    """Builds the Idle process and one idle thread per processor at boot; `threads[cpu]`."""

    def __init__(self, machine: "Host"):
        self.machine = machine
        self.fields = Fields(machine.arch)
        g, P = machine.g, machine.arch.ptr_size
        self.P = P
        self.process = g.var("KiInitialProcess", self.fields.size("eprocess"), 16)
        g.write_ptr(g.var("PsIdleProcess"), self.process)
        self.threads = [g.var("KiInitialThread", self.fields.size("ethread"), 16)]
        for cpu in range(1, machine.processors):
            page = idle_stack(P, cpu)[0] - 2 * PAGE_SIZE        # the processor's data block
            machine.memory.map(page, PAGE_SIZE)
            self.threads.append(page)
        self._write_process()
        start = machine.nt.symbols["KiIdleLoop"]
        prcbs = machine.nt.symbols["KiProcessorBlock"]
        profile = self.fields.profile
        for cpu, thread in enumerate(self.threads):
            limit, base = idle_stack(P, cpu)
            machine.memory.map(limit, KERNEL_STACK[P])
            self._write_thread(thread, limit, base, start)
            prcb = g.read_ptr(prcbs + cpu * P)
            for name in ("IdleThread", "CurrentThread"):
                g.write_ptr(prcb + profile.offset("kprcb", name), thread)

    def _write_process(self) -> None:
        F, at = self.fields, self.process
        on = lambda name: at + F.profile.offset("eprocess", name)    # noqa: E731
        buf = bytearray(F.size("eprocess"))
        F.put(buf, 0, "eprocess", {
            "Pcb.Header.Type": 3, "Pcb.Header.Size": F.size("kprocess") // 4,
            **_empty(on, "Pcb.Header.WaitListHead", "Pcb.ProfileListHead", "Pcb.ThreadListHead",
                     "Pcb.ReadyListHead", "ThreadListHead", "Vm.WorkingSetExpansionLinks"),
            "Pcb.DirectoryTableBase": SYSTEM_DIRBASE[self.P], "Pcb.QuantumReset": 6,
            "CreateTime": BOOT_TIME, "UniqueProcessId": 0,
            "ActiveThreads": len(self.threads), "ActiveThreadsHighWatermark": len(self.threads),
            "ExitStatus": STATUS_PENDING,
        })
        name = F.profile.offset("eprocess", "ImageFileName")
        buf[name:name + len(IDLE_IMAGE)] = IDLE_IMAGE
        self.machine.memory.write(at, bytes(buf))

    def _write_thread(self, thread: int, limit: int, base: int, start: int) -> None:
        """KeInitializeThread for an idle thread, then on the Idle process's two lists."""
        F, P = self.fields, self.P
        on = lambda name: thread + F.profile.offset("ethread", name)    # noqa: E731
        initial = base - INITIAL_FRAME[P]
        buf = bytearray(F.size("ethread"))
        F.put(buf, 0, "ethread", {
            "Tcb.Header.Type": 6, "Tcb.Header.Size": F.size("kthread") // 4,
            **_empty(on, "Tcb.Header.WaitListHead", "IrpList"),
            "Tcb.InitialStack": initial, "Tcb.StackLimit": limit, "Tcb.StackBase": base,
            "Tcb.KernelStack": initial - 0x80, "Tcb.Running": 1, "Tcb.State": RUNNING,
            "Tcb.ApcState.Process": self.process, "Tcb.Process": self.process,
            "CreateTime": BOOT_TIME, "StartAddress": start, "Win32StartAddress": start,
            "CrossThreadFlags": SYSTEM_THREAD,
        })
        apc = F.profile.offset("ethread", "Tcb.ApcState.ApcListHead")
        for i in range(2):                                  # both APC lists empty
            F.ptr.pack_into(buf, apc + 2 * P * i, thread + apc + 2 * P * i)
            F.ptr.pack_into(buf, apc + 2 * P * i + P, thread + apc + 2 * P * i)
        self.machine.memory.write(thread, bytes(buf))
        for head, entry in (("Pcb.ThreadListHead", "Tcb.ThreadListEntry"),
                            ("ThreadListHead", "ThreadListEntry")):
            _insert_tail(self.machine, self.process + F.profile.offset("eprocess", head),
                         on(entry))

    def share_handle_table(self, system: int) -> None:
        """The kernel's handle table, created for the Idle process and inherited by System:
        both processes name it."""
        at = self.fields.profile.offset("eprocess", "ObjectTable")
        g = self.machine.g
        g.write_ptr(self.process + at, g.read_ptr(system + at))


def _empty(on: Callable[[str], int], *names: str) -> dict[str, int]:
    """Self-pointing LIST_ENTRY values for the fields `names` (`on` gives their addresses)."""
    return {f"{name}.{link}": on(name) for name in names for link in ("Flink", "Blink")}


def _insert_tail(machine: "Host", head: int, entry: int) -> None:
    g, P = machine.g, machine.arch.ptr_size
    last = g.read_ptr(head + P)
    g.write_ptr(entry, head)
    g.write_ptr(entry + P, last)
    g.write_ptr(last, entry)
    g.write_ptr(head + P, entry)
