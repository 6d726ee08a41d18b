#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: a storage pool (libvirt) or image folder (Hyper-V) that exists, or does not."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pool
short_description: Create or delete a storage pool (libvirt) or image folder (Hyper-V)
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Makes sure a place for volumes and images exists on the hypervisor, or does not - a directory pool on
    libvirt (built, started and set to autostart), an image folder under the host's virtual hard disk path on
    Hyper-V - through the polyvisor library.
  - Idempotent. An existing pool is left as it is; one at another O(path) than asked fails the task, which
    never moves a pool. Deleting a pool that still holds volumes fails naming them (C(InUseError)).
  - Check mode predicts the outcome without acting; diff mode shows the pool before and after.
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt, polyvisor-hyperv) on the
    managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.connection
attributes:
  check_mode:
    description: Predicts whether the pool would be made or deleted, and changes nothing.
    support: full
  diff_mode:
    description: Shows the pool (name, kind, path) before and after.
    support: full
options:
  name:
    description: The pool's name (on Hyper-V, the image folder's).
    type: str
    required: true
  path:
    description:
      - Where a new libvirt pool keeps its files (an absolute path on the host); C(/var/lib/libvirt/images/<name>)
        without it. Hyper-V always makes the folder under its virtual hard disk path, and refuses O(path).
    type: str
  state:
    description: Whether the pool should exist. V(absent) deletes only an empty pool.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: A pool for the lab's images
  polyvisor.hypervisors.pool:
    uri: qemu:///system
    name: lab-images
    path: /srv/lab-images

- name: An image folder on Hyper-V
  polyvisor.hypervisors.pool:
    connection: hv01
    name: lab-images

- name: Gone, once empty
  polyvisor.hypervisors.pool:
    uri: qemu:///system
    name: lab-images
    state: absent
"""

RETURN = r"""
pool:
  description: The pool after the task (predicted in check mode); null once deleted.
  returned: success
  type: dict
  contains:
    name:
      description: The pool's name.
      type: str
      sample: lab-images
    kind:
      description: libvirt's pool type (C(dir), ...), or Hyper-V's C(folder).
      type: str
      sample: dir
    path:
      description: Where the pool keeps its files on the host.
      type: str
      sample: /srv/lab-images
    capacity:
      description: Bytes the pool's file system holds (null when the host does not say).
      type: int
    available:
      description: Bytes free there (null when the host does not say).
      type: int
error_type:
  description: The class of polyvisor error that failed the task (C(InUseError), C(ValidationError), ...).
  returned: failure
  type: str
  sample: InUseError
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

OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "path": {"type": "str"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def pool_facts(pool: polyvisor.StoragePool | None) -> dict[str, Any] | None:
    """What the task reports about a pool."""
    if pool is None:
        return None
    return {
        "name": pool.name,
        "kind": pool.kind,
        "path": pool.path,
        "capacity": pool.capacity,
        "available": pool.available,
    }


def shown(facts: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a pool's facts that diff mode shows and ``changed`` compares."""
    if facts is None:
        return {"state": "absent"}
    return {"state": "present", "name": facts["name"], "kind": facts["kind"], "path": facts["path"]}


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result."""
    params = module.params
    name, path, timeout = params["name"], params["path"], params["timeout"]
    with connected(module) as conn:
        before = pool_facts(next((pool for pool in conn.pools() if pool.name == name), None))
        after = before
        if params["state"] == "absent" and before is not None:
            after = None
            if not module.check_mode:
                conn.delete_pool(name, timeout=timeout)
        elif params["state"] == "present" and before is None:
            after = {"name": name, "kind": None, "path": path, "capacity": None, "available": None}
            if not module.check_mode:
                after = pool_facts(conn.create_pool(name, path=path, timeout=timeout))
        elif params["state"] == "present" and path is not None and before is not None and before["path"] != path:
            raise polyvisor.ValidationError(
                f"pool {name!r} exists at {before['path']}, not at {path}; this module never moves a pool: "
                "give its path, or delete it first",
                field="path",
            )
    return {**diffed(module, shown(before), shown(after)), "pool": after}


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    run_host_module(host_module(OPTIONS), run)


if __name__ == "__main__":
    main()
