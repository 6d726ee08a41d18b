"""Checkpoints: taken by type (Standard with memory, Production without), addressed by Id, never by name.

A checkpoint's ``State`` on Windows is only Off or Saved (``VMSnapshot.State`` is Saved when the checkpoint holds
memory: nforgeio/neonSDK .../PowerShell/VMSnapshot.cs), so whether the VM was paused or saved rather than running
is recorded by the backend itself: under :data:`STATE_LABEL` in the label block of the Notes the checkpoint keeps
(a checkpoint captures the VM's Notes; the VM's own Notes are put back right after). Listings hide that label.
"""

from __future__ import annotations

import contextlib
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, PolyvisorError, UnsupportedError, ValidationError
from polyvisor.model import Feature, PowerState, Snapshot, normalize_uuid
from polyvisor_hyperv.client import HyperVClient, as_guid, as_text, then, vm_step
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.lifecycle import Lifecycle
from polyvisor_hyperv.notes import STATE_LABEL, join_notes, split_notes
from polyvisor_hyperv.states import enum_name, to_status
from polyvisor_hyperv.transport import Row, parse_datetime

__all__ = ["SNAPSHOT_PROPERTIES", "Snapshots"]

SNAPSHOT_PROPERTIES = ("Id", "Name", "ParentSnapshotId", "ParentSnapshotName", "CreationTime", "State", "Notes")
_MEMORY_STATES = {"Running", "Paused", "Saved", "FastSaved"}
# What the recorded state label says, and what a checkpoint with memory but no record was taken of: a running VM.
_RECORDED = {"paused": PowerState.PAUSED, "saved": PowerState.SAVED}


def checkpoint_state(row: Row) -> PowerState:
    """The power state a checkpoint row was taken in: Windows' Off/Saved, refined by the recorded label."""
    if enum_name(row.get("State")) not in _MEMORY_STATES:
        return PowerState.STOPPED
    _, labels = split_notes(as_text(row.get("Notes")))
    return _RECORDED.get(labels.get(STATE_LABEL, ""), PowerState.RUNNING)


