#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: an empty volume of a pool that exists with at least a size, or does not."""

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Create, grow or delete a volume (a disk file) in a storage pool
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Makes sure an empty volume of a pool (libvirt) or image folder (Hyper-V) exists with a size, or does not,
    through the polyvisor library; a disk spec's C(image) or M(polyvisor.hypervisors.vm)'s C(spec) can then use
    it by its RV(volume.path).
  - Idempotent. An existing volume smaller than O(size_mib) is grown to it; volumes never shrink, so a smaller
    O(size_mib) fails the task before anything is done, and so does another O(format). Deleting a volume a VM
    uses fails naming the VM (C(InUseError)).
  - Check mode predicts the outcome without acting; diff mode shows the volume before and after.
  - To put an image from the controller into a pool, use M(polyvisor.hypervisors.image).
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt, polyvisor-hyperv) on the
    managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.connection
attributes:
  check_mode:
    description: Predicts whether the volume would be made, grown or deleted, and changes nothing.
    support: full
  diff_mode:
    description: Shows the volume (name, format, size) before and after.
    support: full
options:
  name:
    description: The volume's file name in the pool (C(data.qcow2)).
    type: str
    required: true
  pool:
    description: The pool (image folder); the host's default pool without it.
    type: str
  size_mib:
    description: The size (what a guest sees), in MiB; required to create it. An existing volume only grows.
    type: int
  format:
    description:
      - The format of a new volume; an existing one of another format fails the task. libvirt makes C(qcow2) and
        C(raw), Hyper-V C(vhdx) and C(vhd). Without it, the host's own (C(qcow2) on libvirt, C(vhdx) on Hyper-V),
        and an existing volume's format is not compared.
    type: str
    choices: [qcow2, raw, vhdx, vhd]
  state:
    description: Whether the volume should exist.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: A 10 GiB data disk in the lab pool, grown if it is smaller
  polyvisor.hypervisors.volume:
    uri: qemu:///system
    pool: lab-images
    name: db1-data.qcow2
    size_mib: 10240
  register: data

- name: A VHDX on Hyper-V
  polyvisor.hypervisors.volume:
    connection: hv01
    name: db1-data.vhdx
    format: vhdx
    size_mib: 10240
"""

RETURN = r"""
volume:
  description: The volume after the task (predicted in check mode); null once deleted.
  returned: success
  type: dict
  contains:
    name:
      description: Its file name.
      type: str
      sample: db1-data.qcow2
    pool:
      description: Its pool.
      type: str
    path:
      description: Its path on the host (what a disk spec's C(image) takes).
      type: str
    format:
      description: Its format.
      type: str
      sample: qcow2
    size_mib:
      description: Its size (what a guest sees), in MiB.
      type: int
    capacity:
      description: Its size in bytes.
      type: int
    allocation:
      description: Bytes it occupies on the host.
      type: int
error_type:
  description: The class of polyvisor error that failed the task (C(InUseError), C(ValidationError), ...).
  returned: failure
  type: str
  sample: ValidationError
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
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.volumes import (
    MIB,
    find_volume,
    shown,
    volume_facts,
)

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor
    from polyvisor.storage import validate_volume_name

OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "pool": {"type": "str"},
    "size_mib": {"type": "int"},
    "format": {"type": "str", "choices": ["qcow2", "raw", "vhdx", "vhd"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def check_present(conn: polyvisor.Connection, params: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Refuse, before acting, what cannot be done: no size for a new volume, a shrink, another format."""
    size, fmt, name = params["size_mib"], params["format"], params["name"]
    if before is None:
        validate_volume_name(name)
        conn.capabilities.require(polyvisor.Feature.VOLUME_WRITE, host=conn.host)
        if size is None:
            raise polyvisor.ValidationError(
                f"volume {name!r} does not exist: give size_mib to create it", field="size_mib"
            )
        return
    if fmt is not None and before["format"] != fmt:
        raise polyvisor.ValidationError(
            f"volume {name!r} is {before['format']}, not {fmt}: give format: {before['format']}, or delete it first",
            field="format",
        )
    if size is not None and size * MIB < before["capacity"]:
        raise polyvisor.ValidationError(
            f"volume {name!r} is {before['size_mib']} MiB and volumes never shrink; give size_mib of at least "
            f"{before['size_mib']}",
            field="size_mib",
        )
    if size is not None and size * MIB > before["capacity"]:
        conn.capabilities.require(polyvisor.Feature.VOLUME_RESIZE, host=conn.host)


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result."""
    params = module.params
    name, pool, size, timeout = params["name"], params["pool"], params["size_mib"], params["timeout"]
    with connected(module) as conn:
        if params["format"] is None:
            params = {**params, "format": "vhdx" if conn.capabilities.backend == "Hyper-V" else "qcow2"}
        before = volume_facts(find_volume(conn, name, pool))
        after = before
        if params["state"] == "absent" and before is not None:
            after = None
            if not module.check_mode:
                conn.delete_volume(name, pool=pool, timeout=timeout)
        elif params["state"] == "present":
            check_present(conn, {**params, "format": module.params["format"]}, before)
            if before is None:
                after = {"name": name, "pool": pool, "path": None, "format": params["format"], "size_mib": size}
                if not module.check_mode:
                    made = conn.create_volume(name, size, pool=pool, format=params["format"], timeout=timeout)
                    after = volume_facts(made)
            elif size is not None and size * MIB > before["capacity"]:
                after = {**before, "size_mib": size, "capacity": size * MIB}
                if not module.check_mode:
                    after = volume_facts(conn.resize_volume(name, size, pool=pool, timeout=timeout))
    return {**diffed(module, shown(before), shown(after)), "volume": after}


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    run_host_module(host_module(OPTIONS), run)


if __name__ == "__main__":
    main()
