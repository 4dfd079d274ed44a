"""The allocator's hot path is rewritten for speed from time to time; the machine it builds must
not change.  These hashes pin every mapped page (and the workload clock) after small boots of
the default machine and a fragmenting lab, and after a mixed allocate/free run with quota
charges, big blocks, lookaside depth changes and a corrupted free list, on both architectures.
A change that is meant to change the machine updates them, and says so."""
from __future__ import annotations

import hashlib
import random

import pytest

from kdsim.arch import get_arch
from kdsim.bugcheck import BugCheck
from kdsim.layouts import QUOTA, tag_to_ulong
from kdsim.machine import Machine
from kdsim.scenarios import boot
from tests.support import billed_process


def memory_hash(m: Machine) -> str:
    h = hashlib.sha256()
    for vpn in sorted(m.memory.pages):
        h.update(vpn.to_bytes(8, "little"))
        h.update(m.memory.pages[vpn])
    h.update(m.workload.t.to_bytes(8, "little"))
    return h.hexdigest()[:16]


# (nt!KeTickCount, the workload's clock in memory, changed these: with it zeroed they are as
# before it was published; then the full-size population of kdsim/catalogue/ changed them, then
# win32k.sys's entry on the loaded-module list, then the seed drivers leaving the machines that do
# not use them, the processes joining their sessions, x86 quota blocks grown by the billed
# process's pointer and the session pools' lookaside lists, then hal.dll moving below the kernel,
# the Idle process and idle threads in nt's data and their stacks, stops on the current thread's
# own stack and the x64 thread stacks moved clear of the driver images, quota charged to and
# returned by processes)
BOOTS = {
    ("default", "x86"): "7abc12223dd7fbb5",
    ("default", "x64"): "022ecb13732246a4",
    ("fragmentation", "x86"): "beef1800a91d7969",
    ("fragmentation", "x64"): "715f2f2d014ced75",
}


@pytest.mark.parametrize("scenario,arch", sorted(BOOTS))
def test_boot_memory_is_pinned(scenario: str, arch: str) -> None:
    m = boot(arch, seed=3, scenario=scenario, scale=0.05)
    m.step(2000)
    assert memory_hash(m) == BOOTS[scenario, arch]


# (the seed drivers' image pages no longer mapped changed both; x86 quota blocks growing by a
# pointer changed x86's: x64's pool is as before)
MIXED = {"x86": ("7c51702977a7134c", "8fc127e877a8089b"),
         "x64": ("6187573dd8ce3e60", "d7d900d4e05e9a2c")}


def mixed_run(arch: str) -> Machine:
    """Random allocations (some charged to a process, some big) and frees around 3,000 live
    blocks on two CPUs, with the balance-set tick now and then; all pending frees released."""
    m = Machine(get_arch(arch), seed=1)
    pool, rng = m.pool, random.Random(5)
    tags = [tag_to_ulong(t) for t in ("Irp ", "File", "Mdl ", "CM31")]
    sizes = (1, 0x38, 0x40, 0x94, 0x100, 0x3A0, 0x800, 0xF18, 0x1000, 0x3000)
    live: list[int] = []
    owner = billed_process(m, 0x1234)
    for i in range(30_000):
        if len(live) < 3000 or rng.random() < 0.5:
            pool_type = rng.randrange(2) | (QUOTA if i % 7 == 0 else 0)
            live.append(pool.allocate(pool_type, rng.choice(sizes), tags[i % 4], i % 2, (),
                                      owner if i % 3 == 0 else 0))
        else:
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            pool.free(live.pop(), 0, i % 2)
        if i % 5000 == 0:
            pool.adjust_lookaside_depth()
    pool.flush_pending()
    return m


@pytest.mark.parametrize("arch", sorted(MIXED))
def test_mixed_run_memory_is_pinned(arch: str) -> None:
    m = mixed_run(arch)
    assert memory_hash(m) == MIXED[arch][0]
    # a free chunk's Flink overwritten: the next allocation from its list stops the machine
    pool = m.pool
    head = pool.descriptors[0].lists + 9 * 2 * pool.P
    entry = pool._rptr(head)
    assert entry != head
    m.memory.write(entry, b"\x10" * pool.P)
    with pytest.raises(BugCheck) as stop:
        for _ in range(100):
            pool.allocate(0, 10 * pool.G - pool.G, tag_to_ulong("Cccc"))
    assert (stop.value.code, *stop.value.params[:2]) == (0x19, 3, entry)
    assert memory_hash(m) == MIXED[arch][1]
