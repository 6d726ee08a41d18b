"""The vm module's sizes and waits and the snapshot module, under ansible-core: libvirtd's ``qemu:///system`` with
the tiny real guest, and the loopback Hyper-V host over PSRP/HTTPS and the WinRM shell/HTTP.

Each change runs in check mode first (predicted, nothing done), then for real, then again (nothing to do); what
the modules did is read back through polyvisor itself.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import polyvisor

from .conftest import TARGETS, Target
from .support import Ansible


def _spec(target: Target, kvm: dict[str, Any] | None) -> dict[str, Any]:
    if target.backend == "libvirt":
        assert kvm is not None
        return dict(kvm)
    return {"memory_mib": 256, "disks": [{"size_mib": 64}], "nics": [{"network": "Default Switch"}]}


@pytest.fixture
def kvm_or_none(request: pytest.FixtureRequest, target: Target) -> dict[str, Any] | None:
    """The tiny guest's spec on libvirtd (it boots for real), nothing on Hyper-V."""
    return request.getfixturevalue("kvm_spec") if target.backend == "libvirt" else None


def _ok(result: dict[str, Any], changed: bool) -> dict[str, Any]:
    assert result["failed"] is False, result
    assert result["changed"] is changed, result
    return result


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_cpus_memory_and_a_disk_grow_with_check_and_diff_and_never_shrink(
    ansible: Ansible, target: Target, kvm_or_none: dict[str, Any] | None, names: str
) -> None:
    name = f"{names}size"
    with target.connect() as conn:
        vm = conn.create({**_spec(target, kvm_or_none), "name": name, "cpus": 1})
        (disk,) = vm.disks()
    grow = [{"target": disk.target, "size_mib": disk.size_mib + 16}]
    task = {**target.task, "name": name, "cpus": 2, "memory_mib": 384, "disks": grow}
    checked, run = ansible.module("vm", task, "--check", "--diff")
    assert _ok(checked, True)["vm"]["cpus"] == 2
    assert "+++ after" in run.stdout, run.stdout
    assert '"cpus": 2' in run.stdout, run.stdout
    with target.connect() as conn:
        assert (conn.vm(name).info().cpus, conn.vm(name).disks()[0].size_mib) == (1, disk.size_mib)
    done = _ok(ansible.module("vm", task)[0], True)["vm"]
    assert (done["cpus"], done["memory_mib"], done["disks"]) == (2, 384, {disk.target: disk.size_mib + 16})
    with target.connect() as conn:
        info, (grown,) = conn.vm(name).info(), conn.vm(name).disks()
    assert (info.cpus, info.memory_mib, grown.size_mib) == (2, 384, disk.size_mib + 16)
    _ok(ansible.module("vm", task)[0], False)

    shrink = {**task, "disks": [{"target": disk.target, "size_mib": disk.size_mib}]}
    for flags in (["--check"], []):
        refused, _run = ansible.module("vm", shrink, *flags)
        assert refused["failed"] is True, refused
        assert refused["changed"] is False, refused
        assert refused["error_type"] == "ValidationError", refused
        assert f"is {disk.size_mib + 16} MiB, and disks only grow" in refused["msg"], refused["msg"]
    missing, _run = ansible.module("vm", {**task, "disks": [{"target": "nosuch", "size_mib": 64}]})
    assert missing["error_type"] == "NotFoundError", missing
    assert disk.target in missing["msg"], missing

    if target.backend == "Hyper-V":
        # A stopped VM is reconfigured before it starts; a running one's CPU count Hyper-V changes only while it
        # is off, so that is refused before anything is done.
        started = _ok(ansible.module("vm", {**task, "cpus": 3, "state": "running"})[0], True)["vm"]
        assert (started["cpus"], started["state"]) == (3, "running")
        live, _run = ansible.module("vm", {**task, "cpus": 4, "state": "running"})
        assert live["failed"] is True, live
        assert live["changed"] is False, live
        assert live["error_type"] == "UnsupportedError", live
        assert "state: stopped" in live["msg"], live
        with target.connect() as conn:
            info = conn.vm(name).info()
        assert (info.state, info.cpus) == (polyvisor.PowerState.RUNNING, 3)
    assert target.task.get("password") is None or target.task["password"] not in run.output


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_snapshots_are_taken_reverted_to_and_deleted(
    ansible: Ansible, target: Target, kvm_or_none: dict[str, Any] | None, names: str
) -> None:
    name = f"{names}snap"
    with target.connect() as conn:
        conn.create({**_spec(target, kvm_or_none), "name": name, "labels": {"phase": "before"}})
    task = {**target.task, "vm": name, "name": "clean"}
    checked = _ok(ansible.module("snapshot", task, "--check")[0], True)
    assert checked["vm"]["snapshots"] == ["clean"]
    with target.connect() as conn:
        assert [s.name for s in conn.vm(name).snapshots()] == []
    taken = _ok(ansible.module("snapshot", task)[0], True)
    assert taken["snapshot"]["state"] == "stopped", taken
    assert taken["vm"]["current"] == "clean", taken
    _ok(ansible.module("snapshot", task)[0], False)

    with target.connect() as conn:
        vm = conn.vm(name)
        vm.start()
    revert = {**task, "state": "revert"}
    predicted = _ok(ansible.module("snapshot", revert, "--check")[0], True)
    assert predicted["vm"]["state"] == "stopped"
    with target.connect() as conn:
        assert conn.vm(name).state() is polyvisor.PowerState.RUNNING
    reverted = _ok(ansible.module("snapshot", revert)[0], True)
    assert reverted["vm"]["state"] == "stopped", reverted
    with target.connect() as conn:
        assert conn.vm(name).state() is polyvisor.PowerState.STOPPED

    nosuch, _run = ansible.module("snapshot", {**revert, "name": "nosuch"}, "--check")
    assert nosuch["failed"] is True, nosuch
    assert nosuch["error_type"] == "NotFoundError", nosuch
    assert "clean" in nosuch["msg"], nosuch["msg"]
    memory, _run = ansible.module("snapshot", {**task, "name": "hot", "memory": True})
    assert memory["failed"] is True, memory
    assert memory["changed"] is False, memory
    assert memory["error_type"] in ("ValidationError", "UnsupportedError"), memory

    _ok(ansible.module("snapshot", {**task, "state": "absent"}, "--check")[0], True)
    gone = _ok(ansible.module("snapshot", {**task, "state": "absent"})[0], True)
    assert gone["vm"]["snapshots"] == [], gone
    assert gone["snapshot"] is None, gone
    _ok(ansible.module("snapshot", {**task, "state": "absent"})[0], False)
    with target.connect() as conn:
        assert [s.name for s in conn.vm(name).snapshots()] == []


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_the_task_waits_for_the_guests_address_and_readiness(
    ansible: Ansible, target: Target, kvm_or_none: dict[str, Any] | None, names: str
) -> None:
    name = f"{names}wait"
    spec = _spec(target, kvm_or_none)
    task = {**target.task, "name": name, "spec": spec, "state": "running", "wait_for": "address", "wait_timeout": 180}
    refused, _run = ansible.module("vm", {**task, "state": "stopped"}, "--check")
    assert refused["failed"] is True, refused
    assert refused["error_type"] == "ValidationError", refused
    assert "add state: running" in refused["msg"], refused["msg"]

    checked = _ok(ansible.module("vm", task, "--check")[0], True)
    assert "address" not in checked["vm"]  # check mode does not wait
    found = _ok(ansible.module("vm", task)[0], True)["vm"]["address"]
    with target.connect() as conn:
        known = {address.address for address in conn.vm(name).addresses()}
    assert found["address"] in known, (found, known)
    if target.backend == "libvirt":
        assert (found["source"], found["address"]) == ("agent", "192.0.2.10")  # the guest's init gives it this
    again = _ok(ansible.module("vm", task)[0], False)  # the guest runs and has its address: nothing changes
    assert again["vm"]["address"]["address"] == found["address"]

    ready = {**task, "wait_for": "ready", "wait_timeout": 20}
    if target.backend == "Hyper-V":
        said = _ok(ansible.module("vm", ready)[0], False)["vm"]["readiness"]
        assert said["sources"] == ["heartbeat"], said
    else:
        # The tiny guest is not cloud-init: it never writes cloud-init's result, so the wait ends at its timeout,
        # saying what cloud-init's files in the guest said.
        began = time.monotonic()
        result, _run = ansible.module("vm", {**ready, "ready_sources": ["cloud-init"], "wait_timeout": 5})
        assert result["failed"] is True, result
        assert result["error_type"] == "TimeoutError", result
        assert "cloud-init: not ready" in result["msg"], result["msg"]
        assert result["changed"] is False, result
        assert result["vm"]["state"] == "running", result
        assert time.monotonic() - began < 60
