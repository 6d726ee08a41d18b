#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: one VM's existence, power state, labels and snapshot, on any hypervisor polyvisor drives."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vm
short_description: Create, power, label, snapshot and delete a VM on libvirt/KVM or Hyper-V
version_added: "0.1.0"
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
    support: full
  diff_mode:
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

import copy
import os
import traceback
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import polyvisor
    from polyvisor.model import validate_labels, validate_name
except ImportError as error:  # reported by main() with an install hint
    IMPORT_ERROR: str | None = str(error)
else:
    IMPORT_ERROR = None

ABSENT = "absent"
POWER_STATES = ("running", "stopped", "paused", "saved")

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
    "force": {"type": "bool", "default": False},
    "spec": {"type": "dict"},
    "delete_storage": {"type": "bool", "default": False},
    "labels": {"type": "dict"},
    "purge_labels": {"type": "bool", "default": False},
    "snapshot": {
        "type": "dict",
        "options": {
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "memory": {"type": "bool", "default": False},
        },
    },
    "timeout": {"type": "float", "default": 120.0},
}


class TaskFailed(Exception):
    """A polyvisor error after the task acted: whether the VM changed before it, and the VM as it was left."""

    def __init__(self, error: polyvisor.PolyvisorError, changed: bool, vm: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.changed = changed
        self.vm = vm


def connect_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments for ``polyvisor.connect()`` that the task sets (none it leaves out)."""
    kwargs: dict[str, Any] = {}
    for key in ("username", "password", "ca_path"):
        if params[key] is not None:
            kwargs[key] = params[key]
    if not params["validate_certs"]:
        kwargs["verify"] = False
    return kwargs


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


def facts(vm: polyvisor.VM) -> dict[str, Any]:
    """Return what the task reports and diffs about an existing VM, read afresh."""
    info = vm.info()
    snapshots = []
    if vm.connection.supports(polyvisor.Feature.SNAPSHOTS):
        snapshots = sorted(snapshot.name for snapshot in vm.snapshots())
    return {
        "uuid": info.uuid,
        "name": info.name,
        "state": info.state.value,
        "labels": dict(info.labels),
        "snapshots": snapshots,
    }


def wanted_labels(current: Mapping[str, str], labels: dict[str, str] | None, purge: bool) -> dict[str, str]:
    """Return the labels the VM should end with."""
    if labels is None:
        return dict(current) if not purge else {}
    return dict(labels) if purge else {**current, **labels}


def predict(
    before: dict[str, Any] | None,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    spec: polyvisor.VMSpec | None,
) -> dict[str, Any]:
    """Return the VM's facts as the task would leave them (check mode's answer); ``spec`` creates it if absent."""
    name = params["name"]
    if params["state"] != ABSENT and before is not None:
        after = {**before, "labels": dict(before["labels"]), "snapshots": list(before["snapshots"])}
        after["labels"] = wanted_labels(after["labels"], labels, params["purge_labels"])
    elif params["state"] != ABSENT and spec is not None:
        after = {"uuid": None, "name": name, "state": "stopped", "labels": dict(spec.labels), "snapshots": []}
    else:
        return {"uuid": None, "name": name, "state": ABSENT, "labels": {}, "snapshots": []}
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


def check_request(
    conn: polyvisor.Connection,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    before: dict[str, Any] | None,
) -> polyvisor.VMSpec | None:
    """Refuse a task that would fail part way, before anything is done (so check mode predicts the failure).

    Return the spec to create the VM from, or None when it exists or is to be deleted.
    """
    name, state, caps = params["name"], params["state"], conn.capabilities
    if state == ABSENT:
        return None

    def need(feature: polyvisor.Feature) -> None:
        caps.require(feature, host=conn.host, vm=name)

    if labels is not None:
        validate_labels(labels)
    if labels is not None or params["purge_labels"]:
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
    return create_spec(params, labels) if before is None else None


def apply(
    conn: polyvisor.Connection,
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
    spec: polyvisor.VMSpec | None,
) -> None:
    """Make the changes the task asks for, each one only when it is needed."""
    name, state, timeout, force = params["name"], params["state"], params["timeout"], params["force"]
    if state == ABSENT:
        if conn.exists(name):
            vm = conn.vm(name)
            if not (force and vm.state() is polyvisor.PowerState.SAVED):  # delete(force=True) drops saved memory
                vm.ensure("stopped", force=force, timeout=timeout)
            vm.delete(storage=params["delete_storage"], force=force, timeout=timeout)
        return
    # A new VM is made with its labels in one step: whole, or not at all.
    vm = conn.create(spec, timeout=timeout) if spec is not None and not conn.exists(name) else conn.vm(name)
    if labels is not None or params["purge_labels"]:
        current = dict(vm.labels())
        target = wanted_labels(current, labels, params["purge_labels"])
        if target != current:
            vm.set_labels(target)
    if state in POWER_STATES:
        vm.ensure(state, force=force, timeout=timeout)
    snapshot = params["snapshot"]
    if snapshot is not None:
        exists = snapshot["name"] in vm.snapshots()
        if snapshot["state"] == "present" and not exists:
            vm.snapshot(snapshot["name"], memory=snapshot["memory"], timeout=timeout)
        elif snapshot["state"] == "absent" and exists:
            vm.delete_snapshot(snapshot["name"], timeout=timeout)


def run(module: AnsibleModule) -> dict[str, Any]:
    """Do the task; return its result (``changed``, ``vm`` and, in diff mode, ``diff``)."""
    params = module.params
    if params["config"]:
        os.environ["POLYVISOR_CONFIG"] = params["config"]  # this process runs one task: nothing else reads it
    labels = clean_labels(params["labels"]) if params["labels"] is not None else None
    target = params["uri"] or params["connection"]
    name = params["name"]
    with polyvisor.connect(target, **connect_kwargs(params)) as conn:
        if conn.ephemeral:
            module.warn(ephemeral_warning(conn))
        before = facts(conn.vm(name)) if conn.exists(name) else None
        spec = check_request(conn, params, labels, before)
        if module.check_mode:
            after = predict(before, params, labels, spec)
        else:
            try:
                apply(conn, params, labels, spec)
            except polyvisor.PolyvisorError as error:
                left = facts(conn.vm(name)) if conn.exists(name) else predict(None, params, None, None)
                raise TaskFailed(error, _shown(before) != _shown(_existing(left)), left) from error
            after = facts(conn.vm(name)) if conn.exists(name) else predict(None, params, None, None)
    shown_before = _shown(before)
    shown_after = _shown(_existing(after))
    result: dict[str, Any] = {"changed": shown_before != shown_after, "vm": after}
    if module._diff:
        result["diff"] = {"before": shown_before, "after": shown_after}
    return result


def ephemeral_warning(conn: polyvisor.Connection) -> str:
    """What a task on a hypervisor that forgets its VMs with its connections (``test:///default``) is told."""
    return (
        f"{conn.uri.render()} keeps its VMs only while a connection to it is open (libvirt's test driver, "
        "polyvisor's memory://), and this task's connection closes when the task ends: what the task did is gone, "
        "and the next task starts again from a fresh hypervisor (it reports changed every time, and its VMs and "
        "labels never reach another task). Use a hypervisor that keeps its VMs, such as qemu:///system, "
        "qemu:///session or a Hyper-V host."
    )


def _existing(vm: dict[str, Any]) -> dict[str, Any] | None:
    return vm if vm["state"] != ABSENT else None


def _shown(vm: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a VM's facts that diff mode shows and ``changed`` compares."""
    if vm is None:
        return {"state": ABSENT}
    return {"state": vm["state"], "labels": dict(vm["labels"]), "snapshots": list(vm["snapshots"])}


class Module(AnsibleModule):  # type: ignore[misc]  # Ansible ships no type hints
    """AnsibleModule whose every failure carries ``error_type``: those of the arguments (an unknown option, a
    bad choice, ...), reported by AnsibleModule itself, are ``ValidationError``."""

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        kwargs.setdefault("error_type", "ValidationError")
        super().fail_json(msg=msg, **kwargs)


def named(error: polyvisor.PolyvisorError, connection: str | None) -> str:
    """The error's message, naming the host as the task does (``connection: hv1``) rather than by address."""
    if connection and error.host is not None and error.host != connection:
        error = copy.copy(error)
        error.host = connection
    return str(error)


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    module = Module(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("uri", "connection")],
        supports_check_mode=True,
    )
    if IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("polyvisor"), exception=IMPORT_ERROR, error_type="ImportError")
    connection = module.params["connection"]
    try:
        result = run(module)
    except TaskFailed as failed:
        # The task acted before the error: say whether the VM changed, and how it was left.
        error = failed.error
        module.fail_json(
            msg=named(error, connection), error_type=type(error).__name__, changed=failed.changed, vm=failed.vm
        )
    except polyvisor.PolyvisorError as error:
        # polyvisor's messages name the host and VM but never a secret.
        module.fail_json(msg=named(error, connection), error_type=type(error).__name__, changed=False)
    except Exception as error:  # a bug, here or in a backend: still a failure with its class named
        module.fail_json(
            msg=f"{type(error).__name__}: {error}",
            error_type=type(error).__name__,
            exception=traceback.format_exc(),
            changed=False,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
