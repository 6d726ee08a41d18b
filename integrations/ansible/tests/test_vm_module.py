"""The vm module under ansible-playbook: a VM's life on libvirtd and the loopback Hyper-V host (both transports).

Each phase runs in check mode first (it must predict changes and make none), then for real, then again (it must
change nothing: ``changed=0`` in the PLAY RECAP). What the module did is read back through polyvisor itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polyvisor

from .support import KVM_URI, Ansible, HypervHost, Result

PLAYBOOKS = Path(__file__).parent / "playbooks"


def _targets(prefix: str, kvm_spec: dict[str, Any], host: HypervHost) -> list[dict[str, Any]]:
    hyperv_spec = {"memory_mib": 256, "nics": [{"network": "Default Switch"}]}
    return [
        {"name": f"{prefix}kvm", "uri": KVM_URI, "spec": kvm_spec},
        {"name": f"{prefix}psrp", "uri": host.psrp_uri, "ca_path": host.ca_path, "spec": hyperv_spec, "secret": True},
        {"name": f"{prefix}winrm", "uri": host.winrm_uri, "spec": hyperv_spec, "secret": True},
    ]


def _observe(target: dict[str, Any], password: str) -> dict[str, Any] | None:
    """The VM as polyvisor sees it now (None when it does not exist)."""
    credentials = {"ca_path": target["ca_path"]} if "ca_path" in target else {}
    if target.get("secret"):
        credentials["password"] = password
    with polyvisor.connect(target["uri"], **credentials) as conn:
        if not conn.exists(target["name"]):
            return None
        vm = conn.vm(target["name"])
        return {
            "state": vm.state().value,
            "labels": dict(vm.labels()),
            "snapshots": sorted(snapshot.name for snapshot in vm.snapshots()),
        }


def _changed(result: Result) -> int:
    assert result.returncode == 0, result.output
    counters = result.recap()["localhost"]
    assert counters["failed"] == 0, result.output
    return counters["changed"]


def test_a_playbook_walks_vms_through_their_life_idempotently_with_check_and_diff(
    ansible: Ansible, kvm_spec: dict[str, Any], hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    targets = _targets(names, kvm_spec, hyperv_host)
    extra = tmp_path / "targets.json"
    extra.write_text(json.dumps({"targets": targets, "hyperv_password": hyperv_host.password}))
    playbook = PLAYBOOKS / "lifecycle.yml"

    def run(phase: str, *flags: str) -> Result:
        return ansible.playbook(playbook, "-e", f"@{extra}", "-e", f"phase={phase}", *flags)

    outputs = []
    # Check mode predicts the whole way up (creation included) and creates nothing.
    checked = run("up", "--check", "--diff")
    outputs.append(checked.output)
    assert _changed(checked) == 4, checked.output
    assert all(_observe(target, hyperv_host.password) is None for target in targets)
    assert "+++ after" in checked.stdout, checked.stdout
    assert '"state": "running"' in checked.stdout, checked.stdout

    up = run("up", "--diff")
    outputs.append(up.output)
    assert _changed(up) == 4, up.output
    assert "--- before" in up.stdout, up.stdout
    assert "+++ after" in up.stdout, up.stdout
    for target in targets:
        assert _observe(target, hyperv_host.password) == {
            "state": "running",
            "labels": {"role": "web", "tier": "1"},
            "snapshots": ["first"],
        }, target["name"]

    again = run("up")
    outputs.append(again.output)
    assert _changed(again) == 0, again.output

    stopped = run("stopped", "--diff")
    outputs.append(stopped.output)
    assert _changed(stopped) == 1, stopped.output
    assert all(_observe(target, hyperv_host.password)["state"] == "stopped" for target in targets)  # type: ignore[index]
    assert _changed(run("stopped")) == 0

    # Check mode on existing VMs: the deletion is predicted, not made.
    predicted = run("down", "--check", "--diff")
    outputs.append(predicted.output)
    assert _changed(predicted) == 1, predicted.output
    assert all(_observe(target, hyperv_host.password) is not None for target in targets)

    down = run("down")
    outputs.append(down.output)
    assert _changed(down) == 1, down.output
    assert all(_observe(target, hyperv_host.password) is None for target in targets)
    assert _changed(run("down")) == 0

    assert not any(hyperv_host.password in output for output in outputs)


def test_failures_carry_polyvisor_messages_and_never_the_password(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    wrong = "Not-The-Password-4711"
    target = {"uri": hyperv_host.psrp_uri, "password": hyperv_host.password, "ca_path": hyperv_host.ca_path}
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"target": target, "missing": f"{names}missing", "wrong_password": wrong}))
    result = ansible.playbook(PLAYBOOKS / "failures.yml", "-e", f"@{extra}", "-v")
    counters = result.recap()["localhost"]
    assert result.returncode == 0, result.output  # both failures were expected (ignore_errors), the assert passed
    assert counters["ignored"] == 2, result.output
    assert "does not exist and the task has no spec to create it from" in result.stdout
    assert hyperv_host.password not in result.output
    assert wrong not in result.output
