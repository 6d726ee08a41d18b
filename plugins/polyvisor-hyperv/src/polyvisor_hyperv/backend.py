"""The Hyper-V backend: the contract's primitives as Hyper-V cmdlets over PSRP or a WinRM shell.

Every VM is addressed by its Id (``Get-VM -Id <guid>`` piped into the verb), so a rename or a duplicate name can
never hit the wrong VM. Choices the contract leaves open:

* Labels and the description share the VM's ``Notes``: human text first, then a marker-delimited JSON block
  (:mod:`polyvisor_hyperv.notes`). A checkpoint captures Notes, so reverting also reverts labels.
* ``snapshot(memory=True)`` takes a Standard checkpoint (memory included); ``memory=False`` a Production one
  (ProductionOnly on a running VM, so Hyper-V never silently falls back to saving memory). The VM's CheckpointType
  is set for the call and put back afterwards. Checkpoints disabled on the VM raise UnsupportedError. Hyper-V
  checkpoints have no description, so a non-empty one raises UnsupportedError rather than being dropped.
* Reverting to a checkpoint that holds memory leaves Hyper-V in Saved; the backend starts the VM so that it ends
  running, as the snapshot recorded it.
* NICs get a MAC chosen here (Hyper-V's 00:15:5D prefix) when the spec gives none, because a dynamic MAC reads as
  zeros until the first start and could not be detached by MAC.
* ``delete(storage=True)`` removes the disk files of the VM's drives, of every checkpoint's drives and their
  parent chains, except files another VM still uses; files it cannot remove are named in a BackendError.
* Reboot is a guest shutdown followed by a start (Hyper-V has no guest-reboot cmdlet; ``Restart-VM`` resets).
* Shutdown is ``Stop-VM`` WITHOUT ``-Force``: the guest shuts down through its shutdown integration service, and
  a graceful shutdown never becomes a power-off. Microsoft's reference for Stop-VM
  (MicrosoftDocs/windows-powershell-docs, docset/winserver2022-ps/hyper-v/Stop-VM.md) says ``-Force`` "specifies
  that the shutdown of the virtual machine is to be forced ... If the virtual machine is locked, it is shut down
  immediately", and of ``Stop-VM -Force``: "Hyper-V gives the guest five minutes to save data, then forces a
  shutdown. This shutdown can result in loss of unsaved data." When the guest does not answer the shutdown
  integration service, Stop-VM asks whether to turn the VM off instead and ``-Force`` answers yes; without it the
  remote, non-interactive session cannot show the prompt and the cmdlet fails, which this backend reports as
  UnsupportedError (feature ``shutdown-agent``) with the VM left running. Stop is ``Stop-VM -TurnOff -Force``.
* Hyper-V's cmdlets block until the state is reached, so the primitives return when it is; each is bounded by its
  Deadline (and the ``command_timeout`` option): when it passes, the running pipeline is stopped on the host
  (PSRP) or the command terminated (WinRM shell), and TimeoutError is raised with the VM as Hyper-V has it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from polyvisor.backend import Backend, Credentials, Deadline
from polyvisor.errors import (
    BackendError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.model import (
    Architecture,
    BootDevice,
    DiskBus,
    DiskFormat,
    DiskSpec,
    Feature,
    GuestAddress,
    HostInfo,
    NetworkInfo,
    NicSpec,
    PowerState,
    ShutdownMode,
    Snapshot,
    VMDetails,
    VMInfo,
    VMSpec,
    VMStatus,
    normalize_uuid,
)
from polyvisor.uri import URI
from polyvisor_hyperv.commands import SWITCH, Request, Step
from polyvisor_hyperv.notes import join_notes, split_notes
from polyvisor_hyperv.options import ConnectionOptions, parse_options
from polyvisor_hyperv.states import CHECKPOINT_TYPE_NAMES, VMSTATE_NAMES, enum_name, status_from_vmstate
from polyvisor_hyperv.transport import Row, Transport, open_transport, parse_datetime

__all__ = ["HyperVBackend"]

MiB = 1024 * 1024
VM_PROPERTIES = (
    "Id",
    "Name",
    "State",
    "ProcessorCount",
    "MemoryStartup",
    "Notes",
    "Generation",
    "CheckpointType",
    "ParentSnapshotId",
    "ParentSnapshotName",
)
SNAPSHOT_PROPERTIES = ("Id", "Name", "ParentSnapshotId", "ParentSnapshotName", "CreationTime", "State")
CONTROLLER_TYPES = MappingProxyType({0: "IDE", 1: "SCSI", 2: "PMEM"})
SWITCH_TYPES = MappingProxyType({0: "Private", 1: "Internal", 2: "External"})
_SYNTHETIC_NIC_MODELS = {"virtio", "synthetic", "netvsc"}
_MEMORY_STATES = {"Running", "Paused", "Saved", "FastSaved"}
# Generation 1 BIOS device names, in Hyper-V's default order.
_BIOS_ORDER = ("CD", "IDE", "LegacyNetworkAdapter", "Floppy")
# Stop-VM's "turn it off instead?" prompt, failed in a session that cannot prompt (PSRP without a host UI, or
# powershell.exe -NonInteractive on the WinRM shell).
_PROMPT_FAILED = re.compile(r"does not support user interaction|NonInteractive mode", re.IGNORECASE)
_BIOS_NAMES = {BootDevice.CDROM: "CD", BootDevice.DISK: "IDE", BootDevice.NETWORK: "LegacyNetworkAdapter"}


def _vm(uuid: str) -> Step:
    return Step("Get-VM", {"Id": uuid})


def _then(command: str, **parameters: Any) -> Step:
    return Step(command, parameters, pipe=True)


def wildcard_literal(text: str) -> str:
    """Escape PowerShell wildcard characters so a ``-Name`` parameter matches ``text`` literally."""
    return "".join("`" + ch if ch in "`*?[]" else ch for ch in text)


def hyperv_mac(mac: str) -> str:
    """``52:54:00:12:34:56`` -> ``525400123456`` (Hyper-V's spelling)."""
    return mac.replace(":", "").upper()


def colon_mac(mac: str) -> str:
    """``00155D000001`` -> ``00:15:5d:00:00:01``."""
    text = mac.replace(":", "").replace("-", "").lower()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def _random_mac() -> str:
    return "00:15:5d:" + ":".join(f"{byte:02x}" for byte in secrets.token_bytes(3))


def _guid(value: Any) -> str:
    if isinstance(value, dict):  # Windows PowerShell 5.1 ConvertTo-Json may render a Guid as {"Guid": "..."}
        value = value.get("Guid") or value.get("value")
    return normalize_uuid(str(value)) or str(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class HyperVBackend(Backend):
    """One connection to a Hyper-V host."""

    name = "Hyper-V"
    # Method features (pause, save, snapshots, ...) follow from the methods overridden below.
    option_features = frozenset(
        {
            Feature.SHUTDOWN_AGENT,
            Feature.SNAPSHOT_MEMORY,
            Feature.DELETE_STORAGE,
            Feature.DISK_HOTPLUG,
            Feature.NIC_HOTPLUG,
            Feature.UEFI,
            Feature.SECURE_BOOT,
        }
    )

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        self.uri = uri
        self.options: ConnectionOptions = parse_options(uri, credentials)
        self._transport: Transport = open_transport(self.options)
        self._vhd_directory: str | None = None

    def __repr__(self) -> str:
        return f"<HyperVBackend {self.options.endpoint} transport={self.options.transport}>"

    @property
    def host(self) -> str:
        """The host name as messages show it."""
        return self.uri.display_host

    def _run(
        self,
        steps: Sequence[Step],
        *,
        doing: str,
        vm: str | None = None,
        select: Sequence[str] | None = None,
        deadline: Deadline | None = None,
    ) -> list[Row]:
        """Run one request; a verb's ``deadline`` stops it on the host when it passes (TimeoutError)."""
        request = Request(tuple(steps), tuple(select) if select is not None else None)
        return self._transport.invoke(request, doing=doing, vm=vm, deadline=deadline)

    # -- connection ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._transport.close()

    # -- host ---------------------------------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        rows = self._run(
            [Step("Get-VMHost")],
            doing="reading the host (Get-VMHost)",
            select=(
                "ComputerName",
                "FullyQualifiedDomainName",
                "LogicalProcessorCount",
                "MemoryCapacity",
                "VirtualHardDiskPath",
                "VirtualMachinePath",
            ),
        )
        if not rows:
            raise PolyvisorError("Get-VMHost returned nothing; is the Hyper-V role installed?", host=self.host)
        row = rows[0]
        self._vhd_directory = _text(row.get("VirtualHardDiskPath")) or None
        return HostInfo(
            hostname=_text(row.get("ComputerName")),
            hypervisor="hyperv",
            hypervisor_version="",
            cpus=int(row.get("LogicalProcessorCount") or 0),
            memory_mib=int(row.get("MemoryCapacity") or 0) // MiB,
            arch="x86_64",
            extra={
                "fqdn": _text(row.get("FullyQualifiedDomainName")),
                "virtual_hard_disk_path": _text(row.get("VirtualHardDiskPath")),
                "virtual_machine_path": _text(row.get("VirtualMachinePath")),
                "transport": self.options.transport,
            },
        )

    def networks(self) -> list[NetworkInfo]:
        rows = self._run([Step("Get-VMSwitch")], doing="listing virtual switches", select=("Name", "Id", "SwitchType"))
        return [
            NetworkInfo(
                name=_text(row.get("Name")),
                active=True,
                kind=enum_name(row.get("SwitchType"), SWITCH_TYPES).lower(),
                uuid=_guid(row.get("Id")),
            )
            for row in rows
        ]

    def _vhd_dir(self) -> str:
        if self._vhd_directory is None:
            self.host_info()
        if not self._vhd_directory:
            raise PolyvisorError("the host reports no VirtualHardDiskPath; set one with Set-VMHost", host=self.host)
        return self._vhd_directory

    # -- inventory ------------------------------------------------------------------------------------------------
    def list_vms(self) -> list[VMInfo]:
        rows = self._run([Step("Get-VM")], doing="listing VMs", select=VM_PROPERTIES)
        return [self._info(row) for row in rows]

    def lookup(self, ref: str) -> VMInfo:
        uuid = normalize_uuid(ref)
        if uuid is not None:
            try:
                return self.info(uuid)
            except NotFoundError:
                pass  # a VM may be named like a GUID
        matches = [vm for vm in self.list_vms() if vm.name == ref]
        if not matches:
            raise NotFoundError(f"no VM named or with Id {ref!r}; list them with conn.list()", host=self.host)
        if len(matches) > 1:
            ids = ", ".join(vm.uuid for vm in matches)
            raise ValidationError(f"{len(matches)} VMs are named {ref!r} ({ids}); address one by its UUID", field="vm")
        return matches[0]

    def info(self, uuid: str) -> VMInfo:
        return self._info(self._vm_row(uuid, VM_PROPERTIES))

    def status(self, uuid: str) -> VMStatus:
        return status_from_vmstate(self._vm_row(uuid, ("State",)).get("State"))

    def _vm_row(self, uuid: str, select: Sequence[str]) -> Row:
        rows = self._run([_vm(uuid)], doing="reading the VM", vm=uuid, select=select)
        if not rows:
            raise NotFoundError(f"no VM with Id {uuid}", host=self.host, vm=uuid)
        return rows[0]

    def _info(self, row: Row) -> VMInfo:
        status = status_from_vmstate(row.get("State"))
        description, labels = split_notes(_text(row.get("Notes")))
        # One Get-VM returns every property, so listings carry the details at no extra cost.
        details = VMDetails(
            cpus=int(row.get("ProcessorCount") or 0),
            memory_mib=int(row.get("MemoryStartup") or 0) // MiB,
            labels=labels,
            description=description,
            extra={
                "generation": int(row.get("Generation") or 0),
                "checkpoint_type": enum_name(row.get("CheckpointType"), CHECKPOINT_TYPE_NAMES),
                "current_snapshot": _text(row.get("ParentSnapshotName")) or None,
            },
        )
        return VMInfo(
            uuid=_guid(row.get("Id")),
            name=_text(row.get("Name")),
            status=status,
            has_saved_state=status.state is PowerState.SAVED,
            details=details,
        )

    # -- creating -------------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        _check_spec(spec)
        generation = spec.generation
        rows = self._run(
            [
                Step(
                    "New-VM",
                    {
                        "Name": spec.name,
                        "Generation": generation,
                        "MemoryStartupBytes": spec.memory_mib * MiB,
                        "NoVHD": SWITCH,
                    },
                )
            ],
            doing=f"creating VM {spec.name!r} (New-VM)",
            select=("Id",),
            deadline=deadline,
        )
        if not rows:
            raise PolyvisorError("New-VM returned no VM", host=self.host, vm=spec.name)
        uuid = _guid(rows[0].get("Id"))
        created_vhds: list[str] = []
        try:
            steps = self._configuration_steps(uuid, spec, created_vhds)
            self._run(steps, doing=f"configuring new VM {spec.name!r}", vm=spec.name, deadline=deadline)
            return self.info(uuid)
        except BaseException:
            self._roll_back(uuid, created_vhds)
            raise

    def _configuration_steps(self, uuid: str, spec: VMSpec, created_vhds: list[str]) -> list[Step]:
        vm = _vm(uuid)
        settings: dict[str, Any] = {"ProcessorCount": spec.cpus}
        notes = join_notes(spec.description, spec.labels)
        if notes:
            settings["Notes"] = notes
        steps = [vm, _then("Set-VM", **settings)]
        if spec.generation == 2:
            steps += [vm, _then("Set-VMFirmware", EnableSecureBoot="On" if spec.secure_boot else "Off")]
        # New-VM adds one unconnected adapter; the spec's NICs replace it.
        steps += [vm, _then("Get-VMNetworkAdapter"), _then("Remove-VMNetworkAdapter")]
        groups: dict[BootDevice, list[Step]] = {BootDevice.DISK: [], BootDevice.CDROM: [], BootDevice.NETWORK: []}
        for index, disk in enumerate(spec.disks):
            bus = _controller(disk, spec.generation, boot=index == 0)
            path = disk.image
            if path is None:
                path = self._new_vhd_path(uuid, disk)
                created_vhds.append(path)
                assert disk.size_mib is not None
                groups[BootDevice.DISK].append(
                    Step("New-VHD", {"Path": path, "SizeBytes": disk.size_mib * MiB, "Dynamic": SWITCH})
                )
            groups[BootDevice.DISK] += [vm, _then("Add-VMHardDiskDrive", Path=path, ControllerType=bus)]
        if spec.cdrom is not None:
            groups[BootDevice.CDROM] += [vm, _then("Add-VMDvdDrive", Path=spec.cdrom)]
        for nic in spec.nics:
            groups[BootDevice.NETWORK] += [vm, _then("Add-VMNetworkAdapter", **_nic_parameters(nic, spec.generation))]
        # Generation 2 firmware boots devices in the order they were added, so add them in boot order.
        order = [*spec.boot_order, *(device for device in groups if device not in spec.boot_order)]
        for device in order:
            steps += groups[device]
        if spec.generation == 1:
            bios = [_BIOS_NAMES[device] for device in spec.boot_order]
            bios += [name for name in _BIOS_ORDER if name not in bios]
            # Only the order of devices the VM has matters; leave the BIOS alone when that already matches.
            present = {"CD": spec.cdrom is not None, "IDE": bool(spec.disks), "Floppy": False}
            present["LegacyNetworkAdapter"] = any(nic.model == "legacy" for nic in spec.nics)
            if [n for n in bios if present[n]] != [n for n in _BIOS_ORDER if present[n]]:
                steps += [vm, _then("Set-VMBios", StartupOrder=bios)]
        return steps

    def _new_vhd_path(self, uuid: str, disk: DiskSpec) -> str:
        extension = "vhd" if disk.format is DiskFormat.VHD else "vhdx"
        # The VM's Id, not its name, names the file: names may hold characters Windows paths cannot.
        return f"{self._vhd_dir().rstrip(chr(92))}\\{uuid}-{secrets.token_hex(4)}.{extension}"

    def _roll_back(self, uuid: str, vhds: Sequence[str]) -> None:
        """Remove a half-created VM and the disks created for it; failures here must not hide the first one."""
        with contextlib.suppress(PolyvisorError):
            self._run([_vm(uuid), _then("Remove-VM", Force=SWITCH)], doing="rolling back a failed create", vm=uuid)
        self._remove_files(vhds)

    def _remove_files(self, paths: Sequence[str]) -> None:
        for path in paths:
            with contextlib.suppress(PolyvisorError):
                self._run(
                    [Step("Remove-Item", {"LiteralPath": path, "Force": SWITCH, "ErrorAction": "SilentlyContinue"})],
                    doing="removing a disk file",
                )

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def _verb(self, uuid: str, command: str, doing: str, deadline: Deadline | None, **parameters: Any) -> None:
        self._run([_vm(uuid), _then(command, **parameters)], doing=doing, vm=uuid, deadline=deadline)

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Start-VM", "starting the VM (Start-VM)", deadline)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        self._shutdown(uuid, "shutting the guest down (Stop-VM)", deadline)

    def _shutdown(self, uuid: str, doing: str, deadline: Deadline) -> None:
        # Never -Force: it answers "turn it off?" with yes when the guest does not answer (see the module docstring).
        try:
            self._verb(uuid, "Stop-VM", doing, deadline)
        except PolyvisorError as error:
            if isinstance(error, TimeoutError) or not _PROMPT_FAILED.search(str(error)):
                raise
            raise UnsupportedError(
                "the guest does not answer Hyper-V's shutdown integration service, so it cannot be shut down "
                "gracefully, and Hyper-V offered only to turn it off; the VM was left running. Enable the guest's "
                "shutdown integration service (Enable-VMIntegrationService -Name Shutdown) or power it off with "
                "stop()",
                feature=Feature.SHUTDOWN_AGENT,
                host=self.host,
                vm=uuid,
            ) from error

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Stop-VM", "powering the VM off (Stop-VM -TurnOff)", deadline, TurnOff=SWITCH, Force=SWITCH)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """A graceful reboot composed of a guest shutdown and a start: Hyper-V has no guest-reboot cmdlet
        (``Restart-VM`` is a hard reset). The guest shuts down through its integration services, so it loses
        nothing, and the VM powers on again; it is a cold restart where libvirt's is a warm one."""
        self._shutdown(uuid, "shutting the guest down to reboot it (Stop-VM)", deadline)
        self._verb(uuid, "Start-VM", "starting the VM again after its shutdown (Start-VM)", deadline)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Restart-VM", "resetting the VM (Restart-VM -Force)", deadline, Force=SWITCH)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Suspend-VM", "pausing the VM (Suspend-VM)", deadline)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Resume-VM", "resuming the VM (Resume-VM)", deadline)

    def save(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Save-VM", "saving the VM (Save-VM)", deadline)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        self._verb(uuid, "Remove-VMSavedState", "discarding saved state (Remove-VMSavedState)", deadline)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Remove the VM (``Remove-VM`` leaves every disk file behind) and, with ``storage``, its disk files.

        The files are collected before the VM goes: its drives' files, every checkpoint's drives' files, and each
        one's chain of parents (``Get-VHD`` ParentPath), so the base disks and the .avhdx files of every checkpoint
        branch go too. They are removed children first. A file another VM still uses, through a drive, a
        checkpoint's drive or its chain of parents, stays. A file already gone is fine; any other file that cannot
        be removed raises BackendError naming every file left behind, after all of them were tried.
        """
        files: list[str] = []
        if storage:
            files = self._disk_files([_vm(uuid)], doing="listing the VM's disk files", vm=uuid)
        self._verb(uuid, "Remove-VM", "deleting the VM (Remove-VM)", deadline, Force=SWITCH)
        if files:
            # The VM is gone now, so every VM Get-VM lists is another one.
            shared = {path.casefold() for path in self._disk_files([Step("Get-VM")], doing="listing disks in use")}
            self._remove_disks([path for path in files if path.casefold() not in shared], uuid)

    def _disk_files(self, vms: Sequence[Step], *, doing: str, vm: str | None = None) -> list[str]:
        """Return the disk files of the VMs ``vms`` selects and of their checkpoints, with their parent chains,
        children before parents."""
        paths: list[str] = []
        for via in ([], [_then("Get-VMSnapshot")]):
            rows = self._run([*vms, *via, _then("Get-VMHardDiskDrive")], doing=doing, vm=vm, select=("Path",))
            paths += [_text(row.get("Path")) for row in rows if row.get("Path")]
        parents: dict[str, str | None] = {}  # casefolded path -> parent path
        known = {path.casefold(): path for path in paths}
        frontier = list(dict.fromkeys(paths))
        while frontier:
            # One Get-VHD per level of the chains; a drive that is no VHD (or a missing file) has no parent.
            rows = self._run(
                [Step("Get-VHD", {"Path": frontier, "ErrorAction": "SilentlyContinue"})],
                doing=doing,
                vm=vm,
                select=("Path", "ParentPath"),
            )
            for path in frontier:
                parents.setdefault(path.casefold(), None)
            frontier = []
            for row in rows:
                parent = _text(row.get("ParentPath")) or None
                parents[_text(row.get("Path")).casefold()] = parent
                if parent is not None and parent.casefold() not in known:
                    known[parent.casefold()] = parent
                    frontier.append(parent)

        def depth(key: str) -> int:
            seen: set[str] = set()
            while (parent := parents.get(key)) is not None and key not in seen:
                seen.add(key)
                key = parent.casefold()
            return len(seen)

        return sorted(known.values(), key=lambda path: -depth(path.casefold()))

    def _remove_disks(self, paths: Sequence[str], uuid: str) -> None:
        """Remove ``paths`` in order; try every one, then raise naming those left (the VM is already gone)."""
        left: list[str] = []
        first: PolyvisorError | None = None
        for path in paths:
            try:
                self._run(
                    [Step("Remove-Item", {"LiteralPath": path, "Force": SWITCH})],
                    doing=f"removing disk file {path}",
                    vm=uuid,
                )
            except NotFoundError:
                continue  # already gone: nothing left behind
            except PolyvisorError as error:
                left.append(path)
                first = first or error
        if left:
            raise BackendError(
                f"the VM was deleted, but {len(left)} of its disk files could not be removed; remove them by hand: "
                + "; ".join(left)
                + f" (first error: {first})",
                host=self.host,
                vm=uuid,
            )

    # -- labels ---------------------------------------------------------------------------------------------------
    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        human, _ = split_notes(_text(self._vm_row(uuid, ("Notes",)).get("Notes")))
        self._verb(uuid, "Set-VM", "writing labels to Notes (Set-VM)", None, Notes=join_notes(human, labels))

    # -- snapshots ------------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        if description:
            raise UnsupportedError(
                "Hyper-V checkpoints have no description; pass description=''",
                feature=Feature.SNAPSHOT_DESCRIPTION,
                host=self.host,
                vm=uuid,
            )
        row = self._vm_row(uuid, ("State", "CheckpointType"))
        original = enum_name(row.get("CheckpointType"), CHECKPOINT_TYPE_NAMES)
        if original == "Disabled":
            raise UnsupportedError(
                "checkpoints are disabled for this VM; enable them on the host with "
                "Set-VM -CheckpointType Production (or Standard)",
                feature=Feature.SNAPSHOTS,
                host=self.host,
                vm=uuid,
            )
        running = status_from_vmstate(row.get("State")).state is not PowerState.STOPPED
        wanted = "Standard" if memory else ("ProductionOnly" if running else "Production")
        steps: list[Step] = []
        if wanted != original:
            steps += [_vm(uuid), _then("Set-VM", CheckpointType=wanted)]
        steps += [_vm(uuid), _then("Checkpoint-VM", SnapshotName=name)]
        if wanted != original:
            steps += [_vm(uuid), _then("Set-VM", CheckpointType=original)]
        try:
            self._run(steps, doing=f"taking checkpoint {name!r} (Checkpoint-VM)", vm=uuid, deadline=deadline)
        except PolyvisorError:
            if wanted != original:
                with contextlib.suppress(PolyvisorError):
                    self._verb(uuid, "Set-VM", "restoring the checkpoint type", None, CheckpointType=original)
            raise
        taken = [snap for snap in self.snapshot_list(uuid) if snap.name == name]
        if not taken:
            raise NotFoundError(f"checkpoint {name!r} was taken but is not listed", host=self.host, vm=uuid)
        return max(taken, key=lambda snap: snap.created.timestamp() if snap.created else 0.0)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        current = _text(self._vm_row(uuid, ("ParentSnapshotId",)).get("ParentSnapshotId"))
        rows = self._run(
            [_vm(uuid), _then("Get-VMSnapshot")], doing="listing checkpoints", vm=uuid, select=SNAPSHOT_PROPERTIES
        )
        current_id = normalize_uuid(current) if current else None
        out = []
        for row in rows:
            raw_state = enum_name(row.get("State"), VMSTATE_NAMES)
            has_memory = raw_state in _MEMORY_STATES
            out.append(
                Snapshot(
                    name=_text(row.get("Name")),
                    parent=_text(row.get("ParentSnapshotName")) or None,
                    created=parse_datetime(row.get("CreationTime")),
                    state=(PowerState.PAUSED if raw_state == "Paused" else PowerState.RUNNING)
                    if has_memory
                    else PowerState.STOPPED,
                    has_memory=has_memory,
                    is_current=current_id is not None and _guid(row.get("Id")) == current_id,
                )
            )
        return out

    def _snapshot_row(self, uuid: str, name: str) -> Row:
        """Return the one checkpoint named ``name``; Hyper-V allows duplicate names, so several is an error."""
        rows = self._run(
            [_vm(uuid), _then("Get-VMSnapshot")], doing="listing checkpoints", vm=uuid, select=("Id", "Name", "State")
        )
        matches = [row for row in rows if _text(row.get("Name")) == name]
        if not matches:
            raise NotFoundError(f"no checkpoint named {name!r}", host=self.host, vm=uuid)
        if len(matches) > 1:
            ids = ", ".join(_guid(row.get("Id")) for row in matches)
            raise ValidationError(
                f"{len(matches)} checkpoints are named {name!r} ({ids}); rename all but one on the host with "
                "Rename-VMSnapshot",
                field="name",
            )
        return matches[0]

    def _snapshot_steps(self, uuid: str, name: str) -> tuple[list[Step], Row]:
        # By Id, never by -Name: a name could match several checkpoints and the verb would act on each of them.
        row = self._snapshot_row(uuid, name)
        return [Step("Get-VMSnapshot", {"Id": _guid(row.get("Id"))})], row

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        steps, row = self._snapshot_steps(uuid, name)
        has_memory = enum_name(row.get("State"), VMSTATE_NAMES) in _MEMORY_STATES
        if self.status(uuid).state in (PowerState.RUNNING, PowerState.PAUSED):
            # Reverting discards the current state anyway; powering off first works on every Hyper-V version.
            self.stop(uuid, deadline)
        self._run(
            [*steps, _then("Restore-VMSnapshot", Confirm=False)],
            doing=f"reverting to checkpoint {name!r} (Restore-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )
        if has_memory and self.status(uuid).state is PowerState.SAVED:
            self.start(uuid, deadline)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        parameters: dict[str, Any] = {"IncludeAllChildSnapshots": SWITCH} if children else {}
        steps, _ = self._snapshot_steps(uuid, name)
        self._run(
            [*steps, _then("Remove-VMSnapshot", **parameters)],
            doing=f"deleting checkpoint {name!r} (Remove-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )

    # -- devices and guest ----------------------------------------------------------------------------------------
    def _drives(self, uuid: str) -> list[tuple[str, Row]]:
        rows = self._run(
            [_vm(uuid), _then("Get-VMHardDiskDrive")],
            doing="listing the VM's disks",
            vm=uuid,
            select=("ControllerType", "ControllerNumber", "ControllerLocation", "Path"),
        )
        return [(_target(row), row) for row in rows]

    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        generation = int(self._vm_row(uuid, ("Generation",)).get("Generation") or 1)
        _check_disk(disk, generation)
        bus = _controller(disk, generation, boot=False)
        created: list[str] = []
        steps: list[Step] = []
        path = disk.image
        if path is None:
            assert disk.size_mib is not None
            path = self._new_vhd_path(uuid, disk)
            created.append(path)
            steps.append(Step("New-VHD", {"Path": path, "SizeBytes": disk.size_mib * MiB, "Dynamic": SWITCH}))
        steps += [_vm(uuid), _then("Add-VMHardDiskDrive", Path=path, ControllerType=bus, Passthru=SWITCH)]
        try:
            rows = self._run(
                steps,
                doing="attaching a disk (Add-VMHardDiskDrive)",
                vm=uuid,
                select=("ControllerType", "ControllerNumber", "ControllerLocation"),
            )
        except PolyvisorError:
            self._remove_files(created)
            raise
        if not rows:
            raise PolyvisorError("Add-VMHardDiskDrive returned no drive", host=self.host, vm=uuid)
        return _target(rows[0])

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        drives = dict(self._drives(uuid))
        if target not in drives:
            known = ", ".join(sorted(drives)) or "none"
            raise NotFoundError(f"no disk at {target!r} (disks: {known})", host=self.host, vm=uuid)
        kind, number, location = target.split(":")
        self._run(
            [
                _vm(uuid),
                _then(
                    "Get-VMHardDiskDrive",
                    ControllerType=kind,
                    ControllerNumber=int(number),
                    ControllerLocation=int(location),
                ),
                _then("Remove-VMHardDiskDrive"),
            ],
            doing=f"detaching disk {target} (Remove-VMHardDiskDrive)",
            vm=uuid,
        )

    def _adapters(self, uuid: str) -> list[Row]:
        return self._run(
            [_vm(uuid), _then("Get-VMNetworkAdapter")],
            doing="listing network adapters",
            vm=uuid,
            select=("Name", "MacAddress", "SwitchName", "IPAddresses"),
        )

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        generation = int(self._vm_row(uuid, ("Generation",)).get("Generation") or 1)
        parameters = _nic_parameters(nic, generation)
        self._verb(uuid, "Add-VMNetworkAdapter", "adding a network adapter (Add-VMNetworkAdapter)", None, **parameters)
        return colon_mac(parameters["StaticMacAddress"])

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        adapters = self._adapters(uuid)
        match = [row for row in adapters if colon_mac(_text(row.get("MacAddress"))) == mac.lower()]
        if not match:
            raise NotFoundError(f"no network adapter with MAC {mac}", host=self.host, vm=uuid)
        name = _text(match[0].get("Name"))
        if sum(1 for row in adapters if _text(row.get("Name")) == name) > 1:
            raise PolyvisorError(
                f"several adapters are named {name!r}, so the one with MAC {mac} cannot be removed alone; rename it "
                "on the host with Rename-VMNetworkAdapter",
                host=self.host,
                vm=uuid,
            )
        self._run(
            [_vm(uuid), _then("Get-VMNetworkAdapter", Name=wildcard_literal(name)), _then("Remove-VMNetworkAdapter")],
            doing=f"removing network adapter {mac} (Remove-VMNetworkAdapter)",
            vm=uuid,
        )

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        # Hyper-V learns guest addresses from its integration services (KVP), whichever source was asked for.
        out = []
        for row in self._adapters(uuid):
            addresses = row.get("IPAddresses") or []
            if isinstance(addresses, str):
                addresses = [addresses]
            mac = colon_mac(_text(row.get("MacAddress"))) or None
            for address in addresses:
                out.append(GuestAddress(_text(row.get("Name")), mac, str(address), None, "hypervisor"))
        return out


def _target(row: Row) -> str:
    kind = enum_name(row.get("ControllerType"), CONTROLLER_TYPES)
    return f"{kind}:{int(row.get('ControllerNumber') or 0)}:{int(row.get('ControllerLocation') or 0)}"


def _check_spec(spec: VMSpec) -> None:
    """Refuse what Hyper-V cannot do, before anything is created."""
    if spec.arch not in (None, Architecture.X86_64):
        raise ValidationError(f"Hyper-V runs x86_64 guests only, not {spec.arch}", field="arch")
    if spec.memory_mib < 32 or spec.memory_mib % 2:
        raise ValidationError(
            f"Hyper-V needs startup memory of at least 32 MiB in multiples of 2 MiB, got {spec.memory_mib}",
            field="memory_mib",
        )
    for disk in spec.disks:
        _check_disk(disk, spec.generation)
    for nic in spec.nics:
        _nic_parameters(nic, spec.generation)


def _check_disk(disk: DiskSpec, generation: int) -> None:
    if disk.format in (DiskFormat.QCOW2, DiskFormat.RAW):
        raise ValidationError(f"Hyper-V disks are VHDX or VHD, not {disk.format}", field="disk.format")
    if disk.pool is not None:
        raise ValidationError(
            "Hyper-V has no storage pools; new disks go to the host's VirtualHardDiskPath", field="disk.pool"
        )
    if disk.readonly:
        raise UnsupportedError("Hyper-V cannot attach a disk read-only", feature=Feature.READONLY_DISK)
    if disk.bus is DiskBus.SATA:
        raise ValidationError("Hyper-V has no SATA bus; use scsi (or virtio) or ide", field="disk.bus")
    if disk.bus is DiskBus.IDE and generation == 2:
        raise ValidationError("generation 2 (UEFI) VMs have no IDE bus; use scsi", field="disk.bus")


def _controller(disk: DiskSpec, generation: int, *, boot: bool) -> str:
    if disk.bus is DiskBus.IDE:
        return "IDE"
    # Generation 1 BIOS boots from IDE only, so its first disk goes there unless SCSI was asked for by name.
    if generation == 1 and boot and disk.bus is DiskBus.VIRTIO:
        return "IDE"
    return "SCSI"


def _nic_parameters(nic: NicSpec, generation: int) -> dict[str, Any]:
    mac = hyperv_mac(nic.mac or _random_mac())
    # A name of its own lets detach_nic remove exactly this adapter: Hyper-V names them all "Network Adapter".
    parameters: dict[str, Any] = {"Name": f"nic-{mac.lower()}", "StaticMacAddress": mac}
    if nic.model == "legacy":
        if generation != 1:
            raise ValidationError("legacy network adapters exist on generation 1 (BIOS) VMs only", field="nic.model")
        parameters["IsLegacy"] = True
    elif nic.model not in _SYNTHETIC_NIC_MODELS:
        raise ValidationError(
            f"Hyper-V NIC models are 'virtio' (synthetic, the default) or 'legacy', not {nic.model!r}",
            field="nic.model",
        )
    if nic.network is not None:
        parameters["SwitchName"] = nic.network
    return parameters
