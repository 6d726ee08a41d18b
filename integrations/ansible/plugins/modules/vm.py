#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: one VM's existence, power state, labels and snapshot, on any hypervisor polyvisor drives."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vm
short_description: Create, power, label, snapshot and delete a VM on libvirt/KVM or Hyper-V
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Brings one VM to a desired state through the polyvisor library, with the same meaning on every hypervisor
    polyvisor drives (libvirt/KVM/QEMU, Hyper-V).
  - Creates the VM from O(spec) when it does not exist, then sets its labels and sizes (O(cpus), O(memory_mib),
    O(disks)), then brings it to O(state) with polyvisor's C(ensure()) (which plans the steps from whatever state
    the VM is in), then takes or deletes the O(snapshot), then waits for what O(wait_for) names. A task that stops
    the VM changes its sizes once it is stopped.
  - The whole request is checked before anything is done, so a task that cannot be done fails having changed
    nothing, and check mode predicts the failure.
  - Idempotent. Check mode predicts the outcome without acting; diff mode shows the state, labels and snapshot
    names (and the sizes the task sets) before and after.
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt, polyvisor-hyperv) on the
    managed node
attributes:
  check_mode:
    description: Predicts the VM's outcome (state, labels, snapshots) and changes nothing.
    support: full
  diff_mode:
    description: Shows the VM's state, labels and snapshots before and after.
    support: full
extends_documentation_fragment:
  - polyvisor.hypervisors.connection
  - polyvisor.hypervisors.desired_state
options:
  name:
    description: The VM's name.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the VM exists and leaves its power state alone; V(absent) deletes it, after a
        graceful shutdown (or a power-off with O(force)) if it runs.
      - V(running), V(stopped), V(paused) and V(saved) are reached with polyvisor's C(ensure()).
    type: str
    choices: [present, running, stopped, paused, saved, absent]
    default: present
  spec:
    description:
      - How to create the VM when it does not exist (polyvisor's VM spec - C(cpus), C(memory_mib), C(disks),
        C(nics), C(labels), ...). Its C(name) defaults to O(name) and must match it. Ignored when the VM exists.
      - O(cpus) and O(memory_mib), when given, are the new VM's too (a spec that says otherwise is refused).
    type: dict
  cpus:
    description:
      - The VM's virtual CPUs. An existing VM with another count is reconfigured - stopped, its definition
        changes; running, live where the host allows it (not Hyper-V, where the task then fails before acting;
        add O(state=stopped)).
    type: int
  memory_mib:
    description:
      - The VM's memory, in MiB, reconfigured as O(cpus) is (a running VM only within the maximum it started
        with).
    type: int
  disks:
    description:
      - Sizes of the VM's disks, by target name (C(vda), C(SCSI:0:0), as C(vm.disks) reports them). A smaller disk
        is grown - the guest then grows its partitions and file systems itself; disks never shrink, so a size
        below the disk's fails the task before anything is done, as does a target the VM does not have.
      - For a VM the task creates, the disks of O(spec) are grown after creation.
    type: list
    elements: dict
    suboptions:
      target:
        description: The disk's target name.
        type: str
        required: true
      size_mib:
        description: Its size, in MiB, at least its size now.
        type: int
        required: true
  wait_for:
    description:
      - Once the VM runs, wait until the guest has a usable address (V(address) - not loopback or link-local; from
        libvirt's guest agent, DHCP lease or ARP table, Hyper-V's KVP) or has finished starting (V(ready) -
        cloud-init's end through the guest agent on libvirt, the heartbeat integration service on Hyper-V, or
        SSH answering, see O(ready_sources)). The VM must be running after the task.
      - A wait changes nothing, so it does not make the task C(changed); check mode does not wait.
    type: str
    choices: [address, ready]
  wait_timeout:
    description: Seconds O(wait_for) may wait; then the task fails saying what each source answered last.
    type: float
    default: 300
  ready_sources:
    description:
      - With O(wait_for=ready), the sources that must all say the guest is ready (C(cloud-init), C(heartbeat),
        C(ssh)); the host's own without it.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: A small VM on the local libvirtd, running, labelled, with a snapshot
  polyvisor.hypervisors.vm:
    uri: qemu:///system
    name: web1
    state: running
    spec:
      cpus: 2
      memory_mib: 1024
      disks:
        - size_mib: 10240
    labels:
      role: web
    snapshot:
      name: installed

- name: Two more CPUs and a bigger disk, then wait until it has an address
  polyvisor.hypervisors.vm:
    uri: qemu:///system
    name: web1
    state: running
    cpus: 4
    disks:
      - target: vda
        size_mib: 20480
    wait_for: address
  register: web1

