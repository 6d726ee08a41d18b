"""The .NET objects the cmdlets emit, as psrpcore PSObject types, and builders from the Hyper-V model's records.

Type names, property names, property .NET types and enum values follow the Hyper-V PowerShell module
(Microsoft.HyperV.PowerShell.*, Microsoft.Vhd.PowerShell.*). The types are not registered for rehydration, so a
psrpcore client sees them as ``Deserialized.<type>`` as it would from Windows. Only a useful subset of the
properties of each type is modelled.
"""

from __future__ import annotations

import datetime
import uuid

from psrpcore.types import (
    PSAliasProperty,
    PSEnumBase,
    PSInt64,
    PSNoteProperty,
    PSObject,
    PSPropertyInfo,
    PSType,
    PSUInt64,
)

from polyvisor_hyperv_loopback.hyperv import (
    SECURE_BOOT_TEMPLATES,
    DvdDriveRecord,
    HardDiskRecord,
    HyperVHost,
    NetworkAdapterRecord,
    SnapshotRecord,
    SwitchRecord,
    VMRecord,
)
from polyvisor_hyperv_loopback.hyperv.filesystem import FileEntry
from polyvisor_hyperv_loopback.hyperv.records import MiB

__all__ = [
    "CheckpointType",
    "ControllerType",
    "HardDiskDrive",
    "OnOffState",
    "SnapshotType",
    "StartAction",
    "StopAction",
    "VMDvdDrive",
    "VMFirmware",
    "VMHost",
    "VMMemory",
    "VMNetworkAdapter",
    "VMSnapshot",
    "VMState",
    "VMSwitch",
    "VMSwitchType",
    "VhdFormat",
    "VhdType",
    "VirtualHardDisk",
    "VirtualMachine",
    "dvd_object",
    "firmware_object",
    "hard_disk_object",
    "host_object",
    "memory_object",
    "network_adapter_object",
    "snapshot_object",
    "switch_object",
    "vhd_object",
    "vm_object",
]

NS = "Microsoft.HyperV.PowerShell"


def _notes(*names: str) -> list[PSPropertyInfo]:
    return [PSNoteProperty(name) for name in names]


# ----- enums -----


@PSType([f"{NS}.VMState"], rehydrate=False)
class VMState(PSEnumBase):
    """Microsoft.HyperV.PowerShell.VMState."""

    Other = 1
    Running = 2
    Off = 3
    Stopping = 4
    Saved = 6
    Paused = 9
    Starting = 10
    Reset = 11
    Saving = 32773
    Pausing = 32776
    Resuming = 32777
    FastSaved = 32779
    FastSaving = 32780
    ForceShutdown = 32781
    ForceReboot = 32782
    Hibernated = 32783
    ComponentServicing = 32784
    RunningCritical = 32785
    OffCritical = 32786
    StoppingCritical = 32787
    SavedCritical = 32788
    PausedCritical = 32789
    StartingCritical = 32790
    ResetCritical = 32791
    SavingCritical = 32792
    PausingCritical = 32793
    ResumingCritical = 32794
    FastSavedCritical = 32795
    FastSavingCritical = 32796


@PSType([f"{NS}.CheckpointType"], rehydrate=False)
class CheckpointType(PSEnumBase):
    """Microsoft.HyperV.PowerShell.CheckpointType."""

    Disabled = 2
    Production = 3
    ProductionOnly = 4
    Standard = 5


@PSType([f"{NS}.StartAction"], rehydrate=False)
class StartAction(PSEnumBase):
    """Microsoft.HyperV.PowerShell.StartAction."""

    Nothing = 2
    StartIfRunning = 3
    Start = 4


@PSType([f"{NS}.StopAction"], rehydrate=False)
class StopAction(PSEnumBase):
    """Microsoft.HyperV.PowerShell.StopAction."""

    TurnOff = 2
    Save = 3
    ShutDown = 4


