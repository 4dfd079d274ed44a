"""The loaded modules of the simulated machine: nt with the functions pool stacks pass through,
and the drivers whose allocations make up the workload.

Function RVAs put the second seed case's stack at its real addresses on x64
(`fffff80001923cc6 nt!VeAllocatePoolWithTagPriority+0x2b6`, `myfault+0x11f6` at
fffff880`042881f6`).  Third-party drivers have no symbols, so their frames print as
`module+offset`, as they do in the seeds; Windows' own drivers have public symbols, so the
population's stacks (kdsim/catalogue/) go through named functions inside each module.  A
system call enters the kernel through the arch's own entry (`nt!KiFastCallEntry` on x86,
`nt!KiSystemServiceCopyEnd` on x64): a stack written with either resolves to the machine's.
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
    # the system-call entry and the system-thread start of each arch (ARCH_ONLY)
    "KiFastCallEntry": 0x7ED40,
    "KiThreadStartup": 0x7E900,
    "KiStartSystemThread": 0x7E980,
}

# Only on one architecture: x86 enters system calls through KiFastCallEntry and starts threads
# in KiThreadStartup; x64 has KiSystemServiceCopyEnd and KiStartSystemThread instead.
ARCH_ONLY = {"KiFastCallEntry": "x86", "KiThreadStartup": "x86",
             "KiSystemServiceCopyEnd": "x64", "KiStartSystemThread": "x64"}
# the same frame on the other arch: a stack written for one arch resolves on both
SAME_FRAME = {"nt!KiSystemServiceCopyEnd+0x13": "nt!KiFastCallEntry+0x12a",
              "nt!KiStartSystemThread+0x16": "nt!KiThreadStartup+0x19"}
SAME_FRAME.update({v: k for k, v in SAME_FRAME.items()})

# The other nt routines the population's stacks pass through (kdsim/catalogue/): no real RVA is
# known for them, so they lie in this order ROUTINE_STRIDE apart from ROUTINE_BASE (every
# call site's offset stays below the stride: tests/kdsim/test_modules.py).
ROUTINE_BASE = 0x3B0000
ROUTINE_STRIDE = 0x1200
NT_ROUTINES = (
    "AlpcpAllocateCompletionList", "AlpcpAllocateHandleTable", "AlpcpAllocateMessage",
    "AlpcpCreateClientPort", "AlpcpCreateReserve", "AlpcpCreateSecurityContext",
    "AlpcpDeleteReserve", "AlpcpDestroySecurityContext", "AlpcpFreeCompletionList",
    "AlpcpFreeHandleTable", "AlpcpFreeMessage", "AlpcpSendMessage", "CcAllocateInitializeBcb",
    "CcAllocateWaitForEvent", "CcAllocateWorkQueueEntry", "CcCreateOwnerBcb",
    "CcCreateSharedCacheMap", "CcCreateVacbArray", "CcDeleteBcbs", "CcDeleteSharedCacheMap",
    "CcFreeOwnerBcb", "CcFreeWaitForEvent", "CcInitializeCacheMap", "CcInitializeVacbs",
    "CcUnmapAndPurge", "CcWorkerThread", "CmCreateKey", "CmOpenKey", "CmQueryKey",
    "CmQueryValueKey", "CmSetValueKey", "CmpAllocateDelayItem", "CmpAllocateHiveCellMap",
    "CmpAllocateHiveDirtyVector", "CmpAllocateKcbStack", "CmpAllocateNotifyBlock",
    "CmpAllocateTransactionalKeyLock", "CmpAssignSecurityDescriptor", "CmpCleanUpKcbValueCache",
    "CmpCmdHiveOpen", "CmpCreateKeyBody", "CmpDelayDerefKCBWorker", "CmpDeleteKeyObject",
    "CmpDereferenceNameControlBlockWithLock", "CmpDoCreate", "CmpFreeHiveCellMap",
    "CmpFreeHiveDirtyVector", "CmpFreeKcbStack", "CmpFreeKeyControlBlock", "CmpFreePostBlock",
    "CmpFreeSlavePost", "CmpFreeTransactionalKeyLock", "CmpGetNameControlBlock",
    "CmpGetValueDataFromCache", "CmpInitHiveFromFile", "CmpInitializeHive",
    "CmpInitializeHiveList", "CmpInsertNotifyBlock", "CmpLazyFlushWorker", "CmpLoadHiveThread",
    "CmpParseKey", "CmpQueryKeyBuffer", "CmpQueryKeyValueData", "CmpRemoveFromHiveFileList",
    "CmpRemoveSecurityCellList", "EtwRegister", "EtwpAllocGuidEntry", "EtwpAllocateLoggerContext",
    "EtwpAllocateTraceBuffer", "EtwpCreateConsumer", "EtwpCreateRegistration",
    "EtwpDeleteConsumer", "EtwpFlushBuffer", "EtwpFreeGuidEntry", "EtwpFreeLoggerContext",
    "EtwpLogKernelEvent", "EtwpLogger", "EtwpTraceIo", "ExInitializePoolDescriptor",
    "ExQueueWorkItem", "ExpAllocateDeferredFree", "ExpAllocateExclusiveWaiterEvent",
    "ExpAllocateOwnerTable", "ExpAllocateTablePagedPool", "ExpAllocateTimerResolution",
    "ExpAllocateWaitBlock", "ExpDeleteResource", "ExpFreeTablePagedPool", "ExpFreeTimerResolution",
    "ExpFreeWaitBlock", "ExpWorkerThread", "FsRtlAllocateExtraCreateParameterList",
    "FsRtlAllocateFastMutex", "FsRtlAllocateNameBuffer", "FsRtlAllocateOplock",
    "FsRtlFreeExtraCreateParameterList", "FsRtlFreeNameBuffer", "FsRtlInitializeLargeMcb",
    "FsRtlRegisterFileSystemFilterCallbacks", "FsRtlTeardownPerStreamContexts",
    "FsRtlUninitializeLargeMcb", "FsRtlUninitializeOplock",
    "FsRtlUnregisterFileSystemFilterCallbacks", "HvInitializeHive", "HvMapHive", "HvpAddBin",
    "HvpAllocateMap", "HvpAllocateViewMap", "HvpFreeBin", "HvpFreeViewMap", "HvpGetBinMemAlloc",
    "HvpMapHiveImage", "IoAllocateWorkItem", "IoCreateDevice", "IoFreeMdl", "IoFreeWorkItem",
    "IoInitSystem", "IoRegisterFileSystem", "IoRegisterShutdownNotification",
    "IoUnregisterFileSystem", "IoUnregisterShutdownNotification", "IopAllocateDriverReinitialize",
    "IopAllocateFileObjectExtension", "IopAllocateMiniCompletionPacket", "IopAllocateUserIrp",
    "IopCallDriverReinitializationRoutines", "IopCaptureUserBuffer", "IopCloseFile",
    "IopDeleteFile", "IopFreeMiniCompletionPacket", "IopInsertRemoveDevice", "IopLoadDriver",
    "IopLoadUnloadDriver", "IopParseDevice", "IopProcessWorkItem", "IopSynchronousServiceTail",
    "IopfCompleteRequest", "KeDeregisterCallback", "KeInitializeCallbackRecord",
    "KiDispatchInterrupt", "KiProcessExpiredTimerList", "KiRetireDpcList", "KiTimerExpiration",
    "LpcpAllocateFromPortZone", "LpcpFreeToPortZone", "MiAllocateVad",
    "MiAllocateVirtualMemoryPrivate", "MiAllocateWsle", "MiCheckControlArea",
    "MiCompletePrivateDemandZeroPage", "MiCreateDataFileMap", "MiCreatePageFileBuffers",
    "MiCreatePagingFileMap", "MiCreatePteTable", "MiDeletePteTable", "MiDeleteRelocations",
    "MiDereferenceSegmentThread", "MiFreePageFileBuffers", "MiFreeVad",
    "MiFreeVirtualMemoryPrivate", "MiFreeWsle", "MiInsertSubsection", "MiLoadImageSection",
    "MiMapViewOfSection", "MiModifiedPageWriter", "MiReadPageFile", "MiRelocateImagePfn",
    "MiRemoveVad", "MiSegmentDelete", "MiSplitPrivateVad", "MiUnmapViewOfSection",
    "MmAllocateContiguousMemorySpecifyCacheNode", "MmCreateSection", "NtAllocateVirtualMemory",
    "NtAlpcConnectPort", "NtAlpcSendWaitReceivePort", "NtCreateDirectoryObjectEx", "NtCreateEvent",
    "NtCreateIoCompletion", "NtCreateJobObject", "NtCreateKey", "NtCreateMutant",
    "NtCreateSection", "NtCreateSemaphore", "NtCreateSymbolicLinkObject", "NtCreateThreadEx",
    "NtCreateTimer", "NtCreateTransaction", "NtCreateUserProcess", "NtDuplicateToken",
    "NtFreeVirtualMemory", "NtMapViewOfSection", "NtOpenKeyEx", "NtQueryValueKey", "NtReadFile",
    "NtSetValueKey", "NtUnmapViewOfSection", "NtWriteFile", "ObOpenObjectByName",
    "ObfDereferenceDeviceMap", "ObpCaptureObjectCreateInformation", "ObpCaptureObjectName",
    "ObpCloseHandle", "ObpCloseHandleTableEntry", "ObpCreateHandle", "ObpDecrementHandleCount",
    "ObpDeleteDirectoryEntry", "ObpDeleteHandleDatabase", "ObpDereferenceSecurityDescriptor",
    "ObpFreeObject", "ObpFreeObjectCreateInformation", "ObpFreeObjectNameBuffer",
    "ObpInsertDirectoryEntry", "ObpInsertHandleCount", "ObpLookupObjectName",
    "ObpRemoveObjectRoutine", "ObpSetDeviceMap", "ObpWaitForMultipleObjects",
    "PfFbBufferListAllocate", "PfFbBufferListFree", "PfSnBeginAppLaunch", "PfSnBeginTrace",
    "PfSnDumpTrace", "Phase1Initialization", "Phase1InitializationDiscard", "PiDeleteDriverEntry",
    "PiInsertDriverEntry", "PipCallDriverAddDevice", "PipProcessDevNodeTree",
    "PipProcessStartPhase1", "PnpAllocateDeviceData", "PnpAllocateEnumerationEntry",
    "PnpAllocateResources", "PnpCallAddDevice", "PnpDeviceActionWorker", "PnpFreeDeviceData",
    "PnpFreeEnumerationEntry", "PnpFreeResources", "PnpGetDeviceInstanceCsConfigFlags",
    "PnpProcessTargetDeviceEvent", "PnpStartDevice", "PnpStartDeviceNode", "PoRegisterSystemState",
    "PoUnregisterSystemState", "PopAllocateIrp", "PopCompleteRequestIrp",
    "PpSetTargetDeviceRemove", "PsImpersonateClient", "PspAllocateCidTableEntry",
    "PspCaptureProcessParameters", "PspChargeProcessQuotaSpecifiedPool", "PspCreateJobObject",
    "PspDeleteThreadSecurity", "PspDereferenceQuotaBlock", "PspJobDelete", "PspProcessDelete",
    "PspSystemThreadStartup", "PspThreadDelete", "PspUserThreadStartup", "SeCaptureAcl",
    "SeCaptureLuidAndAttributesArray", "SeCaptureUnicodeString", "SeDeleteAccessState",
    "SeInitializeProcessAuditName", "SeReleaseAcl", "SeReleaseLuidAndAttributesArray",
    "SeReleaseSecurityDescriptor", "SeReleaseUnicodeString", "SepAllocateTokenAttributes",
    "SepCreateAccessStateFromSubjectContext", "SepDeleteAccessState", "SepDuplicateToken",
    "SepFreeTokenAttributes", "SepTokenDeleteMethod", "TmpAllocateLogEntry", "TmpAllocateSnapshot",
    "TmpCreateTransaction", "TmpFreeLogEntry", "TmpFreeSnapshot", "WmipAllocEntry",
    "WmipAllocTraceBuffer", "WmipDeregisterDevice", "WmipFreeEntry", "WmipRegisterDevice",
)
NT_FUNCTIONS.update({name: ROUTINE_BASE + i * ROUTINE_STRIDE for i, name in enumerate(NT_ROUTINES)})

# (module name, image, offset from the arch's driver base, size); hal's offset is None:
# winload maps hal.dll just below the kernel image (a Win7 SP1 x64 `lmv`: hal
# fffff800`01608000 fffff800`01651000, nt from fffff800`01651000; x86 the same way)
DRIVERS: tuple[tuple[str, str, int | None, int], ...] = (
    ("hal", "hal.dll", None, 0x49000),
    ("CI", "CI.dll", 0x0, 0xC0000),
    ("Ntfs", "Ntfs.sys", 0x200000, 0x1A3000),
    ("fltmgr", "fltmgr.sys", 0x400000, 0x4C000),
    ("ndis", "ndis.sys", 0x600000, 0xF3000),
    ("tcpip", "tcpip.sys", 0x800000, 0x200000),
    ("afd", "afd.sys", 0xA00000, 0x88000),
    ("netbt", "netbt.sys", 0xB00000, 0x45000),
    ("rdbss", "rdbss.sys", 0xC00000, 0x7B000),
    ("CLFS", "CLFS.SYS", 0xD00000, 0x4F000),
    ("ACPI", "ACPI.sys", 0xD80000, 0x57000),
    ("pci", "pci.sys", 0xE00000, 0x33000),
    ("fileinfo", "fileinfo.sys", 0xE80000, 0x14000),
    ("luafv", "luafv.sys", 0xF00000, 0x22000),
    ("npfs", "npfs.sys", 0xF80000, 0x11000),
    ("msfs", "msfs.sys", 0x1000000, 0xB000),
    ("mup", "mup.sys", 0x1080000, 0x12000),
    ("mrxsmb", "mrxsmb.sys", 0x1100000, 0x25000),
    ("mrxsmb20", "mrxsmb20.sys", 0x1180000, 0x27000),
    ("volmgr", "volmgr.sys", 0x1200000, 0x15000),
    ("volsnap", "volsnap.sys", 0x1280000, 0x4C000),
    ("partmgr", "partmgr.sys", 0x1300000, 0x15000),
    ("mountmgr", "mountmgr.sys", 0x1380000, 0x1A000),
    ("disk", "disk.sys", 0x1400000, 0x16000),
    ("CLASSPNP", "CLASSPNP.SYS", 0x1480000, 0x30000),
    ("storport", "storport.sys", 0x1500000, 0x51000),
    ("ataport", "ataport.SYS", 0x1580000, 0x55000),
    ("rdyboost", "rdyboost.sys", 0x1600000, 0x3A000),
    ("fvevol", "fvevol.sys", 0x1680000, 0x3A000),
    ("ksecdd", "ksecdd.sys", 0x1700000, 0x1A000),
    ("cng", "cng.sys", 0x1780000, 0x73000),
    ("pcw", "pcw.sys", 0x1800000, 0x11000),
    ("Wdf01000", "Wdf01000.sys", 0x1880000, 0x79000),
    ("WDFLDR", "WDFLDR.SYS", 0x1900000, 0x10000),
    ("peauth", "peauth.sys", 0x1980000, 0x7F000),
    ("spsys", "spsys.sys", 0x1A00000, 0x71000),
    ("watchdog", "watchdog.sys", 0x1A80000, 0x10000),
    ("dxgkrnl", "dxgkrnl.sys", 0x1B00000, 0x80000),
    ("dxgmms1", "dxgmms1.sys", 0x1B80000, 0x46000),
    ("VIDEOPRT", "VIDEOPRT.SYS", 0x1C00000, 0x26000),
    ("NETIO", "NETIO.SYS", 0x1C80000, 0x60000),
    ("nsiproxy", "nsiproxy.sys", 0x1D00000, 0xD000),
    ("tdx", "tdx.sys", 0x1D80000, 0x22000),
    ("pacer", "pacer.sys", 0x1E00000, 0x26000),
    ("wanarp", "wanarp.sys", 0x1E80000, 0x1B000),
    ("tunnel", "tunnel.sys", 0x1F00000, 0x26000),
    ("mpsdrv", "mpsdrv.sys", 0x1F80000, 0x18000),
    ("HTTP", "HTTP.sys", 0x2000000, 0x80000),
    ("srvnet", "srvnet.sys", 0x2080000, 0x32000),
    ("srv2", "srv2.sys", 0x2100000, 0x69000),
    ("USBPORT", "USBPORT.SYS", 0x2180000, 0x56000),
    ("usbhub", "usbhub.sys", 0x2200000, 0x5A000),
    ("HIDCLASS", "HIDCLASS.SYS", 0x2280000, 0x19000),
    ("i8042prt", "i8042prt.sys", 0x2300000, 0x1E000),
    ("kbdclass", "kbdclass.sys", 0x2380000, 0x11000),
    ("mouclass", "mouclass.sys", 0x2400000, 0xF000),
    ("HDAudBus", "HDAudBus.sys", 0x2480000, 0x24000),
)


# The public symbols of Windows' own drivers that the population's stacks name: laid out in
# this order DRIVER_STRIDE apart from DRIVER_STRIDE into the image (no real RVA is known).
DRIVER_STRIDE = 0x1000
DRIVER_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "CLFS": (
        "CClfsBaseFile::AcquireMetadataBlock", "CClfsBaseFilePersisted::AllocSymbol",
        "CClfsBaseFilePersisted::FreeSymbol", "CClfsContainer::Close", "CClfsContainer::Create",
    ),
    "hal": (
        "HalpAcpiAllocateInterruptVector", "HalpAcpiFreeInterruptVector",
        "HalpAllocateAdapterCallback", "HalpDmaAllocateMapRegisters", "HalpFreeMapRegisters",
    ),
    "ACPI": (
        "ACPIAllocateDeviceExtension", "ACPIBuildDeviceExtension", "ACPIBuildDeviceObjectList",
        "ACPIBuildPnpResources", "ACPIBuildProcessRequestList", "ACPIBuildRequest",
        "ACPIFreeDeviceExtension", "ACPIFreeDeviceObjectList", "ACPIInternalGetDeviceCapabilities",
        "AMLIAllocCtxtBlk", "AMLIInitHeap",
    ),
    "pci": (
        "PciAllocateBusData", "PciFreeBusData", "PciQueryInterface",
    ),
    "CI": (
        "CipAllocateHashEntry", "CipAllocateScratchBuffer", "CipCreateCertificateRecord",
        "CipFreeCertificateRecord", "CipFreeHashEntry", "CipFreeScratchBuffer",
    ),
    "Ntfs": (
        "NtfsAllocateBitmapBuffer", "NtfsAllocateClusters", "NtfsAllocateCompressionSync",
        "NtfsAllocateDeallocatedRecords", "NtfsAllocateEaBuffer", "NtfsAllocateEresource",
        "NtfsAllocateFcbTableEntry", "NtfsAllocateLockControl", "NtfsAllocateLogRecord",
        "NtfsAllocateMcbEntry", "NtfsAllocateRestartTable", "NtfsAllocateSnapshot",
        "NtfsAllocateStructure", "NtfsAllocateWorkItem", "NtfsCleanupIndexContext",
        "NtfsCommonCreate", "NtfsCommonQueryInformation", "NtfsCommonRead", "NtfsCreateCcb",
        "NtfsCreateFcb", "NtfsCreateFileRecordCache", "NtfsCreateIndexContext", "NtfsCreateScb",
        "NtfsCreateUsnRecord", "NtfsDeallocateClusters", "NtfsDeallocateRecord", "NtfsDeleteCcb",
        "NtfsDeleteFcb", "NtfsDeleteScb", "NtfsFreeBitmapBuffer", "NtfsFreeCompressionSync",
        "NtfsFreeEaBuffer", "NtfsFreeEresource", "NtfsFreeFcbTableEntry",
        "NtfsFreeFileRecordCache", "NtfsFreeLockControl", "NtfsFreeLogRecord", "NtfsFreeMcbEntry",
        "NtfsFreeRestartTable", "NtfsFreeSnapshot", "NtfsFreeStructure", "NtfsFreeUsnRecord",
        "NtfsFsdCreate", "NtfsFsdRead", "NtfsFspDispatch", "NtfsInitializeVcb",
    ),
    "fltmgr": (
        "FltpAllocateCallbackData", "FltpAllocateContextRegistration",
        "FltpAllocateDeferredIoWorkItem", "FltpAllocateFileNameInformation",
        "FltpAllocateFileObjectContext", "FltpAllocateNameChunk", "FltpAllocatePortContext",
        "FltpAllocateStreamListCtrl", "FltpAllocateTargetedCallbackData", "FltpCreate",
        "FltpCreateFilter", "FltpCreateInstance", "FltpCreateNameCacheNode", "FltpCreateVolume",
        "FltpDispatch", "FltpFreeCallbackData", "FltpFreeContextRegistration",
        "FltpFreeDeferredIoWorkItem", "FltpFreeFileNameInformation", "FltpFreeFileObjectContext",
        "FltpFreeInstance", "FltpFreeNameCacheNode", "FltpFreeNameChunk", "FltpFreePortContext",
        "FltpFreeStreamListCtrl", "FltpFreeTargetedCallbackData",
        "FltpLegacyProcessingAfterPreCallbacksCompleted",
    ),
    "fileinfo": (
        "FIAllocatePrefetchContext", "FIAllocateStreamContext", "FIAllocateVolumeProperties",
        "FIFreePrefetchContext", "FIFreeStreamContext",
    ),
    "luafv": (
        "LuafvAllocateStreamContext", "LuafvAllocateVolumeContext", "LuafvFreeStreamContext",
        "LuafvFreeVolumeContext",
    ),
    "npfs": (
        "NpAddDataQueueEntry", "NpAllocateReadEntry", "NpCompleteDataQueueEntry", "NpCreateCcb",
        "NpCreateClientInfo", "NpCreateFcb", "NpDeleteCcb", "NpDeleteClientInfo", "NpDeleteFcb",
        "NpInitializeSecurity", "NpRemoveDataQueueEntry", "NpUninitializeSecurity",
    ),
    "msfs": (
        "MsAddDataQueueEntry", "MsCreateFcb", "MsDeleteFcb", "MsRemoveDataQueueEntry",
    ),
    "mup": (
        "MupCreateCallContext", "MupCreateFcb", "MupDeleteFcb", "MupFreeCallContext",
    ),
    "rdbss": (
        "RxAllocateFcbObject", "RxAllocateIrpContext", "RxCreateNetRoot", "RxCreateRxContext",
        "RxCreateSrvCall", "RxDereferenceAndDeleteRxContext_Real", "RxFinalizeNetRoot",
        "RxFinalizeSrvCall", "RxFreeFcbObject", "RxFreeIrpContext",
    ),
    "mrxsmb": (
        "SmbCeAllocateExchange", "SmbCeCreateServerEntry", "SmbCeDeleteServerEntry",
        "SmbCeDiscardExchange",
    ),
    "mrxsmb20": (
        "Smb2AllocateExchange", "Smb2FreeExchange",
    ),
    "volmgr": (
        "VmReadWrite", "VmpCreateVolume", "VmpDeleteVolume", "VmpReadWriteCompletionRoutine",
    ),
    "volsnap": (
        "VspAllocateContext", "VspAllocateDiffAreaFile", "VspAllocateTableEntry", "VspFreeContext",
        "VspFreeDiffAreaFile", "VspFreeTableEntry",
    ),
    "partmgr": (
        "PmAllocatePartitionContext", "PmFreePartitionContext", "PmIoCompletion", "PmReadWrite",
    ),
    "mountmgr": (
        "MountMgrAllocateMountedDeviceInfo", "MountMgrFreeMountedDeviceInfo",
        "MountMgrQuerySymbolicLink",
    ),
    "disk": (
        "DiskAllocateGeometry", "DiskFreeGeometry",
    ),
    "CLASSPNP": (
        "ClassAllocateIrpContext", "ClassAllocateTransferPacket", "ClassDestroyTransferPacket",
        "ClassFreeIrpContext", "ClasspBuildRequestEx", "ClasspTransferPacketCompletion",
    ),
    "storport": (
        "RaidAdapterAllocateDmaMemory", "RaidAllocateSrbData", "RaidFreeSrbData",
        "RaidUnitAllocateResources", "RaidUnitFreeResources",
    ),
    "ataport": (
        "AtaPortAllocateCommonBuffer", "IdePortAllocateRequest", "IdePortFreeRequest",
    ),
    "rdyboost": (
        "SmdAllocateStoreBuffer", "SmdCreateStoreEntry", "SmdDeleteStoreEntry",
        "SmdFreeStoreBuffer",
    ),
    "fvevol": (
        "FveAllocateDatasetBuffer", "FveAllocateIoContext", "FveFreeDatasetBuffer",
        "FveFreeIoContext",
    ),
    "ksecdd": (
        "KsecAllocatePackageContext", "KsecFreePackageContext", "SecpAllocateBuffer",
        "SecpFreeBuffer",
    ),
    "cng": (
        "BCryptAllocateBuffer", "BCryptFreeBuffer", "CngCreateKeyObject", "CngDestroyKeyObject",
    ),
    "pcw": (
        "PcwpAllocateCounterSet", "PcwpCreateInstance", "PcwpDeleteInstance", "PcwpFreeCounterSet",
    ),
    "Wdf01000": (
        "FxPoolAllocator", "FxPoolFree",
    ),
    "WDFLDR": (
        "WdfLdrAllocateLibrary", "WdfLdrFreeLibrary",
    ),
    "peauth": (
        "PeAllocateContext", "PeFreeContext",
    ),
    "spsys": (
        "SpAllocateRequestBuffer", "SpFreeRequestBuffer",
    ),
    "watchdog": (
        "WdAllocateWatchdog", "WdFreeWatchdog",
    ),
    "dxgkrnl": (
        "DXGADAPTER::CreateAllocation", "DXGADAPTER::DestroyAllocation", "DxgkAllocatePagedPool",
        "DxgkFreePagedPool",
    ),
    "dxgmms1": (
        "VidMmAllocateAllocation", "VidMmFreeAllocation", "VidSchiAllocateQueuePacket",
        "VidSchiFreeQueuePacket",
    ),
    "VIDEOPRT": (
        "VideoPortFreePool", "pVideoPortAllocatePool",
    ),
    "ndis": (
        "NdisAllocateNetBufferList", "NdisFreeNetBufferList", "NdisMIndicateReceiveNetBufferLists",
        "NdisMSendNetBufferListsComplete", "ndisAllocateDmaBlock", "ndisAllocateFromNPagedPool",
        "ndisAllocateOpenBlock", "ndisAllocatePacketPool", "ndisAllocateRequest",
        "ndisAllocateSharedMemory", "ndisAllocateWorkItem", "ndisCreateFilterBlock",
        "ndisCreateOidEntry", "ndisFreeDmaBlock", "ndisFreeFilterBlock", "ndisFreeOidEntry",
        "ndisFreeOpenBlock", "ndisFreePacketPool", "ndisFreeRequest", "ndisFreeSharedMemory",
        "ndisFreeToNPagedPool", "ndisFreeWorkItem", "ndisInitializeMiniportBlock",
        "ndisMDispatchReceiveNetBufferLists", "ndisMIndicateNetBufferListsToOpen",
        "ndisMSendCompleteNetBufferListsInternal",
    ),
    "tcpip": (
        "IpFlcReceivePackets", "IppAllocateGenericBuffer", "IppCreateAddress",
        "IppCreateInterface", "IppCreateNeighbor", "IppCreatePath", "IppCreateReassembly",
        "IppCreateRoute", "IppDeleteAddress", "IppDeleteInterface", "IppDeleteNeighbor",
        "IppDeletePath", "IppDeleteReassembly", "IppDeleteRoute", "IppDeliverListToProtocol",
        "IppFreeGenericBuffer", "RawCloseEndpoint", "RawCreateEndpoint",
        "TcpAllocateReceiveRequest", "TcpAllocateRequestContext", "TcpAllocateSendRequest",
        "TcpCleanupTimerWheel", "TcpCloseListener", "TcpCloseTcb", "TcpCreateAndConnectTcb",
        "TcpCreateConnection", "TcpCreateListener", "TcpCreateTimeWaitTcb", "TcpDeleteConnection",
        "TcpDeleteTimeWaitTcb", "TcpFreeReceiveRequest", "TcpFreeRequestContext",
        "TcpFreeSendRequest", "TcpInitializeTimerWheel", "UdpCloseEndpoint", "UdpCreateEndpoint",
        "UdpEndSendMessages", "UdpSendMessages",
    ),
    "NETIO": (
        "KfdAllocateFilter", "KfdFreeFilter", "NetioAllocateAndReferenceNetBufferList",
        "NetioAllocateMdl", "NetioDereferenceNetBufferListChain", "NetioFreeMdl",
        "NsiAllocateTransaction", "NsiFreeTransaction", "WfpAllocateClassifyContext",
        "WfpAllocateEndpointContext", "WfpFreeClassifyContext", "WfpFreeEndpointContext",
    ),
    "nsiproxy": (
        "NsippAllocateBuffer", "NsippFreeBuffer",
    ),
    "afd": (
        "AfdAllocateAddress", "AfdAllocateBuffer", "AfdAllocateConnection", "AfdAllocateEndpoint",
        "AfdAllocatePollInfo", "AfdAllocateRequestContext", "AfdAllocateSendContext",
        "AfdCompleteSend", "AfdDispatchDeviceControl", "AfdFastDatagramSend",
        "AfdFastIoDeviceControl", "AfdFreeAddress", "AfdFreeConnection", "AfdFreeEndpoint",
        "AfdFreePollInfo", "AfdFreeRequestContext", "AfdReturnBuffer", "AfdTLFastDgramSend",
    ),
    "tdx": (
        "TdxCreateAddressObject", "TdxCreateConnectionObject", "TdxDeleteAddressObject",
        "TdxDeleteConnectionObject",
    ),
    "netbt": (
        "NbtAllocateConnection", "NbtAllocateNameEntry", "NbtFreeConnection", "NbtFreeNameEntry",
        "NbtReadRegistryString",
    ),
    "pacer": (
        "PcAllocateSendContext", "PcCreateFlow", "PcDeleteFlow",
        "PcFilterSendNetBufferListsComplete",
    ),
    "wanarp": (
        "WanpCreateAdapter",
    ),
    "tunnel": (
        "TunnelCreateInterface", "TunnelDeleteInterface",
    ),
    "mpsdrv": (
        "MpsAllocateFlowContext", "MpsFreeFlowContext",
    ),
    "HTTP": (
        "UlAllocateHashTable", "UlAllocateInternalRequest", "UlFreeHashTable",
        "UlFreeInternalRequest",
    ),
    "srvnet": (
        "SrvNetAllocateBuffer", "SrvNetAllocateConnection", "SrvNetFreeBuffer",
        "SrvNetFreeConnection",
    ),
    "srv2": (
        "Srv2AllocateRfsTable", "Srv2AllocateWorkItem", "Srv2FreeWorkItem",
    ),
    "USBPORT": (
        "USBPORT_AllocPool", "USBPORT_AllocateUrb", "USBPORT_CloseEndpoint", "USBPORT_FreePool",
        "USBPORT_FreeUrb", "USBPORT_OpenEndpoint",
    ),
    "usbhub": (
        "UsbhAllocatePool_Z", "UsbhFreePool",
    ),
    "HIDCLASS": (
        "HidpAllocateReport", "HidpCreateDeviceExtension", "HidpFreeDeviceExtension",
        "HidpFreeReport",
    ),
    "i8042prt": (
        "I8xInitializeDataQueue",
    ),
    "kbdclass": (
        "KeyboardClassAllocateQueue", "KeyboardClassFreeQueue",
    ),
    "mouclass": (
        "MouseClassAllocateQueue", "MouseClassFreeQueue",
    ),
    "HDAudBus": (
        "HdaController::AllocateDmaBuffer", "HdaController::AllocateStream",
        "HdaController::FreeStream",
    ),
}

# drivers a lab file declares load after the built-in ones, one slot each
LAB_DRIVER_OFFSET = 0x3600000
LAB_DRIVER_SLOT = 0x10000               # also the largest image a lab may declare
MAX_LAB_DRIVERS = 64


@dataclass(frozen=True)
class ModuleSpec:
    """A module a lab adds to the machine (or, when it names a loaded module, the symbols it
    adds to that one): name, image, size, (symbol, RVA) pairs, and where it loads (offset from
    the arch's driver base; None: the lab's next driver slot)."""

    name: str
    image: str
    size: int
    symbols: tuple[tuple[str, int], ...] = ()
    offset: int | None = None


# The seed cases' third-party drivers: loaded only on the machines of the labs that use them
# (`seed_modules`), at the addresses the seeds show (myfault at fffff880`04287000 on x64).
SEED_DRIVERS: dict[str, ModuleSpec] = {spec.name: spec for spec in (
    ModuleSpec("myfault", "myfault.sys", 0x7000, offset=0x3487000),
    ModuleSpec("DrvA", "DrvA.sys", 0x6000, offset=0x3500000),
    ModuleSpec("DrvB", "DrvB.sys", 0x6000, offset=0x3510000),
    ModuleSpec("DrvC", "DrvC.sys", 0x6000, offset=0x3520000),
    ModuleSpec("cmdrv", "cmdrv.sys", 0x8000, offset=0x3530000),
)}


def seed_modules(*names: str) -> tuple[ModuleSpec, ...]:
    """The seed drivers `names`, as a scenario's `modules` option."""
    return tuple(SEED_DRIVERS[name] for name in names)