- name: The same on Hyper-V, password from a vault variable
  polyvisor.hypervisors.vm:
    uri: hyperv://Administrator@hv01.example.com/
    password: "{{ hv01_password }}"
    ca_path: /etc/ssl/hv01-ca.pem
    name: web1
    state: running
    spec:
      memory_mib: 1024

- name: Gone, disks included, powered off first if need be
  polyvisor.hypervisors.vm:
    connection: hv01
    name: web1
    state: absent
    force: true
    delete_storage: true
"""

RETURN = r"""
vm:
  description: The VM after the task (predicted in check mode); C(state) is V(absent) once deleted.
  returned: always
  type: dict
  contains:
    uuid:
      description: The VM's UUID (null when it does not exist, or is only predicted to).
      type: str
      sample: 5d1e3b0a-3c4f-4b8e-9d59-0c6a7b1f2e11
    name:
      description: The VM's name.
      type: str
      sample: web1
    state:
      description: polyvisor's power state (running, stopped, paused, saved, ...), or V(absent).
      type: str
      sample: running
    labels:
      description: The VM's labels.
      type: dict
      sample: {role: web}
    snapshots:
      description: The names of the VM's snapshots.
      type: list
      elements: str
      sample: [installed]
    cpus:
      description: Its virtual CPUs (absent once deleted).
      type: int
      sample: 2
    memory_mib:
      description: Its memory, in MiB (absent once deleted).
      type: int
      sample: 1024
    disks:
      description: Its disks' sizes in MiB by target name (only when the task has O(disks)).
      type: dict
      sample: {vda: 20480}
    address:
      description: The address O(wait_for=address) found (C(address), C(interface), C(mac), C(prefix), C(source)).
      type: dict
      sample: {address: 192.0.2.10, interface: eth0, mac: "52:54:00:12:34:56", prefix: 24, source: agent}
    readiness:
      description: What said the guest is ready, with O(wait_for=ready) (C(sources), C(errors), C(detail), C(waited)).
      type: dict
error_type:
  description:
    - The class of polyvisor error that failed the task (C(NotFoundError), C(InvalidStateError), ...). Every failure
      has one - V(ValidationError) for a problem with the task's options, found before anything was done (a field
      of O(spec) is named C(spec.<field>)); V(ImportError) when polyvisor is not installed.
    - A host named by O(connection) is named so in the message (C([host hv1])), not by its address.
  returned: failure
  type: str
  sample: InvalidStateError
