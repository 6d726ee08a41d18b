"""Checkpoints: Checkpoint-VM, Get-VMSnapshot, Restore-VMSnapshot, Remove-VMSnapshot, Rename-VMSnapshot.

A checkpoint captures the VM's configuration and power state ('Off' or 'Saved') and keeps its disks as they are:
the VM writes to a new differencing disk of each (:meth:`~.disks.VirtualDisks.branch_drives`).
"""

from __future__ import annotations

import copy
import datetime
import uuid

from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.wildcards import has_wildcard, wildcard_match

from .disks import VirtualDisks
from .faults import invalid_state
from .guest import follow_guest_label
from .power import powered_off
from .records import TRANSITIONAL, SnapshotRecord, VMRecord
from .state import HostState

__all__ = ["Checkpoints"]


class Checkpoints:
    """Each VM's tree of checkpoints."""

    def __init__(self, state: HostState, disks: VirtualDisks) -> None:
        self._state = state
        self._disks = disks
        self._cond = state.condition

    def checkpoint_vm(self, vm_id: uuid.UUID, name: str | None = None) -> SnapshotRecord:
        """Take a checkpoint below the current one; Standard captures memory of a running VM, Production not."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            ctype = vm.config.checkpoint_type
            if ctype == "Disabled":
                raise HostError(
                    f"Checkpoint operation failed for '{vm.name}'.\nCheckpoints are disabled for '{vm.name}'.",
                    error_id="OperationFailed",
                    category="InvalidOperation",
                    target_name=vm.name,
                )
            if vm.state in TRANSITIONAL:
                raise invalid_state(vm)
            live = vm.state in {"Running", "Paused"}
            production = ctype in {"Production", "ProductionOnly"} and vm.state != "Paused"
            if ctype == "ProductionOnly" and vm.state == "Paused":
                raise HostError(
                    f"Checkpoint operation failed for '{vm.name}'.\n"
                    f"Could not create a production checkpoint for '{vm.name}' while it is paused.",
                    error_id="OperationFailed",
                    category="InvalidOperation",
                    target_name=vm.name,
                )
            captured = "Saved" if vm.state == "Saved" or (live and not production) else "Off"
            created = datetime.datetime.now(datetime.UTC)
            if name is None:
                stamp = created.astimezone().strftime("%m/%d/%Y - %I:%M:%S %p").lstrip("0")
                name = f"{vm.name} - ({stamp})"
            snap = SnapshotRecord(
                id=uuid.uuid4(),
                name=name,
                parent_id=vm.current_snapshot_id,
                created=created,
                config=copy.deepcopy(vm.config),
                captured_state=captured,
                production=production,
            )
            vm.snapshots[snap.id] = snap
            vm.current_snapshot_id = snap.id
            # The checkpoint keeps the disks as they are; the VM writes to a new differencing disk of each.
            self._disks.branch_drives(vm, snap.id)
            self._cond.notify_all()
            return copy.deepcopy(snap)

    def find_snapshots(
        self, vm_id: uuid.UUID, name: str | None = None, snapshot_id: uuid.UUID | None = None
    ) -> list[SnapshotRecord]:
        """Return a VM's checkpoints, oldest first, filtered by name (wildcards) or id."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            snaps = sorted(vm.snapshots.values(), key=lambda s: s.created)
            if snapshot_id is not None:
                snaps = [s for s in snaps if s.id == snapshot_id]
            if name is not None:
                snaps = [s for s in snaps if wildcard_match(name, s.name)]
                if not snaps and not has_wildcard(name):
                    raise HostError(
                        f'Hyper-V was unable to find a checkpoint with name "{name}" for the '
                        f"virtual machine '{vm.name}'.",
                        error_id="InvalidParameter",
                        category="InvalidArgument",
                        target_name=name,
                    )
            return copy.deepcopy(snaps)

    def snapshot_by_id(self, snapshot_id: uuid.UUID) -> tuple[VMRecord, SnapshotRecord]:
        """Return the VM holding checkpoint ``snapshot_id`` and the checkpoint (Get-VMSnapshot -Id)."""
        with self._cond:
            for vm in self._state.vms.values():
                snap = vm.snapshots.get(snapshot_id)
                if snap is not None:
                    return copy.deepcopy(vm), copy.deepcopy(snap)
        raise HostError(
            f'Hyper-V was unable to find a checkpoint with id "{snapshot_id}".',
            error_id="InvalidParameter",
            category="InvalidArgument",
            target_name=str(snapshot_id),
        )

    def restore_snapshot(self, vm_id: uuid.UUID, snapshot_id: uuid.UUID) -> VMRecord:
        """Apply a checkpoint to an Off or Saved VM: config and captured state come back, and the VM writes to a
        new differencing disk of each of the checkpoint's disks."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            snap = self._snapshot(vm, snapshot_id)
            if vm.state not in {"Off", "Saved"}:
                raise invalid_state(vm)
            old_notes = vm.config.notes
            vm.config = copy.deepcopy(snap.config)
            follow_guest_label(vm, old_notes)
            vm.state = snap.captured_state
            vm.current_snapshot_id = snap.id
            powered_off(vm)
            # A new differencing disk of the checkpoint's disks; the one the VM left is discarded.
            self._disks.branch_drives(vm, uuid.uuid4())
            self._disks.collapse(vm)
            self._cond.notify_all()
            return copy.deepcopy(vm)

    def remove_snapshot(self, vm_id: uuid.UUID, snapshot_id: uuid.UUID, *, subtree: bool) -> None:
        """Delete a checkpoint (children move up to its parent) or, with ``subtree``, it and its descendants;
        the differencing disks no checkpoint needs any more are merged or deleted."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            snap = self._snapshot(vm, snapshot_id)
            doomed = {snap.id}
            if subtree:
                changed = True
                while changed:
                    changed = False
                    for other in vm.snapshots.values():
                        if other.parent_id in doomed and other.id not in doomed:
                            doomed.add(other.id)
                            changed = True
            for other in vm.snapshots.values():
                if other.parent_id == snap.id and other.id not in doomed:
                    other.parent_id = snap.parent_id
            if vm.current_snapshot_id in doomed:
                vm.current_snapshot_id = snap.parent_id
            for sid in doomed:
                del vm.snapshots[sid]
            self._disks.collapse(vm)
            self._cond.notify_all()

    def rename_snapshot(self, vm_id: uuid.UUID, snapshot_id: uuid.UUID, new_name: str) -> SnapshotRecord:
        """Rename a checkpoint."""
        with self._cond:
            snap = self._snapshot(self._state.vm_record(vm_id), snapshot_id)
            snap.name = new_name
            return copy.deepcopy(snap)

    def _snapshot(self, vm: VMRecord, snapshot_id: uuid.UUID) -> SnapshotRecord:
        snap = vm.snapshots.get(snapshot_id)
        if snap is None:
            raise HostError(
                f'Hyper-V was unable to find a checkpoint with id "{snapshot_id}" for the '
                f"virtual machine '{vm.name}'.",
                error_id="InvalidParameter",
                category="InvalidArgument",
                target_name=str(snapshot_id),
            )
        return snap
