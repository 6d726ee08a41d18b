# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""One VM's desired state, shared by the ``vm`` and ``vms`` modules: check a request, predict it, converge to it.

A VM's *facts* are a dict (``uuid``, ``name``, ``state``, ``labels``, ``snapshots``): what the modules report and
diff. A request is the module's parameters (``state``, ``force``, ``labels``, ``purge_labels``, ``snapshot``,
``delete_storage``, ``timeout``). :func:`check_request` refuses, before anything is done, a request that would fail
part way; :func:`predict` is check mode's answer; :func:`converge` makes only the changes that are missing and
returns the facts it leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

try:
    import polyvisor
    from polyvisor.model import validate_labels, validate_name
except ImportError:  # the modules report it, with an install hint
    pass

ABSENT = "absent"
POWER_STATES = ("running", "stopped", "paused", "saved")

SNAPSHOT_OPTION: dict[str, Any] = {
    "type": "dict",
    "options": {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "memory": {"type": "bool", "default": False},
    },
}

DESIRED_STATE_OPTIONS: dict[str, Any] = {  # the polyvisor.hypervisors.desired_state doc fragment, and timeout
    "force": {"type": "bool", "default": False},
    "delete_storage": {"type": "bool", "default": False},
    "labels": {"type": "dict"},
    "purge_labels": {"type": "bool", "default": False},
    "snapshot": SNAPSHOT_OPTION,
    "timeout": {"type": "float", "default": 120.0},
}
"""The argument spec both modules share (each adds ``state``, with its own choices and default)."""


def clean_labels(labels: Mapping[str, Any] | None, option: str = "labels") -> dict[str, str]:
    """Return the task's labels as strings; numbers are written out, anything else is refused."""
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise polyvisor.ValidationError(
                f"must be a string, got {type(value).__name__}; quote it in YAML", field=f"{option}[{key!r}]"
            )
        out[str(key)] = str(value)
    return out


def facts(vm: polyvisor.VM, *, snapshots: bool = True) -> dict[str, Any]:
    """Return what the task reports and diffs about an existing VM, read afresh."""
    info = vm.info()
    return {
        "uuid": info.uuid,
        "name": info.name,
        "state": info.state.value,
        "labels": dict(info.labels),
        "snapshots": snapshot_names(vm) if snapshots else [],
        "cpus": info.cpus,
        "memory_mib": info.memory_mib,
    }


def snapshot_names(vm: polyvisor.VM) -> list[str]:
    """Return the names of the VM's snapshots, sorted (none where the hypervisor has no snapshots)."""
    if not vm.connection.supports(polyvisor.Feature.SNAPSHOTS):
        return []
    return sorted(snapshot.name for snapshot in vm.snapshots())


def listed_facts(info: polyvisor.VMInfo) -> dict[str, Any]:
    """Return a VM's facts from a listing with details (its snapshots unread)."""
    return {
        "uuid": info.uuid,
        "name": info.name,
        "state": info.state.value,
        "labels": dict(info.labels),
        "snapshots": [],
    }


def absent(name: str, uuid: str | None = None) -> dict[str, Any]:
    """The facts of a VM that does not exist (any more)."""
    return {"uuid": uuid, "name": name, "state": ABSENT, "labels": {}, "snapshots": []}


def wanted_labels(current: Mapping[str, str], labels: dict[str, str] | None, purge: bool) -> dict[str, str]:
    """Return the labels the VM should end with."""
    if labels is None:
        return dict(current) if not purge else {}
    return dict(labels) if purge else {**current, **labels}


def manages_labels(params: Mapping[str, Any], labels: dict[str, str] | None) -> bool:
    """Return whether the request sets labels at all."""
    return labels is not None or bool(params["purge_labels"])


def predict(
    name: str,
    before: dict[str, Any] | None,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    spec: polyvisor.VMSpec | None = None,
) -> dict[str, Any]:
    """Return the VM's facts as the request would leave them (check mode's answer); ``spec`` creates it if absent."""
    if params["state"] != ABSENT and before is not None:
        after = {**before, "labels": dict(before["labels"]), "snapshots": list(before["snapshots"])}
        if manages_labels(params, labels):
            after["labels"] = wanted_labels(after["labels"], labels, params["purge_labels"])
    elif params["state"] != ABSENT and spec is not None:
        after = {"uuid": None, "name": name, "state": "stopped", "labels": dict(spec.labels), "snapshots": []}
    else:
        return absent(name, before["uuid"] if before is not None else None)
    if params["state"] in POWER_STATES:
        after["state"] = params["state"]
    snapshot = params["snapshot"]
    if snapshot is not None:
        names = set(after["snapshots"])
        if snapshot["state"] == "present":
            names.add(snapshot["name"])
        else:
            names.discard(snapshot["name"])
        after["snapshots"] = sorted(names)
    return after


