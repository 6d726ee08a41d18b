#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: the facts of a selection of VMs across a fleet, read in one task and changing nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_info
short_description: Facts about the VMs of a polyvisor fleet (libvirt/KVM, Hyper-V), in one task
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Reads the VMs a selection matches across the hosts of a polyvisor fleet - by labels, host, config group, name
    or power state, or every VM without O(select) - asking every host at once through C(polyvisor.Fleet), and
    returns each VM's power state, labels, CPUs and memory (and, with O(snapshots), its snapshots).
  - Changes nothing, so it runs in check mode as for real and always reports C(changed=false).
  - Every host the selection covers must answer its listing, and every name in O(select.names) must match a VM, or
    the task fails naming them.
requirements:
  - polyvisor (Python library) with the backends of the fleet's hosts (polyvisor-libvirt, polyvisor-hyperv) on
    the managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.fleet
attributes:
  check_mode:
    description: Reads the same facts; the module never changes anything.
    support: full
  diff_mode:
    description: There is nothing to diff; the module never changes anything.
    support: none
options:
  select:
    description:
      - Which VMs to read; every criterion given must hold, except that O(select.hosts) and O(select.groups)
        together mean either. Without it, every VM of the fleet.
    type: dict
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
          - VM names, UUIDs, or C(host/name). Each must match a VM, or the task fails.
        type: list
        elements: str
      states:
        description: Power states the selected VMs are in now.
        type: list
        elements: str
        choices: [running, stopped, paused, saved, crashed, suspended, starting, stopping, unknown]
  snapshots:
    description: Read each VM's snapshots too (one more call per VM).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: What runs on the lab's hosts
  polyvisor.hypervisors.vm_info:
    select:
      groups: [lab]
      states: [running]
  register: lab

- name: The web VMs' snapshots, hosts given in the task
  polyvisor.hypervisors.vm_info:
    connections:
      - name: kvm1
        uri: qemu:///system
    select:
      labels: {role: web}
    snapshots: true
  register: web

- name: Every VM without a snapshot named before-upgrade
  ansible.builtin.debug:
    msg: "{{ web.vms | rejectattr('snapshots', 'contains', 'before-upgrade') | map(attribute='name') | list }}"
"""

RETURN = r"""
vms:
  description: Every selected VM, in the fleet's host order.
  returned: success
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
      description: polyvisor's power state.
      type: str
      sample: running
    labels:
      description: The VM's labels.
      type: dict
    cpus:
      description: Virtual CPUs.
      type: int
      sample: 2
    memory_mib:
      description: Memory, in MiB.
      type: int
      sample: 2048
    description:
      description: The VM's description (its notes on Hyper-V).
      type: str
    has_saved_state:
      description: Whether the VM holds saved memory (a saved state to resume from).
      type: bool
    snapshots:
      description: The names of the VM's snapshots, sorted (only with O(snapshots)).
      type: list
      elements: str
error_type:
  description:
    - The class of polyvisor error that failed the task; V(FleetError) when hosts failed with different ones.
    - V(ValidationError) for a problem with the task's options, found before anything was read.
  returned: failure
  type: str
  sample: NotFoundError
"""

import contextlib
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
    run_module,
)
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.vm_state import snapshot_names

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor

ARGUMENT_SPEC: dict[str, Any] = {
    **FLEET_OPTIONS,
    "select": select_option(required=False),
    "snapshots": {"type": "bool", "default": False},
}


def vm_facts(vm: polyvisor.FleetVM) -> dict[str, Any]:
    """What the task returns about one VM, from a listing with details."""
    info = vm.info
    return {
        "host": vm.host,
        "name": info.name,
        "uuid": info.uuid,
        "state": info.state.value,
        "labels": dict(info.labels),
        "cpus": info.cpus,
        "memory_mib": info.memory_mib,
        "description": info.description,
        "has_saved_state": info.has_saved_state,
    }


def run(module: Module) -> dict[str, Any]:
    """Read the selected VMs; return ``vms``."""
    params = module.params
    select = params["select"]
    with open_fleet(params) as fleet:
        chosen = selection(fleet, select, every=True)
        found = find(fleet, chosen, select["names"] if select else None)
        for host in sorted({vm.host for vm in found}, key=fleet.hosts.index):
            conn = fleet.connection(host)
            if conn.ephemeral:
                module.warn(ephemeral_warning(f"{conn.uri.render()} (host {host})"))
        vms = {vm.key: vm_facts(vm) for vm in found}
        if params["snapshots"]:
            read = fleet.map_vms(found, snapshot_names, timeout=params["host_timeout"])
            if read.errors:
                listed = "; ".join(f"{key}: {by_key(key, error)}" for key, error in read.errors.items())
                raise TaskFailed(
                    f"{len(read.errors)} of {len(found)} VMs: reading the snapshots failed: {listed}",
                    error_type(read.errors.values()),
                    changed=False,
                )
            for key, names in read.values.items():
                vms[key]["snapshots"] = names
    return {"changed": False, "vms": [vms[vm.key] for vm in found]}


def main() -> None:
    """Entry point: parse the task's arguments, read, report."""
    module = Module(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
