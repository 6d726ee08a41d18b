# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""The options every module acting on a fleet shares: its hosts (a config file or the task's connections), the
time each host may take to answer a listing, and how many VMs are worked on at once."""

from __future__ import annotations


class ModuleDocFragment:
    """``extends_documentation_fragment: polyvisor.hypervisors.fleet``."""

    DOCUMENTATION = r"""
options:
  config:
    description:
      - The polyvisor config file whose C([connections]) and C([groups]) make the fleet (sets
        C($POLYVISOR_CONFIG) for this task); polyvisor's default file without it.
      - Ignored when O(connections) is given.
    type: path
  connections:
    description:
      - The fleet's hosts given in the task instead of a config file.
    type: list
    elements: dict
    suboptions:
      name:
        description: The host's name, as O(select.hosts) and the results name it.
        type: str
        required: true
      uri:
        description: A polyvisor URI (C(qemu:///system), C(hyperv://admin@hv01/)).
        type: str
        required: true
      username:
        description: User name, when the URI does not carry one.
        type: str
      password:
        description: Password (Hyper-V); never shown in output or logs.
        type: str
      password_env:
        description: Environment variable (where the module runs) that holds the password.
        type: str
      options:
        description: Further connect options, such as C(ca_path), C(verify) or C(transport).
        type: dict
  host_timeout:
    description: Seconds each host may take to answer a listing; a host that does not fails the task before it acts.
    type: float
    default: 30
  max_concurrency:
    description: How many VMs (and hosts) are worked on at once.
    type: int
    default: 16
"""
