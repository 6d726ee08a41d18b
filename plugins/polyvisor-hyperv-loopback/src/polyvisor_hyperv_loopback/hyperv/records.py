"""The records of the in-memory Hyper-V host: VMs, their configuration, checkpoints, drives, adapters and switches.

Also the values every part of the host shares: the guest behaviours (the test hook).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field

from .labels import read_labels

__all__ = [
    "DEFAULT_SWITCH_ID",
    "GUEST_BEHAVIOURS",
    "GUEST_IGNORES_SHUTDOWN",
    "GUEST_LABEL",
    "GUEST_NO_KVP",
    "GUEST_NO_SHUTDOWN_SERVICE",
    "GUEST_RESPONSIVE",
    "SECURE_BOOT_TEMPLATES",
    "TRANSITIONAL",
    "VHD_ROOT",
    "VM_ROOT",
    "AlreadyInState",
    "DvdDriveRecord",
    "GiB",
    "HardDiskRecord",
    "MiB",
    "NetAdapterRecord",
    "NetworkAdapterRecord",
    "SnapshotRecord",
    "SwitchRecord",
    "VMConfig",
    "VMRecord",
    "all_drives",
    "guest_label",
]

GiB = 1024**3
MiB = 1024**2
# The well-known Id of Hyper-V's "Default Switch".
DEFAULT_SWITCH_ID = uuid.UUID("c08cb7b8-9b3c-408e-8e30-5e16a3aeb444")
VM_ROOT = "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V"
VHD_ROOT = "C:\\ProgramData\\Microsoft\\Windows\\Virtual Hard Disks"
SECURE_BOOT_TEMPLATES = {
    "MicrosoftWindows": uuid.UUID("1734c6e8-3154-4dda-ba5f-a874cc483422"),
    "MicrosoftUEFICertificateAuthority": uuid.UUID("272e7447-90a4-4563-a4b9-8e4ab00526ce"),
    "OpenSourceShieldedVM": uuid.UUID("4292ae2b-ee2c-42b5-a969-dd8f8689f6f3"),
}
TRANSITIONAL = frozenset({"Starting", "Stopping", "Saving", "Pausing", "Resuming", "Reset"})

#: The polyvisor label (in the VM's Notes) that picks the guest's behaviour: the test hook.
GUEST_LABEL = "polyvisor.test/guest"
GUEST_RESPONSIVE = "responsive"
GUEST_IGNORES_SHUTDOWN = "ignore-shutdown"
GUEST_NO_SHUTDOWN_SERVICE = "no-shutdown-service"
GUEST_NO_KVP = "no-kvp"
#: How a guest answers Hyper-V's integration services:
#: ``responsive`` shuts down; ``ignore-shutdown`` accepts the request and never shuts down (Stop-VM blocks until
#: it is stopped or ``guest_shutdown_timeout`` passes); ``no-shutdown-service`` does not answer the integration
#: service at all (Stop-VM prompts to turn the VM off: without -Force that fails on a non-interactive host);
#: ``no-kvp`` shuts down when asked but runs no KVP daemon, so Hyper-V never learns its IP addresses.
GUEST_BEHAVIOURS = frozenset({GUEST_RESPONSIVE, GUEST_IGNORES_SHUTDOWN, GUEST_NO_SHUTDOWN_SERVICE, GUEST_NO_KVP})


def guest_label(notes: str) -> str | None:
    """Return the ``polyvisor.test/guest`` label held in a Notes value, if any."""
    return read_labels(notes).get(GUEST_LABEL)


class AlreadyInState(Exception):
    """The VM already is in the state the verb asks for: the cmdlet warns and does nothing."""

    def __init__(self, vm_name: str) -> None:
        super().__init__(f"The virtual machine '{vm_name}' is already in the specified state.")
        self.message = str(self)


@dataclass
class HardDiskRecord:
    """A virtual hard disk drive on a controller slot."""

    controller_type: str  # IDE | SCSI
    controller_number: int
    controller_location: int
    path: str | None
    disk_number: int | None = None  # a pass-through (physical) disk: ``path`` is None, Hyper-V shows its name


@dataclass
class DvdDriveRecord:
    """A virtual DVD drive, empty or holding an ISO."""

    controller_type: str
    controller_number: int
    controller_location: int
    path: str | None


@dataclass
class NetworkAdapterRecord:
    """A synthetic (or legacy) network adapter."""

    adapter_id: uuid.UUID
    name: str
    switch_name: str | None
    mac: str | None  # None: dynamic MAC not assigned yet (Hyper-V shows 000000000000 until first start)
    dynamic_mac: bool = True
    is_legacy: bool = False


@dataclass
class VMConfig:
    """The part of a VM that a checkpoint captures and a restore brings back."""

    processor_count: int = 1
    memory_startup: int = 1 * GiB
    dynamic_memory: bool = False
    memory_minimum: int = 512 * MiB
    memory_maximum: int = 1024 * GiB
    memory_buffer: int = 20
    memory_priority: int = 50
    notes: str = ""
    checkpoint_type: str = "Production"
    automatic_stop_action: str = "Save"
    automatic_start_action: str = "StartIfRunning"
    secure_boot: bool = False
    secure_boot_template: str = "MicrosoftWindows"
    key_protector: bytes | None = None
    """Set-VMKeyProtector's key protector (a local one: random bytes); Enable-VMTPM needs one."""
    tpm_enabled: bool = False
    expose_virtualization_extensions: bool = False
    assigned_devices: list[str] = field(default_factory=list)
    """Location paths of the host devices assigned to the VM (Discrete Device Assignment)."""
    hard_drives: list[HardDiskRecord] = field(default_factory=list)
    dvd_drives: list[DvdDriveRecord] = field(default_factory=list)
    network_adapters: list[NetworkAdapterRecord] = field(default_factory=list)


@dataclass
class SnapshotRecord:
    """A checkpoint: configuration plus the power state it captured ('Off' or 'Saved')."""

    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    created: datetime.datetime
    config: VMConfig
    captured_state: str
    production: bool


@dataclass
class VMRecord:
    """One virtual machine."""

    id: uuid.UUID
    name: str
    generation: int
    version: str
    path: str
    created: datetime.datetime
    config: VMConfig
    state: str = "Off"
    snapshots: dict[uuid.UUID, SnapshotRecord] = field(default_factory=dict)
    current_snapshot_id: uuid.UUID | None = None
    started_at: float | None = None
    op_token: object | None = None
    guest: str = GUEST_RESPONSIVE

    def uptime(self, now: float) -> datetime.timedelta:
        """Return how long the guest has been running (zero unless Running or Paused)."""
        if self.started_at is None or self.state not in {"Running", "Paused", "Pausing", "Resuming"}:
            return datetime.timedelta(0)
        return datetime.timedelta(seconds=int(now - self.started_at))


@dataclass
class SwitchRecord:
    """A virtual switch."""

    id: uuid.UUID
    name: str
    switch_type: str  # Private | Internal | External
    notes: str = ""
    net_adapter: str | None = None
    """The InterfaceDescription of the physical adapter an External switch is bound to."""
    allow_management_os: bool = True
    """Whether the host shares an External switch's adapter (a vEthernet adapter of its own); Internal: always."""


@dataclass
class NetAdapterRecord:
    """A physical network adapter of the host (Get-NetAdapter -Physical)."""

    name: str
    interface_description: str
    mac_address: str


def all_drives(vm: VMRecord) -> list[HardDiskRecord | DvdDriveRecord]:
    """Return the VM's hard disk and DVD drives."""
    return [*vm.config.hard_drives, *vm.config.dvd_drives]
