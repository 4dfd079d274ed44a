"""Objects in memory: the layouts at the Windows 7 SP1 offsets, the process list, the threads,
the loaded-module list, object headers of driver objects and the file names, quota charged to
real processes, read back as the debugger reads them (commands and the target interface)."""
from __future__ import annotations

import re
import struct

import pytest

from commands.poolread import PoolReader
from commands.session import Session
from commands.testing import run
from kdsim import dump, snapshot
from kdsim.arch import get_arch
from kdsim.layouts import (
    PAGED, PROTECTED_POOL, QUOTA, field_path_offset, profile_for, tag_from_ulong, tag_to_ulong,
)
from kdsim.layouts.session import mm_session_space
from kdsim.machine import Machine
from kdsim.objects import TYPE_INDEX
from kdsim.scenarios import boot, open_lab
from kdsim.target import Target
from kdsim.workload import Pattern
from tests.kdsim.test_snapshot import same_machine
from tests.support import ROOT

ARCHES = ("x86", "x64")

# Windows 7 SP1 public-symbol offsets (x86, x64)
OFFSETS = {
    ("eprocess", "UniqueProcessId"): (0xB4, 0x180),
    ("eprocess", "ActiveProcessLinks"): (0xB8, 0x188),
    ("eprocess", "Token"): (0xF8, 0x208),
    ("eprocess", "InheritedFromUniqueProcessId"): (0x140, 0x290),
    ("eprocess", "Session"): (0x168, 0x2D8),
    ("eprocess", "ImageFileName"): (0x16C, 0x2E0),
    ("eprocess", "ThreadListHead"): (0x188, 0x308),
    ("eprocess", "Peb"): (0x1A8, 0x338),
    ("eprocess", "Pcb.DirectoryTableBase"): (0x18, 0x28),
    ("eprocess", "Vm.WorkingSetSize"): (0x224, 0x3E0),
    ("ethread", "Cid"): (0x22C, 0x3B0),
    ("ethread", "ThreadListEntry"): (0x268, 0x420),
    ("ethread", "Tcb.Process"): (0x150, 0x210),
    ("ethread", "Tcb.ThreadListEntry"): (0x1E0, 0x2F8),
    ("object_header", "TypeIndex"): (0xC, 0x18),
    ("object_header", "Body"): (0x18, 0x30),
    ("ldr_entry", "DllBase"): (0x18, 0x30),
    ("ldr_entry", "SizeOfImage"): (0x20, 0x40),
    ("ldr_entry", "FullDllName"): (0x24, 0x48),
    ("ldr_entry", "BaseDllName"): (0x2C, 0x58),
    ("file_object", "FileName"): (0x30, 0x58),
    ("object_type", "Index"): (0x14, 0x28),
}
SIZES = {"eprocess": (0x2C0, 0x4D0), "ethread": (0x2B8, 0x498), "kprocess": (0x98, 0x160),
         "kthread": (0x200, 0x360), "object_header": (0x20, 0x38), "file_object": (0x80, 0xD8),
         "object_header_quota_info": (0x10, 0x20), "object_type": (0x88, 0xD0)}


@pytest.mark.parametrize("arch", ARCHES)
def test_layouts_have_the_public_offsets_and_sizes(arch):
    profile = profile_for(get_arch(arch))
    x64 = arch == "x64"
    for (name, path), offsets in OFFSETS.items():
        assert profile.offset(name, path) == offsets[x64], (name, path)
    for name, sizes in SIZES.items():
        assert getattr(profile, name).sizeof() == sizes[x64], name
    # a thread block: quota information, header, ETHREAD; the body at ...030 / ...060
    assert profile.thread_body_offset == (0x30, 0x60)[x64]
    assert profile.types["_EPROCESS"] is profile.eprocess


# -- reading as the debugger does -----------------------------------------------------------------
def _ptr(target: Target, address: int) -> int:
    return target.read_u64(address) if target.arch.ptr_size == 8 else target.read_u32(address)


