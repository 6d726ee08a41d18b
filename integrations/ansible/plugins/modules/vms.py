#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: a selection of VMs across a fleet (by labels, host, group or name) brought to one desired state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vms
short_description: Bring a selection of VMs across many hypervisors to one desired state, in one task
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Selects VMs across the hosts of a polyvisor fleet - by labels, host, config group, name or power state - and
    brings every one of them to the same desired state as the M(polyvisor.hypervisors.vm) module would (O(state),
    O(labels), O(snapshot)), all at once through C(polyvisor.Fleet), in one task and one process, over one pooled
    connection per host.
  - The whole request is checked before anything is done - every host the selection covers must answer its
    listing, every name in O(select.names) must be found, and every selected VM's host must support what the
    task asks - so a task that cannot be done fails having changed nothing.
  - Each VM reports its own result in RV(vms); the task fails when any VM failed, after the others were done.
    Idempotent; check mode predicts every VM's outcome without acting; diff mode shows each VM that changes.
  - Does not create VMs (a selection names VMs that exist); create them with M(polyvisor.hypervisors.vm).
requirements:
  - polyvisor (Python library) with the backends of the fleet's hosts (polyvisor-libvirt, polyvisor-hyperv) on
    the managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.fleet
  - polyvisor.hypervisors.desired_state
attributes:
  check_mode:
    description: Predicts each selected VM's outcome (state, labels, snapshots) and changes nothing.
    support: full
  diff_mode:
    description: Shows each selected VM's state, labels and snapshots before and after.
    support: full
options:
  select:
    description:
      - Which VMs the task acts on; every criterion given must hold, except that O(select.hosts) and
        O(select.groups) together mean either. At least one criterion is required (V(groups=[all]) selects every
        VM of the fleet).
    type: dict
    required: true
    suboptions:
      labels:
        description: Labels every selected VM carries (string keys and values).
        type: dict
      hosts:
        description: Hosts of the fleet (connection names).
        type: list
        elements: str
      groups:
        description: Groups of the config file's C([groups]) table; V(all) is every host.
        type: list
        elements: str
      names:
        description:
          - VM names, UUIDs, or C(host/name). Each must match a VM, or the task fails before acting.
        type: list
        elements: str
      states:
        description: Power states the selected VMs are in now.
        type: list
        elements: str
        choices: [running, stopped, paused, saved, crashed, suspended, starting, stopping, unknown]
  state:
    description:
      - V(present) leaves the power state alone (to set labels or take a snapshot); V(absent) deletes every
        selected VM, after a graceful shutdown (or a power-off with O(force)) if it runs.
      - V(running), V(stopped), V(paused) and V(saved) are reached with polyvisor's C(ensure()).
    type: str
    choices: [present, running, stopped, paused, saved, absent]
    default: present
  timeout:
    description: Seconds each step of one VM (power change, snapshot, delete) may take.
    type: float
    default: 120
"""

EXAMPLES = r"""
- name: Every web VM of the lab runs, patched label set
  polyvisor.hypervisors.vms:
    select:
      groups: [lab]
      labels: {role: web}
    state: running
    labels: {patched: "2026-12"}

- name: A snapshot of two named VMs, wherever they are
  polyvisor.hypervisors.vms:
    select:
      names: [db1, kvm1/db2]
    state: present
    snapshot: {name: before-upgrade}

- name: Hosts given in the task, the password from a vault variable
  polyvisor.hypervisors.vms:
    connections:
      - name: hv01
        uri: hyperv://Administrator@hv01.example.com/
        password: "{{ hv01_password }}"
        options: {ca_path: /etc/ssl/hv01-ca.pem}
      - name: kvm1
        uri: qemu+ssh://root@kvm1.example.com/system
    select:
      labels: {env: test}
    state: stopped
    force: true
