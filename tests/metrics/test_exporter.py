"""The Prometheus exporter over memory:// hosts, one that fails and one that hangs: what a scrape serves, how it is
named, and that no host holds a scrape up for longer than its budget."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from unreachable_hosts import HangingListener

import polyvisor
import polyvisor.aio
from polyvisor import Fleet, ValidationError
from polyvisor.metrics.exporter import SCRAPE_TIMEOUT_HEADER, Exporter, FleetCollector, parse_listen
from polyvisor.testing.memory import host_named

SLACK = 1.5
"""Seconds a scrape may take beyond its budget on a loaded machine: still far below the hung host's own 30 s."""
SPEC = {"name": "web", "cpus": 2, "memory_mib": 512, "disks": [{"size_mib": 64}], "nics": [{"network": "default"}]}


@pytest.fixture
def hang() -> Iterator[HangingListener]:
    listener = HangingListener()
    yield listener
    listener.close()


@pytest.fixture
def lab(hang: HangingListener) -> Iterator[Fleet]:
    """Three hosts: one with a running and a stopped VM, one whose stats fail, one that never answers."""
    name = f"exporter-{uuid.uuid4().hex[:8]}"
    host_named(name)
    with polyvisor.connect(f"memory:///{name}") as conn:
        conn.create(SPEC).start()
        conn.create({"name": "spare", "cpus": 1, "memory_mib": 256})
    hosts = {
        "lab": f"memory:///{name}",
        "broken": f"memory:///{name}?fail=stats",
        "hung": f"hyperv://exporter:secret@127.0.0.1:{hang.port}/?scheme=http&transport=winrm",
    }
    with Fleet(hosts, timeout=30.0) as fleet:
        yield fleet


def scrape(url: str, budget: float | None = None) -> tuple[dict[str, list[Sample]], float]:
    """GET the metrics (with Prometheus's budget header); return the samples by family name, and the seconds."""
    headers = {} if budget is None else {SCRAPE_TIMEOUT_HEADER: str(budget)}
    started = time.monotonic()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as reply:
        text = reply.read().decode()
    elapsed = time.monotonic() - started
    return {family.name: family.samples for family in text_string_to_metric_families(text)}, elapsed


def by_host(samples: list[Sample]) -> dict[str, float]:
    return {sample.labels["host"]: sample.value for sample in samples}


def test_a_scrape_serves_every_host_and_a_hung_one_costs_no_more_than_the_budget(lab: Fleet) -> None:
    with Exporter(FleetCollector(lab), "127.0.0.1", 0).start() as exporter:
        families, elapsed = scrape(exporter.url, budget=2.0)
    assert elapsed < 2.0 + SLACK  # the hung host (30 s of its own) got the scrape's budget less the margin
    assert by_host(families["polyvisor_scrape_success"]) == {"lab": 1.0, "broken": 0.0, "hung": 0.0}
    durations = by_host(families["polyvisor_scrape_duration_seconds"])
    assert 1.5 <= durations["hung"] < 1.5 + SLACK
    assert durations["lab"] < 1.0
    backends = {sample.labels["host"]: sample.labels["backend"] for sample in families["polyvisor_scrape_success"]}
    assert backends == {"lab": "memory", "broken": "memory", "hung": "hyperv"}

    (web,) = [s for s in families["polyvisor_vm_cpu_seconds"] if s.labels["vm"] == "web"]
    assert web.name == "polyvisor_vm_cpu_seconds_total"
    assert set(web.labels) == {"host", "vm", "uuid", "backend"}
    assert web.value >= 0
    vcpus = {s.labels["vcpu"] for s in families["polyvisor_vm_vcpu_seconds"] if s.labels["vm"] == "web"}
    assert vcpus == {"0", "1"}
    info = {s.labels["vm"]: s.labels["state"] for s in families["polyvisor_vm_info"]}
    assert info == {"web": "running", "spare": "stopped"}
    # A figure a backend cannot give has no series, never a zero: the stopped VM has no CPU or disk counters.
    assert {s.labels["vm"] for s in families["polyvisor_vm_cpu_seconds"]} == {"web"}
    (disk,) = families["polyvisor_vm_disk_read_bytes"]
    assert disk.labels["vm"] == "web"
    assert disk.name == "polyvisor_vm_disk_read_bytes_total"
    assert {s.labels["interface"] for s in families["polyvisor_vm_network_receive_bytes"]}
    assert by_host(families["polyvisor_host_vms"]) == {"lab": 2.0}