def _walk(target: Target, head: int, limit: int = 10000) -> list[int]:
    """The entries of the circular list at `head`, checking each Blink on the way."""
    out, entry, back = [], _ptr(target, head), head
    while entry != head:
        assert _ptr(target, entry + target.arch.ptr_size) == back
        out.append(entry)
        back, entry = entry, _ptr(target, entry)
        assert len(out) < limit
    assert _ptr(target, head + target.arch.ptr_size) == back
    return out


def _processes(target: Target) -> list[int]:
    links = target.profile.offset("eprocess", "ActiveProcessLinks")
    return [e - links for e in _walk(target, target.resolve("nt!PsActiveProcessHead"))]


def _field(target: Target, struct_name: str, base: int, path: str) -> int:
    profile = target.profile
    offset = profile.offset(struct_name, path)
    con = getattr(profile, struct_name)
    for name in path.split("."):
        con = next(sub for sub in con.subcons if sub.name == name).subcon
    return int.from_bytes(target.read(base + offset, con.sizeof()), "little")


def _pending(machine: Machine) -> set[int]:
    """The blocks of nonpaged pool's deferred-free chain (freed, still marked allocated)."""
    target = machine.target()
    found, block = set(), _ptr(target, machine.pool.descriptors[0].pending)
    while block and block not in found:
        found.add(block - target.arch.header)
        block = _ptr(target, block)
    return found


def _process_bodies(machine: Machine) -> set[int]:
    """The EPROCESS in each Proc block not waiting to be freed: after the header, or after
    quota information and the header (System's has none)."""
    target = machine.target()
    profile, header = target.profile, target.arch.header
    quota = profile.object_header_quota_info.sizeof()
    bodies = set()
    pending = _pending(machine)
    for block, size in _blocks(target, "Proc"):
        if block in pending:
            continue
        bare = block + header
        skip = 0 if _field(target, "object_header", bare, "InfoMask") == 0 and \
            _field(target, "object_header", bare, "TypeIndex") == 7 else quota
        bodies.add(bare + skip + profile.body_offset)
        assert size >= header + skip + profile.body_offset + profile.eprocess.sizeof()
    return bodies


def _image(target: Target, process: int) -> str:
    raw = target.read(process + target.profile.offset("eprocess", "ImageFileName"), 15)
    return raw.split(b"\0")[0].decode("ascii")


def _blocks(target: Target, tag: str, paged: bool = False) -> list[tuple[int, int]]:
    """(block address, size) of every small block of `tag` in a pool."""
    reader = PoolReader(target)
    ranges = reader.ranges()
    start, end = ranges.paged if paged else ranges.nonpaged
    found = []
    for page, data in reader.pages(start, end):
        for h in reader.walk(page, data).headers:
            if h.pool_type and tag_from_ulong(h.tag & ~PROTECTED_POOL) == tag:
                found.append((h.address, h.size))
    return found


@pytest.mark.parametrize("arch", ARCHES)
def test_the_process_list_walked_with_dd_returns_to_the_head(booted, arch):
    machine = booted(arch)
    session = Session(machine.target())
    head = machine.target().resolve("nt!PsActiveProcessHead")
    unit = "dq" if arch == "x64" else "dd"
    entry, seen = None, []
    address = head
    while entry != head:
        line = run(session, f"{unit} {address:x} L1")
        entry = int(line.split()[-1].replace("`", ""), 16)
        if entry != head:
            seen.append(entry)
        address = entry
        assert len(seen) < 200
    assert seen == _walk(machine.target(), head)
    names = [_image(machine.target(), p) for p in _processes(machine.target())]
    assert names[:2] == ["System", "smss.exe"]
    assert names.count("csrss.exe") == 2 and "explorer.exe" in names
    assert names.count("svchost.exe") >= 8


@pytest.mark.parametrize("arch", ARCHES)
def test_every_proc_block_is_a_process_on_the_list(booted, arch):
    target = booted(arch).target()
    processes = _processes(target)
    assert _process_bodies(booted(arch)) == set(processes)
    pids = [_field(target, "eprocess", p, "UniqueProcessId") for p in processes]
    assert pids[0] == 4 and len(set(pids)) == len(pids) and all(p % 4 == 0 for p in pids)
    assert _ptr(target, target.resolve("nt!PsInitialSystemProcess")) == processes[0]


