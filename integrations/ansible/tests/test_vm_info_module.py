"""The vm_info module under ansible-core: the facts of a selection across a fleet of the loopback Hyper-V host over
PSRP/HTTPS, a second one over the WinRM shell/HTTP and libvirtd's ``qemu:///system`` with the real guest, read
in one task, checked against what polyvisor itself reads; it changes nothing, in check mode or not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import polyvisor

from .conftest import remove_vms
from .support import KVM_URI, Ansible, HypervHost


@pytest.fixture
def second_host(second_hyperv_host: HypervHost, names: str) -> Iterator[HypervHost]:
    """The second Hyper-V host, its VMs of this test removed afterwards."""
    yield second_hyperv_host
    remove_vms(second_hyperv_host.winrm_uri, names, password=second_hyperv_host.password)


def _hosts(first: HypervHost, second: HypervHost) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "hv-psrp": (first.psrp_uri, {"password": first.password, "ca_path": first.ca_path}),
        "hv-winrm": (second.winrm_uri, {"password": second.password}),
        "kvm": (KVM_URI, {}),
    }


def _connections(first: HypervHost, second: HypervHost) -> list[dict[str, Any]]:
    return [
        {"name": "hv-psrp", "uri": first.psrp_uri, "password": first.password, "options": {"ca_path": first.ca_path}},
        {"name": "hv-winrm", "uri": second.winrm_uri, "password": second.password},
        {"name": "kvm", "uri": KVM_URI},
    ]


def _observe(hosts: dict[str, tuple[str, dict[str, Any]]], prefix: str) -> dict[str, dict[str, Any]]:
    """Every VM of this test as polyvisor reads it, keyed ``host/name``, in the module's terms."""
    seen = {}
    for host, (uri, credentials) in hosts.items():
        with polyvisor.connect(uri, **credentials) as conn:
            for info in conn.list(details=True):
                if info.name.startswith(prefix):
                    seen[f"{host}/{info.name}"] = {
                        "host": host,
                        "name": info.name,
                        "uuid": info.uuid,
                        "state": info.state.value,
                        "labels": dict(info.labels),
                        "cpus": info.cpus,
                        "memory_mib": info.memory_mib,
                        "description": info.description,
                        "has_saved_state": info.has_saved_state,
                        "snapshots": sorted(snapshot.name for snapshot in conn.vm(info).snapshots()),
                    }
    return seen


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_one_task_reads_a_selection_across_the_fleet(
    ansible: Ansible,
    kvm_spec: dict[str, Any],
    hyperv_host: HypervHost,
    second_host: HypervHost,
    names: str,
    check: bool,
) -> None:
    hosts = _hosts(hyperv_host, second_host)
    suite = names.rstrip("-")
    web = {"suite": suite, "role": "web"}
    made = {"hv-psrp": [("a1", web), ("db", {"suite": suite})], "hv-winrm": [("b1", web)], "kvm": [("k1", web)]}
    for host, vms in made.items():
        uri, credentials = hosts[host]
        with polyvisor.connect(uri, **credentials) as conn:
            for name, labels in vms:
                spec = kvm_spec if host == "kvm" else {"memory_mib": 256, "cpus": 2}
                vm = conn.create({**spec, "name": f"{names}{name}", "labels": labels})
                if name == "b1":
                    vm.snapshot("first")
    before = _observe(hosts, names)
    args = {"connections": _connections(hyperv_host, second_host), "select": {"labels": web}, "snapshots": True}
    result, run = ansible.module("vm_info", args, *(["--check"] if check else []))
    assert result["failed"] is False, run.output
    assert result["changed"] is False
    assert {f"{vm['host']}/{vm['name']}": vm for vm in result["vms"]} == {
        key: facts for key, facts in before.items() if facts["labels"] == web
    }
    assert [vm["host"] for vm in result["vms"]] == ["hv-psrp", "hv-winrm", "kvm"]  # the fleet's host order
    assert _observe(hosts, names) == before  # nothing changed
    assert hyperv_host.password not in run.output
    assert second_host.password not in run.output

    without = {**args, "select": {"hosts": ["hv-psrp"], "names": [f"{names}db"]}, "snapshots": False}
    result, run = ansible.module("vm_info", without)
    assert result["failed"] is False, run.output
    assert [vm["name"] for vm in result["vms"]] == [f"{names}db"]
    assert "snapshots" not in result["vms"][0]


def test_a_missing_name_or_a_dead_host_fails_the_task_naming_them(
    ansible: Ansible, hyperv_host: HypervHost, names: str
) -> None:
    psrp = {
        "name": "hv1",
        "uri": hyperv_host.psrp_uri,
        "password": hyperv_host.password,
        "options": {"ca_path": hyperv_host.ca_path},
    }
    missing, run = ansible.module("vm_info", {"connections": [psrp], "select": {"names": [f"{names}nosuch"]}})
    assert missing["failed"] is True, run.output
    assert missing["error_type"] == "NotFoundError", missing
    assert f"{names}nosuch" in missing["msg"]

    dead = {"name": "hv-dead", "uri": f"hyperv://u@127.0.0.1:{_free_port()}/?scheme=http", "password": "x"}
    failed, run = ansible.module("vm_info", {"connections": [psrp, dead], "host_timeout": 10})
    assert failed["failed"] is True, run.output
    assert "1 of 2 hosts could not be listed" in failed["msg"], failed["msg"]
    assert "hv-dead:" in failed["msg"], failed["msg"]
    assert failed["error_type"] != "ValidationError", failed
