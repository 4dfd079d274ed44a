"""The object manager: object headers, the object types and the objects drivers create.

Every object lives in a pool block as Windows 7 lays it out: the pool header, the optional
headers the object has (quota information, name information, creator information, in that
order from the block's start), the `_OBJECT_HEADER` and the body (kdsim/layouts: the body
starts at `_OBJECT_HEADER.Body`).  The header's TypeIndex indexes `nt!ObTypeIndexTable`, whose
entries are the `_OBJECT_TYPE` objects (themselves objects of type `Type`, in `ObjT` blocks).

Object initialisation runs on every allocation of an object pattern, so it writes one
prebuilt image per (type, block size, optional headers) with the few per-object values packed
in: the body's self-pointing list heads, the counts, the names.  Nothing here draws from the
workload's random generator: what varies between objects is derived from their addresses.
Processes and threads are kdsim/processes.py, the loaded-module list kdsim/loader.py.

What the debugger finds, all in nt's data: `ObTypeIndexTable` (the types by TypeIndex; entry 1
is 0xbad0b0b0 as on Windows 7), `PsProcessType`, `PsThreadType`, `IoFileObjectType`,
`SeTokenObjectType`, `ExEventObjectType` (pointers to types), `PsInitialSystemProcess`,
`PsActiveProcessHead` (the processes' ActiveProcessLinks), `PsLoadedModuleList` (the loader
entries' InLoadOrderLinks) and `PspDefaultQuotaBlock` (what quota-charged objects name in
their header's QuotaBlockCharged).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from construct import Construct

from .layouts import NONPAGED, PAGED, PROTECTED_POOL, profile_for, tag_to_ulong
from .loader import load_module_list
from .processes import LOGON, TOKEN_SOURCE, ProcessChurn, Processes

if TYPE_CHECKING:  # pragma: no cover
    from .arch import Arch
    from .machine import Machine
    from .symbols import Module

# _OBJECT_HEADER.InfoMask bits of the optional headers the model writes, and the flags
CREATOR_INFO = 0x1
NAME_INFO = 0x2
QUOTA_INFO = 0x8
KERNEL_OBJECT = 0x2                     # OB_FLAG_KERNEL_OBJECT: created in kernel mode
TYPE_SLOTS = 64                         # entries of nt!ObTypeIndexTable
UNUSED_TYPE_SLOT = 0xBAD0B0B0           # what Windows 7 keeps in ObTypeIndexTable[1]
SD_CACHE_HEADER = {4: 0x10, 8: 0x18}    # SECURITY_DESCRIPTOR_HEADER before a cached descriptor
QUOTA_BLOCK_POINTERS = 16               # nt!PspDefaultQuotaBlock, opaque here
DEFAULT_SD_CHARGE = 0x800               # SE_DEFAULT_SECURITY_QUOTA

# The Windows 7 SP1 object types: TypeIndex, name.  OBJECT_TYPE.Key is the pool tag of the
# type's objects: the first four characters of its name.
OBJECT_TYPES: tuple[tuple[int, str], ...] = (
    (2, "Type"), (3, "Directory"), (4, "SymbolicLink"), (5, "Token"), (6, "Job"),
    (7, "Process"), (8, "Thread"), (9, "UserApcReserve"), (10, "IoCompletionReserve"),
    (11, "DebugObject"), (12, "Event"), (13, "EventPair"), (14, "Mutant"), (15, "Callback"),
    (16, "Semaphore"), (17, "Timer"), (18, "Profile"), (19, "KeyedEvent"),
    (20, "WindowStation"), (21, "Desktop"), (22, "TpWorkerFactory"), (23, "Adapter"),
    (24, "Controller"), (25, "Device"), (26, "Driver"), (27, "IoCompletion"), (28, "File"),
    (29, "TmTm"), (30, "TmTx"), (31, "TmRm"), (32, "TmEn"), (33, "Section"), (34, "Session"),
    (35, "Key"), (36, "ALPC Port"), (37, "PowerRequest"), (38, "WmiGuid"),
    (39, "EtwRegistration"), (40, "EtwConsumer"), (41, "FilterConnectionPort"),
    (42, "FilterCommunicationPort"), (43, "PcwObject"),
)
TYPE_INDEX = {name: index for index, name in OBJECT_TYPES}
TYPE_POINTERS = (("PsProcessType", "Process"), ("PsThreadType", "Thread"),
                 ("IoFileObjectType", "File"), ("SeTokenObjectType", "Token"),
                 ("ExEventObjectType", "Event"))
CHURN_WEIGHT = 0.02                     # processes starting and ending after boot

# Dispatcher objects: _DISPATCHER_HEADER.Type and the body's size (x86, x64): Size is in ULONGs.
DISPATCHER = {
    "Event": (0, (0x10, 0x18)), "Mutant": (2, (0x20, 0x38)), "IoCompletion": (4, (0x28, 0x40)),
    "Semaphore": (5, (0x14, 0x20)), "Timer": (8, (0x98, 0x110)),
}
# I/O objects: the Type their first SHORT holds
IO_TYPES = {"Device": 3, "Driver": 4, "File": 5}
# bodies the profile declares, and the sizes of the others in the public symbols (x86, x64):
# CM_KEY_BODY, SECTION_OBJECT, ALPC_PORT, OBJECT_DIRECTORY, OBJECT_SYMBOLIC_LINK, EJOB
DECLARED_BODIES = {"Device": "device_object", "Driver": "driver_object", "File": "file_object",
                   "Token": "token"}
OTHER_BODIES = {
    "Key": (0x2C, 0x58), "Section": (0x18, 0x30), "ALPC Port": (0xFC, 0x1A0),
    "Directory": (0xA8, 0x150), "SymbolicLink": (0x18, 0x20), "Job": (0x138, 0x1C8),
}
DEVICE_TYPES = (0x22, 0x7, 0x12, 0x8, 0x2D, 0x3E)   # unknown, disk, network, file system...
DRIVER_FLAGS = 0x12                     # DRVO_LEGACY_DRIVER | DRVO_INITIALIZED
KEY_BODY_TYPE = 0x6B793032              # CM_KEY_BODY.Type: 'ky02'
FILE_FLAGS = 0x40042                    # FO_SYNCHRONOUS_IO | FO_HANDLE_CREATED | FO_CACHE_SUPPORTED
# FileName of file objects, picked by address: what a Windows 7 box keeps open
FILE_NAMES = (
    "\\Windows\\System32\\config\\SOFTWARE", "\\Windows\\System32\\config\\SYSTEM",
    "\\$Mft", "\\$LogFile", "\\Windows\\System32\\winevt\\Logs\\System.evtx",
    "\\Windows\\System32\\winevt\\Logs\\Application.evtx", "\\pagefile.sys",
    "\\Windows\\System32\\en-US\\svchost.exe.mui", "\\Windows\\System32\\ntdll.dll",
    "\\Windows\\System32\\kernel32.dll", "\\Windows\\System32\\user32.dll",
    "\\Windows\\SysWOW64\\ntdll.dll", "\\Windows\\System32\\catroot2\\edb.log",
    "\\Users\\student\\NTUSER.DAT", "\\Users\\student\\AppData\\Local\\IconCache.db",
    "\\ProgramData\\Microsoft\\Search\\Data\\Applications\\Windows\\MSS.log",
    "\\Windows\\Prefetch\\SVCHOST.EXE-7A4A2B22.pf", "\\Windows\\System32\\drivers\\etc\\hosts",
    "\\Windows\\winsxs\\pending.xml", "\\Windows\\System32\\wbem\\Repository\\OBJECTS.DATA",
)
FILE_NAME_TAG = "IoNm"
OBJECT_NAME_TAG = "ObNm"
DRIVER_DIRECTORY = "\\Driver\\"
DEVICE_DIRECTORY = "\\Device\\"
DEVICE_NAMES = (
    "HarddiskVolume1", "HarddiskVolume2", "Afd", "Tcp", "Udp", "RawIp", "Null", "KsecDD",
    "Mup", "NamedPipe", "Mailslot", "Beep", "Video0", "KeyboardClass0", "PointerClass0",
    "CdRom0", "Ndis", "Nsi", "NetBT_Tcpip_{5E1E6A64}", "LanmanRedirector", "WMIDataDevice",
    "DeviceApi", "PcwDrv", "Ip", "Ip6", "RdpBus", "Serenum", "00000031", "0000003c",
)
FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class Image:
    """A prebuilt object: its bytes from the block's data start, where the body starts, the
    self-relative pointers to fill (offset in the image, offset of what they point at), and
    its optional headers."""

    data: bytes
    body: int
    links: tuple[tuple[int, int], ...]
    mask: int                                   # the InfoMask: the optional headers it has


class Fields:
    """Offsets and `struct` formats of declared fields, for packing values into an image."""

    def __init__(self, arch: "Arch"):
        self.profile = profile_for(arch)
        self.ptr = struct.Struct("<I" if arch.ptr_size == 4 else "<Q")
        self._cache: dict[tuple[str, str], tuple[int, struct.Struct]] = {}
        self._sizes: dict[str, int] = {}

    def slot(self, struct_name: str, path: str) -> tuple[int, struct.Struct]:
        key = (struct_name, path)
        found = self._cache.get(key)
        if found is None:
            offset = self.profile.offset(struct_name, path)
            size = _leaf(getattr(self.profile, struct_name), path).sizeof()
            found = self._cache[key] = (offset, struct.Struct("<" + FORMATS[size]))
        return found

    def put(self, buf: bytearray, at: int, struct_name: str, values: dict[str, int]) -> None:
        """Pack `values` (field path -> value) into the structure at buf[at:]."""
        for path, value in values.items():
            offset, fmt = self.slot(struct_name, path)
            fmt.pack_into(buf, at + offset, value & ((1 << 8 * fmt.size) - 1))

    def size(self, struct_name: str) -> int:
        found = self._sizes.get(struct_name)
        if found is None:
            found = self._sizes[struct_name] = int(getattr(self.profile, struct_name).sizeof())
        return found


def _leaf(con: Construct, path: str) -> Construct:
    """The declaration of the field at `path` (`Vm.WorkingSetSize`)."""
    for name in path.split("."):
        con = next(sub for sub in con.subcons if sub.name == name).subcon
    return con


class ObjectManager:
    """nt's object manager state: the type table, the shared security descriptor, and the
    writing of headers and bodies; the processes and the loaded-module list.  Its globals are
    published by `publish`, once the machine's other globals are (so that none of theirs
    moves) and before its clock; `boot` creates the types, the module list and the
    processes."""

    def __init__(self, machine: "Machine"):
        self.machine = machine
        self.arch = machine.arch
        self.memory = machine.memory
        self.pool = machine.pool
        self.P = machine.arch.ptr_size
        self.fields = Fields(machine.arch)
        self.ptr = self.fields.ptr
        self.profile = self.fields.profile
        self.body = self.profile.body_offset
        self.quota_prefix = self._prefix(QUOTA_INFO)
        self.counts = struct.Struct("<ii" if self.P == 4 else "<qq")
        self.fast_ref = 0x7 if self.P == 4 else 0xF     # an _EX_FAST_REF's reference count bits
        assert self.profile.offset("object_header", "HandleCount") == self.P
        self._plans: dict[tuple[str, int, int], Image] = {}
        self.wide = self.P == 8
        self.types: dict[str, int] = {}            # type name -> its OBJECT_TYPE
        self.type_pointers: dict[str, int] = {}    # type name -> nt!PsProcessType ...
        self.sd = 0                                # the cached security descriptor objects use
        self.booted = False
        self.modules: list[int] = []               # the loader entries, in load order
        self.processes = Processes(self, machine)
        self._images: dict[tuple[str, int, int], Image] = {}
        self.sym_types = self.sym_system = self.sym_quota_block = self.sym_modules = 0

    def publish(self) -> None:
        g, P = self.machine.g, self.P
        self.sym_types = g.var("ObTypeIndexTable", TYPE_SLOTS * P)
        g.write_ptr(self.sym_types + P, UNUSED_TYPE_SLOT)
        self.sym_system = g.var("PsInitialSystemProcess")
        self.sym_quota_block = g.var("PspDefaultQuotaBlock", QUOTA_BLOCK_POINTERS * P)
        self.sym_modules = self.list_head("PsLoadedModuleList")
        self.processes.publish()
        for symbol, name in TYPE_POINTERS:
            self.type_pointers[name] = g.var(symbol)

    def current_process(self, tick: int) -> int:
        """The EPROCESS allocations at `tick` are made for (0 before boot)."""
        return self.processes.current(tick)

    def list_head(self, name: str) -> int:
        """A LIST_ENTRY in nt's data, published as `nt!name`, empty (pointing to itself)."""
        g = self.machine.g
        head = g.var(name, 2 * self.P)
        g.write_ptr(head, head)
        g.write_ptr(head + self.P, head)
        return head

    # -- boot ---------------------------------------------------------------------------------
    def boot(self, scale: float = 1.0) -> None:
        """What Phase 1 initialisation leaves: the object types (ObpCreateTypeObject for
        each) and the security descriptor they share, the loaded-module list, the processes
        of a desktop a while after logon and their threads (`scale` of their numbers); then
        processes come and go.  Only the first call boots."""
        if self.booted:
            return
        self.booted = True
        self.sd = self._security_descriptor()
        for index, name in OBJECT_TYPES:
            self.types[name] = self._type_object(index, name)
        for name, pointer in self.type_pointers.items():
            self.machine.g.write_ptr(pointer, self.types[name])
        self.load_modules(sorted(self.machine.symbols.modules,
                                 key=lambda m: (m.name != "nt", m.name != "hal")))
        self.processes.boot(scale)
        self._count_object(self.types["Process"], len(self.processes.boot_set))
        self._count_object(self.types["Thread"], sum(map(len, self.processes.threads.values())))
        self.machine.workload.add(ProcessChurn(CHURN_WEIGHT))

    def load_modules(self, modules: "Iterable[Module]") -> None:
        """Loader entries for `modules`, at the end of nt!PsLoadedModuleList (win32k.sys
        comes when the first session starts, after the boot drivers)."""
        self.modules += load_module_list(self.machine, self.fields, self.sym_modules, modules)

    def _security_descriptor(self) -> int:
        """The self-relative descriptor of the SD cache (`ObSc`) that objects share: owner
        SYSTEM, group Administrators, an empty DACL."""
        header = SD_CACHE_HEADER[self.P]
        owner = bytes.fromhex("0101000000000005" "12000000")                # S-1-5-18
        group = bytes.fromhex("0102000000000005" "20000000" "20020000")     # S-1-5-32-544
        dacl = bytes.fromhex("0200080000000000")
        sd = struct.pack("<BBHIIII", 1, 0, 0x8004, 0x14, 0x14 + len(owner), 0,
                         0x14 + len(owner) + len(group))
        body = sd + owner + group + dacl
        block = self.pool.allocate(PAGED, header + len(body), tag_to_ulong("ObSc"))
        if not block:
            return 0
        self.memory.write(block, self.ptr.pack(block) * 2 + struct.pack("<I", 0x100)
                          + bytes(header - 2 * self.P - 4) + body)
        return block + header

    def _type_object(self, index: int, name: str) -> int:
        """An OBJECT_TYPE in an `ObjT` block (creator and name information before its header,
        its name's characters after its body), entered in ObTypeIndexTable."""
        F = self.fields
        text = name.encode("utf-16-le")
        mask = CREATOR_INFO | NAME_INFO
        prefix = self._prefix(mask)
        size = prefix + self.body + F.size("object_type") + len(text) + 2
        block = self.pool.allocate(NONPAGED, size, tag_to_ulong("ObjT") | PROTECTED_POOL)
        if not block:
            return 0
        buf = self._header_image(mask, TYPE_INDEX["Type"], KERNEL_OBJECT, size)
        body = prefix + self.body
        buf.extend(bytes(size - len(buf)))
        name_at = block + size - len(text) - 2
        string = {"Length": len(text), "MaximumLength": len(text) + 2, "Buffer": name_at}
        callbacks = block + body + self._offset("object_type", "CallbackList")
        F.put(buf, body, "object_type", {
            "TypeList.Flink": block + body, "TypeList.Blink": block + body,
            "Index": index, "Key": tag_to_ulong(name[:4].ljust(4)),
            **{f"Name.{k}": v for k, v in string.items()},
            "CallbackList.Flink": callbacks, "CallbackList.Blink": callbacks,
        })
        F.put(buf, self._name_info_at(mask), "object_header_name_info", {
            **{f"Name.{k}": v for k, v in string.items()}, "ReferenceCount": 0})
        self._counts(buf, prefix, block, 1)
        buf[size - len(text) - 2:size - 2] = text
        self.memory.write(block, bytes(buf))
        # on the Type type's list of objects (its own first), through the creator information
        kind = self.types.get("Type", block + body)
        self._insert_tail(kind + self._offset("object_type", "TypeList"),
                          block + self._creator_info_at(mask))
        self._count_object(kind, 1)
        self.machine.g.write_ptr(self.sym_types + index * self.P, block + body)
        return block + body

    def _insert_tail(self, head: int, entry: int) -> None:
        """InsertTailList of the LIST_ENTRY at `entry` on the list at `head`."""
        P, ptr = self.P, self.ptr
        last = int(ptr.unpack(self.memory.read(head + P, P))[0])
        self.memory.write(entry, ptr.pack(head) + ptr.pack(last))
        self.memory.write(last, ptr.pack(entry))
        self.memory.write(head + P, ptr.pack(entry))

    def _count_object(self, kind: int, count: int) -> None:
        """Add `count` objects to an OBJECT_TYPE's TotalNumberOfObjects (and its high-water
        mark)."""
        total = kind + self._offset("object_type", "TotalNumberOfObjects")
        high = kind + self._offset("object_type", "HighWaterNumberOfObjects")
        value = struct.unpack("<I", self.memory.read(total, 4))[0] + count
        self.memory.write(total, struct.pack("<I", value))
        self.memory.write(high, struct.pack("<I", max(value, struct.unpack(
            "<I", self.memory.read(high, 4))[0])))

    # -- headers ------------------------------------------------------------------------------
    def _prefix(self, mask: int) -> int:
        """Bytes of optional headers before the object header for InfoMask `mask`."""
        F = self.fields
        return ((F.size("object_header_quota_info") if mask & QUOTA_INFO else 0)
                + (F.size("object_header_name_info") if mask & NAME_INFO else 0)
                + (F.size("object_header_creator_info") if mask & CREATOR_INFO else 0))

    def _name_info_at(self, mask: int) -> int:
        return self.fields.size("object_header_quota_info") if mask & QUOTA_INFO else 0

    def _creator_info_at(self, mask: int) -> int:
        return self._prefix(mask) - self.fields.size("object_header_creator_info")

    def _offset(self, struct_name: str, path: str) -> int:
        return self.profile.offset(struct_name, path)

    def _header_image(self, mask: int, type_index: int, flags: int, body_bytes: int,
                      paged_charge: int = 0) -> bytearray:
        """Optional headers and the object header (through Body's offset) for an object of
        `body_bytes`: its type, InfoMask and flags, the quota it was charged (the default
        quota block), the shared security descriptor."""
        F = self.fields
        prefix = self._prefix(mask)
        buf = bytearray(prefix + self.body)
        if mask & QUOTA_INFO:
            F.put(buf, 0, "object_header_quota_info", {          # the first of them
                "PagedPoolCharge": paged_charge, "NonPagedPoolCharge": body_bytes,
                "SecurityDescriptorCharge": DEFAULT_SD_CHARGE})
        F.put(buf, prefix, "object_header", {
            "TypeIndex": type_index, "InfoMask": mask, "Flags": flags,
            "ObjectCreateInfo": self.sym_quota_block if mask & QUOTA_INFO else 0,
            "SecurityDescriptor": self.sd | self.fast_ref if self.sd else 0})
        return buf

    def _counts(self, buf: bytearray, header_at: int, address: int, handles: int) -> None:
        """PointerCount and HandleCount (adjacent, at the header's start), varied by the
        object's address."""
        pointers = handles + 1 + ((address >> 4) * 0x9E3779B1 >> 16 & 0x1F)
        self.counts.pack_into(buf, header_at, pointers, handles)

    def header(self, address: int, type_name: str, body_bytes: int, quota: bool,
               handles: int = 1, flags: int = 0, paged_charge: int = 0
               ) -> tuple[bytearray, int]:
        """The image of an object's optional headers and header at block data `address`, and
        where its body starts in it."""
        mask = QUOTA_INFO if quota else 0
        buf = self._header_image(mask, TYPE_INDEX[type_name], flags, body_bytes, paged_charge)
        prefix = self._prefix(mask)
        self._counts(buf, prefix, address, handles)
        return buf, prefix + self.body

    # -- objects drivers create ---------------------------------------------------------------
    def create(self, address: int, size: int, type_name: str, cpu: int = 0,
               stack: tuple[int, ...] = ()) -> tuple[tuple[int, int], ...]:
        """Fill the block a driver just allocated (`size` bytes at `address`) with an object
        of `type_name`: quota information when the block has room for it, the header, the body.
        Returns the blocks allocated with it that go when it goes (a file's name), as
        (address, tag)."""
        if not self.booted or type_name not in TYPE_INDEX:
            return ()
        named = type_name == "Driver" or (type_name == "Device" and address >> 4 & 1)
        image = self._plan(type_name, size, NAME_INFO if named else 0)
        mask = image.mask
        buf = bytearray(image.data)
        for at, target in image.links:
            self.ptr.pack_into(buf, at, address + target)
        self._counts(buf, image.body - self.body, address, 1)
        extra: tuple[tuple[int, int], ...] = ()
        if type_name == "File":
            extra = self._file_name(buf, image.body, address, cpu, stack)
        elif type_name == "Token":
            self.fields.put(buf, image.body, "token", {"TokenId": 0x80000 + (address >> 3)
                                                       & 0xFFFFFF})
        elif type_name in ("Device", "Driver"):
            extra = self._io_object(buf, mask, image.body, address, type_name,
                                    size - image.body, cpu, stack)
        self.memory.write(address, bytes(buf[:size]))
        return extra

    def _plan(self, type_name: str, size: int, wanted: int) -> Image:
        """The image for a block of `size`: the optional headers `wanted` (and quota
        information) that fit beside the body, cached per type, size and wish."""
        key = (type_name, size, wanted)
        found = self._plans.get(key)
        if found is None:
            body_bytes = self._body_bytes(type_name)
            need = self.body + body_bytes
            mask = wanted
            if size >= self._prefix(mask | QUOTA_INFO) + need:
                mask |= QUOTA_INFO
            elif size < self._prefix(mask) + need:
                mask = 0
            found = self._plans[key] = self._image(type_name, mask, body_bytes)
        return found

    def _body_bytes(self, type_name: str) -> int:
        x64 = int(self.wide)
        if type_name in DISPATCHER:
            return DISPATCHER[type_name][1][x64]
        if type_name in DECLARED_BODIES:
            return self.fields.size(DECLARED_BODIES[type_name])
        sizes = OTHER_BODIES.get(type_name)
        return sizes[x64] if sizes else 0

    def _image(self, type_name: str, mask: int, body_bytes: int) -> Image:
        """The prebuilt image of a type's object (cached per type and InfoMask)."""
        key = (type_name, mask, body_bytes)
        found = self._images.get(key)
        if found is not None:
            return found
        buf = self._header_image(mask, TYPE_INDEX[type_name], 0, body_bytes)
        body = len(buf)
        buf.extend(bytes(body_bytes))
        links: list[tuple[int, int]] = []
        F = self.fields

        def empty_list(at: int) -> None:          # a LIST_ENTRY pointing to itself
            links.extend(((at, at), (at + self.P, at)))

        if type_name in DISPATCHER:
            kind, sizes = DISPATCHER[type_name]
            F.put(buf, body, "dispatcher_header", {
                "Type": kind, "Size": sizes[int(self.wide)] // 4,
                "SignalState": 1 if type_name == "Mutant" else 0})
            empty_list(body + self._offset("dispatcher_header", "WaitListHead"))
            if type_name == "IoCompletion":          # KQUEUE: entry list, counts, thread list
                entries = body + F.size("dispatcher_header")
                empty_list(entries)
                struct.pack_into("<I", buf, entries + 2 * self.P + 4, self.machine.processors)
                empty_list(entries + 2 * self.P + 8)
        elif type_name == "File":
            F.put(buf, body, "file_object", {
                "Type": IO_TYPES["File"], "Size": body_bytes, "Flags": FILE_FLAGS,
                "ReadAccess": 1, "SharedRead": 1,
                "Lock.Type": 1, "Lock.Size": F.size("dispatcher_header") // 4,
                "Event.Type": 0, "Event.Size": F.size("dispatcher_header") // 4})
            for event in ("Lock", "Event"):
                empty_list(body + self._offset("file_object", f"{event}.WaitListHead"))
            empty_list(body + self._offset("file_object", "IrpList"))
        elif type_name == "Key":
            struct.pack_into("<I", buf, body, KEY_BODY_TYPE)
        elif type_name == "ALPC Port":
            empty_list(body)                          # PortListEntry
        elif type_name == "Token":                    # a service's impersonation token
            buf[body:body + 8] = TOKEN_SOURCE[None]
            F.put(buf, body, "token", {
                "AuthenticationId": LOGON[None], "UserAndGroupCount": 4, "TokenType": 2,
                "ImpersonationLevel": 2, "TokenFlags": 0x2000})
        found = self._images[key] = Image(bytes(buf), body, tuple(links), mask)
        return found

    def _file_name(self, buf: bytearray, body: int, address: int, cpu: int,
                   stack: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """A file object's name, in its own paged block as the I/O manager allocates it."""
        text = FILE_NAMES[(address >> 4) % len(FILE_NAMES)]
        data = text.encode("utf-16-le")
        key = tag_to_ulong(FILE_NAME_TAG)
        name = self.pool.allocate(PAGED, len(data), key, cpu, stack)
        if not name:
            return ()
        self.memory.write(name, data)
        self.fields.put(buf, body, "file_object", {
            "FileName.Length": len(data), "FileName.MaximumLength": len(data),
            "FileName.Buffer": name})
        return ((name, key),)

    def _io_object(self, buf: bytearray, mask: int, body: int, address: int, type_name: str,
                   room: int, cpu: int, stack: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """A device's extension, a driver's image and name, and the object's name (its
        characters in an `ObNm` block: a driver's `\\Driver\\Ntfs` holds both names)."""
        kind = IO_TYPES[type_name]
        base = self.fields.size(DECLARED_BODIES[type_name])
        pick = address >> 4
        if type_name == "Device":
            self.fields.put(buf, body, "device_object", {
                "Type": kind, "Size": min(max(room, base), 0xFFFF), "ReferenceCount": 1,
                "StackSize": 1 + pick % 7, "DeviceType": DEVICE_TYPES[pick % len(DEVICE_TYPES)],
                "DeviceExtension": address + body + base if room > base else 0})
            path = DEVICE_DIRECTORY + DEVICE_NAMES[pick % len(DEVICE_NAMES)]
        else:
            modules = self.machine.symbols.modules
            module = modules[pick % len(modules)]
            self.fields.put(buf, body, "driver_object", {
                "Type": kind, "Size": base, "Flags": DRIVER_FLAGS,
                "DriverStart": module.base, "DriverSize": module.size})
            path = DRIVER_DIRECTORY + module.name
        if not mask & NAME_INFO:
            return ()
        data = path.encode("utf-16-le")
        key = tag_to_ulong(OBJECT_NAME_TAG)
        name = self.pool.allocate(PAGED, len(data), key, cpu, stack)
        if not name:
            return ()
        self.memory.write(name, data)
        leaf = len(path.rsplit("\\", 1)[0]) * 2 + 2          # the name in its directory
        self.fields.put(buf, self._name_info_at(mask), "object_header_name_info", {
            "Name.Length": len(data) - leaf, "Name.MaximumLength": len(data) - leaf,
            "Name.Buffer": name + leaf, "ReferenceCount": 0})
        if type_name == "Driver":
            self.fields.put(buf, body, "driver_object", {
                "DriverName.Length": len(data), "DriverName.MaximumLength": len(data),
                "DriverName.Buffer": name})
        return ((name, key),)
