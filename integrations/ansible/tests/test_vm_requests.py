"""The vm module checks the whole request before it acts: a task that cannot be done fails having done nothing, in
check mode as for real, and says what is wrong where (``spec.cpus``, a label key) with polyvisor's ``error_type``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import polyvisor

from .support import Ansible, HypervHost

pytestmark = pytest.mark.loopback

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


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_bad_spec_value_is_reported_as_being_in_spec(
    ansible: Ansible, hyperv_host: HypervHost, names: str, check: bool
) -> None:
    name = f"{names}nocpus"
    args = {**_target(hyperv_host), "name": name, "spec": {"cpus": 0, "memory_mib": 256}}
    result, run = ansible.module("vm", args, *(["--check"] if check else []))
    assert result["failed"] is True, run.output
    assert result["error_type"] == "ValidationError", result
    assert result["msg"].startswith("spec.cpus: must be at least 1"), result["msg"]
    assert not _exists(hyperv_host, name)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"state": "running"}, ["no spec to create it from"]),
        ({"state": "bogus"}, ["state", "bogus"]),
        ({"nmae": "typo"}, ["nmae"]),
        ({"uri": "qemu:///system", "connection": "hv1"}, ["mutually exclusive"]),
    ],
    ids=["no-spec", "bad-choice", "unknown-option", "exclusive"],
)
def test_every_failure_carries_an_error_type(
    ansible: Ansible, hyperv_host: HypervHost, names: str, args: dict[str, Any], words: list[str]
) -> None:
    task = {**_target(hyperv_host), "name": f"{names}missing", **args}
    if "connection" in task:
        del task["uri"], task["password"], task["ca_path"]
        task["uri"] = args["uri"]
    result, run = ansible.module("vm", task)
    assert result["failed"] is True, run.output
    assert result.get("error_type") == "ValidationError", result
    for word in words:
        assert word in result["msg"], result["msg"]


def test_failures_name_the_connection_as_the_config_names_it(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    config = tmp_path / "polyvisor.toml"
    config.write_text(
        f"""
[connections.hv1]
uri = "{hyperv_host.psrp_uri}"
password_env = "PVANSIBLE_HV1_PASSWORD"
options = {{ ca_path = "{hyperv_host.ca_path}" }}
""",
        encoding="utf-8",
    )
    args = {"connection": "hv1", "config": str(config), "name": f"{names}missing"}
    result, run = ansible.module("vm", args, env={"PVANSIBLE_HV1_PASSWORD": "Wrong-4711"})
    assert result["failed"] is True, run.output
    assert result["error_type"] == "AuthenticationError", result
    assert result["msg"].endswith("[host hv1]"), result["msg"]
