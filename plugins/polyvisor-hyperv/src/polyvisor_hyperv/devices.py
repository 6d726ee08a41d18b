"""Disks and NICs of an existing VM."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from polyvisor.backend_helpers import random_mac
from polyvisor.errors import NotFoundError, PolyvisorError, UnsupportedError, ValidationError
from polyvisor.model import DiskBus, DiskFormat, DiskSpec, Feature, NicSpec
from polyvisor_hyperv.client import HyperVClient, MiB, as_text, then, vm_step
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.states import enum_name
from polyvisor_hyperv.storage import Storage
from polyvisor_hyperv.transport import Row

__all__ = [
    "Devices",
    "check_disk",
    "colon_mac",
    "controller",
    "drive_target",
    "hyperv_mac",
    "nic_parameters",
    "wildcard_literal",
]

CONTROLLER_TYPES = MappingProxyType({0: "IDE", 1: "SCSI", 2: "PMEM"})
_MAC_PREFIX = "00:15:5d"  # Microsoft's, which Hyper-V gives the MACs it assigns; the backend's choices carry it too
_SYNTHETIC_NIC_MODELS = {"virtio", "synthetic", "netvsc"}


class Devices:
    """Drives and network adapters."""

    def __init__(self, client: HyperVClient, storage: Storage) -> None:
        self._client = client
        self._storage = storage

    def drives(self, uuid: str) -> list[tuple[str, Row]]:
        """The VM's hard disk drives by target name (``SCSI:0:1``), with ControllerType/Number/Location and Path."""
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMHardDiskDrive")],
            doing="listing the VM's disks",
            vm=uuid,
            select=("ControllerType", "ControllerNumber", "ControllerLocation", "Path"),
        )
        return [(drive_target(row), row) for row in rows]

    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        generation = int(self._client.vm_row(uuid, ("Generation",)).get("Generation") or 1)
        check_disk(disk, generation)
        bus = controller(disk, generation, boot=False)
        created: list[str] = []
        steps: list[Step] = []
        path = disk.image
        if path is None:
            assert disk.size_mib is not None
            path = self._storage.new_vhd_path(uuid, disk)
            created.append(path)
            steps.append(Step("New-VHD", {"Path": path, "SizeBytes": disk.size_mib * MiB, "Dynamic": SWITCH}))
        steps += [vm_step(uuid), then("Add-VMHardDiskDrive", Path=path, ControllerType=bus, Passthru=SWITCH)]
        try:
            rows = self._client.run(
                steps,
                doing="attaching a disk (Add-VMHardDiskDrive)",
                vm=uuid,
                select=("ControllerType", "ControllerNumber", "ControllerLocation"),
            )
        except PolyvisorError:
            self._storage.delete_files(created)
            raise
        if not rows:
            raise PolyvisorError("Add-VMHardDiskDrive returned no drive", host=self._client.host, vm=uuid)
        return drive_target(rows[0])

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        drives = dict(self.drives(uuid))
        if target not in drives:
            known = ", ".join(sorted(drives)) or "none"
            raise NotFoundError(f"no disk at {target!r} (disks: {known})", host=self._client.host, vm=uuid)
        kind, number, location = target.split(":")
        self._client.run(
            [
                vm_step(uuid),
                then(
                    "Get-VMHardDiskDrive",
                    ControllerType=kind,
                    ControllerNumber=int(number),
                    ControllerLocation=int(location),
                ),
                then("Remove-VMHardDiskDrive"),
            ],
            doing=f"detaching disk {target} (Remove-VMHardDiskDrive)",
            vm=uuid,
        )

    def adapters(self, uuid: str) -> list[Row]:
        """The VM's network adapters: Name, MacAddress, SwitchName and the IPAddresses KVP reported."""
        return self._client.run(
            [vm_step(uuid), then("Get-VMNetworkAdapter")],
            doing="listing network adapters",
            vm=uuid,
            select=("Name", "MacAddress", "SwitchName", "IPAddresses"),
        )

    def _require_nic_hotplug(self, uuid: str, generation: int, live: bool) -> None:
        """Network adapters are hot added and removed on Generation 2 VMs only (MicrosoftDocs/windowsserverdocs
        What-s-new-in-Hyper-V-on-Windows.md, "Hot add and remove for network adapters and memory")."""
        if live and generation == 1:
            raise UnsupportedError(
                "a generation 1 VM cannot add or remove network adapters while it runs; stop it first",
                feature=Feature.NIC_HOTPLUG,
                host=self._client.host,
                vm=uuid,
            )

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        generation = int(self._client.vm_row(uuid, ("Generation",)).get("Generation") or 1)
        self._require_nic_hotplug(uuid, generation, live)
        parameters = nic_parameters(nic, generation)
        self._client.verb(
            uuid, "Add-VMNetworkAdapter", "adding a network adapter (Add-VMNetworkAdapter)", None, **parameters
        )
        return colon_mac(parameters["StaticMacAddress"])

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        generation = int(self._client.vm_row(uuid, ("Generation",)).get("Generation") or 1)
        self._require_nic_hotplug(uuid, generation, live)
        adapters = self.adapters(uuid)
        match = [row for row in adapters if colon_mac(as_text(row.get("MacAddress"))) == mac.lower()]
        if not match:
            raise NotFoundError(f"no network adapter with MAC {mac}", host=self._client.host, vm=uuid)
        name = as_text(match[0].get("Name"))
        # -Name matches case-insensitively (ParameterResolvers.cs FilterNetworkAdaptersByName), so "LAN" is "Lan".
        if sum(1 for row in adapters if as_text(row.get("Name")).casefold() == name.casefold()) > 1:
            raise PolyvisorError(
                f"several adapters are named {name!r}, so the one with MAC {mac} cannot be removed alone; rename it "
                "on the host with Rename-VMNetworkAdapter",
                host=self._client.host,
                vm=uuid,
            )
        self._client.run(
            [vm_step(uuid), then("Get-VMNetworkAdapter", Name=wildcard_literal(name)), then("Remove-VMNetworkAdapter")],
            doing=f"removing network adapter {mac} (Remove-VMNetworkAdapter)",
            vm=uuid,
        )


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


def drive_target(row: Row) -> str:
    kind = enum_name(row.get("ControllerType"), CONTROLLER_TYPES)
    return f"{kind}:{int(row.get('ControllerNumber') or 0)}:{int(row.get('ControllerLocation') or 0)}"


def check_disk(disk: DiskSpec, generation: int) -> None:
    if disk.disk_format in (DiskFormat.QCOW2, DiskFormat.RAW):
        raise ValidationError(f"Hyper-V disks are VHDX or VHD, not {disk.disk_format}", field="disk.disk_format")
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


def controller(disk: DiskSpec, generation: int, *, boot: bool) -> str:
    if disk.bus is DiskBus.IDE:
        return "IDE"
    # Generation 1 BIOS boots from IDE only, so its first disk goes there unless SCSI was asked for by name.
    if generation == 1 and boot and disk.bus is DiskBus.VIRTIO:
        return "IDE"
    return "SCSI"


def nic_parameters(nic: NicSpec, generation: int) -> dict[str, Any]:
    mac = hyperv_mac(nic.mac or random_mac(_MAC_PREFIX))
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
