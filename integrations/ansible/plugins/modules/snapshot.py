#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: one snapshot of a VM taken, deleted, or reverted to."""

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Take, delete or revert to a VM's snapshot (a checkpoint on Hyper-V)
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Manages one snapshot of one VM through the polyvisor library, with the same meaning on libvirt/KVM and
    Hyper-V - V(present) takes it when it is missing, V(absent) deletes it when it is there, V(revert) brings the
    VM back to it.
  - V(present) and V(absent) are idempotent. V(revert) always reverts and reports C(changed) - whatever the VM did
    since the snapshot is thrown away, and no hypervisor can say whether it did anything - so run it when a revert
    is meant (C(when), a handler), as one does with C(community.vmware.vmware_guest_snapshot).
  - A revert leaves the VM in the state the snapshot holds - running (or paused) from a snapshot with memory,
    otherwise stopped.
  - The request is checked before anything is done - a missing VM, a revert to a snapshot that does not exist,
    a memory snapshot of a VM that does not run, a feature the host lacks - so check mode predicts the failures
    too. Diff mode shows the VM's state, snapshots and current snapshot before and after.
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt, polyvisor-hyperv) on the
    managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.connection
attributes:
  check_mode:
    description: Predicts the snapshots and the VM's state after the task, and changes nothing.
    support: full
  diff_mode:
    description: Shows the VM's state, snapshot names and current snapshot before and after.
    support: full
options:
  vm:
    description: The VM's name or UUID.
    type: str
    required: true
  name:
    description: The snapshot's name.
    type: str
    required: true
  state:
    description:
      - V(present) takes the snapshot unless one of that name exists (it is never taken again); V(absent) deletes
        it if it exists; V(revert) reverts the VM to it.
    type: str
    choices: [present, absent, revert]
    default: present
  memory:
    description: With O(state=present), keep the running memory too (needs a running or paused VM).
    type: bool
    default: false
  description:
    description: With O(state=present), a description stored with a new snapshot (where the host keeps one).
    type: str
  children:
    description: With O(state=absent), delete the snapshot's children too; otherwise they move to its parent.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A snapshot before the upgrade
  polyvisor.hypervisors.snapshot:
    uri: qemu:///system
    vm: db1
    name: before-upgrade

- name: Back to it when the upgrade failed
  polyvisor.hypervisors.snapshot:
    uri: qemu:///system
    vm: db1
    name: before-upgrade
    state: revert
  when: upgrade is failed

- name: Gone once the upgrade is done
  polyvisor.hypervisors.snapshot:
    connection: hv01
    vm: db1
    name: before-upgrade
    state: absent
"""

RETURN = r"""
vm:
  description: The VM after the task (predicted in check mode).
  returned: success
  type: dict
  contains:
    name:
      description: The VM's name.
      type: str
    uuid:
      description: The VM's UUID.
      type: str
    state:
      description: polyvisor's power state.
      type: str
      sample: stopped
    snapshots:
      description: The names of its snapshots, sorted.
      type: list
      elements: str
    current:
      description: The snapshot the VM derives from now (null when none).
      type: str
snapshot:
  description: The snapshot after the task; null once deleted (or predicted to be made, in check mode).
  returned: success
  type: dict
  contains:
    name:
      description: Its name.
      type: str
    parent:
      description: Its parent's name.
      type: str
    state:
      description: The VM's power state when it was taken.
      type: str
    has_memory:
      description: Whether it holds the running memory.
      type: bool
    description:
      description: Its description.
      type: str
error_type:
  description: The class of polyvisor error that failed the task (C(NotFoundError), C(InvalidStateError), ...).
  returned: failure
  type: str
  sample: NotFoundError