@PSType([f"{NS}.VMHeartbeatStatus"], rehydrate=False)
class VMHeartbeatStatus(PSEnumBase):
    """Microsoft.HyperV.PowerShell.VMHeartbeatStatus."""

    Unknown = 0
    Disabled = 1
    NoContact = 2
    Error = 3
    LostCommunication = 4
    OkApplicationsUnknown = 5
    OkApplicationsHealthy = 6
    OkApplicationsCritical = 7
    Paused = 8


@PSType([f"{NS}.VMOperationalStatus"], rehydrate=False)
class VMOperationalStatus(PSEnumBase):
    """Microsoft.HyperV.PowerShell.VMOperationalStatus (subset)."""

    Ok = 2
    Degraded = 3
    InService = 11


@PSType([f"{NS}.OnOffState"], rehydrate=False)
class OnOffState(PSEnumBase):
    """Microsoft.HyperV.PowerShell.OnOffState."""

    On = 0
    Off = 1


@PSType([f"{NS}.ControllerType"], rehydrate=False)
class ControllerType(PSEnumBase):
    """Microsoft.HyperV.PowerShell.ControllerType."""

    IDE = 0
    SCSI = 1
    PMEM = 2


@PSType([f"{NS}.SnapshotType"], rehydrate=False)
class SnapshotType(PSEnumBase):
    """Microsoft.HyperV.PowerShell.SnapshotType."""

    Standard = 0
    Recovery = 1
    Planned = 2
    Missing = 5
    Replica = 6
    AppConsistentReplica = 7
    SyncedReplica = 8


@PSType([f"{NS}.VMSwitchType"], rehydrate=False)
class VMSwitchType(PSEnumBase):
    """Microsoft.HyperV.PowerShell.VMSwitchType."""

    Private = 0
    Internal = 1
    External = 2


@PSType([f"{NS}.DvdMediaType"], rehydrate=False)
class DvdMediaType(PSEnumBase):
    """Microsoft.HyperV.PowerShell.DvdMediaType."""

    NoMedia = 0  # .NET name "None" is a Python keyword; value and ToString are fixed in _enum_name()
    ISO = 1
    PassThrough = 2


@PSType(["Microsoft.Vhd.PowerShell.VhdType"], rehydrate=False)
class VhdType(PSEnumBase):
    """Microsoft.Vhd.PowerShell.VhdType."""

    Unknown = 0
    Fixed = 2
    Dynamic = 3
    Differencing = 4


@PSType(["Microsoft.Vhd.PowerShell.VhdFormat"], rehydrate=False)
class VhdFormat(PSEnumBase):
    """Microsoft.Vhd.PowerShell.VhdFormat."""

    Unknown = 0
    VHD = 2
    VHDX = 3
    VHDSet = 4


# ----- objects -----

_VM_BASE = [
    "Name",
    "Id",
    "State",
    "Generation",
    "Version",
    "Path",
    "Notes",
    "ProcessorCount",
    "DynamicMemoryEnabled",
    "MemoryStartup",
    "MemoryMinimum",
    "MemoryMaximum",
    "ParentSnapshotId",
    "ParentSnapshotName",
    "CreationTime",
    "IsClustered",
    "HardDrives",
    "DVDDrives",
    "NetworkAdapters",
    "ComputerName",
    "IsDeleted",
]


@PSType(
    [f"{NS}.VirtualMachine", f"{NS}.VirtualMachineBase", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(
        *_VM_BASE,
        "Status",
        "CPUUsage",
        "MemoryAssigned",
        "MemoryDemand",
        "MemoryStatus",
        "Uptime",
        "Heartbeat",
        "IntegrationServicesState",
        "OperationalStatus",
        "PrimaryOperationalStatus",
        "PrimaryStatusDescription",
        "StatusDescriptions",
        "ConfigurationLocation",
        "SnapshotFileLocation",
        "SmartPagingFilePath",
        "AutomaticStartAction",
        "AutomaticStartDelay",
        "AutomaticStopAction",
        "AutomaticCheckpointsEnabled",
        "CheckpointType",
        "ResourceMeteringEnabled",
    ),
    extended_properties=[
        PSAliasProperty("VMName", "Name"),
        PSAliasProperty("VMId", "Id"),
        PSAliasProperty("CheckpointFileLocation", "SnapshotFileLocation"),
        PSAliasProperty("ParentCheckpointId", "ParentSnapshotId"),
        PSAliasProperty("ParentCheckpointName", "ParentSnapshotName"),
    ],
    rehydrate=False,
)
class VirtualMachine(PSObject):
    """Microsoft.HyperV.PowerShell.VirtualMachine."""


@PSType(
    [f"{NS}.VMSnapshot", f"{NS}.VirtualMachineBase", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(*_VM_BASE, "VMName", "VMId", "SnapshotType", "IsAutomaticCheckpoint"),
    extended_properties=[
        PSAliasProperty("CheckpointType", "SnapshotType"),
        PSAliasProperty("ParentCheckpointId", "ParentSnapshotId"),
        PSAliasProperty("ParentCheckpointName", "ParentSnapshotName"),
    ],
    rehydrate=False,
)
class VMSnapshot(PSObject):
    """Microsoft.HyperV.PowerShell.VMSnapshot."""


_DEVICE = ["Name", "Id", "VMId", "VMName", "VMSnapshotId", "VMSnapshotName", "ComputerName", "IsDeleted"]
_DRIVE = ["Path", "ControllerType", "ControllerNumber", "ControllerLocation", "PoolName", *_DEVICE]


@PSType(
    [f"{NS}.HardDiskDrive", f"{NS}.Drive", f"{NS}.VirtualMachineDevice", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(*_DRIVE, "DiskNumber", "MaximumIOPS", "MinimumIOPS"),
    rehydrate=False,
)
class HardDiskDrive(PSObject):
    """Microsoft.HyperV.PowerShell.HardDiskDrive."""


@PSType(
    [f"{NS}.DvdDrive", f"{NS}.Drive", f"{NS}.VirtualMachineDevice", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(*_DRIVE, "DvdMediaType"),
    rehydrate=False,
)
class VMDvdDrive(PSObject):
    """Microsoft.HyperV.PowerShell.DvdDrive."""


@PSType(
    [
        f"{NS}.VMNetworkAdapter",
        f"{NS}.VMNetworkAdapterBase",
        f"{NS}.VirtualMachineDevice",
        f"{NS}.VirtualizationObject",
    ],
    adapted_properties=_notes(
        *_DEVICE,
        "MacAddress",
        "DynamicMacAddressEnabled",
        "IsLegacy",
        "IsSynthetic",
        "IPAddresses",
        "Connected",
        "SwitchName",
        "SwitchId",
        "AdapterId",
        "Status",
        "StatusDescription",
        "IsManagementOs",
        "IsExternalAdapter",
    ),
    rehydrate=False,
)
class VMNetworkAdapter(PSObject):
    """Microsoft.HyperV.PowerShell.VMNetworkAdapter."""


@PSType(
    [f"{NS}.VMSwitch", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(
        "Name",
        "Id",
        "Notes",
        "SwitchType",
        "AllowManagementOS",
        "NetAdapterInterfaceDescription",
        "ComputerName",
        "IsDeleted",
    ),
    rehydrate=False,
)
class VMSwitch(PSObject):
    """Microsoft.HyperV.PowerShell.VMSwitch."""


@PSType(
    [f"{NS}.VMFirmware", f"{NS}.VMComponentObject", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(
        "BootOrder",
        "PreferredNetworkBootProtocol",
        "SecureBoot",
        "SecureBootTemplate",
        "SecureBootTemplateId",
        "ConsoleMode",
        "PauseAfterBootFailure",
        "VMId",
        "VMName",
        "VMSnapshotId",
        "VMSnapshotName",
        "ComputerName",
        "IsDeleted",
    ),
    rehydrate=False,
)
class VMFirmware(PSObject):
    """Microsoft.HyperV.PowerShell.VMFirmware."""


@PSType(
    [f"{NS}.VMHost", f"{NS}.VirtualizationObject"],
    adapted_properties=_notes(
        "ComputerName",
        "Name",
        "FullyQualifiedDomainName",
        "LogicalProcessorCount",
        "MemoryCapacity",
        "VirtualHardDiskPath",
        "VirtualMachinePath",
        "MacAddressMinimum",
        "MacAddressMaximum",
        "NumaSpanningEnabled",
        "EnableEnhancedSessionMode",
        "SupportedVmVersions",
        "IsDeleted",
    ),
    rehydrate=False,
)
class VMHost(PSObject):
    """Microsoft.HyperV.PowerShell.VMHost."""


@PSType(
    ["Microsoft.Vhd.PowerShell.VirtualHardDisk"],
    adapted_properties=_notes(
        "ComputerName",
        "Path",
        "VhdFormat",
        "VhdType",
        "FileSize",
        "Size",
        "MinimumSize",
        "LogicalSectorSize",
        "PhysicalSectorSize",
        "BlockSize",
        "ParentPath",
        "DiskIdentifier",
        "FragmentationPercentage",
        "Alignment",
        "Attached",
        "DiskNumber",
        "IsPMEMCompatible",
        "AddressAbstractionType",
        "Number",
    ),
    rehydrate=False,
)
class VirtualHardDisk(PSObject):
    """Microsoft.Vhd.PowerShell.VirtualHardDisk."""


@PSType(
    [f"{NS}.VMMemory", f"{NS}.VMDevice", f"{NS}.VirtualizationObject"],
    adapted_properties=[
        PSNoteProperty(name)
        for name in (
            "Buffer",
            "DynamicMemoryEnabled",
            "Maximum",
            "MaximumPerNumaNode",
            "Minimum",
            "Priority",
            "Startup",
            "ResourcePoolName",
            "Name",
            "Id",
            "VMId",
            "VMName",
            "ComputerName",
            "IsDeleted",
        )
    ],
    rehydrate=False,
)
class VMMemory(PSObject):
    """Microsoft.HyperV.PowerShell.VMMemory."""


# ----- builders -----


def _guid_text(value: uuid.UUID) -> str:
    return str(value).upper()


def _drive_fields(
    vm: VMRecord,
    drive: HardDiskRecord | DvdDriveRecord,
    kind: str,
    host: HyperVHost,
    snapshot: SnapshotRecord | None = None,
) -> dict[str, object]:
    ctype = ControllerType[drive.controller_type]
    number, location = drive.controller_number, drive.controller_location
    name = f"{kind} on {drive.controller_type} controller number {number} at location {location}"
    slot_guid = f"{drive.controller_type}{number}{location}"
    return {
        "Path": drive.path,
        "ControllerType": ctype,
        "ControllerNumber": number,
        "ControllerLocation": location,
        "PoolName": "Primordial",
        "Name": name,
        "Id": f"Microsoft:{_guid_text(vm.id)}\\{slot_guid}\\D",
        "VMId": vm.id,
        "VMName": vm.name,
        "VMSnapshotId": snapshot.id if snapshot else uuid.UUID(int=0),
        "VMSnapshotName": snapshot.name if snapshot else "",
        "ComputerName": host.computer_name,
        "IsDeleted": False,
    }


def hard_disk_object(
    host: HyperVHost, vm: VMRecord, drive: HardDiskRecord, snapshot: SnapshotRecord | None = None
) -> HardDiskDrive:
    """Return the HardDiskDrive object for one drive of the VM, or of one of its checkpoints."""
    fields = _drive_fields(vm, drive, "Hard Drive", host, snapshot)
    if drive.disk_number is not None:
        # A pass-through disk: Path is the physical disk's friendly name (NEON HardDiskDrive.cs Path, DiskNumber).
        fields["Path"] = host.physical_disks.get(drive.disk_number, f"Disk {drive.disk_number}")
    obj = HardDiskDrive(**fields, DiskNumber=drive.disk_number, MaximumIOPS=0, MinimumIOPS=0)
    obj.PSObject.to_string = f"HardDiskDrive (Name = '{obj.Name}') [VMName = '{vm.name}']"
    return obj


def dvd_object(host: HyperVHost, vm: VMRecord, drive: DvdDriveRecord) -> VMDvdDrive:
    """Return the DvdDrive object for one drive."""
    media = DvdMediaType.ISO if drive.path else DvdMediaType.NoMedia
    obj = VMDvdDrive(**_drive_fields(vm, drive, "DVD Drive", host), DvdMediaType=media)
    obj.PSObject.to_string = f"DvdDrive (Name = '{obj.Name}') [VMName = '{vm.name}']"
    return obj


def _ip_addresses(host: HyperVHost, vm: VMRecord, nic: NetworkAdapterRecord) -> list[str]:
    # Documentation-range addresses (RFC 5737 / link-local): data only, nothing routes them. They come from the
    # guest's KVP daemon, some seconds after the VM started (host.kvp_delay), and only while it runs.
    if not host.guests.kvp_reports(vm) or nic.switch_name is None or nic.mac is None:
        return []
    mac = bytes.fromhex(nic.mac)
    host_octet = mac[-1] % 254 + 1
    eui = bytes([mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]])
    groups = [f"{int.from_bytes(eui[i : i + 2], 'big'):x}" for i in range(0, 8, 2)]
    return [f"192.0.2.{host_octet}", "fe80::" + ":".join(groups)]


def network_adapter_object(host: HyperVHost, vm: VMRecord, nic: NetworkAdapterRecord) -> VMNetworkAdapter:
    """Return the VMNetworkAdapter object for one adapter."""
    switch_id = None
    if nic.switch_name is not None:
        for switch in host.network.list_switches():
            if switch.name.casefold() == nic.switch_name.casefold():
                switch_id = switch.id
    connected = nic.switch_name is not None
    obj = VMNetworkAdapter(
        Name=nic.name,
        Id=f"Microsoft:{_guid_text(vm.id)}\\{_guid_text(nic.adapter_id)}",
        VMId=vm.id,
        VMName=vm.name,
        VMSnapshotId=uuid.UUID(int=0),
        VMSnapshotName="",
        ComputerName=host.computer_name,
        IsDeleted=False,
        MacAddress=nic.mac or "000000000000",
        DynamicMacAddressEnabled=nic.dynamic_mac,
        IsLegacy=nic.is_legacy,
        IsSynthetic=not nic.is_legacy,
        IPAddresses=_ip_addresses(host, vm, nic),
        Connected=connected and vm.state == "Running",
        SwitchName=nic.switch_name,
        SwitchId=switch_id,
        AdapterId=_guid_text(nic.adapter_id),
        Status=["Ok"] if vm.state == "Running" else [],
        StatusDescription=["OK"] if vm.state == "Running" else [],
        IsManagementOs=False,
        IsExternalAdapter=False,
    )
    obj.PSObject.to_string = f"VMNetworkAdapter (Name = '{nic.name}', VMName = '{vm.name}') [VMId = '{vm.id}']"
    return obj


def _base_fields(host: HyperVHost, vm: VMRecord, name: str, record_id: uuid.UUID) -> dict[str, object]:
    cfg = vm.config
    parent = vm.snapshots.get(vm.current_snapshot_id) if vm.current_snapshot_id else None
    return {
        "Name": name,
        "Id": record_id,
        "Generation": vm.generation,
        "Version": vm.version,
        "Path": vm.path,
        "Notes": cfg.notes,
        "ProcessorCount": PSInt64(cfg.processor_count),
        "DynamicMemoryEnabled": cfg.dynamic_memory,
        "MemoryStartup": PSInt64(cfg.memory_startup),
        "MemoryMinimum": PSInt64(cfg.memory_minimum),
        "MemoryMaximum": PSInt64(cfg.memory_maximum),
        "ParentSnapshotId": parent.id if parent else None,
        "ParentSnapshotName": parent.name if parent else None,
        "CreationTime": vm.created,
        "IsClustered": False,
        "HardDrives": [hard_disk_object(host, vm, d) for d in cfg.hard_drives],
        "DVDDrives": [dvd_object(host, vm, d) for d in cfg.dvd_drives],
        "NetworkAdapters": [network_adapter_object(host, vm, n) for n in cfg.network_adapters],
        "ComputerName": host.computer_name,
        "IsDeleted": False,
    }


def vm_object(host: HyperVHost, vm: VMRecord) -> VirtualMachine:
    """Return the VirtualMachine object Get-VM shows for ``vm``."""
    running = vm.state in {"Running", "Paused", "Pausing", "Resuming", "Reset", "Stopping", "Saving"}
    cfg = vm.config
    fields = _base_fields(host, vm, vm.name, vm.id)
    fields.update(
        State=VMState[vm.state],
        Status="Operating normally",
        CPUUsage=1 if vm.state == "Running" else 0,
        MemoryAssigned=PSInt64(cfg.memory_startup if running else 0),
        MemoryDemand=PSInt64(cfg.memory_startup // 2 if vm.state == "Running" else 0),
        MemoryStatus="",
        Uptime=vm.uptime(host.now()),
        Heartbeat=VMHeartbeatStatus[beat] if (beat := host.guests.heartbeat(vm)) else None,
        IntegrationServicesState="Up to date" if vm.state == "Running" else "",
        OperationalStatus=[VMOperationalStatus.Ok],
        PrimaryOperationalStatus=VMOperationalStatus.Ok,
        PrimaryStatusDescription="OK",
        StatusDescriptions=["Operating normally"],
        ConfigurationLocation=vm.path,
        SnapshotFileLocation=vm.path,
        SmartPagingFilePath=vm.path,
        AutomaticStartAction=StartAction[cfg.automatic_start_action],
        AutomaticStartDelay=0,
        AutomaticStopAction=StopAction[cfg.automatic_stop_action],
        AutomaticCheckpointsEnabled=False,
        CheckpointType=CheckpointType[cfg.checkpoint_type],
        ResourceMeteringEnabled=host.metering.enabled(vm.id),
    )
    obj = VirtualMachine(**fields)
    obj.PSObject.to_string = f"VirtualMachine (Name = '{vm.name}') [Id = '{vm.id}']"
    return obj


def snapshot_object(host: HyperVHost, vm: VMRecord, snap: SnapshotRecord) -> VMSnapshot:
    """Return the VMSnapshot object for one checkpoint."""
    view = VMRecord(
        id=vm.id,
        name=vm.name,
        generation=vm.generation,
        version=vm.version,
        path=vm.path,
        created=snap.created,
        config=snap.config,
        snapshots=vm.snapshots,
        current_snapshot_id=snap.parent_id,
    )
    fields = _base_fields(host, view, snap.name, snap.id)
    fields.update(
        State=VMState[snap.captured_state],
        VMName=vm.name,
        VMId=vm.id,
        SnapshotType=SnapshotType.Standard,
        IsAutomaticCheckpoint=False,
    )
    obj = VMSnapshot(**fields)
    obj.PSObject.to_string = f"VMSnapshot (Name = '{snap.name}', VMName = '{vm.name}') [Id = '{snap.id}']"
    return obj


def switch_object(host: HyperVHost, switch: SwitchRecord) -> VMSwitch:
    """Return the VMSwitch object for one switch."""
    obj = VMSwitch(
        Name=switch.name,
        Id=switch.id,
        Notes=switch.notes,
        SwitchType=VMSwitchType[switch.switch_type],
        AllowManagementOS=switch.switch_type == "Internal"
        or (switch.switch_type == "External" and switch.allow_management_os),
        NetAdapterInterfaceDescription=switch.net_adapter,
        ComputerName=host.computer_name,
        IsDeleted=False,
    )
    obj.PSObject.to_string = f"VMSwitch (Name = '{switch.name}') [Id = '{switch.id}']"
    return obj


def firmware_object(host: HyperVHost, vm: VMRecord) -> VMFirmware:
    """Return the VMFirmware object of a Generation 2 VM."""
    cfg = vm.config
    obj = VMFirmware(
        BootOrder=[],
        PreferredNetworkBootProtocol=0,
        SecureBoot=OnOffState.On if cfg.secure_boot else OnOffState.Off,
        SecureBootTemplate=cfg.secure_boot_template,
        SecureBootTemplateId=SECURE_BOOT_TEMPLATES[cfg.secure_boot_template],
        ConsoleMode=0,
        PauseAfterBootFailure=OnOffState.Off,
        VMId=vm.id,
        VMName=vm.name,
        VMSnapshotId=uuid.UUID(int=0),
        VMSnapshotName="",
        ComputerName=host.computer_name,
        IsDeleted=False,
    )
    obj.PSObject.to_string = f"VMFirmware (VMName = '{vm.name}')"
    return obj


def host_object(host: HyperVHost) -> VMHost:
    """Return the VMHost object."""
    obj = VMHost(
        ComputerName=host.computer_name,
        Name=host.computer_name,
        # VMHost reads Win32_ComputerSystem.Domain: a domain (or workgroup) name, not the host's own FQDN.
        FullyQualifiedDomainName=host.domain,
        LogicalProcessorCount=host.logical_processor_count,
        MemoryCapacity=PSInt64(host.memory_capacity),
        VirtualHardDiskPath=host.virtual_hard_disk_path,
        VirtualMachinePath=host.virtual_machine_path,
        MacAddressMinimum="00155D000000",
        MacAddressMaximum="00155DFFFFFF",
        NumaSpanningEnabled=True,
        EnableEnhancedSessionMode=False,
        SupportedVmVersions=["8.0", "9.0", "10.0"],
        IsDeleted=False,
    )
    obj.PSObject.to_string = f"VMHost (ComputerName = '{host.computer_name}')"
    return obj


def vhd_object(host: HyperVHost, entry: FileEntry) -> VirtualHardDisk:
    """Return the VirtualHardDisk object Get-VHD shows for a VHD file."""
    attached = host.disks.attached_vm(entry.path)
    obj = VirtualHardDisk(
        ComputerName=host.computer_name,
        Path=entry.path,
        VhdFormat=VhdFormat[entry.vhd_format or "VHDX"],
        VhdType=VhdType[entry.vhd_type or "Unknown"],
        FileSize=PSUInt64(entry.file_size),
        Size=PSUInt64(entry.size),
        MinimumSize=None,
        LogicalSectorSize=entry.logical_sector_size,
        PhysicalSectorSize=entry.physical_sector_size,
        BlockSize=entry.block_size,
        ParentPath=entry.parent_path,
        DiskIdentifier=_guid_text(entry.disk_identifier),
        FragmentationPercentage=0,
        Alignment=1,
        Attached=attached is not None and attached.state != "Off",
        DiskNumber=None,
        IsPMEMCompatible=False,
        AddressAbstractionType=0,
        Number=None,
    )
    obj.PSObject.to_string = entry.path
    return obj


def memory_object(host: HyperVHost, vm: VMRecord) -> VMMemory:
    """The VMMemory object Get-VMMemory shows for ``vm``."""
    cfg = vm.config
    obj = VMMemory(
        Buffer=cfg.memory_buffer,
        DynamicMemoryEnabled=cfg.dynamic_memory,
        Maximum=PSInt64(cfg.memory_maximum),
        MaximumPerNumaNode=PSInt64(min(cfg.memory_maximum, host.memory_capacity) // MiB),
        Minimum=PSInt64(cfg.memory_minimum),
        Priority=cfg.memory_priority,
        Startup=PSInt64(cfg.memory_startup),
        ResourcePoolName="Primordial",
        Name="Memory",
        Id=f"Microsoft:{str(vm.id).upper()}\\4764334D-E001-4176-82EE-5594EC9B530E",
        VMId=vm.id,
        VMName=vm.name,
        ComputerName=host.computer_name,
        IsDeleted=False,
    )
    obj.PSObject.to_string = f"VMMemory (VMName = '{vm.name}')"
    return obj


def now_utc() -> datetime.datetime:
    """Return the current UTC time (one place, so tests can reason about it)."""
    return datetime.datetime.now(datetime.UTC)