def load_modules(arch: Arch, extra: tuple[ModuleSpec, ...] = ()) -> tuple[SymbolTable, Module]:
    """The symbol table of a freshly booted machine, and its nt module; `extra` are a lab's
    drivers, loaded in order after the built-in ones (a seed driver at its own address)."""
    table = SymbolTable()
    nt = table.add_module("nt", "ntoskrnl.exe", arch.nt_base, NT_SIZE)
    nt.add_all((name, arch.nt_base + rva) for name, rva in NT_FUNCTIONS.items()
               if ARCH_ONLY.get(name, arch.name) == arch.name)
    for name, image, off, size in DRIVERS:
        base = arch.nt_base - size if off is None else arch.driver_base + off
        driver = table.add_module(name, image, base & arch.ptr_mask, size)
        driver.add_all((symbol, driver.base + (i + 1) * DRIVER_STRIDE)
                       for i, symbol in enumerate(DRIVER_FUNCTIONS.get(name, ())))
    for slot, spec in enumerate(extra):
        module = table.module(spec.name)
        if module is None:
            offset = spec.offset
            if offset is None:
                offset = LAB_DRIVER_OFFSET + slot * LAB_DRIVER_SLOT
            base = arch.driver_base + offset
            module = table.add_module(spec.name, spec.image, base & arch.ptr_mask, spec.size)
        for symbol, rva in spec.symbols:
            if symbol not in module.symbols:
                module.add(symbol, module.base + rva)
    return table, nt


def frames(table: SymbolTable, spec: tuple[str, ...]) -> tuple[int, ...]:
    """Return addresses for frames written as 'nt!IopXxxControlFile+0x607' or 'myfault+0x11f6'
    (a frame of the other arch's system-call entry or thread start: this machine's)."""
    out = []
    for frame in spec:
        name, _, off = frame.partition("+")
        base = table.resolve(name)
        if base is None and frame in SAME_FRAME:
            name, _, off = SAME_FRAME[frame].partition("+")
            base = table.resolve(name)
        if base is None:
            raise KeyError(f"unknown frame symbol {name}")
        out.append(base + (int(off, 16) if off else 0))
    return tuple(out)
