"""The vm module checks the whole request before it acts: a task that cannot be done fails having done nothing, in
check mode as for real, and says what is wrong where (``spec.cpus``, a label key) with polyvisor's ``error_type``.
"""

from __future__ import annotations

from typing import Any

import pytest

import polyvisor

from .support import Ansible, HypervHost

pytestmark = pytest.mark.hyperv

BAD_KEY = "k'$(whoami)"


def _target(host: HypervHost) -> dict[str, Any]:
    return {"uri": host.psrp_uri, "password": host.password, "ca_path": host.ca_path}


def _exists(host: HypervHost, name: str) -> bool:
    with polyvisor.connect(host.psrp_uri, password=host.password, ca_path=host.ca_path) as hv:
        return hv.exists(name)


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_refused_label_key_fails_the_task_before_the_vm_is_made(
    ansible: Ansible, hyperv_host: HypervHost, names: str, check: bool
) -> None:
    name = f"{names}badlabel"
    args = {
        **_target(hyperv_host),
        "name": name,
        "state": "running",
        "spec": {"memory_mib": 256},
        "labels": {"role": "web", BAD_KEY: "x"},
    }
    result, run = ansible.module("vm", args, *(["--check"] if check else []))
    assert result.get("failed") is True, run.output
    assert result["changed"] is False, result
    assert result["error_type"] == "ValidationError", result
    assert BAD_KEY in result["msg"], result["msg"]
    assert not _exists(hyperv_host, name)
    assert hyperv_host.password not in run.output
