"""Checkpoints: taken by type (Standard with memory, Production without), addressed by Id, never by name."""

from __future__ import annotations

import contextlib
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, PolyvisorError, UnsupportedError, ValidationError
from polyvisor.model import Feature, PowerState, Snapshot, normalize_uuid
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.lifecycle import Lifecycle
from polyvisor_hyperv.session import Session, as_guid, as_text, then, vm_step
from polyvisor_hyperv.states import enum_name, status_from_vmstate
from polyvisor_hyperv.transport import Row, parse_datetime

__all__ = ["SNAPSHOT_PROPERTIES", "Snapshots"]

SNAPSHOT_PROPERTIES = ("Id", "Name", "ParentSnapshotId", "ParentSnapshotName", "CreationTime", "State")
_MEMORY_STATES = {"Running", "Paused", "Saved", "FastSaved"}


class Snapshots:
    """Hyper-V checkpoints."""

    def __init__(self, session: Session, lifecycle: Lifecycle) -> None:
        self._session = session
        self._lifecycle = lifecycle

    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        if description:
            raise UnsupportedError(
                "Hyper-V checkpoints have no description; pass description=''",
                feature=Feature.SNAPSHOT_DESCRIPTION,
                host=self._session.host,
                vm=uuid,
            )
        row = self._session.vm_row(uuid, ("State", "CheckpointType"), deadline)
        original = enum_name(row.get("CheckpointType"))
        if original == "Disabled":
            raise UnsupportedError(
                "checkpoints are disabled for this VM; enable them on the host with "
                "Set-VM -CheckpointType Production (or Standard)",
                feature=Feature.SNAPSHOTS,
                host=self._session.host,
                vm=uuid,
            )
        running = status_from_vmstate(row.get("State")).state is not PowerState.STOPPED
        wanted = "Standard" if memory else ("ProductionOnly" if running else "Production")
        steps: list[Step] = []
        if wanted != original:
            steps += [vm_step(uuid), then("Set-VM", CheckpointType=wanted)]
        steps += [vm_step(uuid), then("Checkpoint-VM", SnapshotName=name)]
        if wanted != original:
            steps += [vm_step(uuid), then("Set-VM", CheckpointType=original)]
        try:
            self._session.run(steps, doing=f"taking checkpoint {name!r} (Checkpoint-VM)", vm=uuid, deadline=deadline)
        except PolyvisorError:
            if wanted != original:
                with contextlib.suppress(PolyvisorError):
                    self._session.verb(uuid, "Set-VM", "restoring the checkpoint type", None, CheckpointType=original)
            raise
        taken = [snap for snap in self.snapshot_list(uuid) if snap.name == name]
        if not taken:
            raise NotFoundError(f"checkpoint {name!r} was taken but is not listed", host=self._session.host, vm=uuid)
        return max(taken, key=lambda snap: snap.created.timestamp() if snap.created else 0.0)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        current = as_text(self._session.vm_row(uuid, ("ParentSnapshotId",)).get("ParentSnapshotId"))
        rows = self._session.run(
            [vm_step(uuid), then("Get-VMSnapshot")], doing="listing checkpoints", vm=uuid, select=SNAPSHOT_PROPERTIES
        )
        current_id = normalize_uuid(current) if current else None
        out = []
        for row in rows:
            raw_state = enum_name(row.get("State"))
            has_memory = raw_state in _MEMORY_STATES
            out.append(
                Snapshot(
                    name=as_text(row.get("Name")),
                    parent=as_text(row.get("ParentSnapshotName")) or None,
                    created=parse_datetime(row.get("CreationTime")),
                    state=(PowerState.PAUSED if raw_state == "Paused" else PowerState.RUNNING)
                    if has_memory
                    else PowerState.STOPPED,
                    has_memory=has_memory,
                    is_current=current_id is not None and as_guid(row.get("Id")) == current_id,
                )
            )
        return out

    def _snapshot_row(self, uuid: str, name: str, deadline: Deadline | None = None) -> Row:
        """Return the one checkpoint named ``name``; Hyper-V allows duplicate names, so several is an error."""
        rows = self._session.run(
            [vm_step(uuid), then("Get-VMSnapshot")],
            doing="listing checkpoints",
            vm=uuid,
            select=("Id", "Name", "State"),
            deadline=deadline,
        )
        matches = [row for row in rows if as_text(row.get("Name")) == name]
        if not matches:
            raise NotFoundError(f"no checkpoint named {name!r}", host=self._session.host, vm=uuid)
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
        steps, row = self._snapshot_steps(uuid, name, deadline)
        has_memory = enum_name(row.get("State")) in _MEMORY_STATES
        if self._session.status(uuid, deadline).state in (PowerState.RUNNING, PowerState.PAUSED):
            # Reverting discards the current state anyway; powering off first works on every Hyper-V version.
            self._lifecycle.stop(uuid, deadline)
        self._session.run(
            [*steps, then("Restore-VMSnapshot", Confirm=False)],
            doing=f"reverting to checkpoint {name!r} (Restore-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )
        if has_memory and self._session.status(uuid, deadline).state is PowerState.SAVED:
            self._lifecycle.start(uuid, deadline)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        parameters: dict[str, Any] = {"IncludeAllChildSnapshots": SWITCH} if children else {}
        steps, _ = self._snapshot_steps(uuid, name, deadline)
        self._session.run(
            [*steps, then("Remove-VMSnapshot", **parameters)],
            doing=f"deleting checkpoint {name!r} (Remove-VMSnapshot)",
            vm=uuid,
            deadline=deadline,
        )
