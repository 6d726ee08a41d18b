"""Plain-data records of model objects: the stable keys of ``--json`` output.

Every record is made of JSON types only; states are their string values. Keys are only ever added, never renamed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from polyvisor.model import (
    Capabilities,
    Event,
    GuestAddress,
    HostDevice,
    HostInfo,
    NetworkInfo,
    Readiness,
    Snapshot,
    SnapshotTree,
    VMInfo,
    VMStatus,
)

__all__ = [
    "action_record",
    "address_record",
    "capabilities_record",
    "device_record",
    "event_record",
    "host_record",
    "jsonable",
    "network_record",
    "ready_record",
    "snapshot_records",
    "status_record",
    "vm_record",
]

Record = dict[str, Any]


def jsonable(value: object) -> Any:
    """Return ``value`` as JSON types; what has no JSON form becomes its string."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(item) for item in value]
    return str(value)


def status_record(status: VMStatus) -> Record:
    """The normalized state with the backend's own words for it."""
    return {
        "state": status.state.value,
        "raw_state": status.raw_state,
        "reason": status.reason,
        "critical": status.critical,
    }


def vm_record(info: VMInfo) -> Record:
    """Everything the hypervisor said about one VM."""
    return {
        "name": info.name,
        "uuid": info.uuid,
        **status_record(info.status),
        "cpus": info.cpus,
        "memory_mib": info.memory_mib,
        "has_saved_state": info.has_saved_state,
        "description": info.description,
        "labels": dict(info.labels),
        "extra": jsonable(info.extra),
    }


def action_record(action: str, name: str, uuid: str, status: VMStatus | None) -> Record:
    """What a verb did and the status observed afterwards (None once the VM is gone)."""
    record: Record = {"action": action, "vm": name, "uuid": uuid}
    if status is None:
        record.update(state=None, raw_state=None, reason=None, critical=False)
    else:
        record.update(status_record(status))
    return record


def address_record(address: GuestAddress) -> Record:
    """One guest address and where it was learnt."""
    return {
        "address": address.address,
        "prefix": address.prefix,
        "interface": address.interface,
        "mac": address.mac,
        "source": address.source,
    }


def snapshot_record(snap: Snapshot, depth: int = 0) -> Record:
    """One snapshot; ``depth`` is its distance from its root."""
    return {
        "name": snap.name,
        "parent": snap.parent,
        "depth": depth,
        "created": snap.created.isoformat() if snap.created else None,
        "state": snap.state.value,
        "has_memory": snap.has_memory,
        "description": snap.description,
        "current": snap.is_current,
    }


def snapshot_records(tree: SnapshotTree) -> list[Record]:
    """Every snapshot in depth-first tree order (parents before children)."""
    out: list[Record] = []
    seen: set[str] = set()

    def walk(snap: Snapshot, depth: int) -> None:
        if snap.name in seen:  # a malformed tree must not loop forever
            return
        seen.add(snap.name)
        out.append(snapshot_record(snap, depth))
        for child in tree.children(snap.name):
            walk(child, depth + 1)

    for root in tree.roots:
        walk(root, 0)
    # A snapshot whose parent is missing from the list is still shown, as a root.
    for snap in tree:
        walk(snap, 0)
    return out


def capabilities_record(caps: Capabilities) -> list[str]:
    """The declared features, sorted."""
    return sorted(feature.value for feature in caps.features)


def device_record(device: HostDevice) -> Record:
    """A host device a VM can be given, and the VM that has it."""
    return {
        "name": device.name,
        "kind": device.kind.value,
        "description": device.description,
        "address": device.address,
        "vendor": device.vendor,
        "product": device.product,
        "used_by": device.used_by,
        "extra": jsonable(dict(device.extra)),
    }


def host_record(host: HostInfo) -> Record:
    """Facts about the host."""
    return {
        "hostname": host.hostname,
        "hypervisor": host.hypervisor,
        "hypervisor_version": host.hypervisor_version,
        "cpus": host.cpus,
        "memory_mib": host.memory_mib,
        "arch": host.arch,
        "extra": jsonable(host.extra),
        "free_memory_mib": host.free_memory_mib,
        "architectures": [
            {
                "arch": guest.arch,
                "accelerators": list(guest.accelerators),
                "machine": guest.machine,
                "lacks": {feature.value: reason for feature, reason in sorted(guest.lacks.items())},
            }
            for guest in host.architectures
        ],
    }


def network_record(network: NetworkInfo) -> Record:
    """One network or virtual switch."""
    return {
        "name": network.name,
        "active": network.active,
        "kind": network.kind,
        "uuid": network.uuid,
        "mode": network.mode.value if network.mode is not None else None,
        "subnet": network.subnet,
        "extra": jsonable(network.extra),
    }


def event_record(event: Event, when: datetime) -> Record:
    """One lifecycle event and when it was received."""
    return {
        "time": when.isoformat(),
        "kind": event.kind.value,
        "vm": event.name,
        "uuid": event.uuid,
        "state": event.state.value if event.state is not None else None,
        "detail": event.detail,
    }


def ready_record(ready: Readiness) -> Record:
    """What each readiness source said, the errors the guest reported, and the seconds waited."""
    return {
        "sources": [
            {"source": answer.source, "detail": answer.detail, "errors": list(answer.errors)}
            for answer in ready.answers
        ],
        "errors": list(ready.errors),
        "waited": round(ready.waited, 3),
    }