@pytest.mark.parametrize("arch", ARCHES)
def test_threads_are_on_their_process_lists(booted, arch):
    machine = booted(arch)
    target = machine.target()
    profile = target.profile
    entry = profile.offset("ethread", "ThreadListEntry")
    k_entry = profile.offset("ethread", "Tcb.ThreadListEntry")
    threads = set()
    for process in _processes(target):
        pid = _field(target, "eprocess", process, "UniqueProcessId")
        mine = [e - entry for e in _walk(target, process + profile.offset(
            "eprocess", "ThreadListHead"))]
        assert [e - k_entry for e in _walk(target, process + profile.offset(
            "eprocess", "Pcb.ThreadListHead"))] == mine
        assert len(mine) == _field(target, "eprocess", process, "ActiveThreads") >= 1
        for thread in mine:
            assert _field(target, "ethread", thread, "Cid.UniqueProcess") == pid
            assert _field(target, "ethread", thread, "Tcb.Process") == process
            assert _field(target, "ethread", thread, "Tcb.Header.Type") == 6
        threads.update(mine)
    offset = target.arch.header + profile.object_header_quota_info.sizeof() + profile.body_offset
    pending = _pending(machine)
    assert {block + offset for block, _ in _blocks(target, "Thre") if block not in pending} \
        == threads
    assert len(threads) > 200


@pytest.mark.parametrize("arch", ARCHES)
def test_the_module_list_has_every_module(booted, arch):
    machine = booted(arch)
    target = machine.target()
    profile = target.profile
    entries = _walk(target, target.resolve("nt!PsLoadedModuleList"))
    images = []
    for entry in entries:
        length = _field(target, "ldr_entry", entry, "BaseDllName.Length")
        buffer = _field(target, "ldr_entry", entry, "BaseDllName.Buffer")
        images.append(target.read(buffer, length).decode("utf-16-le"))
        base = _field(target, "ldr_entry", entry, "DllBase")
        assert machine.symbols.module_at(base).base == base
        assert _field(target, "ldr_entry", entry, "SizeOfImage") == \
            machine.symbols.module_at(base).size
    assert images[:2] == ["ntoskrnl.exe", "hal.dll"]
    assert sorted(images) == sorted(m.image for m in machine.symbols.modules)
    full = _field(target, "ldr_entry", entries[2], "FullDllName.Buffer")
    assert target.read(full, 40).decode("utf-16-le").startswith("\\SystemRoot\\")
    assert {e - target.arch.header for e in entries} == {b for b, _ in _blocks(target, "MmLd")}
    assert profile.ldr_entry.sizeof() == (0x4C, 0x90)[arch == "x64"]


@pytest.mark.parametrize("arch", ARCHES)
def test_object_headers_and_types(booted, arch):
    target = booted(arch).target()
    profile = target.profile
    table = target.resolve("nt!ObTypeIndexTable")
    P = target.arch.ptr_size
    assert _ptr(target, table + P) == 0xBAD0B0B0
    for name, index in (("Process", 7), ("Thread", 8), ("File", 28), ("Event", 12)):
        assert TYPE_INDEX[name] == index
        kind = _ptr(target, table + index * P)
        assert _field(target, "object_type", kind, "Index") == index
        length = _field(target, "object_type", kind, "Name.Length")
        buffer = _field(target, "object_type", kind, "Name.Buffer")
        assert target.read(buffer, length).decode("utf-16-le") == name
    process = _processes(target)[3]
    header = process - profile.body_offset
    assert _field(target, "object_header", header, "TypeIndex") == 7
    assert _field(target, "object_header", header, "InfoMask") == 8     # quota information
    assert _field(target, "object_header", header, "PointerCount") > 0
    assert _ptr(target, target.resolve("nt!PsProcessType")) == _ptr(target, table + 7 * P)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("tag", ["Proc", "Thre", "File", "MmLd", "Even"])
