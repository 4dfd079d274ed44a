"""The loaded-module list: one `_KLDR_DATA_TABLE_ENTRY` per module of the machine's symbol
table, in an `MmLd` block with its two names after it (MiConstructLoaderEntry allocates them
together), linked from `nt!PsLoadedModuleList` in load order (nt, hal, then the drivers by
address, a lab's drivers last, win32k.sys when the sessions start).  `lm` and `!for_each_module` walk it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .layouts import NONPAGED, tag_to_ulong

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine
    from .objects import Fields
    from .symbols import Module

KERNEL_IMAGES = ("ntoskrnl.exe", "hal.dll")
ENTRY_FLAGS = 0x49104000          # LDRP_ENTRY_PROCESSED | LDRP_IMAGE_DLL | ... as drivers have
KERNEL_FLAGS = 0x0C004000


def full_name(image: str) -> str:
    """Where Windows 7 loads the image from."""
    if image.lower() in KERNEL_IMAGES:
        return "\\SystemRoot\\system32\\" + image
    return "\\SystemRoot\\system32\\DRIVERS\\" + image


def load_module_list(machine: "Machine", fields: "Fields", head: int,
                     modules: "Iterable[Module]") -> list[int]:
    """An entry per module, in their order, at the tail of the list at `head`; returns the
    entries."""
    memory, pool, P = machine.memory, machine.pool, machine.arch.ptr_size
    ptr = fields.ptr
    size = fields.size("ldr_entry")
    entries: list[int] = []
    for module in modules:
        base_name = module.image.encode("utf-16-le")
        full = full_name(module.image).encode("utf-16-le")
        entry = pool.allocate(NONPAGED, size + len(full) + len(base_name) + 4,
                              tag_to_ulong("MmLd"))
        if not entry:
            break
        last = int(ptr.unpack(memory.read(head + P, P))[0])
        buf = bytearray(size)
        kernel = module.image.lower() in KERNEL_IMAGES
        fields.put(buf, 0, "ldr_entry", {
            "InLoadOrderLinks.Flink": head, "InLoadOrderLinks.Blink": last,
            "DllBase": module.base, "EntryPoint": module.base + _entry_rva(module.size),
            "SizeOfImage": module.size,
            "FullDllName.Length": len(full), "FullDllName.MaximumLength": len(full) + 2,
            "FullDllName.Buffer": entry + size,
            "BaseDllName.Length": len(base_name),
            "BaseDllName.MaximumLength": len(base_name) + 2,
            "BaseDllName.Buffer": entry + size + len(full) + 2,
            "Flags": KERNEL_FLAGS if kernel else ENTRY_FLAGS, "LoadCount": 1,
            "CheckSum": (module.base >> 12) * 0x2F1 & 0xFFFFF | 0x10000,
        })
        memory.write(entry, bytes(buf) + full + b"\0\0" + base_name + b"\0\0")
        memory.write(last, ptr.pack(entry))                  # last.Flink
        memory.write(head + P, ptr.pack(entry))               # head.Blink
        entries.append(entry)
    return entries


def _entry_rva(size: int) -> int:
    """An entry point inside the image's code (its INIT section, near the end)."""
    return (size * 7 // 8) & ~0xFFF | 0x1A0
