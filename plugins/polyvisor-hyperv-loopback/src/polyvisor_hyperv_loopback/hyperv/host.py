"""The in-memory Hyper-V host: VMs, their power state machine, checkpoints, disks, NICs and switches.

Every public method is thread-safe (one condition variable guards the whole host) and raises ``HostError`` with
the error id, category and message Hyper-V reports. State changes pass through the transitional states Hyper-V
shows (Starting, Stopping, Saving, Pausing, Resuming, Reset) for ``delays[state]`` seconds, with the lock released
so that a concurrent Get-VM observes them; the caller blocks until the target state is reached, as the cmdlets do.
Behaviour that cannot be driven through cmdlets (the transition timings, files placed on the host) is reachable
through the Python API only. How the guest answers a shutdown request (:data:`GUEST_BEHAVIOURS`) is set through the
Python API, or by the test hook described in the package docstring: the ``polyvisor.test/guest`` label in Notes.

:class:`HyperVHost` is the one face of the host: it holds the shared state (:mod:`.state`) and hands
each verb to the room that models it, in this package: ``lifecycle`` (New-VM, Set-VM, Remove-VM),
``power`` (the state machine), ``checkpoints``, ``disks`` (VHD files, chains, merges), ``drives``, ``network``
and ``guest`` (shutdown and KVP behaviour).
"""

from __future__ import annotations

import threading
import uuid

from .checkpoints import Checkpoints
from .disks import VirtualDisks
from .drives import Drives
from .filesystem import FileEntry
from .guest import GuestSimulation
from .lifecycle import VMLifecycle, require_generation_2
from .network import Network
from .power import PowerStates
from .records import (
    DEFAULT_SWITCH_ID,
    GUEST_BEHAVIOURS,
    GUEST_LABEL,
    SECURE_BOOT_TEMPLATES,
    AlreadyInState,
    DvdDriveRecord,
    GiB,
    HardDiskRecord,
    NetworkAdapterRecord,
    SnapshotRecord,
    SwitchRecord,
    VMConfig,
    VMRecord,
)
from .state import HostState

__all__ = [
    "DEFAULT_SWITCH_ID",
    "GUEST_BEHAVIOURS",
    "GUEST_LABEL",
    "SECURE_BOOT_TEMPLATES",
    "AlreadyInState",
    "DvdDriveRecord",
    "HardDiskRecord",
    "HyperVHost",
    "NetworkAdapterRecord",
    "SnapshotRecord",
    "SwitchRecord",
    "VMConfig",
    "VMRecord",
    "require_generation_2",
]


