"""``polyvisor -c GROUP ...`` against the real mixed fleet, through a config file naming its hosts."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import polyvisor
from polyvisor.cli import cli
from polyvisor.cli.exitcodes import PARTIAL

from .conftest import HANG_TIMEOUT, MixedFleet


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture
def config(mixed: MixedFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lines = []
    for name, entry in mixed.hosts.items():
        lines.append(f'[connections."{name}"]')
        for key in ("uri", "username", "password_env", "timeout"):
            if getattr(entry, key) is not None:
                lines.append(f"{key} = {_toml_value(getattr(entry, key))}")
        for key in ("options", "labels"):
            if getattr(entry, key):
                lines.append(f"{key} = {_toml_value(dict(getattr(entry, key)))}")
    lines += ["[groups]", 'windows = ["hv-psrp", "hv-winrm"]', 'lab = ["windows", "t3", "dead", "hang"]']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("POLYVISOR_CONFIG", str(path))
    monkeypatch.delenv("POLYVISOR_URI", raising=False)
    return path


def polyvisor_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_list_over_a_group_has_a_host_column_and_reports_failed_hosts(config: Path) -> None:
    result = polyvisor_cli("-c", "all", "list")
    assert result.exit_code == PARTIAL, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["HOST", "NAME", "STATE"]
    assert any(row.split()[:2] == ["t1", "test"] for row in rows)
    assert polyvisor_cli("-c", "lab", "list").stdout.startswith("no VMs on the hosts that answered")
    errors = result.stderr.splitlines()
    assert errors[0].startswith("error: dead: ")
    assert errors[1].startswith(f"error: hang: no answer within {HANG_TIMEOUT:g}s")
    assert errors[2] == "2 of 8 failed; the others' results are above"


def test_list_json_after_the_subcommand_with_a_host_key(config: Path, mixed: MixedFleet) -> None:
    result = polyvisor_cli("-c", "all", "list", "--json")
    assert result.exit_code == PARTIAL
    data = json.loads(result.stdout)
    hosts = {record["host"] for record in data["vms"]}
    assert {"t1", "t2", "kvm"} <= hosts
    assert any(record["name"] == mixed.kvm_vm and record["host"] == "kvm" for record in data["vms"])
    assert sorted(error["host"] for error in data["errors"]) == ["dead", "hang"]
    stderr = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["error"]["host"] for line in stderr] == ["dead", "hang"]
    password = polyvisor.config.read_config(config).connections["hv-psrp"].credentials()["password"]
    assert password not in result.output


def test_a_single_connection_name_keeps_todays_behaviour(config: Path) -> None:
    result = polyvisor_cli("-c", "t1", "list", "--json")
    assert result.exit_code == 0
    assert "host" not in json.loads(result.stdout)["vms"][0]


@pytest.fixture
def labelled(mixed: MixedFleet) -> Iterator[str]:
    role = f"cli-{uuid.uuid4().hex[:6]}"
    fleet = mixed.fleet()
    made = [
        fleet.connection(host).create({"name": f"{role}-{host}", "memory_mib": 128, "labels": {"role": role}})
        for host in ("hv-psrp", "hv-winrm")
    ]
    yield role
    for vm in made:
        vm.ensure("stopped", force=True)
        vm.delete()
    fleet.close()


def test_ensure_and_verbs_on_a_label_selection(config: Path, labelled: str) -> None:
    result = polyvisor_cli("-c", "windows", "ensure", "--label", f"role={labelled}", "running", "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["results"]
    assert sorted((r["host"], r["vm"], r["state"]) for r in records) == [
        ("hv-psrp", f"{labelled}-hv-psrp", "running"),
        ("hv-winrm", f"{labelled}-hv-winrm", "running"),
    ]
    paused = polyvisor_cli("-c", "lab", "pause", "--label", f"role={labelled}")
    assert paused.exit_code == PARTIAL  # dead and hang could not be searched
    assert sorted(paused.stdout.splitlines()) == [
        f"hv-psrp/{labelled}-hv-psrp: paused (Paused)",
        f"hv-winrm/{labelled}-hv-winrm: paused (Paused)",
    ]
    one = polyvisor_cli("-c", "windows", "resume", f"hv-winrm/{labelled}-hv-winrm")
    assert one.exit_code == 0, one.output
    assert one.stdout.strip() == f"hv-winrm/{labelled}-hv-winrm: running (Running)"


def test_watch_over_a_group_tags_each_event_with_its_host_and_reports_failed_hosts(
    config: Path, mixed: MixedFleet
) -> None:
    # Events come from a thread that keeps changing one VM on each Hyper-V host, alternately, until the watch has
    # printed its --count events: the watch subscribes at some moment this test cannot see.
    tag = f"watch-{uuid.uuid4().hex[:6]}"
    fleet = mixed.fleet()
    hosts = ("hv-psrp", "hv-winrm")
    done = threading.Event()
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            vms = [fleet.connection(host).create({"name": f"{tag}-{host}", "memory_mib": 128}) for host in hosts]
            while not done.is_set():
                for vm in vms:
                    if vm.state() is polyvisor.PowerState.STOPPED:
                        vm.start()
                    else:
                        vm.stop()
                    done.wait(0.3)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    driver = threading.Thread(target=drive, name="watch-driver", daemon=True)
    driver.start()
    try:
        result = polyvisor_cli("-c", "lab", "watch", "--count", "8")
    finally:
        done.set()
        driver.join(timeout=60)
        for host in hosts:
            conn = fleet.connection(host)
            if conn.exists(f"{tag}-{host}"):
                conn.vm(f"{tag}-{host}").ensure("stopped", force=True)
                conn.vm(f"{tag}-{host}").delete()
        fleet.close()
    assert not failures, failures
    assert result.exit_code == PARTIAL, result.output
    events = [line.split() for line in result.stdout.splitlines()]
    assert len(events) == 8, result.stdout
    # Each event names the host it came from (a VM named after one host is only ever on that host) ...
    assert all(name == f"{tag}-{host}" for _time, host, _kind, name, *_ in events), result.stdout
    assert {host for _time, host, *_ in events} == set(hosts), result.stdout
    # ... and the hosts that could not be watched are said on stderr, the others watched.
    errors = result.stderr.splitlines()
    assert errors[0].startswith("error: dead: ")
    assert errors[1].startswith(f"error: hang: no answer within {HANG_TIMEOUT:g}s")
    assert errors[2] == "2 of 5 failed; the others' results are above"
    assert errors[3] == "watching hv-psrp, hv-winrm, t3; Ctrl-C to stop"
