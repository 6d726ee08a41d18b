"""The vms module checks the whole request before it acts: a selection that cannot be done fails having done
nothing, in check mode as for real; a VM failing part way is reported as itself while the others are done.
Two loopback Hyper-V hosts (PSRP/HTTPS, WinRM/HTTP) and a dead one make the fleet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import polyvisor

from .conftest import remove_vms
from .support import Ansible, HypervHost


@pytest.fixture
def second_host(second_hyperv_host: HypervHost, names: str) -> Iterator[HypervHost]:
    yield second_hyperv_host
    remove_vms(second_hyperv_host.winrm_uri, names, password=second_hyperv_host.password)


@pytest.fixture
def fleet(hyperv_host: HypervHost, second_host: HypervHost, names: str) -> list[dict[str, Any]]:
    """hv1 with web VMs one and two (and a db VM), hv2 with web VM three; the module's ``connections``."""
    hv1 = {"uri": hyperv_host.psrp_uri, "password": hyperv_host.password, "ca_path": hyperv_host.ca_path}
    with polyvisor.connect(**_connect(hv1)) as conn:
        conn.create({"name": f"{names}one", "memory_mib": 256, "labels": {"suite": names.rstrip("-"), "role": "web"}})
        conn.create({"name": f"{names}two", "memory_mib": 256, "labels": {"suite": names.rstrip("-"), "role": "web"}})
        conn.create({"name": f"{names}db", "memory_mib": 256, "labels": {"suite": names.rstrip("-"), "role": "db"}})
    with polyvisor.connect(second_host.winrm_uri, password=second_host.password) as conn:
        conn.create({"name": f"{names}three", "memory_mib": 256, "labels": {"suite": names.rstrip("-"), "role": "web"}})
    return [
        {
            "name": "hv1",
            "uri": hyperv_host.psrp_uri,
            "password": hyperv_host.password,
            "options": {"ca_path": hyperv_host.ca_path},
        },
        {"name": "hv2", "uri": second_host.winrm_uri, "password": second_host.password},
    ]


def _connect(entry: dict[str, Any]) -> dict[str, Any]:
    return {"uri": entry["uri"], "password": entry["password"], "ca_path": entry["ca_path"]}


def _states(hyperv_host: HypervHost, second_host: HypervHost, prefix: str) -> dict[str, str]:
    seen = {}
    for host, uri, credentials in (
        ("hv1", hyperv_host.psrp_uri, {"password": hyperv_host.password, "ca_path": hyperv_host.ca_path}),
        ("hv2", second_host.winrm_uri, {"password": second_host.password}),
    ):
        with polyvisor.connect(uri, **credentials) as conn:
            seen.update({f"{host}/{i.name}": i.state.value for i in conn.list() if i.name.startswith(prefix)})
    return seen


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_selection_acts_on_every_matching_vm_and_only_on_them(
    ansible: Ansible,
    fleet: list[dict[str, Any]],
    hyperv_host: HypervHost,
    second_host: HypervHost,
    names: str,
    check: bool,
) -> None:
    args = {"connections": fleet, "select": {"labels": {"suite": names.rstrip("-"), "role": "web"}}, "state": "running"}
    result, run = ansible.module("vms", args, *(["--check"] if check else []))
    assert result["failed"] is False, run.output
    assert result["changed"] is True, result
    assert [(vm["host"], vm["name"], vm["state"], vm["changed"]) for vm in result["vms"]] == [
        ("hv1", f"{names}one", "running", True),
        ("hv1", f"{names}two", "running", True),
        ("hv2", f"{names}three", "running", True),
    ]
    expected = "stopped" if check else "running"
    assert _states(hyperv_host, second_host, names) == {
        f"hv1/{names}one": expected,
        f"hv1/{names}two": expected,
        f"hv2/{names}three": expected,
        f"hv1/{names}db": "stopped",
    }
    assert hyperv_host.password not in run.output
    assert second_host.password not in run.output
    if not check:
        again, _run = ansible.module("vms", args)
        assert again["changed"] is False, again
        assert [vm["changed"] for vm in again["vms"]] == [False, False, False]