def test_every_name_follows_prometheus_conventions(lab: Fleet) -> None:
    with Exporter(FleetCollector(lab, timeout=1.0), "127.0.0.1", 0).start() as exporter:
        url = exporter.url
        with urllib.request.urlopen(url, timeout=30) as reply:
            text = reply.read().decode()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("polyvisor_"), family.name
        if family.type == "counter":
            assert all(sample.name.endswith("_total") for sample in family.samples), family.name
            assert family.name.endswith(("_seconds", "_bytes", "s")), family.name  # a unit, or a count of things
        if "memory" in family.name or "duration" in family.name:
            assert family.name.endswith(("_bytes", "_seconds")), family.name


def test_the_collector_timeout_bounds_each_host_without_a_budget_header(lab: Fleet) -> None:
    collector = FleetCollector(lab, timeout=1.0)
    with Exporter(collector, "127.0.0.1", 0).start() as exporter:
        families, elapsed = scrape(exporter.url)
    assert elapsed < 1.0 + SLACK
    assert by_host(families["polyvisor_scrape_success"])["hung"] == 0.0


def test_other_paths_say_where_the_metrics_are(lab: Fleet) -> None:
    with Exporter(FleetCollector(lab, timeout=1.0), "127.0.0.1", 0).start() as exporter:
        root = exporter.url.removesuffix("/metrics")
        with urllib.request.urlopen(root + "/", timeout=10) as reply:
            assert b"/metrics" in reply.read()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(root + "/nothing", timeout=10)
        info.value.close()  # the error holds the reply's socket
        assert info.value.code == 404


def test_the_fleet_bounds_each_host_by_at_most(lab: Fleet) -> None:
    started = time.monotonic()
    result = lab.stats(at_most=1.0)
    assert time.monotonic() - started < 1.0 + SLACK
    assert isinstance(result["hung"].error, polyvisor.TimeoutError)
    with pytest.raises(ValidationError, match="at_most"):
        lab.stats(at_most=0)


def test_the_async_fleet_bounds_each_host_by_at_most(hang: HangingListener) -> None:
    async def main() -> float:
        hosts = {"hung": f"hyperv://exporter:secret@127.0.0.1:{hang.port}/?scheme=http&transport=winrm"}
        async with polyvisor.aio.AsyncFleet(hosts, timeout=30.0) as fleet:
            began = time.monotonic()
            outcome = await fleet.stats(at_most=1.0)
            assert not outcome["hung"].ok
            return time.monotonic() - began

    assert asyncio.run(main()) < 1.0 + SLACK


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9870", ("127.0.0.1", 9870)), ("[::1]:0", ("::1", 0)), ("localhost:65535", ("localhost", 65535))],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9870", "127.0.0.1:", ":9870", "127.0.0.1:port", "127.0.0.1:70000"])
def test_a_bad_listen_address_says_what_to_give(text: str) -> None:
    with pytest.raises(ValidationError, match="HOST:PORT"):
        parse_listen(text)


def test_the_command_serves_a_group_until_interrupted(tmp_path: Path) -> None:
    name = f"exporter-cli-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[connections.a]\nuri = "memory:///{name}"\n[connections.b]\nuri = "memory:///{name}?unreachable=true"\n'
        '[groups]\nlab = ["a", "b"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, "POLYVISOR_CONFIG": str(config)}
    command = [sys.executable, "-m", "polyvisor.cli", "exporter", "-c", "lab", "--listen", "127.0.0.1:0"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"serving the counters of 2 host\(s\) at (http://127\.0\.0\.1:\d+/metrics)", line)
            assert found, line
            families, _ = scrape(found[1])
            assert by_host(families["polyvisor_scrape_success"]) == {"a": 1.0, "b": 0.0}
        finally:
            process.send_signal(2)  # SIGINT: Ctrl-C, how an exporter normally ends
            _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err


def test_the_command_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    env = {**os.environ, "POLYVISOR_CONFIG": str(tmp_path / "none.toml")}
    bad = subprocess.run(
        [sys.executable, "-m", "polyvisor.cli", "exporter", "-c", "memory:///x", "--listen", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "config group or a named connection" in bad.stderr
    listen = subprocess.run(
        [sys.executable, "-m", "polyvisor.cli", "exporter", "--listen", "nowhere"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listen.returncode != 0
    assert "HOST:PORT" in listen.stderr
