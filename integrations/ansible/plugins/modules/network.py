#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: a network (libvirt) or virtual switch (Hyper-V) that exists, or does not."""

from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: Create or delete a network (libvirt) or virtual switch (Hyper-V)
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Makes sure a network VMs' NICs can join exists on the hypervisor, or does not, through the polyvisor
    library - one model on both, the differences declared as capabilities. O(mode=isolated) connects the VMs
    only (libvirt without forward or host address, Hyper-V's Private switch); O(mode=internal) the VMs and the
    host (Hyper-V's Internal switch); O(mode=nat) also the world beyond, through the host (libvirt only);
    O(mode=external) a host adapter's physical network (Hyper-V only).
  - Idempotent. An existing network of the same name is compared with the task - its O(mode), and its
    O(subnet) when the task gives one - and a difference fails the task, which never rebuilds a network VMs may
    be on. Deleting a network a NIC is on fails naming the VMs (C(InUseError)).
  - Check mode predicts the outcome without acting; diff mode shows the network before and after.
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt, polyvisor-hyperv) on the
    managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.connection
attributes:
  check_mode:
    description: Predicts whether the network would be made or deleted, and changes nothing.
    support: full
  diff_mode:
    description: Shows the network (name, mode, subnet) before and after.
    support: full
options:
  name:
    description: The network's (or switch's) name.
    type: str
    required: true
  mode:
    description: Who the network connects (see the description); each mode is a capability of the host.
    type: str
    choices: [isolated, internal, nat, external]
    default: isolated
  subnet:
    description:
      - The IPv4 range of an V(internal) or V(nat) network (C(10.77.0.0/24)), on hosts that give networks
        addresses (libvirt, which requires it for those modes). No other network of the host may overlap it.
    type: str
  adapter:
    description: The host adapter an V(external) switch is bound to (Hyper-V).
    type: str
  state:
    description: Whether the network should exist.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: A network the lab's VMs share with nothing else
  polyvisor.hypervisors.network:
    uri: qemu:///system
    name: lab-isolated

- name: An Internal switch on Hyper-V (the host takes part)
  polyvisor.hypervisors.network:
    connection: hv01
    name: lab-internal
    mode: internal

- name: Gone (refused while a VM's NIC is on it)
  polyvisor.hypervisors.network:
    uri: qemu:///system
    name: lab-isolated
    state: absent
"""

RETURN = r"""
network:
  description: The network after the task (predicted in check mode); null once deleted.
  returned: success
  type: dict
  contains:
    name:
      description: The network's name.
      type: str
      sample: lab-isolated
    mode:
      description: Who it connects (V(isolated), V(internal), V(nat), V(external)), when polyvisor can tell.
      type: str
      sample: isolated
    kind:
      description: The hypervisor's own word for it (libvirt's forward mode, Hyper-V's SwitchType).
      type: str
    subnet:
      description: Its IPv4 range, when the host has an address on it.
      type: str
    active:
      description: Whether it is up.
      type: bool
error_type:
  description: The class of polyvisor error that failed the task (C(InUseError), C(UnsupportedError), ...).
  returned: failure
  type: str
  sample: UnsupportedError
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
    from polyvisor.networks import MODE_FEATURES, NetworkSpec

OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "mode": {"type": "str", "default": "isolated", "choices": ["isolated", "internal", "nat", "external"]},
    "subnet": {"type": "str"},
    "adapter": {"type": "str"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def network_facts(network: polyvisor.NetworkInfo | None) -> dict[str, Any] | None:
    """What the task reports about a network."""
    if network is None:
        return None
    return {
        "name": network.name,
        "mode": network.mode.value if network.mode is not None else None,
        "kind": network.kind,
        "subnet": network.subnet,
        "active": network.active,
    }


def shown(facts: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a network's facts that diff mode shows and ``changed`` compares."""
    if facts is None:
        return {"state": "absent"}
    return {"state": "present", "name": facts["name"], "mode": facts["mode"], "subnet": facts["subnet"]}


def differences(params: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """How an existing network differs from the task."""
    found = []
    if facts["mode"] is not None and facts["mode"] != params["mode"]:
        found.append(f"its mode is {facts['mode']}, not {params['mode']}")
    if params["subnet"] is not None and facts["subnet"] != params["subnet"]:
        found.append(f"its subnet is {facts['subnet'] or 'none'}, not {params['subnet']}")
    return found


def check_new(conn: polyvisor.Connection, params: dict[str, Any]) -> None:
    """Refuse, before acting (so check mode predicts it), a network the host cannot make: a bad name or subnet, a
    mode it lacks, an internal or NAT network without the subnet this host needs."""
    spec = NetworkSpec(params["name"], polyvisor.NetworkMode(params["mode"]), params["subnet"], params["adapter"])
    caps = conn.capabilities
    caps.require(polyvisor.Feature.NETWORK_WRITE, host=conn.host)
    caps.require(MODE_FEATURES[spec.mode], host=conn.host)
    if spec.subnet is not None:
        caps.require(polyvisor.Feature.NETWORK_ADDRESSES, host=conn.host)
    elif spec.mode.value in ("internal", "nat") and caps.supports(polyvisor.Feature.NETWORK_ADDRESSES):
        raise polyvisor.ValidationError(
            f"an {spec.mode.value} network on this host needs an address range: give subnet (such as 10.77.0.0/24)",
            field="subnet",
        )


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result."""
    params = module.params
    name, timeout = params["name"], params["timeout"]
    with connected(module) as conn:
        listed = conn.networks(timeout=timeout)
        found = next((network for network in listed if network.name.casefold() == name.casefold()), None)
        before = network_facts(found)
        after = before
        if params["state"] == "absent" and before is not None:
            after = None
            if not module.check_mode:
                conn.delete_network(before["name"], timeout=timeout)
        elif params["state"] == "present" and before is not None:
            wrong = differences(params, before)
            if wrong:
                raise polyvisor.ValidationError(
                    f"network {before['name']!r} exists, but {'; '.join(wrong)}: this module never rebuilds a "
                    "network VMs may be on; delete it first (state: absent), or ask for what it is",
                    field="mode" if "mode" in wrong[0] else "subnet",
                )
        elif params["state"] == "present":
            check_new(conn, params)
            predicted = {"name": name, "mode": params["mode"], "kind": None, "subnet": params["subnet"], "active": True}
            after = predicted
            if not module.check_mode:
                made = conn.create_network(
                    name, params["mode"], subnet=params["subnet"], adapter=params["adapter"], timeout=timeout
                )
                after = network_facts(made)
    return {**diffed(module, shown(before), shown(after)), "network": after}


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    run_host_module(host_module(OPTIONS), run)


if __name__ == "__main__":
    main()