"""

RETURN = r"""
vms:
  description: Every selected VM after the task (predicted in check mode), in the fleet's host order.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The fleet host the VM is on.
      type: str
      sample: hv01
    name:
      description: The VM's name.
      type: str
      sample: web1
    uuid:
      description: The VM's UUID.
      type: str
    state:
      description: polyvisor's power state, or V(absent) once deleted.
      type: str
      sample: running
    labels:
      description: The VM's labels.
      type: dict
    snapshots:
      description: The names of the VM's snapshots (only when the task has O(snapshot)).
      type: list
      elements: str
    changed:
      description: Whether the task changed this VM.
      type: bool
    failed:
      description: Whether this VM's part failed; then RV(vms[].msg) and RV(vms[].error_type) say why.
      type: bool
    msg:
      description: The polyvisor error of this VM's part, when it failed.
      type: str
    error_type:
      description: The polyvisor error class of this VM's part, when it failed.
      type: str
error_type:
  description:
    - The class of polyvisor error that failed the task. When VMs or hosts failed with errors of different
      classes, V(FleetError); each VM's own is in RV(vms).
    - V(ValidationError) for a problem with the task's options, found before anything was done.
  returned: failure
  type: str
  sample: AuthenticationError
"""

import contextlib
from collections.abc import Mapping
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils.fleet_selection import (
    FLEET_OPTIONS,
    by_key,
    find,
    open_fleet,
    select_option,
    selection,
)
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import (
    Module,
    TaskFailed,
    ephemeral_warning,
    error_type,
    named,
    run_module,
)
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.vm_state import (
    ABSENT,
    DESIRED_STATE_OPTIONS,
    POWER_STATES,
    check_request,
    clean_labels,
    converge,
    listed_facts,
    predict,
    shown,
    snapshot_names,
    steps,
)

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor

ARGUMENT_SPEC: dict[str, Any] = {
    **FLEET_OPTIONS,
    "select": select_option(required=True),
    "state": {"type": "str", "default": "present", "choices": ["present", *POWER_STATES, ABSENT]},
    **DESIRED_STATE_OPTIONS,
}


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result (``changed``, ``vms`` and, in diff mode, ``diff``)."""
    params = module.params
    labels = clean_labels(params["labels"]) if params["labels"] is not None else None
    with open_fleet(params) as fleet:
        chosen = selection(fleet, params["select"])
        found = find(fleet, chosen, params["select"]["names"])
        for host in sorted({vm.host for vm in found}, key=fleet.hosts.index):
            conn = fleet.connection(host)
            if conn.ephemeral:
                module.warn(ephemeral_warning(f"{conn.uri.render()} (host {host})"))
        if not found:
            module.warn(f"select matched no VM ({chosen.describe()}); nothing to do")
        before = {vm.key: {**listed_facts(vm.info), "host": vm.host} for vm in found}
        with_snapshots = params["snapshot"] is not None
        if with_snapshots and params["state"] != ABSENT:
            read = fleet.map_vms(found, snapshot_names, timeout=params["host_timeout"])
            fail_on_errors(read, before, "reading the snapshots failed, so nothing was done")
            for key, names in read.values.items():
                before[key]["snapshots"] = names
        problems: dict[str, polyvisor.PolyvisorError] = {}
        for vm in found:
            try:
                check_request(fleet.connection(vm.host).capabilities, vm.host, vm.name, params, labels, before[vm.key])
            except polyvisor.PolyvisorError as error:
                problems[vm.key] = error
        if problems:
            listed = "; ".join(f"{key}: {by_key(key, error)}" for key, error in problems.items())
            raise TaskFailed(
                f"{len(problems)} of {len(found)} VMs cannot be brought to this state, so nothing was done: {listed}",
                error_type(problems.values()),
                changed=False,
                vms=[],
            )
        if module.check_mode:
            after = {
                key: {**predict(facts["name"], facts, params, labels), "host": facts["host"]}
                for key, facts in before.items()
            }
            errors: dict[str, polyvisor.PolyvisorError] = {}
        else:
            after, errors = act(fleet, found, before, params, labels)
    return report(module, found, before, after, errors, with_snapshots)


