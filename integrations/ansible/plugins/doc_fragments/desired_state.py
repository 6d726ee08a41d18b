# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""The desired-state options the vm and vms modules share: what they do to a VM besides its power state."""

from __future__ import annotations


class ModuleDocFragment:
    """``extends_documentation_fragment: polyvisor.hypervisors.desired_state``."""

    DOCUMENTATION = r"""
options:
  force:
    description:
      - Allow lossy shortcuts - power off instead of a graceful shutdown, discard saved memory, delete a VM with its
        saved memory.
    type: bool
    default: false
  delete_storage:
    description: With O(state=absent), delete the VM's disks too.
    type: bool
    default: false
  labels:
    description: Labels (string keys and values) to set; others are kept unless O(purge_labels).
    type: dict
  purge_labels:
    description: Remove every label not in O(labels).
    type: bool
    default: false
  snapshot:
    description:
      - A snapshot (a checkpoint on Hyper-V) to take or delete, after the power state is reached. To revert to
        one, use M(polyvisor.hypervisors.snapshot).
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
"""