"""

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils import vm_sizing
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.host_task import (
    connected,
    host_module,
    run_host_module,
)
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import Module, TaskFailed, named
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.vm_state import (
    ABSENT,
    DESIRED_STATE_OPTIONS,
    POWER_STATES,
    absent,
    check_request,
    clean_labels,
    converge,
    facts,
    predict,
    shown,
    wanted_labels,
)

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor

OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", *POWER_STATES, ABSENT]},
    "spec": {"type": "dict"},
    **DESIRED_STATE_OPTIONS,
    **vm_sizing.SIZE_OPTIONS,
}


def create_spec(params: Mapping[str, Any], labels: dict[str, str] | None) -> polyvisor.VMSpec:
    """Return the validated create spec: the task's ``spec`` with the VM's name and the task's labels, so that
    the VM is made with them in one step; a problem in it is reported as being in ``spec``."""
    if params["spec"] is None:
        raise polyvisor.ValidationError(
            f"VM {params['name']!r} does not exist and the task has no spec to create it from; "
            "add spec (at least {memory_mib: ...}) or create it first",
            field="spec",
        )
    spec = dict(params["spec"])
    if spec.setdefault("name", params["name"]) != params["name"]:
        raise polyvisor.ValidationError(
            f"{spec['name']!r} differs from name {params['name']!r}; drop spec.name", field="spec.name"
        )
    for key in ("cpus", "memory_mib"):
        if params[key] is not None and spec.setdefault(key, params[key]) != params[key]:
            raise polyvisor.ValidationError(
                f"{spec[key]!r} differs from {key} {params[key]!r}; give one of them", field=f"spec.{key}"
            )
    spec_labels = clean_labels(spec.get("labels"), "spec.labels")
    spec["labels"] = wanted_labels(spec_labels, labels, params["purge_labels"])
    try:
        return polyvisor.VMSpec.from_dict(spec)
    except polyvisor.ValidationError as error:
        field = error.field or "spec"
        raise polyvisor.ValidationError(
            error.message, field=field if field.startswith("spec") else f"spec.{field}"
        ) from None


def read_facts(vm: polyvisor.VM, params: Mapping[str, Any]) -> dict[str, Any]:
    """The VM's facts, with its disks' sizes when the task sets them."""
    found = facts(vm)
    if params["disks"] is not None:
        found["disks"] = {disk.target: disk.size_mib for disk in vm.disks(timeout=params["timeout"])}
    return found


def sized(after: dict[str, Any], params: Mapping[str, Any], spec: polyvisor.VMSpec | None) -> dict[str, Any]:
    """Check mode's prediction with the task's sizes (and a new VM's from its spec)."""
    if after["state"] == ABSENT:
        return after
    if spec is not None:
        after.update(cpus=spec.cpus, memory_mib=spec.memory_mib, disks={})
    for key in ("cpus", "memory_mib"):
        if params[key] is not None:
            after[key] = params[key]
    if params["disks"] is not None:
        after["disks"] = {**after.get("disks", {}), **vm_sizing.wanted_disks(params)}
    return after


def size_step(vm: polyvisor.VM, params: Mapping[str, Any], before: dict[str, Any]) -> Callable[[str], None]:
    """The size changes as converge()'s hook: refused now if the host cannot make them, made at their phase."""
    wanted = vm_sizing.changes(params, before)
    phase = vm_sizing.plan(vm.capabilities(), vm.connection.host, params, before, wanted)

    def step(now: str) -> None:
        if now == phase:
            vm_sizing.apply(vm, wanted, params["timeout"])

    return step


def apply(
    conn: polyvisor.Connection,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    spec: polyvisor.VMSpec | None,
    before: dict[str, Any] | None,
    sizes: Callable[[str], None] | None,
) -> polyvisor.VM | None:
    """Make the changes the task asks for, each one only when it is needed; return the VM (None once gone)."""
    if before is None:
        if spec is None:  # absent already
            return None
        # A new VM is made with its labels in one step: whole, or not at all.
        vm = conn.create(spec, timeout=params["timeout"])
        before = predict(params["name"], None, {**params, "state": "present", "snapshot": None}, None, spec)
        before.update(uuid=vm.uuid, cpus=spec.cpus, memory_mib=spec.memory_mib)
        if params["disks"] is not None:
            before["disks"] = read_facts(vm, params)["disks"]
        sizes = size_step(vm, params, before)
    else:
        vm = conn.vm(before["uuid"])
    converge(vm, params, labels, before, sizes)
    return None if params["state"] == ABSENT else vm


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result (``changed``, ``vm`` and, in diff mode, ``diff``)."""
    params = module.params
    labels = clean_labels(params["labels"]) if params["labels"] is not None else None
    name = params["name"]
    keys = vm_sizing.managed(params)
    with connected(module) as conn:
        vm = conn.vm(name) if conn.exists(name) else None
        before = read_facts(vm, params) if vm is not None and params["state"] != ABSENT else None
        if vm is not None and before is None:
            before = facts(vm)
        check_request(conn.capabilities, conn.host, name, params, labels, before)
        spec = create_spec(params, labels) if before is None and params["state"] != ABSENT else None
        sizes: Callable[[str], None] | None = None
        if params["state"] != ABSENT:
            vm_sizing.check_wait(params, before)
            if vm is not None and before is not None:
                sizes = size_step(vm, params, before)
        if module.check_mode:
            after = sized(predict(name, before, params, labels, spec), params, spec)
        else:
            try:
                vm = apply(conn, params, labels, spec, before, sizes)
                after = read_facts(vm, params) if vm is not None else absent(name)
                if params["wait_for"] is not None and vm is not None:
                    after.update(vm_sizing.wait(vm, params))
            except polyvisor.PolyvisorError as error:
                # The task acted before the error: say whether the VM changed, and how it was left.
                left = read_facts(conn.vm(name), params) if conn.exists(name) else absent(name)
                raise TaskFailed(
                    named(error, params["connection"]),
                    type(error).__name__,
                    changed=shown(before, sizes=keys) != shown(left, sizes=keys),
                    vm=left,
                ) from error
    if after["state"] == ABSENT:
        after["uuid"] = None
    result: dict[str, Any] = {"changed": shown(before, sizes=keys) != shown(after, sizes=keys), "vm": after}
    if module._diff:
        result["diff"] = {"before": shown(before, sizes=keys), "after": shown(after, sizes=keys)}
    return result


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    run_host_module(host_module(OPTIONS), run)


if __name__ == "__main__":
    main()
