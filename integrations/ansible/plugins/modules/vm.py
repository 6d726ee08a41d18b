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
  - Creates the VM from O(spec) when it does not exist, then sets its labels, then brings it to O(state) with
    polyvisor's C(ensure()) (which plans the steps from whatever state the VM is in), then takes or deletes the
    O(snapshot).
  - Idempotent. Check mode predicts the outcome without acting; diff mode shows the state, labels and snapshot
    names before and after.
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
options:
  uri:
    description:
      - The hypervisor's polyvisor URI, such as C(qemu:///system) or C(hyperv://Administrator@hv01.example.com/).
      - Without O(uri) and O(connection), polyvisor's default applies (C($POLYVISOR_URI), or the config file's
        C(default)).
    type: str
  connection:
    description: A connection named in the polyvisor config file (see O(config)).
    type: str
  config:
    description: The polyvisor config file that names connections (sets C($POLYVISOR_CONFIG) for this task).
    type: path
  username:
    description: User name, when the URI or named connection does not carry one.
    type: str
  password:
    description: Password (Hyper-V); never shown in output or logs.
    type: str
  ca_path:
    description: PEM file with the CA that signed the hypervisor's certificate (Hyper-V over HTTPS).
    type: path
  validate_certs:
    description: Verify the hypervisor's TLS certificate. Turn off only for test setups.
    type: bool
    default: true
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
  force:
    description:
      - Allow lossy shortcuts - power off instead of a graceful shutdown, discard saved memory, delete a VM with its
        saved memory.
    type: bool
    default: false
  spec:
    description:
      - How to create the VM when it does not exist (polyvisor's VM spec - C(cpus), C(memory_mib), C(disks),
        C(nics), C(labels), ...). Its C(name) defaults to O(name) and must match it. Ignored when the VM exists.
    type: dict
  delete_storage:
    description: With O(state=absent), delete the VM's disks too.
    type: bool
    default: false
  labels:
    description: Labels (string keys and values) to set on the VM; others are kept unless O(purge_labels).
    type: dict
  purge_labels:
    description: Remove every label not in O(labels).
    type: bool
    default: false
  snapshot:
    description: A snapshot (a checkpoint on Hyper-V) to take or delete, after the power state is reached.
    type: dict
    suboptions:
      name:
        description: The snapshot's name.
        type: str
        required: true
      state:
        description: Whether the snapshot should exist. An existing snapshot is never taken again.
        type: str
        choices: [present, absent]
        default: present
      memory:
        description: Keep the running memory too (needs a running or paused VM).
        type: bool
        default: false
  timeout:
    description: Seconds each step (create, power change, snapshot, delete) may take.
    type: float
    default: 120
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
import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import (
    Module,
    TaskFailed,
    connect_kwargs,
    ephemeral_warning,
    named,
    run_module,
)
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

ARGUMENT_SPEC: dict[str, Any] = {
    "uri": {"type": "str"},
    "connection": {"type": "str"},
    "config": {"type": "path"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "ca_path": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", *POWER_STATES, ABSENT]},
    "spec": {"type": "dict"},
    **DESIRED_STATE_OPTIONS,
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
    spec_labels = clean_labels(spec.get("labels"), "spec.labels")
    spec["labels"] = wanted_labels(spec_labels, labels, params["purge_labels"])
    try:
        return polyvisor.VMSpec.from_dict(spec)
    except polyvisor.ValidationError as error:
        field = error.field or "spec"
        raise polyvisor.ValidationError(
            error.message, field=field if field.startswith("spec") else f"spec.{field}"
        ) from None


def apply(
    conn: polyvisor.Connection,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    spec: polyvisor.VMSpec | None,
    before: dict[str, Any] | None,
) -> None:
    """Make the changes the task asks for, each one only when it is needed."""
    if before is None:
        if spec is None:  # absent already
            return
        # A new VM is made with its labels in one step: whole, or not at all.
        vm = conn.create(spec, timeout=params["timeout"])
        before = predict(params["name"], None, {**params, "state": "present", "snapshot": None}, None, spec)
        before["uuid"] = vm.uuid
    else:
        vm = conn.vm(before["uuid"])
    converge(vm, params, labels, before)


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result (``changed``, ``vm`` and, in diff mode, ``diff``)."""
    params = module.params
    if params["config"]:
        os.environ["POLYVISOR_CONFIG"] = params["config"]  # this process runs one task: nothing else reads it
    labels = clean_labels(params["labels"]) if params["labels"] is not None else None
    target = params["uri"] or params["connection"]
    name = params["name"]
    with polyvisor.connect(target, **connect_kwargs(params)) as conn:
        if conn.ephemeral:
            module.warn(ephemeral_warning(conn.uri.render()))
        before = facts(conn.vm(name)) if conn.exists(name) else None
        check_request(conn.capabilities, conn.host, name, params, labels, before)
        spec = create_spec(params, labels) if before is None and params["state"] != ABSENT else None
        if module.check_mode:
            after = predict(name, before, params, labels, spec)
        else:
            try:
                apply(conn, params, labels, spec, before)
            except polyvisor.PolyvisorError as error:
                # The task acted before the error: say whether the VM changed, and how it was left.
                left = facts(conn.vm(name)) if conn.exists(name) else absent(name)
                raise TaskFailed(
                    named(error, params["connection"]),
                    type(error).__name__,
                    changed=shown(before) != shown(left),
                    vm=left,
                ) from error
            after = facts(conn.vm(name)) if conn.exists(name) else absent(name)
    if after["state"] == ABSENT:
        after["uuid"] = None
    result: dict[str, Any] = {"changed": shown(before) != shown(after), "vm": after}
    if module._diff:
        result["diff"] = {"before": shown(before), "after": shown(after)}
    return result


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    module = Module(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("uri", "connection")],
        supports_check_mode=True,
    )
    run_module(module, run, module.params["connection"])


if __name__ == "__main__":
    main()