def check_request(
    caps: polyvisor.Capabilities,
    host: str,
    name: str,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    before: dict[str, Any] | None,
) -> None:
    """Refuse a request that would fail part way on this VM, before anything is done (so check mode predicts the
    failure): features the host lacks, a label key or snapshot name polyvisor refuses, a memory snapshot of a VM
    that will not run."""
    state = params["state"]
    if state == ABSENT:
        return

    def need(feature: polyvisor.Feature) -> None:
        caps.require(feature, host=host, vm=name)

    if labels is not None:
        validate_labels(labels)
    if manages_labels(params, labels):
        need(polyvisor.Feature.LABELS)
    if state == "paused":
        need(polyvisor.Feature.PAUSE)
    elif state == "saved":
        need(polyvisor.Feature.SAVE)
    snapshot = params["snapshot"]
    if snapshot is not None:
        validate_name(snapshot["name"], "snapshot.name")
        need(polyvisor.Feature.SNAPSHOTS)
        taken = before is not None and snapshot["name"] in before["snapshots"]
        if snapshot["state"] == "present" and snapshot["memory"] and not taken:
            need(polyvisor.Feature.SNAPSHOT_MEMORY)
            reached = state if state in POWER_STATES else (before or {"state": "stopped"})["state"]
            if reached not in ("running", "paused"):
                raise polyvisor.ValidationError(
                    f"keeps the running memory, but the VM will be {reached}; use state: running, or drop memory",
                    field="snapshot.memory",
                )


def converge(
    vm: polyvisor.VM,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    before: dict[str, Any],
    sizes: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Bring an existing VM whose facts are ``before`` to the request, each change only when it is needed; return
    the facts it leaves (its ``snapshots`` as complete as ``before``'s). ``sizes`` is called with ``"before"``
    and ``"after"`` the power change (the vm module's CPUs, memory and disks)."""
    state, timeout, force = params["state"], params["timeout"], params["force"]
    if state == ABSENT:
        if not (force and before["state"] == "saved"):  # delete(force=True) drops saved memory
            vm.ensure("stopped", force=force, timeout=timeout)
        vm.delete(storage=params["delete_storage"], force=force, timeout=timeout)
        return absent(before["name"], before["uuid"])
    after = {**before, "labels": dict(before["labels"]), "snapshots": list(before["snapshots"])}
    if manages_labels(params, labels):
        target = wanted_labels(before["labels"], labels, params["purge_labels"])
        if target != before["labels"]:
            vm.set_labels(target)
            after["labels"] = target
    if sizes is not None:
        sizes("before")
    if state in POWER_STATES:
        after["state"] = vm.ensure(state, force=force, timeout=timeout).state.value
    if sizes is not None:
        sizes("after")
    snapshot = params["snapshot"]
    if snapshot is not None:
        exists = snapshot["name"] in before["snapshots"]
        if snapshot["state"] == "present" and not exists:
            vm.snapshot(snapshot["name"], memory=snapshot["memory"], timeout=timeout)
            after["snapshots"] = sorted([*after["snapshots"], snapshot["name"]])
        elif snapshot["state"] == "absent" and exists:
            vm.delete_snapshot(snapshot["name"], timeout=timeout)
            after["snapshots"] = [name for name in after["snapshots"] if name != snapshot["name"]]
    return after


def steps(params: Mapping[str, Any]) -> int:
    """How many timed steps :func:`converge` may take (each gets ``timeout`` seconds)."""
    if params["state"] == ABSENT:
        return 2  # the shutdown, then the deletion
    return 1 + (params["state"] in POWER_STATES) + (params["snapshot"] is not None)


def shown(vm: Mapping[str, Any] | None, *, snapshots: bool = True, sizes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The part of a VM's facts that diff mode shows and ``changed`` compares (and the ``sizes`` keys)."""
    if vm is None or vm["state"] == ABSENT:
        return {"state": ABSENT}
    out = {"state": vm["state"], "labels": dict(vm["labels"])}
    if snapshots:
        out["snapshots"] = list(vm["snapshots"])
    for key in sizes:
        out[key] = vm.get(key)
    return out