def act(
    fleet: polyvisor.Fleet,
    found: list[polyvisor.FleetVM],
    before: dict[str, dict[str, Any]],
    params: Mapping[str, Any],
    labels: dict[str, str] | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, polyvisor.PolyvisorError]]:
    """Converge every selected VM at once; return each one's facts after, and the errors of those that failed
    (whose facts are read again, to say how they were left)."""
    # map_vms hands over a VM on its host's pooled connection: the connection says which host, the UUID which VM.
    host_of = {id(fleet.connection(host)): host for host in {vm.host for vm in found}}
    keys = {(vm.host, vm.uuid.lower()): vm.key for vm in found}
    by_uuid = {vm.uuid.lower(): vm.key for vm in found}  # a connection reopened meanwhile is another object

    def work(vm: polyvisor.VM) -> dict[str, Any]:
        uuid = vm.uuid.lower()
        key = keys.get((host_of.get(id(vm.connection), ""), uuid)) or by_uuid[uuid]
        return {**converge(vm, params, labels, before[key]), "host": before[key]["host"]}

    done = fleet.map_vms(found, work, timeout=params["timeout"] * steps(params))
    after = dict(done.values)
    errors = dict(done.errors)
    if errors:
        failed = [vm for vm in found if vm.key in errors]
        left = fleet.map_vms(failed, lambda vm: vm.info(), timeout=params["host_timeout"])
        for vm in failed:
            outcome = left.get(vm.key)
            if outcome is not None and outcome.error is None:
                facts = {**listed_facts(outcome.unwrap()), "host": vm.host, "snapshots": before[vm.key]["snapshots"]}
            elif outcome is not None and isinstance(outcome.error, polyvisor.NotFoundError):
                facts = {**before[vm.key], "state": ABSENT, "labels": {}, "snapshots": []}
            else:
                facts = {**before[vm.key], "state": "unknown"}
            after[vm.key] = facts
    return after, errors


def fail_on_errors(result: polyvisor.FleetResult[Any], before: Mapping[str, Any], what: str) -> None:
    """Raise :class:`TaskFailed` naming each VM whose read failed."""
    if result.errors:
        listed = "; ".join(f"{key}: {by_key(key, error)}" for key, error in result.errors.items())
        raise TaskFailed(
            f"{len(result.errors)} of {len(before)} VMs: {what}: {listed}",
            error_type(result.errors.values()),
            changed=False,
            vms=[],
        )


def report(
    module: Module,
    found: list[polyvisor.FleetVM],
    before: Mapping[str, dict[str, Any]],
    after: Mapping[str, dict[str, Any]],
    errors: Mapping[str, polyvisor.PolyvisorError],
    with_snapshots: bool,
) -> dict[str, Any]:
    """The task's result: every VM's facts and whether it changed; a failure when any VM failed."""
    entries, diffs = [], []
    for vm in found:
        old, new = shown(before[vm.key], snapshots=with_snapshots), shown(after[vm.key], snapshots=with_snapshots)
        entry = {"host": vm.host, **after[vm.key], "changed": old != new, "failed": vm.key in errors}
        if not with_snapshots:
            entry.pop("snapshots", None)
        if vm.key in errors:
            entry["msg"] = named(errors[vm.key], vm.host, vm.name)
            entry["error_type"] = type(errors[vm.key]).__name__
        entries.append(entry)
        if old != new:
            diffs.append({"before_header": vm.key, "after_header": vm.key, "before": old, "after": new})
    changed = any(entry["changed"] for entry in entries)
    if errors:
        listed = "; ".join(f"{vm.key}: {named(errors[vm.key], vm.host, vm.name)}" for vm in found if vm.key in errors)
        raise TaskFailed(
            f"{len(errors)} of {len(found)} VMs failed (the others are done): {listed}",
            error_type(errors.values()),
            changed=changed,
            vms=entries,
        )
    result: dict[str, Any] = {"changed": changed, "vms": entries}
    if module._diff:
        result["diff"] = diffs
    return result


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    module = Module(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