class HyperVHost(HostState):
    """A Windows Hyper-V host held in memory. Share one instance between connections."""

    def __init__(
        self,
        *,
        computer_name: str = "HV-LOOPBACK",
        domain: str = "WORKGROUP",
        logical_processor_count: int = 8,
        memory_capacity: int = 32 * GiB,
        transition_delay: float = 0.05,
        guest_shutdown_timeout: float = 30.0,
        cmdlet_latency: float = 0.0,
        merge_delay: float = 0.2,
        kvp_delay: float = 3.0,
    ) -> None:
        super().__init__(
            computer_name=computer_name,
            domain=domain,
            logical_processor_count=logical_processor_count,
            memory_capacity=memory_capacity,
            transition_delay=transition_delay,
            guest_shutdown_timeout=guest_shutdown_timeout,
            cmdlet_latency=cmdlet_latency,
            merge_delay=merge_delay,
            kvp_delay=kvp_delay,
        )
        self._disks = VirtualDisks(self)
        self._network = Network(self)
        self._guests = GuestSimulation(self)
        self._power = PowerStates(self)
        self._checkpoints = Checkpoints(self, self._disks)
        self._drives = Drives(self)
        self._lifecycle = VMLifecycle(self, self._disks, self._network)

    # ----- guests -----

    def set_guest_responds_to_shutdown(self, vm_id: uuid.UUID, responds: bool) -> None:
        """Make the guest of ``vm_id`` honour (True) or ignore (False) shutdown requests."""
        self._guests.set_guest_responds_to_shutdown(vm_id, responds)

    def set_guest(self, vm_id: uuid.UUID, behaviour: str) -> None:
        """Set how the guest of ``vm_id`` answers shutdown requests (one of :data:`GUEST_BEHAVIOURS`)."""
        self._guests.set_guest(vm_id, behaviour)

    def kvp_reports(self, vm: VMRecord) -> bool:
        """Whether the guest's KVP daemon has reported its addresses: it runs one, and the VM has been Running
        for ``kvp_delay`` seconds (Hyper-V learns guest addresses through the data exchange integration service)."""
        return self._guests.kvp_reports(vm)

    # ----- virtual hard disk files -----

    def new_vhd(
        self, path: str, size: int | None, *, vhd_type: str = "Dynamic", parent_path: str | None = None
    ) -> FileEntry:
        """Create a VHD/VHDX file (Dynamic by default; Differencing needs a parent)."""
        return self._disks.new_vhd(path, size, vhd_type=vhd_type, parent_path=parent_path)

    def get_vhd(self, path: str) -> FileEntry:
        """Return the VHD at ``path``."""
        return self._disks.get_vhd(path)

    def finish_merges(self, timeout: float = 10.0) -> None:
        """Let every background merge (started by Remove-VM) finish now, and wait until they have."""
        self._disks.finish_merges(timeout)

    @property
    def merging(self) -> bool:
        """Whether a background merge is running."""
        return self._disks.merging

    def attached_vm(self, path: str) -> VMRecord | None:
        """Return the VM whose drive holds ``path``, if any."""
        return self._disks.attached_vm(path)

    def file_in_use(self, path: str) -> bool:
        """Whether a running VM (or another process) holds the file open; hold :attr:`condition`."""
        return self._disks.in_use(path)

    def hold_file(self, path: str, held: bool = True) -> None:
        """Make another process (a backup agent, say) keep ``path`` open, so deleting it fails; False lets go."""
        self._disks.hold_file(path, held)

    def remove_file(self, path: str) -> None:
        """Delete a file; one a running VM (or another process) holds open cannot be deleted."""
        self._disks.remove_file(path)

    # ----- creation, configuration, removal -----

    def new_vm(
        self,
        name: str,
        *,
        generation: int = 1,
        memory_startup: int | None = None,
        path: str | None = None,
        new_vhd_path: str | None = None,
        new_vhd_size: int | None = None,
        vhd_path: str | None = None,
        switch_name: str | None = None,
        boot_device: str | None = None,
        version: str = "10.0",
    ) -> VMRecord:
        """Create a VM the way New-VM does (default NIC, IDE DVD on Gen1, optional new or existing VHD)."""
        return self._lifecycle.new_vm(
            name,
            generation=generation,
            memory_startup=memory_startup,
            path=path,
            new_vhd_path=new_vhd_path,
            new_vhd_size=new_vhd_size,
            vhd_path=vhd_path,
            switch_name=switch_name,
            boot_device=boot_device,
            version=version,
        )

    def set_vm(self, vm_id: uuid.UUID, **changes: object) -> VMRecord:
        """Apply Set-VM changes (the keys: :meth:`~.lifecycle.VMLifecycle.set_vm`)."""
        return self._lifecycle.set_vm(vm_id, **changes)

    def remove_vm(self, vm_id: uuid.UUID) -> None:
        """Delete a VM and its checkpoints; its VHD files stay on disk, as Remove-VM leaves them."""
        self._lifecycle.remove_vm(vm_id)

    def set_firmware(
        self, vm_id: uuid.UUID, *, secure_boot: bool | None = None, template: str | None = None
    ) -> VMRecord:
        """Change secure boot settings of a Generation 2 VM that is Off."""
        return self._lifecycle.set_firmware(vm_id, secure_boot=secure_boot, template=template)

    # ----- power states -----

    @property
    def shutdowns_waiting(self) -> int:
        """How many Stop-VM calls are blocked on a guest that ignores them."""
        return self._power.shutdowns_waiting

    def start_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Start an Off or Saved VM (a Paused one resumes); blocks until Running."""
        return self._power.start_vm(vm_id)

    def shutdown_vm(self, vm_id: uuid.UUID, cancel: threading.Event | None = None, *, force: bool = False) -> VMRecord:
        """Stop-VM without -TurnOff: ask the guest to shut down and wait until the VM is Off."""
        return self._power.shutdown_vm(vm_id, cancel, force=force)

    def turn_off_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Power off at once, from Running, Paused, Saved or any transitional state (it overtakes that operation)."""
        return self._power.turn_off_vm(vm_id)

    def save_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Save a Running or Paused VM's memory to disk."""
        return self._power.save_vm(vm_id)

    def suspend_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Pause a Running VM."""
        return self._power.suspend_vm(vm_id)

    def resume_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Resume a Paused VM."""
        return self._power.resume_vm(vm_id)

    def restart_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Hard-reset a Running VM."""
        return self._power.restart_vm(vm_id)

    def remove_saved_state(self, vm_id: uuid.UUID) -> VMRecord:
        """Discard a Saved VM's memory: it becomes Off."""
        return self._power.remove_saved_state(vm_id)

    # ----- checkpoints -----

    def checkpoint_vm(self, vm_id: uuid.UUID, name: str | None = None) -> SnapshotRecord:
        """Take a checkpoint below the current one; Standard captures memory of a running VM, Production not."""
        return self._checkpoints.checkpoint_vm(vm_id, name)

    def find_snapshots(
        self, vm_id: uuid.UUID, name: str | None = None, snapshot_id: uuid.UUID | None = None
    ) -> list[SnapshotRecord]:
        """Return a VM's checkpoints, oldest first, filtered by name (wildcards) or id."""
        return self._checkpoints.find_snapshots(vm_id, name, snapshot_id)

    def snapshot_by_id(self, snapshot_id: uuid.UUID) -> tuple[VMRecord, SnapshotRecord]:
        """Return the VM holding checkpoint ``snapshot_id`` and the checkpoint (Get-VMSnapshot -Id)."""
        return self._checkpoints.snapshot_by_id(snapshot_id)

    def restore_snapshot(self, vm_id: uuid.UUID, snapshot_id: uuid.UUID) -> VMRecord:
        """Apply a checkpoint to an Off or Saved VM: config and captured state come back."""
        return self._checkpoints.restore_snapshot(vm_id, snapshot_id)

    def remove_snapshot(self, vm_id: uuid.UUID, snapshot_id: uuid.UUID, *, subtree: bool) -> None:
        """Delete a checkpoint (children move up to its parent) or, with ``subtree``, it and its descendants."""
        self._checkpoints.remove_snapshot(vm_id, snapshot_id, subtree=subtree)

    def rename_snapshot(self, vm_id: uuid.UUID, snapshot_id: uuid.UUID, new_name: str) -> SnapshotRecord:
        """Rename a checkpoint."""
        return self._checkpoints.rename_snapshot(vm_id, snapshot_id, new_name)

    # ----- drives -----

    def add_hard_disk(
        self,
        vm_id: uuid.UUID,
        path: str | None,
        controller_type: str | None = None,
        controller_number: int | None = None,
        controller_location: int | None = None,
        disk_number: int | None = None,
    ) -> HardDiskRecord:
        """Attach a disk at the first free slot (or the one given); ``disk_number`` passes a physical disk through."""
        return self._drives.add_hard_disk(
            vm_id, path, controller_type, controller_number, controller_location, disk_number
        )

    def add_dvd_drive(self, vm_id: uuid.UUID, path: str | None) -> DvdDriveRecord:
        """Attach a DVD drive at the first free slot."""
        return self._drives.add_dvd_drive(vm_id, path)

    def set_dvd_media(self, vm_id: uuid.UUID, slot: tuple[str, int, int], path: str | None) -> DvdDriveRecord:
        """Insert (or with None eject) an ISO in the DVD drive at ``slot``."""
        return self._drives.set_dvd_media(vm_id, slot, path)

    def remove_drive(self, vm_id: uuid.UUID, slot: tuple[str, int, int], dvd: bool) -> None:
        """Detach the hard disk (or DVD) drive at ``slot``; the file stays."""
        self._drives.remove_drive(vm_id, slot, dvd)

    # ----- network -----

    def list_switches(self) -> list[SwitchRecord]:
        """Return every virtual switch, ordered by name."""
        return self._network.list_switches()

    def new_switch(self, name: str, switch_type: str, notes: str = "") -> SwitchRecord:
        """Create an Internal or Private switch."""
        return self._network.new_switch(name, switch_type, notes)

    def remove_switch(self, switch_id: uuid.UUID) -> None:
        """Delete a switch; adapters connected to it become disconnected."""
        self._network.remove_switch(switch_id)

    def add_network_adapter(
        self,
        vm_id: uuid.UUID,
        name: str,
        switch_name: str | None,
        static_mac: str | None = None,
        is_legacy: bool = False,
    ) -> NetworkAdapterRecord:
        """Add an adapter (legacy adapters need a Generation 1 VM that is Off)."""
        return self._network.add_network_adapter(vm_id, name, switch_name, static_mac, is_legacy)

    def remove_network_adapter(self, vm_id: uuid.UUID, adapter_id: uuid.UUID) -> None:
        """Remove one adapter (from a running VM only on Generation 2)."""
        self._network.remove_network_adapter(vm_id, adapter_id)

    def connect_network_adapter(self, vm_id: uuid.UUID, adapter_id: uuid.UUID, switch_name: str | None) -> None:
        """Connect an adapter to a switch (None disconnects)."""
        self._network.connect_network_adapter(vm_id, adapter_id, switch_name)
