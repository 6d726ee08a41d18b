"""The vms module under ansible-playbook: one task for a selection of VMs across a fleet of the loopback Hyper-V
host over PSRP/HTTPS, a second one over the WinRM shell/HTTP, and libvirtd's ``qemu:///system`` with the real guest.

Each phase runs in check mode first (it must predict changes and make none), then for real, then again (it must
change nothing). What the module did is read back through polyvisor itself, VM by VM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import polyvisor

from .conftest import remove_vms
from .support import KVM_URI, Ansible, HypervHost, Result

PLAYBOOKS = Path(__file__).parent / "playbooks"


def _hosts(first: HypervHost, second: HypervHost) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each fleet host's URI and connect() credentials."""
    return {
        "hv-psrp": (first.psrp_uri, {"password": first.password, "ca_path": first.ca_path}),
        "hv-winrm": (second.winrm_uri, {"password": second.password}),
        "kvm": (KVM_URI, {}),
    }


def _connections(first: HypervHost, second: HypervHost) -> list[dict[str, Any]]:
    """The fleet as the module's ``connections`` option."""
    return [
        {"name": "hv-psrp", "uri": first.psrp_uri, "password": first.password, "options": {"ca_path": first.ca_path}},
        {"name": "hv-winrm", "uri": second.winrm_uri, "password": second.password},
        {"name": "kvm", "uri": KVM_URI},
    ]


@pytest.fixture
def second_host(second_hyperv_host: HypervHost, names: str) -> Iterator[HypervHost]:
    """The second Hyper-V host, its VMs of this test removed afterwards."""
    yield second_hyperv_host
    remove_vms(second_hyperv_host.winrm_uri, names, password=second_hyperv_host.password)


def _observe(hosts: dict[str, tuple[str, dict[str, Any]]], prefix: str) -> dict[str, dict[str, Any]]:
    """Every VM of this test as polyvisor sees it now, keyed ``host/name``."""
    seen = {}
    for host, (uri, credentials) in hosts.items():
        with polyvisor.connect(uri, **credentials) as conn:
            for info in conn.list(details=True):
                if info.name.startswith(prefix):
                    vm = conn.vm(info)
                    seen[f"{host}/{info.name}"] = {
                        "state": info.state.value,
                        "labels": dict(info.labels),
                        "snapshots": sorted(snapshot.name for snapshot in vm.snapshots()),
                    }
    return seen


def _changed(result: Result) -> int:
    assert result.returncode == 0, result.output
    counters = result.recap()["localhost"]
    assert counters["failed"] == 0, result.output
    return counters["changed"]


def test_one_task_brings_a_selection_across_the_fleet_through_its_life(
    ansible: Ansible,
    kvm_spec: dict[str, Any],
    hyperv_host: HypervHost,
    second_host: HypervHost,
    names: str,
    tmp_path: Path,
) -> None:
    hosts = _hosts(hyperv_host, second_host)
    suite = names.rstrip("-")
    web = {"suite": suite, "role": "web"}
    made = {
        "hv-psrp": [("a1", web), ("a2", web), ("db", {"suite": suite, "role": "db"})],
        "hv-winrm": [("b1", web)],
        "kvm": [("k1", web)],
    }
    for host, vms in made.items():
        uri, credentials = hosts[host]
        with polyvisor.connect(uri, **credentials) as conn:
            for name, labels in vms:
                spec = kvm_spec if host == "kvm" else {"memory_mib": 256}
                conn.create({**spec, "name": f"{names}{name}", "labels": labels})
    selected = {f"{host}/{names}{name}" for host, vms in made.items() for name, labels in vms if labels is web}
    untouched = f"hv-psrp/{names}db"
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"connections": _connections(hyperv_host, second_host), "suite": suite, "expected": 4}))
    outputs = []

    def run(phase: str, *flags: str) -> Result:
        result = ansible.playbook(PLAYBOOKS / "selection.yml", "-e", f"@{extra}", "-e", f"phase={phase}", *flags)
        outputs.append(result.output)
        return result

    initial = _observe(hosts, names)
    checked = run("up", "--check", "--diff")
    assert _changed(checked) == 1, checked.output
    for key in selected:
        assert f"--- before: {key}" in checked.stdout, checked.stdout  # a diff per VM, headed host/name
    assert _observe(hosts, names) == initial  # check mode changed nothing

    up = run("up", "--diff")
    assert _changed(up) == 1, up.output
    seen = _observe(hosts, names)
    for key in selected:
        assert seen[key] == {"state": "running", "labels": {**web, "patched": "yes"}, "snapshots": ["first"]}, key
    assert seen[untouched] == initial[untouched]
    assert _changed(run("up")) == 0

    assert _changed(run("stopped", "--check")) == 1
    assert all(_observe(hosts, names)[key]["state"] == "running" for key in selected)
    assert _changed(run("stopped")) == 1
    assert all(_observe(hosts, names)[key]["state"] == "stopped" for key in selected)
    assert _changed(run("stopped")) == 0

    assert _changed(run("down", "--check")) == 1
    assert set(_observe(hosts, names)) == selected | {untouched}
    assert _changed(run("down")) == 1
    assert set(_observe(hosts, names)) == {untouched}
    assert _changed(run("down")) == 0

    for host in (hyperv_host, second_host):
        assert not any(host.password in output for output in outputs)
