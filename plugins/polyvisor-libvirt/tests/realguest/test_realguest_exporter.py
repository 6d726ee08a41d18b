"""``polyvisor exporter`` scraped by a real Prometheus server: a real TCG guest on qemu:///system and a VM of the
loopback Hyper-V host (over PSRP and over WinRM), with a dead host in the same group. PromQL through Prometheus's
HTTP API finds CPU and disk series for both guests, and ``rate()`` of the CPU counters stays within a vCPU."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import polyvisor
from polyvisor.testing import eventually

from .pvguest import WITH_HEARTBEAT, wait_marker
from .support import unavailable

if TYPE_CHECKING:
    from .prometheus import PrometheusServer
    from .pvguest import Guests
    from .support import GuestImage

pytestmark = pytest.mark.loopback

USER = "exporter-admin"
PASSWORD_ENV = "POLYVISOR_EXPORTER_TEST_PASSWORD"
LOAD = 0.2  # the loopback host's modelled guest load (polyvisor_hyperv_loopback.hyperv.metering.GUEST_LOAD)


@pytest.fixture
def loopback() -> Iterator[Any]:
    try:
        from polyvisor_hyperv_loopback import LoopbackHost
        from polyvisor_hyperv_loopback.hyperv.metering import GUEST_LOAD
    except ImportError as error:
        unavailable(f"the loopback Hyper-V host is not installed: {error}")
    assert GUEST_LOAD == LOAD
    password = "Exp-" + secrets.token_urlsafe(12)
    host = LoopbackHost(USER, password).start()
    host.password = password
    try:
        yield host
    finally:
        host.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(path: Path, hv_port: int) -> None:
    hv = f'username = "{USER}"\npassword_env = "{PASSWORD_ENV}"\n'
    path.write_text(
        '[connections.kvm]\nuri = "qemu:///system"\n'
        f'[connections.hv-psrp]\nuri = "hyperv://127.0.0.1:{hv_port}/?transport=psrp&scheme=http"\n{hv}'
        f'[connections.hv-winrm]\nuri = "hyperv://127.0.0.1:{hv_port}/?transport=winrm&scheme=http"\n{hv}'
        f'[connections.dead]\nuri = "hyperv://127.0.0.1:{_closed_port()}/?scheme=http"\n{hv}'
        '[groups]\nwatched = ["kvm", "hv-psrp", "hv-winrm", "dead"]\n',
        encoding="utf-8",
    )


def values(results: list[dict[str, Any]], label: str = "host") -> dict[str, float]:
    return {result["metric"][label]: float(result["value"][1]) for result in results}


def test_prometheus_scrapes_a_real_guest_and_a_loopback_hyperv_vm(
    guests: Guests, x86_image: GuestImage, prometheus: PrometheusServer, loopback: Any, tmp_path: Path
) -> None:
    kvm_vm = guests.create(x86_image, "prom", cmdline=WITH_HEARTBEAT)
    kvm_vm.start()
    wait_marker(kvm_vm, x86_image)
    hv_name = f"pvtest-exporter-{secrets.token_hex(4)}"
    with polyvisor.connect(
        f"hyperv://{USER}@127.0.0.1:{loopback.port}/?transport=psrp&scheme=http", password=loopback.password
    ) as hv:
        hv.create({"name": hv_name, "cpus": 2, "memory_mib": 512, "disks": [{"size_mib": 64}]}).start()

    config = tmp_path / "config.toml"
    _config(config, loopback.port)
    env = {**os.environ, "POLYVISOR_CONFIG": str(config), PASSWORD_ENV: loopback.password}
    command = [sys.executable, "-m", "polyvisor.cli", "exporter", "-c", "watched", "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    target = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"at http://(127\.0\.0\.1:\d+)/metrics", line)
        assert found, f"{line}{process.stderr.read() if process.poll() is not None and process.stderr else ''}"
        target = found[1]
        prometheus.scrape(target)
        kvm = f'vm="{kvm_vm.name()}"'
        hyperv = f'vm="{hv_name}"'

        def scraped() -> dict[str, float] | None:
            up = values(prometheus.query(f'polyvisor_scrape_success{{instance="{target}"}}'))
            return up if len(up) == 4 else None

        up = eventually(scraped, timeout=60, what="Prometheus to scrape the exporter", interval=0.5)
        assert up == {"kvm": 1.0, "hv-psrp": 1.0, "hv-winrm": 1.0, "dead": 0.0}
        # The dead host did not stall the scrape: Prometheus saw the exporter up, within its scrape timeout.
        assert values(prometheus.query(f'up{{instance="{target}"}}'), "instance") == {target: 1.0}

        def rated(selector: str, series: int) -> list[dict[str, Any]] | None:
            # rate() divides by its whole window: wait until every series has samples over more than the window.
            ages = prometheus.query(f"count_over_time(polyvisor_vm_vcpu_seconds_total{{{selector}}}[15s]) >= 6")
            if len(ages) != series:
                return None
            results = prometheus.query(f"rate(polyvisor_vm_vcpu_seconds_total{{{selector}}}[7s])")
            return results if len(results) == series else None

        kvm_rates = eventually(lambda: rated(kvm, 1), timeout=60, what="a rate of the guest's vCPU", interval=0.5)
        hv_rates = eventually(lambda: rated(hyperv, 4), timeout=60, what="rates of the Hyper-V vCPUs", interval=0.5)
        for result in kvm_rates + hv_rates:
            assert 0.0 <= float(result["value"][1]) <= 1.0, result  # within 0-100 % of one vCPU
        assert {(r["metric"]["host"], r["metric"]["vcpu"]) for r in hv_rates} == {
            (host, vcpu) for host in ("hv-psrp", "hv-winrm") for vcpu in ("0", "1")
        }
        for result in hv_rates:
            assert float(result["value"][1]) == pytest.approx(LOAD, abs=0.05), result
        assert {r["metric"]["backend"] for r in hv_rates} == {"hyperv"}
        assert kvm_rates[0]["metric"]["backend"] == "qemu"
        assert kvm_rates[0]["metric"]["uuid"] == kvm_vm.uuid

        share = prometheus.query(
            f"rate(polyvisor_vm_cpu_seconds_total{{{kvm}}}[7s]) / on(host, vm, uuid, backend) "
            f"polyvisor_vm_vcpus{{{kvm}}}"
        )
        assert len(share) == 1
        assert 0.0 < float(share[0]["value"][1]) <= 1.0, share  # the heartbeat guest keeps its vCPU a little busy

        kvm_disk = values(prometheus.query(f'polyvisor_vm_disk_read_bytes_total{{{kvm},disk="vda"}}'))
        assert kvm_disk["kvm"] > 0  # its boot read its disk
        hv_disk = values(prometheus.query(f'polyvisor_vm_disk_read_bytes_total{{{hyperv},disk="all"}}'))
        assert set(hv_disk) == {"hv-psrp", "hv-winrm"}
        print(f"kvm vCPU rate {float(kvm_rates[0]['value'][1]):.3f}; disk read {kvm_disk['kvm']:.0f} B")
    finally:
        if target is not None:
            prometheus.forget(target)
        process.send_signal(2)  # SIGINT: Ctrl-C
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