@pytest.mark.parametrize(
    ("select", "extra", "error_type", "words"),
    [
        ({}, {}, "ValidationError", ["select:", "groups: [all]"]),
        ({"names": ["NAMES-one", "NAMES-nosuch"]}, {}, "NotFoundError", ["NAMES-nosuch matched no VM"]),
        ({"hosts": ["nosuch"]}, {}, "NotFoundError", ["no host 'nosuch'"]),
        (
            {"labels": {"suite": "NAMES"}},
            {"snapshot": {"name": "s", "memory": True}, "state": "stopped"},
            "ValidationError",
            ["snapshot.memory", "hv1/NAMES-one"],
        ),
        ({"labels": {"suite": "NAMES"}}, {"labels": {"k'$(whoami)": "x"}}, "ValidationError", ["k'$(whoami)"]),
    ],
    ids=["empty", "missing-name", "unknown-host", "memory-of-stopped", "bad-label-key"],
)
@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_request_that_cannot_be_done_fails_having_done_nothing(
    ansible: Ansible,
    fleet: list[dict[str, Any]],
    hyperv_host: HypervHost,
    second_host: HypervHost,
    names: str,
    select: dict[str, Any],
    extra: dict[str, Any],
    error_type: str,
    words: list[str],
    check: bool,
) -> None:
    prefix = names.rstrip("-")
    select = {key: _named(value, prefix) for key, value in select.items()}
    before = _states(hyperv_host, second_host, names)
    args = {"connections": fleet, "select": select, "state": "running", **extra}
    result, run = ansible.module("vms", args, *(["--check"] if check else []))
    assert result["failed"] is True, run.output
    assert result["changed"] is False, result
    assert result["error_type"] == error_type, result
    for word in words:
        assert word.replace("NAMES", prefix) in result["msg"], result["msg"]
    assert _states(hyperv_host, second_host, names) == before


def _named(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace("NAMES", prefix)
    if isinstance(value, list):
        return [_named(item, prefix) for item in value]
    if isinstance(value, dict):
        return {key: _named(item, prefix) for key, item in value.items()}
    return value


def test_a_host_that_cannot_be_listed_fails_the_task_before_it_acts(
    ansible: Ansible, fleet: list[dict[str, Any]], hyperv_host: HypervHost, second_host: HypervHost, names: str
) -> None:
    dead = {"name": "dead", "uri": "qemu+tcp://127.0.0.1:1/system"}
    wrong = {**fleet[1], "name": "hv2", "password": "Wrong-4711"}
    args = {
        "connections": [fleet[0], wrong, dead],
        "select": {"labels": {"suite": names.rstrip("-")}},
        "state": "running",
    }
    before = _states(hyperv_host, second_host, names)
    result, run = ansible.module("vms", args)
    assert result["failed"] is True, run.output
    assert result["changed"] is False, result
    assert result["error_type"] == "FleetError", result  # two hosts, two kinds of failure
    assert "2 of 3 hosts could not be listed, so nothing was done" in result["msg"], result["msg"]
    assert "hv2: " in result["msg"], result["msg"]
    assert "[host hv2]" in result["msg"], result["msg"]
    assert "dead: " in result["msg"], result["msg"]
    assert "Wrong-4711" not in run.output
    assert _states(hyperv_host, second_host, names) == before


def test_a_vm_failing_part_way_is_reported_and_the_others_are_done(
    ansible: Ansible, fleet: list[dict[str, Any]], hyperv_host: HypervHost, second_host: HypervHost, names: str
) -> None:
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        stubborn = hv.vm(f"{names}two")
        stubborn.update_labels({"polyvisor.test/guest": "no-shutdown-service"})  # refuses a graceful shutdown
    select = {"labels": {"suite": names.rstrip("-"), "role": "web"}}
    started, run = ansible.module("vms", {"connections": fleet, "select": select, "state": "running"})
    assert started["failed"] is False, run.output
    result, run = ansible.module("vms", {"connections": fleet, "select": select, "state": "stopped", "timeout": 30})
    assert result["failed"] is True, run.output
    assert result["changed"] is True, result  # the other two stopped
    by_name = {vm["name"]: vm for vm in result["vms"]}
    assert by_name[f"{names}two"]["failed"] is True, result
    assert by_name[f"{names}two"]["state"] == "running", result
    assert by_name[f"{names}two"]["changed"] is False, result
    assert by_name[f"{names}two"]["msg"].endswith(f"[vm '{names}two', host hv1]"), result  # as the task names it
    assert result["error_type"] == by_name[f"{names}two"]["error_type"], result
    assert result["msg"].startswith("1 of 3 VMs failed (the others are done): hv1/"), result["msg"]
    for name in ("one", "three"):
        assert by_name[f"{names}{name}"]["changed"] is True, result
        assert by_name[f"{names}{name}"]["state"] == "stopped", result
        assert by_name[f"{names}{name}"]["failed"] is False, result
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        hv.vm(f"{names}two").ensure("stopped", force=True)