def test_pool_flag_1_shows_what_the_object_holds(booted, arch, tag):
    machine = booted(arch)
    session = Session(machine.target())
    block, _ = _blocks(machine.target(), tag)[0]
    text = run(session, f"!pool {block + machine.arch.header:x} 3")
    rows = text.splitlines()
    star = next(i for i, line in enumerate(rows) if line.startswith("*"))
    dump_rows = [r for r in rows[star + 1:] if re.match(r"^\s+[0-9a-f`]+\s+[0-9a-f]", r)]
    values = [int(v, 16) for r in dump_rows for v in r.split()[1:]]
    assert any(values), text


@pytest.mark.parametrize("arch", ARCHES)
def test_file_objects_have_their_names(booted, arch):
    target = booted(arch).target()
    profile = target.profile
    quota = profile.object_header_quota_info.sizeof()
    named = 0
    for block, _ in _blocks(target, "File")[:200]:
        header = block + target.arch.header + quota
        assert _field(target, "object_header", header, "TypeIndex") == 28
        body = header + profile.body_offset
        assert _field(target, "file_object", body, "Type") == 5
        length = _field(target, "file_object", body, "FileName.Length")
        buffer = _field(target, "file_object", body, "FileName.Buffer")
        assert target.read(buffer, length).decode("utf-16-le").startswith("\\")
        named += 1
    assert named


@pytest.mark.parametrize("arch", ARCHES)
def test_dt_decodes_a_process(booted, arch):
    machine = booted(arch)
    session = Session(machine.target())
    system = _processes(machine.target())[0]
    text = run(session, f"dt nt!_EPROCESS {system:x}")
    pid = "0x00000004" if arch == "x86" else "0x00000000`00000004"
    assert f" UniqueProcessId  : {pid} Void" in text
    assert "ActiveProcessLinks : _LIST_ENTRY [ 0x" in text
    layout = run(session, "dt nt!_ETHREAD")
    assert ("+0x22c Cid              : _CLIENT_ID" if arch == "x86"
            else "+0x3b0 Cid              : _CLIENT_ID") in layout


# -- quota -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHES)
def test_quota_blocks_name_a_real_process_and_only_they_carry_one(arch):
    machine = boot(arch, seed=3, scale=0.2)
    charged = Pattern("nt", "NpFn", QUOTA, (0x60,), None, 1.0)
    machine.workload.add(charged)
    machine.step(3000)
    target = machine.target()
    processes = set(_processes(target))
    session = Session(target)
    reader = PoolReader(target)
    ranges = reader.ranges()
    quota_blocks = 0
    big = reader.big_pages()                 # large allocations' pages hold no pool headers
    for start, end in (ranges.nonpaged, ranges.paged):
        for page, data in reader.pages(start, end):
            if any(b.contains(page) for b in big):
                continue
            for h in reader.walk(page, data).headers:
                if not h.pool_type:
                    continue
                if h.pool_type & QUOTA:
                    quota_blocks += 1
                    assert h.process in processes
                elif arch == "x64":            # no stale ProcessBilled
                    offset = h.address - page + 8
                    assert data[offset:offset + 8] == bytes(8), hex(h.address)
    assert quota_blocks > 50
    block, _ = _blocks(target, "NpFn")[0]
    line = run(session, f"!pool {block + machine.arch.header:x} 2").splitlines()[1]
    assert re.search(r"\*NpFn Process: ([0-9a-f]+)$", line)
    assert int(line.rsplit(" ", 1)[1], 16) in processes


# -- processes come and go -------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHES)
def test_processes_start_and_end_after_boot(arch):
    machine = boot(arch, seed=5, scale=0.2)
    churn = next(a for a in machine.workload.activities if type(a).__name__ == "ProcessChurn")
    for _ in range(12):
        churn.run(machine.workload)
    target = machine.target()
    processes = _processes(target)
    transient = machine.objects.processes.transient()
    assert 1 <= len(transient) <= churn.most
    assert set(transient) <= set(processes)
    assert churn.started >= 12 // 2
    frees = run(Session(target), "!poolused 1 Proc")
    assert re.search(r"Proc\s+\d+\s+\d+\s+[1-9]", frees), frees
    assert _process_bodies(machine) == set(processes)