"""

import contextlib
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils.host_task import (
    connected,
    diffed,
    host_module,
    run_host_module,
)
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import Module

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor
    from polyvisor.model import validate_name

OPTIONS: dict[str, Any] = {
    "vm": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "revert"]},
    "memory": {"type": "bool", "default": False},
    "description": {"type": "str"},
    "children": {"type": "bool", "default": False},
}


def vm_facts(info: polyvisor.VMInfo, tree: polyvisor.SnapshotTree) -> dict[str, Any]:
    """What the task reports and diffs about the VM."""
    current = tree.current
    return {
        "name": info.name,
        "uuid": info.uuid,
        "state": info.state.value,
        "snapshots": sorted(snapshot.name for snapshot in tree.snapshots),
        "current": current.name if current is not None else None,
    }


def snapshot_facts(snapshot: polyvisor.Snapshot | None) -> dict[str, Any] | None:
    """What the task reports about the snapshot."""
    if snapshot is None:
        return None
    return {
        "name": snapshot.name,
        "parent": snapshot.parent,
        "state": snapshot.state.value,
        "has_memory": snapshot.has_memory,
        "description": snapshot.description,
    }


def check(vm: polyvisor.VM, params: dict[str, Any], before: dict[str, Any], tree: polyvisor.SnapshotTree) -> None:
    """Refuse, before acting, what would fail: features the host lacks, a bad name, a memory snapshot of a VM that
    does not run, a revert to a snapshot that does not exist."""
    caps, host, name = vm.capabilities(), vm.connection.host, params["name"]
    caps.require(polyvisor.Feature.SNAPSHOTS, host=host, vm=before["name"])
    validate_name(name, "name")
    state = params["state"]
    if state == "present" and name not in tree:
        if params["description"]:
            caps.require(polyvisor.Feature.SNAPSHOT_DESCRIPTION, host=host, vm=before["name"])
        if params["memory"]:
            caps.require(polyvisor.Feature.SNAPSHOT_MEMORY, host=host, vm=before["name"])
            if before["state"] not in ("running", "paused"):
                raise polyvisor.ValidationError(
                    f"keeps the running memory, but VM {before['name']!r} is {before['state']}; start it first, "
                    "or drop memory",
                    field="memory",
                )
    if state == "revert" and name not in tree:
        raise polyvisor.NotFoundError(
            f"VM {before['name']!r} has no snapshot named {name!r} to revert to (it has: "
            f"{', '.join(before['snapshots']) or 'none'})",
            host=host,
            vm=before["name"],
        )


def predict(params: dict[str, Any], before: dict[str, Any], tree: polyvisor.SnapshotTree) -> dict[str, Any]:
    """The VM's facts as the task would leave them."""
    name, after = params["name"], {**before, "snapshots": list(before["snapshots"])}
    if params["state"] == "present" and name not in tree:
        after["snapshots"] = sorted([*after["snapshots"], name])
        after["current"] = name
    elif params["state"] == "absent" and name in tree:
        gone = {name, *(s.name for s in tree.descendants(name))} if params["children"] else {name}
        after["snapshots"] = [s for s in after["snapshots"] if s not in gone]
        if after["current"] in gone:
            after["current"] = tree[name].parent
    elif params["state"] == "revert":
        after["state"] = tree[name].state.value
        after["current"] = name
    return after


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result."""
    params = module.params
    name, timeout = params["name"], params["timeout"]
    with connected(module) as conn:
        vm = conn.vm(params["vm"], timeout=timeout)
        tree = vm.snapshots(timeout=timeout)
        before = vm_facts(vm.info(timeout=timeout), tree)
        check(vm, params, before, tree)
        after = predict(params, before, tree)
        if not module.check_mode:
            if params["state"] == "present" and name not in tree:
                vm.snapshot(name, memory=params["memory"], description=params["description"] or "", timeout=timeout)
            elif params["state"] == "absent" and name in tree:
                vm.delete_snapshot(name, children=params["children"], timeout=timeout)
            elif params["state"] == "revert":
                vm.revert(name, timeout=timeout)
            tree = vm.snapshots(timeout=timeout)
            after = vm_facts(vm.info(timeout=timeout), tree)
        snapshot = snapshot_facts(next((s for s in tree.snapshots if s.name == name), None))
    result = diffed(module, before, after)
    if params["state"] == "revert":
        result["changed"] = True  # a revert throws away whatever the VM did since; nothing tells whether it did
    return {**result, "vm": after, "snapshot": snapshot}


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    run_host_module(host_module(OPTIONS), run)


if __name__ == "__main__":
    main()
