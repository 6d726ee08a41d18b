"""Creating, deleting and the power verbs: one cmdlet each, bounded by the verb's Deadline."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import PolyvisorError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.model import Architecture, BootDevice, Feature, NicKind, ShutdownMode, VMInfo, VMSpec
from polyvisor.provisioning.nat import with_nat_addresses
from polyvisor_hyperv.client import HyperVClient, MiB, as_guid, as_text, then, vm_step
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.devices import check_disk, controller, nic_parameters
from polyvisor_hyperv.hardware import check_hardware, hardware_steps
from polyvisor_hyperv.images import Images
from polyvisor_hyperv.inventory import Inventory
from polyvisor_hyperv.nat import NAT_LABEL, NatNics, NatPlan, nat_label
from polyvisor_hyperv.notes import join_notes
from polyvisor_hyperv.storage import CHECKPOINT_DISK, Storage
from polyvisor_hyperv.transport import Row

__all__ = ["Lifecycle", "check_spec"]

# Generation 1 BIOS device names, in Hyper-V's default order.
_BIOS_ORDER = ("CD", "IDE", "LegacyNetworkAdapter", "Floppy")
_BIOS_NAMES = {BootDevice.CDROM: "CD", BootDevice.DISK: "IDE", BootDevice.NETWORK: "LegacyNetworkAdapter"}
# Stop-VM's "turn it off instead?" prompt, failed in a session that cannot prompt (PSRP without a host UI, or
# powershell.exe -NonInteractive on the WinRM shell).
_PROMPT_FAILED = re.compile(r"does not support user interaction|NonInteractive mode", re.IGNORECASE)
_MERGE_POLL = 0.25


class Lifecycle:
    """A VM from creation to deletion."""

    def __init__(
        self, client: HyperVClient, inventory: Inventory, storage: Storage, images: Images, nat: NatNics
    ) -> None:
        self._client = client
        self._inventory = inventory
        self._storage = storage
        self._images = images
        self._nat = nat

    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        check_spec(spec)
        bases = self._images.inspect(spec)  # a missing base raises here, before anything exists
        nat = self._nat.plan(spec, deadline)  # so do the NAT's refusals (a port mapped already, one NAT per host)
        if nat is None:
            return self._create(spec, deadline, bases, None)
        self._nat.prepare(nat, deadline)
        try:
            return self._create(nat.spec, deadline, bases, nat)
        except BaseException:
            self._nat.roll_back(nat)
            raise

    def _create(self, spec: VMSpec, deadline: Deadline, bases: dict[str, Row], nat: NatPlan | None) -> VMInfo:
        generation = spec.generation
        rows = self._client.run(
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
            raise PolyvisorError("New-VM returned no VM", host=self._client.host, vm=spec.name)
        uuid = as_guid(rows[0].get("Id"))
        created_vhds: list[str] = []
        try:
            steps = self._configuration_steps(uuid, spec, created_vhds, bases, nat) + hardware_steps(uuid, spec)
            self._client.run(steps, doing=f"configuring new VM {spec.name!r}", vm=spec.name, deadline=deadline)
            if spec.cloud_init is not None:
                cloud_init = with_nat_addresses(spec.cloud_init, nat.addresses if nat else ())
                created_vhds.append(self._images.seed(uuid, cloud_init, deadline))
                self._client.run(
                    Images.seed_steps(uuid, created_vhds[-1], spec),
                    doing="inserting the cloud-init seed (DVD drive)",
                    vm=spec.name,
                    deadline=deadline,
                )
            if nat is not None:
                self._nat.map(nat, deadline)
            return self._inventory.info(uuid)
        except BaseException:
            self._roll_back(uuid, created_vhds)
            raise

    def _configuration_steps(
        self, uuid: str, spec: VMSpec, created_vhds: list[str], bases: dict[str, Row], nat: NatPlan | None
    ) -> list[Step]:
        vm = vm_step(uuid)
        settings: dict[str, Any] = {"ProcessorCount": spec.cpus}
        labels = {**spec.labels, NAT_LABEL: nat.label()} if nat is not None else spec.labels
        notes = join_notes(spec.description, labels)
        if notes:
            settings["Notes"] = notes
        steps = [vm, then("Set-VM", **settings), vm, then("Set-VMMemory", **memory_parameters(spec))]
        if spec.generation == 2:
            steps += [vm, then("Set-VMFirmware", EnableSecureBoot="On" if spec.secure_boot else "Off")]
        # New-VM adds one unconnected adapter; the spec's NICs replace it.
        steps += [vm, then("Get-VMNetworkAdapter"), then("Remove-VMNetworkAdapter")]
        groups: dict[BootDevice, list[Step]] = {BootDevice.DISK: [], BootDevice.CDROM: [], BootDevice.NETWORK: []}
        for index, disk in enumerate(spec.disks):
            bus = controller(disk, spec.generation, boot=index == 0)
            path = disk.image
            if disk.clone is not None:
                base = bases[str(disk.image)]
                path = self._storage.new_vhd_path(uuid, disk, Images.clone_extension(base))
                created_vhds.append(path)
                groups[BootDevice.DISK] += self._images.clone_steps(disk, base, path)
            elif path is None:
                path = self._storage.new_vhd_path(uuid, disk)
                created_vhds.append(path)
                assert disk.size_mib is not None
                groups[BootDevice.DISK].append(
                    Step("New-VHD", {"Path": path, "SizeBytes": disk.size_mib * MiB, "Dynamic": SWITCH})
                )
            groups[BootDevice.DISK] += [vm, then("Add-VMHardDiskDrive", Path=path, ControllerType=bus)]
        if spec.cdrom is not None and spec.generation == 1:
            # New-VM already gave a Generation 1 VM an empty DVD drive at IDE 1:0 (Commands/NewVM.cs).
            groups[BootDevice.CDROM] += [
                vm,
                then("Get-VMDvdDrive"),
                then("Set-VMDvdDrive", Path=spec.cdrom),
            ]
        elif spec.cdrom is not None:
            groups[BootDevice.CDROM] += [vm, then("Add-VMDvdDrive", Path=spec.cdrom)]
        for nic in spec.nics:
            parameters = nic_parameters(nic, spec.generation)
            if nic.kind is NicKind.NAT and nat is not None:
                parameters["SwitchName"] = nat.switch
            groups[BootDevice.NETWORK] += [vm, then("Add-VMNetworkAdapter", **parameters)]
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
                steps += [vm, then("Set-VMBios", StartupOrder=bios)]
        return steps

    def _roll_back(self, uuid: str, vhds: Sequence[str]) -> None:
        """Remove a half-created VM and the disks created for it; failures here must not hide the first one."""
        with contextlib.suppress(PolyvisorError):
            self._client.run(
                [vm_step(uuid), then("Remove-VM", Force=SWITCH)], doing="rolling back a failed create", vm=uuid
            )
        self._storage.delete_files(vhds)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Remove the VM (``Remove-VM`` leaves every disk file behind) and, with ``storage``, its disk files.

        The files are collected before the VM goes: its drives' files, every checkpoint's drives' files, and each
        one's chain of parents (``Get-VHD`` ParentPath), so the base disks and the .avhdx files of every checkpoint
        branch go too. They are removed children first. A file another VM still uses, through a drive, a
        checkpoint's drive or its chain of parents, stays. A file already gone is fine; any other file that cannot
        be removed raises BackendError naming every file left behind, after all of them were tried.
        """
        files: list[str] = []
        # The cloud-init seed is the VM's own, with or without storage (named after its Id); so are its mappings.
        seeds = self._images.seed_files(uuid, deadline)
        nat = nat_label(as_text(self._client.vm_row(uuid, ("Notes",), deadline).get("Notes")))
        if storage:
            files = self._storage.disk_files(
                [vm_step(uuid)], doing="listing the VM's disk files", vm=uuid, deadline=deadline
            )
            self._merge_checkpoints(uuid, deadline)
        # -Force: Remove-VM asks ShouldContinue, which -Confirm:$false does not answer (Commands/RemoveVM.cs).
        self._client.verb(uuid, "Remove-VM", "deleting the VM (Remove-VM)", deadline, Force=SWITCH)
        self._nat.release(nat, uuid, deadline)
        if files:
            # The VM is gone now, so every VM Get-VM lists is another one.
            shared = {
                path.casefold()
                for path in self._storage.disk_files([Step("Get-VM")], doing="listing disks in use", every_parent=True)
            }
            self._storage.delete_disks([path for path in files if path.casefold() not in shared], uuid)
        if seeds:
            self._storage.delete_disks(seeds, uuid)

    def _merge_checkpoints(self, uuid: str, deadline: Deadline) -> None:
        """Remove the VM's checkpoints and wait until their disks are merged, bounded by ``deadline``.

        Remove-VM deletes checkpoints and merges their disks after it returns (Remove-VM.md), holding the files
        open meanwhile, so deleting them right after fails. Removing the checkpoints first and waiting until no
        drive points at a checkpoint's differencing disk (``<disk>_<GUID>.avhdx``) any more avoids that.
        """
        if not self._client.run(
            [vm_step(uuid), then("Get-VMSnapshot")], doing="listing checkpoints", vm=uuid, select=("Id",)
        ):
            return
        pending = self._checkpoint_disks(uuid, deadline)
        self._client.run(
            [vm_step(uuid), then("Get-VMSnapshot"), then("Remove-VMSnapshot")],
            doing="deleting the VM's checkpoints (Remove-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )
        while pending & self._checkpoint_disks(uuid, deadline):
            deadline.check("waiting for the checkpoint disks to merge", host=self._client.host, vm=uuid)
            time.sleep(min(_MERGE_POLL, deadline.remaining()))

    def _checkpoint_disks(self, uuid: str, deadline: Deadline) -> set[str]:
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMHardDiskDrive")],
            doing="reading the VM's disks",
            vm=uuid,
            select=("Path",),
            deadline=deadline,
        )
        paths = (as_text(row.get("Path")) for row in rows)
        return {path.casefold() for path in paths if CHECKPOINT_DISK.search(path)}

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(uuid, "Start-VM", "starting the VM (Start-VM)", deadline)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        self._shutdown(uuid, "shutting the guest down (Stop-VM)", deadline)

    def _shutdown(self, uuid: str, doing: str, deadline: Deadline) -> None:
        # Never -Force: it answers "turn it off?" with yes when the guest does not answer; see Stop-VM.md
        # (MicrosoftDocs/windows-powershell-docs, docset/winserver2022-ps/hyper-v), quoted in backend.py.
        try:
            self._client.verb(uuid, "Stop-VM", doing, deadline)
        except PolyvisorError as error:
            if isinstance(error, TimeoutError) or not _PROMPT_FAILED.search(str(error)):
                raise
            raise UnsupportedError(
                "the guest does not answer Hyper-V's shutdown integration service, so it cannot be shut down "
                "gracefully, and Hyper-V offered only to turn it off; the VM was left running. Enable the guest's "
                "shutdown integration service (Enable-VMIntegrationService -Name Shutdown) or power it off with "
                "stop()",
                feature=Feature.SHUTDOWN_AGENT,
                host=self._client.host,
                vm=uuid,
            ) from error

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(
            uuid, "Stop-VM", "powering the VM off (Stop-VM -TurnOff)", deadline, TurnOff=SWITCH, Force=SWITCH
        )

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """A graceful reboot composed of a guest shutdown and a start: Hyper-V has no guest-reboot cmdlet
        (``Restart-VM`` is a hard reset). The guest shuts down through its integration services, so it loses
        nothing, and the VM powers on again; it is a cold restart where libvirt's is a warm one."""
        self._shutdown(uuid, "shutting the guest down to reboot it (Stop-VM)", deadline)
        self._client.verb(uuid, "Start-VM", "starting the VM again after its shutdown (Start-VM)", deadline)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(uuid, "Restart-VM", "resetting the VM (Restart-VM -Force)", deadline, Force=SWITCH)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(uuid, "Suspend-VM", "pausing the VM (Suspend-VM)", deadline)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(uuid, "Resume-VM", "resuming the VM (Resume-VM)", deadline)

    def save(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(uuid, "Save-VM", "saving the VM (Save-VM)", deadline)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        self._client.verb(uuid, "Remove-VMSavedState", "discarding saved state (Remove-VMSavedState)", deadline)


def check_spec(spec: VMSpec) -> None:
    """Refuse what Hyper-V cannot do, before anything is created."""
    if spec.arch not in (None, Architecture.X86_64):
        raise ValidationError(f"Hyper-V runs x86_64 guests only, not {spec.arch}", field="arch")
    if spec.memory_mib < 32 or spec.memory_mib % 2:
        raise ValidationError(
            f"Hyper-V needs startup memory of at least 32 MiB in multiples of 2 MiB, got {spec.memory_mib}",
            field="memory_mib",
        )
    memory = spec.dynamic_memory
    if memory is not None:
        for name, value in (("minimum_mib", memory.minimum_mib), ("maximum_mib", memory.maximum_mib)):
            if value < 32 or value % 2:
                raise ValidationError(
                    f"Hyper-V needs dynamic memory's {name} to be at least 32 MiB in multiples of 2 MiB, got {value}",
                    field=f"dynamic_memory.{name}",
                )
        if memory.maximum_mib > 1024 * 1024:
            raise ValidationError("Hyper-V's maximum memory is 1 TB (1048576 MiB)", field="dynamic_memory.maximum_mib")
    for disk in spec.disks:
        check_disk(disk, spec.generation)
    for nic in spec.nics:
        nic_parameters(nic, spec.generation)
    check_hardware(spec)


def memory_parameters(spec: VMSpec) -> dict[str, Any]:
    """Set-VMMemory's parameters for a spec: dynamic memory with its range (and buffer), or static memory said
    explicitly, so the VM does not depend on the host's default."""
    memory = spec.dynamic_memory
    if memory is None:
        return {"DynamicMemoryEnabled": False}
    parameters: dict[str, Any] = {
        "DynamicMemoryEnabled": True,
        "MinimumBytes": memory.minimum_mib * MiB,
        "MaximumBytes": memory.maximum_mib * MiB,
    }
    if memory.buffer_percent is not None:
        parameters["Buffer"] = memory.buffer_percent
    return parameters