# -- dumps carry them ----------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHES)
def test_a_dump_carries_the_objects(booted, arch, tmp_path):
    machine = booted(arch)
    path = tmp_path / "m.dmp"
    dump.save(machine.target(), path)
    opened = dump.load(path)
    assert _processes(opened) == _processes(machine.target())
    assert _walk(opened, opened.resolve("nt!PsLoadedModuleList")) == \
        _walk(machine.target(), machine.target().resolve("nt!PsLoadedModuleList"))


def test_a_machine_before_boot_has_empty_lists():
    machine = Machine(get_arch("x86"), 1)
    target = machine.target()
    assert _processes(target) == []
    assert machine.current_process() == 0
    assert struct.unpack("<I", target.read(target.resolve("nt!PsInitialSystemProcess"), 4)) == (0,)
    assert tag_to_ulong("Proc") and PAGED == 1


@pytest.mark.parametrize("arch", ARCHES)
def test_drivers_and_named_devices_have_name_information(booted, arch):
    target = booted(arch).target()
    profile = target.profile
    names = []
    for tag, type_index in (("Driv", 26), ("Devi", 25)):
        for block, size in _blocks(target, tag):
            data = block + target.arch.header
            info = profile.object_header_name_info.sizeof()
            quota = profile.object_header_quota_info.sizeof()
            for prefix in {0, quota, info, quota + info}:
                header = data + prefix
                mask = _field(target, "object_header", header, "InfoMask")
                if _field(target, "object_header", header, "TypeIndex") == type_index and \
                        prefix == (quota if mask & 8 else 0) + (info if mask & 2 else 0):
                    break
            else:
                raise AssertionError(f"no header in {block:x}")
            if not mask & 2:
                continue
            name_at = quota if mask & 8 else 0
            length = _field(target, "object_header_name_info", data + name_at, "Name.Length")
            buffer = _field(target, "object_header_name_info", data + name_at, "Name.Buffer")
            names.append(target.read(buffer, length).decode("utf-16-le"))
    assert "HarddiskVolume1" in names
    room = profile.object_header_name_info.sizeof() + profile.body_offset \
        + profile.driver_object.sizeof()
    if any(size - target.arch.header >= room for _, size in _blocks(target, "Driv")):
        assert "Ntfs" in names                 # a driver's object is named for its module


@pytest.mark.parametrize("arch", ARCHES)
def test_a_resumed_machine_keeps_its_processes_coming_and_going(arch, tmp_path):
    straight = boot(arch, seed=6, scale=0.2)

    def churn(machine: Machine, times: int) -> None:
        activity = next(a for a in machine.workload.activities
                        if type(a).__name__ == "ProcessChurn")
        for _ in range(times):
            activity.run(machine.workload)
            machine.step(50)

    churn(straight, 7)
    snapshot.save(straight, tmp_path / "m.kdsnap")
    resumed = snapshot.load(tmp_path / "m.kdsnap")
    same_machine(straight, resumed)
    churn(straight, 9)
    churn(resumed, 9)
    same_machine(straight, resumed)
    assert resumed.objects.processes.transient() == straight.objects.processes.transient()
    assert resumed.current_process() == straight.current_process() != 0


@pytest.mark.parametrize("arch", ARCHES)
def test_dt_reads_threads_and_modules(booted, arch):
    machine = booted(arch)
    target = machine.target()
    session = Session(target)
    system = _processes(target)[0]
    first = _ptr(target, system + target.profile.offset("eprocess", "ThreadListHead"))
    thread = first - target.profile.offset("ethread", "ThreadListEntry")
    text = run(session, f"dt nt!_ETHREAD {thread:x}")
    assert f"ThreadListEntry  : _LIST_ENTRY [ 0x{target.arch.fmt_addr(_ptr(target, first))}" \
        in text
    entry = _walk(target, target.resolve("nt!PsLoadedModuleList"))[0]
    text = run(session, f"dt nt!_KLDR_DATA_TABLE_ENTRY {entry:x}")
    assert f"DllBase          : 0x{target.arch.fmt_addr(machine.nt.base)} Void" in text
    assert run(session, f"dt nt!_OBJECT_HEADER {thread - target.profile.body_offset:x}"
               ).splitlines()[0].split(":")[1].strip() not in ("0", "0n0")


