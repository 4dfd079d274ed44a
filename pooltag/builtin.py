"""The tags the simulated kernel and its drivers use, described as the debugger describes them.

This is our own curated list, not a copy of Microsoft's pooltag.txt: it names only the tags the
simulator allocates with (plus a few wildcard families, so `CM31` and `Gh05` resolve the way
they do with the real file), in the real file's wording. Where the seeds were captured with an
older file, the seed's wording wins (`LSwi` prints "initial work context" with no binary).

Tags absent on purpose, because the classic cases teach "update pooltag.txt" with them:
`Leak`, `abcd`, `Hack`, `DrvA`, `BBBB`, `CcCc`, `MFE0`, and `IoCo` (the Windows 7 era file had
no entry for it: the IoCompletionReserve spray transcript prints "Owning component : Unknown").
A user who points the debugger at a real pooltag.txt gets that file's wording first.
"""
from __future__ import annotations

from .parser import PoolTagEntry

_E = PoolTagEntry

BUILTIN: tuple[PoolTagEntry, ...] = (
    # Object manager types
    _E("ALPC", "nt!alpc", "ALPC port objects"),
    _E("AlSe", "nt!alpc", "ALPC client security"),
    _E("Devi", "nt!io", "Kernel device objects (nt!DEVICE_OBJECT)"),
    _E("Dire", None, "Directory objects"),
    _E("Driv", "nt!io", "Kernel driver objects (nt!DRIVER_OBJECT)"),
    _E("Even", None, "Event objects"),
    _E("File", None, "File objects"),
    _E("Key ", None, "Key objects"),
    _E("Port", None, "Port objects"),
    _E("Proc", "nt!ps", "Process objects"),
    _E("Sect", None, "Section objects"),
    _E("Sema", None, "Semaphore objects"),
    _E("Symt", None, "Symbolic link target strings"),
    _E("Thre", "nt!ps", "Thread objects"),
    _E("Toke", "nt!se", "Token objects"),
    _E("Type", None, "Type objects"),
    _E("Wait", "nt!io", "WaitCompletion Packets"),
    _E("ObDi", "nt!ob", "object directory"),
    _E("ObDm", "nt!ob", "object device map"),
    _E("ObjT", "nt!ob", "object type objects"),
    _E("ObNm", "nt!ob", "object names"),
    _E("ObSq", "nt!ob", "object security descriptors (query)"),
    _E("ObSt", "nt!ob", "Object Manager temporary storage"),
    _E("Obtb", "nt!ob", "object tables via EX handle.c"),
    # Pool manager itself
    _E("BIG ", "nt!mm", "Large session pool allocations (ntos\\ex\\pool.c)"),
    _E("Ovfl", None, "The internal pool tag table has overflowed - usually this is a result of "
                     "nontagged allocations being made"),
    _E("Pool", None, "Pool tables, etc."),
    _E("PooL", None, "Phase 0 initialization of the executive component, paged and nonpaged "
                     "small pool lookaside structures"),
    # Memory manager
    _E("Cont", None, "Contiguous physical memory allocations for device drivers"),
    _E("Mm  ", "nt!mm", "general Mm Allocations"),
    _E("MmCa", "nt!mm", "Mm control areas for mapped files"),
    _E("MmCi", "nt!mm", "Mm control areas for images"),
    _E("MmCm", "nt!mm", "Calls made to MmAllocateContiguousMemory"),
    _E("MmDT", "nt!mm", "Mm debug"),
    _E("MmRe", "nt!mm", "ASLR relocation blocks"),
    _E("MmSd", "nt!mm", "extended subsections used to map data files"),
    _E("MmSm", "nt!mm", "segments used to map data files"),
    _E("MmSt", "nt!mm", "Mm section object prototype ptes"),
    _E("Vad ", "nt!mm", "Mm virtual address descriptors"),
    # Driver Verifier
    _E("Vepp", "nt!Vf", "Verifier Pool Tracking information"),
    _E("VfPT", "nt!Vf", "Verifier Allocate/Free Pool stack traces"),
    _E("ViIn", "nt!Vf", "Verifier Internal Tag for pool tracking"),
    _E("VadF", "nt!mm", "VADs created by a FreeVM splitting"),
    _E("Vadl", "nt!mm", "Mm virtual address descriptors (long)"),
    _E("VadS", "nt!mm", "Mm virtual address descriptors (short)"),
    # I/O manager
    _E("Io  ", "nt!io", "general IO allocations"),
    _E("IoEa", "nt!io", "Io extended attributes"),
    _E("IoNm", "nt!io", "Io parsing names"),
    _E("IoOp", "nt!io", "I/O subsystem open packet"),
    _E("IoWI", "nt!io", "Io work items"),
    _E("Irp ", None, "Io, IRP packets"),
    _E("Mdl ", None, "Io, Mdls"),
    _E("MdlP", None, "MDL per processor lookaside list pointers"),
    _E("Pp  ", "nt!io", "PNPMGR NtPlugPlayControl"),
    # Configuration manager
    _E("CM??", "nt!cm", "Internal Configuration manager allocations"),
    _E("CMDa", "nt!cm", "value data cache pool tag"),
    _E("CMNb", "nt!cm", "Configuration Manager Name Tag"),
    _E("CMVa", "nt!cm", "value cache value tag"),
    _E("Rqrv", None, "Registry query buffer"),
    # Security, processes, executive resources
    _E("Se  ", "nt!se", "General security allocations"),
    _E("SeAc", "nt!se", "Security ACL"),
    _E("SeLu", "nt!se", "Security LUID and Attributes array"),
    _E("SePa", "nt!se", "Process audit image names and captured policy structures"),
    _E("SeSc", "nt!se", "Captured Security Descriptor"),
    _E("SeSd", "nt!se", "Security Descriptor"),
    _E("SeTd", "nt!se", "Security Token dynamic part"),
    _E("SeUs", "nt!se", "Security Captured Unicode string"),
    _E("PsIm", "nt!ps", "Thread impersonation (PS_IMPERSONATE_INFORMATION, pre-Vista)"),
    _E("ReEv", None, "Resource Event"),
    _E("ReTa", None, "Resource Extended Table"),
    # Cache manager, FsRtl, ETW
    _E("CcPc", "nt!cc", "Cache Manager Private Cache Map"),
    _E("CcSc", "nt!cc", "Cache Manager Shared Cache Map"),
    _E("CcWk", "nt!cc", "Kernel Cache Manager lookaside list"),
    _E("FSfm", "nt!fsrtl", "File System Run Time Fast Mutex Lookaside List"),
    _E("FSim", "nt!fsrtl", "File System Run Time Mcb allocations"),
    _E("FSro", "nt!fsrtl", "File System Run Time"),
    _E("EtwB", "nt!etw", "Etw Buffer"),
    _E("EtwG", "nt!etw", "Etw Guid"),
    _E("EtwR", "nt!etw", "Etw KM RegEntry"),
    # HAL, Code Integrity, CLFS
    _E("Hal ", "hal.dll", "Hardware Abstraction Layer"),
    _E("HalD", "hal.dll", "Hardware Abstraction Layer: DMA"),
    _E("CIcr", "ci.dll", "Code Integrity allocations for image integrity checking"),
    _E("Clfs", "clfs.sys", "CLFS General buffer, or owner page lookaside list"),
    # NTFS
    _E("Nt??", "ntfs.sys", "Unrecognized NTFS tag (update base\\published\\pooltag.w)"),
    _E("NtFa", "ntfs.sys", "AllocSup.c"),
    _E("NtFC", "ntfs.sys", "Create.c"),
    _E("NtFl", "ntfs.sys", "Clog.c"),
    _E("NtFs", "ntfs.sys", "StrucSup.c"),
    _E("Ntf0", "ntfs.sys", "General pool allocation"),
    _E("Ntff", "ntfs.sys", "FCB_DATA"),
    _E("Ntfn", "ntfs.sys", "SCB_NONPAGED                      NtfsScbNonpagedLookasideList"),
    _E("Ntfr", "ntfs.sys", "ERESOURCE"),
    _E("Ntfs", "ntfs.sys", "SCB_DATA"),
    _E("NtxF", "ntfs.sys", "FCB_NONPAGED                      NtfsFcbNonpagedDataLookasideList"),
    # Filter manager, FileInfo, named pipes
    _E("FM??", "fltmgr.sys", "Unrecognized FltMgr tag (update pooltag.w)"),
    _E("FMfc", "fltmgr.sys", "FLTMGR_FILE_OBJECT_CONTEXT structure"),
    _E("FMfn", "fltmgr.sys", "NAME_CACHE_NODE structure"),
    _E("FMis", "fltmgr.sys", "FLT_INSTANCE structure"),
    _E("FMsl", "fltmgr.sys", "STREAM_LIST_CTRL structure"),
    _E("FIcs", "fileinfo.sys", "FileInfo FS-filter Stream Context"),
    _E("NpFn", "npfs.sys", "Name block"),
    _E("NpFr", "npfs.sys", "DATA_ENTRY records (read/write buffers)"),
    _E("NpFs", "npfs.sys", "Client security context"),
    # Networking
    _E("Afd?", "afd.sys", "AFD objects"),
    _E("AfdC", "afd.sys", "Afd connection structure"),
    _E("AfdE", "afd.sys", "Afd endpoint structure"),
    _E("Ipng", "tcpip.sys", "IP Generic buffers (Address, Interface, Packetize, Route allocations)"),
    _E("TcpE", "tcpip.sys", "TCP Endpoints"),
    _E("Nb??", None, "NetBT allocations"),
    _E("Nb29", "netbt.sys", "NetBT registry string"),
    _E("NbtD", "netbt.sys", "NetBT connection"),
    _E("NDdb", "ndis.sys", "DMA block"),
    _E("NDpp", "ndis.sys", "packet pool"),
    _E("NSIk", "nsi.dll", "NSI RPC Tansactions"),
    _E("Wfp?", "netio.sys", "Windows Filtering Platform Tags"),
    _E("WfpE", "netio.sys", "WFP extension"),
    # SMB server (the seed's older wording for LSwi)
    _E("LS??", None, "LM server allocations"),
    _E("LSbf", "srvnet.sys", "SMB1 buffer descriptor or srvnet allocation"),
    _E("LSfR", "srv2.sys", "SMB2 rfssequence table and rfs64table"),
    _E("LSwi", None, "initial work context"),
    # ACPI, storage
    _E("AcpF", "acpi.sys", "ACPI interface data"),
    _E("AcpM", "acpi.sys", "ACPI miscellaneous data"),
    _E("Aml*", None, "ACPI AMLI Pooltags"),
    _E("Sc??", None, "Mass storage driver tags"),
    _E("ScPD", None, "SRB_DATA allocations"),
    # win32k (session pool)
    _E("G???", None, "Gdi Objects"),
    _E("Gh?5", "win32k.sys", "GDITAG_HMGR_SURF_TYPE"),
    _E("Gla5", "win32k.sys", "GDITAG_HMGR_LOOKASIDE_SURF_TYPE"),
    _E("Usac", "win32k!_CreateAcceleratorTable", "USERTAG_ACCEL"),
    _E("Usti", "win32k!AllocateW32Thread", "USERTAG_THREADINFO"),
)
