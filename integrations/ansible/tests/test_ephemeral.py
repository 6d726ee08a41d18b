"""A hypervisor that keeps its VMs only while a connection to it is open (libvirt's test driver, in the module's
process or in libvirtd's, and ``memory://``) is gone when the task ends, so the next task starts from a fresh one:
the modules say so in a warning instead of letting every task report ``changed`` without a word.
"""

from __future__ import annotations

import pytest

from .support import Ansible, HypervHost

EPHEMERAL = [
    "test:///default",
    "memory:///pvansible",
    pytest.param("test+unix:///default", marks=pytest.mark.libvirtd),
]


@pytest.mark.parametrize("uri", EPHEMERAL)
def test_a_task_on_an_ephemeral_hypervisor_warns_that_nothing_outlives_it(
    ansible: Ansible, uri: str, names: str
) -> None:
    args = {"uri": uri, "name": f"{names}ephemeral", "spec": {"memory_mib": 64}, "labels": {"role": "web"}}
    for attempt in range(2):
        result, run = ansible.module("vm", args)
        assert result["failed"] is False, run.output
        # The second run creates the VM again: the first run's VMs went with its connection (unless, for
        # libvirtd's test driver, some other process happens to hold a connection open meanwhile).
        if attempt == 0 or "+" not in uri:
            assert result["changed"] is True, result
        warnings = run.warnings
        assert len(warnings) == 1, run.output
        assert warnings[0].startswith(f"{uri} keeps its VMs only while a connection to it is open"), warnings
        assert "what the task did is gone" in warnings[0], warnings


def test_a_hypervisor_of_its_own_gets_no_such_warning(ansible: Ansible, hyperv_host: HypervHost, names: str) -> None:
    args = {
        "uri": hyperv_host.psrp_uri,
        "password": hyperv_host.password,
        "ca_path": hyperv_host.ca_path,
        "name": f"{names}missing",
        "state": "absent",
    }
    result, run = ansible.module("vm", args)
    assert result["failed"] is False, run.output
    assert result["changed"] is False, result
    assert run.warnings == [], run.output