@pytest.mark.parametrize("arch", ARCHES)
def test_processes_belong_to_their_session_space(arch):
    """Each process of session 0 or 1 points at its MM_SESSION_SPACE and is on its ProcessList,
    those started later too, and leaves it when it ends; System and smss belong to none."""
    machine = boot(arch, seed=2, scale=0.2)
    target = machine.target()
    space = {pool.session_id: pool.space for pool in machine.pool.sessions.pools}
    layout = mm_session_space(target.profile)

    def sessions() -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for process in _processes(target):
            found.setdefault(_image(target, process), set()).add(
                _field(target, "eprocess", process, "Session"))
        return found

    seen = sessions()
    assert seen["System"] == {0} and seen["smss.exe"] == {0}
    assert seen["csrss.exe"] == {space[0], space[1]}
    assert seen["services.exe"] == {space[0]} and seen["explorer.exe"] == {space[1]}
    churn = next(a for a in machine.workload.activities if type(a).__name__ == "ProcessChurn")
    for _ in range(12):
        churn.run(machine.workload)
    assert churn.started > 4                        # some started, some ended
    assert 0 not in {_field(target, "eprocess", p, "Session")
                     for p in machine.objects.processes.transient()}
    links = target.profile.offset("eprocess", "SessionProcessLinks")
    for address in space.values():
        listed = [e - links for e in _walk(target, address + field_path_offset(layout,
                                                                                 "ProcessList"))]
        members = [p for p in _processes(target)
                   if _field(target, "eprocess", p, "Session") == address]
        assert listed and sorted(listed) == sorted(members)
        for name in ("ProcessReferenceToSession", "ReferenceCount"):
            assert target.read_u32(address + field_path_offset(layout, name)) == len(listed)
    # !process prints each process's session as its session space has it
    ids = re.findall(r"SessionId: (\w+)", run(Session(target), "!process 0 0"))
    expected = []
    for process in _processes(target):
        at = _field(target, "eprocess", process, "Session")
        expected.append(str(target.read_u32(at + field_path_offset(layout, "SessionId")))
                        if at else "none")
    assert ids == expected and {"none", "0", "1"} == set(ids)


def test_a_labs_drivers_are_on_the_module_list():
    lab = open_lab(ROOT / "tests" / "kdsim" / "labs" / "netflt.toml")
    machine = lab.boot(scale=0.2)
    target = machine.target()
    images = []
    for entry in _walk(target, target.resolve("nt!PsLoadedModuleList")):
        length = _field(target, "ldr_entry", entry, "BaseDllName.Length")
        buffer = _field(target, "ldr_entry", entry, "BaseDllName.Buffer")
        images.append(target.read(buffer, length).decode("utf-16-le"))
    # the lab's driver loads with the boot drivers; win32k.sys when the first session starts
    assert images[-2:] == ["netflt.sys", "win32k.sys"] and images[0] == "ntoskrnl.exe"


@pytest.mark.parametrize("arch", ARCHES)
def test_the_type_objects_are_on_the_type_types_list(booted, arch):
    target = booted(arch).target()
    P = target.arch.ptr_size
    table = target.resolve("nt!ObTypeIndexTable")
    kinds = [_ptr(target, table + index * P) for index in range(2, 44)]
    creator = target.profile.object_header_creator_info.sizeof()
    entries = _walk(target, kinds[0] + target.profile.offset("object_type", "TypeList"))
    assert [e + creator + target.profile.body_offset for e in entries] == kinds
    assert _field(target, "object_type", kinds[0], "TotalNumberOfObjects") == len(kinds)
    assert _field(target, "object_type", kinds[5], "TotalNumberOfObjects") >= 26   # Process