class Snapshots:
    """Hyper-V checkpoints."""

    def __init__(self, client: HyperVClient, lifecycle: Lifecycle) -> None:
        self._client = client
        self._lifecycle = lifecycle

    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        if description:
            raise UnsupportedError(
                "Hyper-V checkpoints have no description; pass description=''",
                feature=Feature.SNAPSHOT_DESCRIPTION,
                host=self._client.host,
                vm=uuid,
            )
        row = self._client.vm_row(uuid, ("State", "CheckpointType", "Notes"), deadline)
        original = enum_name(row.get("CheckpointType"))
        if original == "Disabled":
            raise UnsupportedError(
                "checkpoints are disabled for this VM; enable them on the host with "
                "Set-VM -CheckpointType Production (or Standard)",
                feature=Feature.SNAPSHOTS,
                host=self._client.host,
                vm=uuid,
            )
        state = to_status(row.get("State")).state
        running = state is not PowerState.STOPPED
        wanted = "Standard" if memory else ("ProductionOnly" if running else "Production")
        # Record a paused or saved VM's state in the Notes the checkpoint captures; put the VM's own back after.
        notes = as_text(row.get("Notes"))
        human, labels = split_notes(notes)
        labels.pop(STATE_LABEL, None)
        clean = join_notes(human, labels)
        recorded = {PowerState.PAUSED: "paused", PowerState.SAVED: "saved"}.get(state) if memory else None
        marked = join_notes(human, {**labels, STATE_LABEL: recorded}) if recorded else clean
        steps: list[Step] = []
        if wanted != original:
            steps += [vm_step(uuid), then("Set-VM", CheckpointType=wanted)]
        if marked != notes:
            steps += [vm_step(uuid), then("Set-VM", Notes=marked)]
        steps += [vm_step(uuid), then("Checkpoint-VM", SnapshotName=name)]
        if marked != clean:
            steps += [vm_step(uuid), then("Set-VM", Notes=clean)]
        if wanted != original:
            steps += [vm_step(uuid), then("Set-VM", CheckpointType=original)]
        try:
            self._client.run(steps, doing=f"taking checkpoint {name!r} (Checkpoint-VM)", vm=uuid, deadline=deadline)
        except PolyvisorError:
            with contextlib.suppress(PolyvisorError):
                restore: dict[str, Any] = {"CheckpointType": original} if wanted != original else {}
                if marked != clean:
                    restore["Notes"] = clean
                if restore:
                    self._client.verb(uuid, "Set-VM", "restoring the checkpoint type and Notes", None, **restore)
            raise
        taken = [snap for snap in self.snapshot_list(uuid) if snap.name == name]
        if not taken:
            raise NotFoundError(f"checkpoint {name!r} was taken but is not listed", host=self._client.host, vm=uuid)
        return max(taken, key=lambda snap: snap.created.timestamp() if snap.created else 0.0)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        current = as_text(self._client.vm_row(uuid, ("ParentSnapshotId",)).get("ParentSnapshotId"))
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMSnapshot")], doing="listing checkpoints", vm=uuid, select=SNAPSHOT_PROPERTIES
        )
        current_id = normalize_uuid(current) if current else None
        out = []
        for row in rows:
            state = checkpoint_state(row)
            out.append(
                Snapshot(
                    name=as_text(row.get("Name")),
                    parent=as_text(row.get("ParentSnapshotName")) or None,
                    created=parse_datetime(row.get("CreationTime")),
                    state=state,
                    has_memory=state is not PowerState.STOPPED,
                    is_current=current_id is not None and as_guid(row.get("Id")) == current_id,
                )
            )
        return out

    def _snapshot_row(self, uuid: str, name: str, deadline: Deadline | None = None) -> Row:
        """Return the one checkpoint named ``name``; Hyper-V allows duplicate names, so several is an error."""
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMSnapshot")],
            doing="listing checkpoints",
            vm=uuid,
            select=("Id", "Name", "State", "Notes"),
            deadline=deadline,
        )
        matches = [row for row in rows if as_text(row.get("Name")) == name]
        if not matches:
            raise NotFoundError(f"no checkpoint named {name!r}", host=self._client.host, vm=uuid)
        if len(matches) > 1:
            ids = ", ".join(as_guid(row.get("Id")) for row in matches)
            raise ValidationError(
                f"{len(matches)} checkpoints are named {name!r} ({ids}); rename all but one on the host with "
                "Rename-VMSnapshot",
                field="name",
            )
        return matches[0]

    def _snapshot_steps(self, uuid: str, name: str, deadline: Deadline | None = None) -> tuple[list[Step], Row]:
        # By Id, never by -Name: a name could match several checkpoints and the verb would act on each of them.
        row = self._snapshot_row(uuid, name, deadline)
        return [Step("Get-VMSnapshot", {"Id": as_guid(row.get("Id"))})], row

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        """Restore-VMSnapshot saves a running or paused VM itself, applies the checkpoint and starts the VM again if
        it was running and the checkpoint left it saved (nforgeio/neonSDK .../Commands/RestoreVMSnapshot.cs). Only
        a checkpoint that must not end running needs the VM off first, so that Windows does not start it."""
        steps, row = self._snapshot_steps(uuid, name, deadline)
        target = checkpoint_state(row)
        if (
            target in (PowerState.PAUSED, PowerState.SAVED)
            and self._client.status(uuid, deadline).state is PowerState.RUNNING
        ):
            self._lifecycle.stop(uuid, deadline)
        self._client.run(
            [*steps, then("Restore-VMSnapshot", Confirm=False)],  # ShouldProcess only: -Confirm:$false answers it
            doing=f"reverting to checkpoint {name!r} (Restore-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )
        if target in (PowerState.RUNNING, PowerState.PAUSED):
            # Hyper-V cannot start a VM paused: a paused checkpoint is started from its saved memory and paused.
            if self._client.status(uuid, deadline).state is PowerState.SAVED:
                self._lifecycle.start(uuid, deadline)
            if target is PowerState.PAUSED:
                self._lifecycle.pause(uuid, deadline)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        parameters: dict[str, Any] = {"IncludeAllChildSnapshots": SWITCH} if children else {}
        steps, _ = self._snapshot_steps(uuid, name, deadline)
        self._client.run(
            [*steps, then("Remove-VMSnapshot", **parameters)],
            doing=f"deleting checkpoint {name!r} (Remove-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )
