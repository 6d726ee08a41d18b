# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""The options of every module that works on one hypervisor: how to reach it, and how long each step may take."""

from __future__ import annotations


class ModuleDocFragment:
    """``extends_documentation_fragment: polyvisor.hypervisors.connection``."""

    DOCUMENTATION = r"""
options:
  uri:
    description:
      - The hypervisor's polyvisor URI, such as C(qemu:///system) or C(hyperv://Administrator@hv01.example.com/).
      - Without O(uri) and O(connection), polyvisor's default applies (C($POLYVISOR_URI), or the config file's
        C(default)).
    type: str
  connection:
    description:
      - A connection named in the polyvisor config file (see O(config)). Failures name the host so (C([host hv01])),
        not by its address.
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
  timeout:
    description: Seconds each step of the task may take.
    type: float
    default: 120
"""
