"""The loaded modules of the simulated machine: nt with the functions pool stacks pass through,
and the drivers whose allocations make up the workload.

Function RVAs put the second seed case's stack at its real addresses on x64
(`fffff80001923cc6 nt!VeAllocatePoolWithTagPriority+0x2b6`, `myfault+0x11f6` at
fffff880`042881f6`).  Third-party drivers have no symbols, so their frames print as
`module+offset`, as they do in the seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

from .arch import Arch
from .symbols import Module, SymbolTable

NT_SIZE = 0x5F7000

# nt functions (RVA from the x64 image base 0xfffff80001409000)
NT_FUNCTIONS: dict[str, int] = {
    "KiSystemServiceCopyEnd": 0x7EEC0,
    "DbgBreakPoint": 0x7F9F0,
    "ExpInsertPoolTracker": 0x1A7000,
    "ExpRemovePoolTracker": 0x1A7400,
    "KeBugCheckEx": 0x80000,
    "KiPageFault": 0x81A40,
    "MmAccessFault": 0x9A210,
    "ExAllocatePoolWithTag": 0x1A8010,
    "ExFreePoolWithTag": 0x1A9C30,
    "ExFreePool": 0x1A9C20,
    "ExAllocatePoolWithQuotaTag": 0x1A7E40,
    "ExDeferredFreePool": 0x1AC9F4,
    "MmAllocateContiguousMemory": 0x1C0350,
    "MmFreeContiguousMemory": 0x1C0610,
    "MiAllocatePoolPages": 0x1C1200,
    "IoAllocateIrp": 0x1D0400,
    "IoFreeIrp": 0x1D0900,
    "IoAllocateMdl": 0x1D1000,
    "IofCallDriver": 0x1D2000,
    "ObpAllocateObject": 0x1E0100,
    "ObCreateObject": 0x1E0800,
    "ObfDereferenceObject": 0x1E1000,
    "PspAllocateThread": 0x1F0200,
    "PspCreateThread": 0x1F1000,
    "PspAllocateProcess": 0x1F2000,
    "MiCreateImageFileMap": 0x200000,
    "MiInsertVad": 0x201000,
    "SeCreateAccessState": 0x210000,
    "SeCaptureSecurityDescriptor": 0x211000,
    "CmpAllocateKeyControlBlock": 0x31D100,
    "CmpCreateKeyControlBlock": 0x31D800,
    "CmFlushKey": 0x31D254,
    "HvOptimizedSyncHive": 0x31D968,
    "NtFlushKey": 0x31D9E0,
    "HvFreeDirtyData": 0x31E36C,
    "IopCreateFile": 0x399000,
    "NtCreateFile": 0x399800,
    "IopXxxControlFile": 0x39A490,
    "NtDeviceIoControlFile": 0x39B2A0,
    "IopCompleteRequest": 0x3A0000,
    "VfFreePoolNotification": 0x51A8F0,
    "VeAllocatePoolWithTagPriority": 0x51AA10,
    "VerifierExAllocatePoolEx": 0x51AD20,
    "VerifierExAllocatePoolWithTag": 0x51AE00,
    "VerifierFreePoolWithTag": 0x51B100,
    "IovCallDriver": 0x5256B0,
    "KiBugCheckDebugBreak": 0x80600,
}

# (module name, image, offset from the arch's driver base, size, has public symbols)
DRIVERS: tuple[tuple[str, str, int, int], ...] = (
    ("hal", "hal.dll", -0x400000, 0x49000),
    ("CI", "CI.dll", 0x0, 0xC0000),
    ("Ntfs", "Ntfs.sys", 0x200000, 0x1A3000),
    ("fltmgr", "fltmgr.sys", 0x400000, 0x4C000),
    ("ndis", "ndis.sys", 0x600000, 0xF3000),
    ("tcpip", "tcpip.sys", 0x800000, 0x200000),
    ("afd", "afd.sys", 0xA00000, 0x88000),
    ("netbt", "netbt.sys", 0xB00000, 0x45000),
    ("rdbss", "rdbss.sys", 0xC00000, 0x7B000),
    ("myfault", "myfault.sys", 0x3487000, 0x7000),
    ("DrvA", "DrvA.sys", 0x3500000, 0x6000),
    ("DrvB", "DrvB.sys", 0x3510000, 0x6000),
    ("DrvC", "DrvC.sys", 0x3520000, 0x6000),
    ("cmdrv", "cmdrv.sys", 0x3530000, 0x8000),
)


# drivers a lab file declares load after the built-in ones, one slot each
LAB_DRIVER_OFFSET = 0x3600000
LAB_DRIVER_SLOT = 0x10000               # also the largest image a lab may declare
MAX_LAB_DRIVERS = 64


@dataclass(frozen=True)
class ModuleSpec:
    """A module a lab adds to the machine (or, when it names a loaded module, the symbols it
    adds to that one): name, image, size, and (symbol, RVA) pairs."""

    name: str
    image: str
    size: int
    symbols: tuple[tuple[str, int], ...] = ()


def load_modules(arch: Arch, extra: tuple[ModuleSpec, ...] = ()) -> tuple[SymbolTable, Module]:
    """The symbol table of a freshly booted machine, and its nt module; `extra` are a lab's
    drivers, loaded in order after the built-in ones."""
    table = SymbolTable()
    nt = table.add_module("nt", "ntoskrnl.exe", arch.nt_base, NT_SIZE)
    for name, rva in NT_FUNCTIONS.items():
        nt.add(name, arch.nt_base + rva)
    for name, image, off, size in DRIVERS:
        table.add_module(name, image, (arch.driver_base + off) & arch.ptr_mask, size)
    for slot, spec in enumerate(extra):
        module = table.module(spec.name)
        if module is None:
            base = arch.driver_base + LAB_DRIVER_OFFSET + slot * LAB_DRIVER_SLOT
            module = table.add_module(spec.name, spec.image, base & arch.ptr_mask, spec.size)
        for symbol, rva in spec.symbols:
            if symbol not in module.symbols:
                module.add(symbol, module.base + rva)
    return table, nt


def frames(table: SymbolTable, spec: tuple[str, ...]) -> tuple[int, ...]:
    """Return addresses for frames written as 'nt!IopXxxControlFile+0x607' or 'myfault+0x11f6'."""
    out = []
    for frame in spec:
        name, _, off = frame.partition("+")
        base = table.resolve(name)
        if base is None:
            raise KeyError(f"unknown frame symbol {name}")
        out.append(base + (int(off, 16) if off else 0))
    return tuple(out)
