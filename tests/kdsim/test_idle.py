"""The Idle process and the idle threads: where Windows 7 keeps them, what a break-in shows, and
stops that write their frames on the stopped thread's own kernel stack."""
from __future__ import annotations

import pytest

from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import PAGE_SIZE, profile_for
from kdsim.machine import Machine
from kdsim.scenarios import boot
from kdsim.target import Target

DATA_SIZE = 0x40000                 # nt's .data (kdsim/ntdata.py)


def field(t: Target, struct_name: str, base: int, path: str) -> int:
    """A pointer-sized field (the low byte of a smaller one is its value)."""
    return t.read_ptr(base + t.profile.offset(struct_name, path))


def block_of(t: Target, cpu: int) -> int:
    """`cpu`'s KPRCB."""
    return t.read_ptr(t.symbol("nt!KiProcessorBlock") + cpu * t.arch.ptr_size)


def prcb(t: Target, cpu: int, name: str) -> int:
    return t.read_ptr(block_of(t, cpu) + t.profile.offset("kprcb", name))


def active_processes(t: Target) -> list[int]:
    head = t.symbol("nt!PsActiveProcessHead")
    links = t.profile.offset("eprocess", "ActiveProcessLinks")
    found, at = [], t.read_ptr(head)
    while at != head:
        found.append(at - links)
        at = t.read_ptr(at)
    return found


def stack_of(t: Target, thread: int) -> tuple[int, int, int]:
    return tuple(field(t, "ethread", thread, f"Tcb.{name}")   # type: ignore[return-value]
                 for name in ("StackLimit", "InitialStack", "StackBase"))


def frames(t: Target, cpu: int) -> list[int]:
    """The ChildEBP/Child-SP of each frame of `cpu`'s stopped context."""
    from commands.core.stack import read_stack
    return [f.child for f in read_stack(t, cpu)]


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_each_processor_has_its_idle_thread_in_the_idle_process(arch: str) -> None:
    m = Machine(get_arch(arch), 1, processors=4)
    t = m.target()
    process = t.symbol("nt!KiInitialProcess")
    nt_data = m.g.base
    assert t.read_ptr(t.symbol("nt!PsIdleProcess")) == process
    assert nt_data <= process < nt_data + DATA_SIZE
    assert t.read(process + t.profile.offset("eprocess", "ImageFileName"), 5) == b"Idle\0"
    assert field(t, "eprocess", process, "UniqueProcessId") == 0
    idle = [prcb(t, cpu, "IdleThread") for cpu in range(4)]
    assert idle[0] == t.symbol("nt!KiInitialThread")
    assert len(set(idle)) == 4
    stacks = set()
    for cpu, thread in enumerate(idle):
        assert prcb(t, cpu, "CurrentThread") == thread           # idle since boot
        assert field(t, "ethread", thread, "Tcb.Header.Type") & 0xFF == 6
        assert field(t, "ethread", thread, "Tcb.Process") == process
        assert field(t, "ethread", thread, "Cid.UniqueThread") == 0
        limit, initial, base = stack_of(t, thread)
        assert limit < initial < base and base - limit == {4: 0x3000, 8: 0x6000}[t.arch.ptr_size]
        assert all(t.is_valid(page) for page in range(limit, base, PAGE_SIZE))
        stacks.add(limit)
        if cpu:                       # idling since boot: KiIdleLoop at the stack's bottom
            (child,) = frames(t, cpu)
            assert limit <= child < initial
            assert t.symbolize(t.read_ptr(block_of(t, cpu) + t.profile.offset(
                "kprcb", t.profile.context_registers[0]))) == "nt!KiIdleLoop+0x1a"
        if cpu:                       # in its processor's data block, not in pool
            assert not m.mm.nonpaged.contains(thread)
    assert len(stacks) == 4
    assert process not in active_processes(t)


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_break_in_stops_in_the_idle_thread_on_its_stack(arch: str) -> None:
    m = boot(arch, seed=2, scale=0.02)
    t = m.target()
    for cpu in range(m.processors):
        m.stops.record_break(cpu)
        thread = prcb(t, cpu, "CurrentThread")
        assert thread == prcb(t, cpu, "IdleThread")
        limit, initial, _ = stack_of(t, thread)
        found = frames(t, cpu)
        assert len(found) == 4 and all(limit <= f < initial for f in found)
    system = t.read_ptr(t.symbol("nt!PsInitialSystemProcess"))
    idle = t.symbol("nt!KiInitialProcess")
    assert system in active_processes(t) and idle not in active_processes(t)
    table = "ObjectTable"                 # the kernel's handle table, System's and Idle's
    assert field(t, "eprocess", idle, table) == field(t, "eprocess", system, table) != 0


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_bug_check_writes_its_frames_on_the_current_threads_stack(arch: str) -> None:
    m = boot(arch, seed=3, scale=0.02)
    m.workload.t = 5 * 64 + 1
    cpu = m.workload.cpu
    thread = m.current_thread(cpu)
    assert thread and thread not in {t for t in m.stops.idle.threads}
    m.stop(BugCheck(0xC2, 7, 0x1297, 0, 0))
    t = m.target()
    assert prcb(t, cpu, "CurrentThread") == thread
    limit, initial, base = stack_of(t, thread)
    found = frames(t, cpu)
    assert len(found) >= 4 and all(limit <= f < initial for f in found)
    assert all(t.is_valid(page) for page in range(limit, base, PAGE_SIZE))
    # the registers the stop saved start the same walk
    sp = profile_for(m.arch).context_registers[1]
    assert t.read_ptr(block_of(t, cpu) + t.profile.offset("kprcb", sp)) == found[0]


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_a_pool_hit_stops_in_the_thread_that_made_the_call(arch: str) -> None:
    m = boot(arch, seed=4, scale=0.02)
    thread = m.current_thread(1)
    m.stops.record_hit(1, thread, "ExAllocatePoolWithTag", 1, ())
    t = m.target()
    assert prcb(t, 1, "CurrentThread") == thread
    limit, initial, _ = stack_of(t, thread)
    assert all(limit <= f < initial for f in frames(t, 1))


def test_a_thread_without_a_stack_yet_keeps_its_frames_on_the_idle_stack() -> None:
    """A bare machine's verifier threads are blocks the object manager has not filled."""
    m = Machine(get_arch("x64"), 2, verifier="/flags 1 /driver DrvA.sys")
    m.workload.t = 5                              # processor 1
    m.stop(BugCheck(0x50, 0x1000, 1, 0, 0))
    t = m.target()
    assert prcb(t, 1, "CurrentThread") == m.verifier.threads.current(1, 5)
    limit, initial, _ = stack_of(t, prcb(t, 1, "IdleThread"))
    assert all(limit <= f < initial for f in frames(t, 1))


def test_a_thread_whose_stack_bounds_were_overwritten_stops_on_the_idle_stack() -> None:
    """`ed` on a thread's StackLimit must not make the stop map gigabytes."""
    m = boot("x86", seed=4, scale=0.02)
    thread = m.current_thread(0)
    m.memory.write(thread + m.stops.profile.offset("ethread", "Tcb.StackLimit"), bytes(4))
    pages = len(m.memory.pages)
    m.stops.record_hit(0, thread, "ExFreePoolWithTag", -1, ())
    t = m.target()
    assert prcb(t, 0, "CurrentThread") == thread
    limit, initial, _ = stack_of(t, prcb(t, 0, "IdleThread"))
    assert all(limit <= f < initial for f in frames(t, 0))
    assert len(m.memory.pages) == pages
