"""The inventory plugin under ansible-inventory, over a fleet of libvirtd, the loopback Hyper-V host and a dead host."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import polyvisor

from .support import KVM_URI, Ansible, HypervHost

HV_PASSWORD_ENV = "PVANSIBLE_HV_PASSWORD"


@pytest.fixture
def fleet(kvm_spec: dict[str, Any], hyperv_host: HypervHost, names: str) -> str:
    """Stopped VMs on libvirtd, a running one on the Hyper-V host, and one name on both; yields the prefix."""
    with polyvisor.connect(KVM_URI) as kvm:
        kvm.create({**kvm_spec, "name": f"{names}web", "labels": {"role": "web", "tier": "1"}})
        kvm.create({**kvm_spec, "name": f"{names}twin"})
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        app = hv.create(
            {
                "name": f"{names}app",
                "memory_mib": 256,
                "nics": [{"network": "Default Switch"}],
                "labels": {"app.example.com/tier": "front end"},
            }
        )
        app.start()
        app.wait_for_address(timeout=60)  # Hyper-V learns guest addresses through KVP, some seconds after boot
        hv.create({"name": f"{names}twin", "memory_mib": 256})
    return names  # the names fixture removes them


def _config(path: Path, host: HypervHost) -> Path:
    path.write_text(
        f"""
[connections.kvm]
uri = "{KVM_URI}"

[connections.hv]
uri = "{host.psrp_uri}"
password_env = "{HV_PASSWORD_ENV}"
options = {{ ca_path = "{host.ca_path}" }}

[connections.dead]
uri = "qemu+tcp://127.0.0.1:1/system"

[groups]
lab = ["kvm", "hv"]
everything = ["lab", "dead"]
""",
        encoding="utf-8",
    )
    return path


def test_the_inventory_groups_the_fleets_vms_and_a_dead_host_is_only_a_warning(
    ansible: Ansible, hyperv_host: HypervHost, fleet: str, tmp_path: Path
) -> None:
    config = _config(tmp_path / "polyvisor.toml", hyperv_host)
    source = tmp_path / "fleet.polyvisor.yml"
    source.write_text(f"plugin: polyvisor.hypervisors.polyvisor\nconfig: {config}\ngroup: everything\n")
    listing, result = ansible.inventory(source, env={HV_PASSWORD_ENV: hyperv_host.password})

    warning = re.sub(r"\s+", " ", result.stderr)
    assert "polyvisor: host dead skipped:" in warning, result.stderr
    assert "127.0.0.1:1" in warning
    assert hyperv_host.password not in result.output

    web, app = f"{fleet}web", f"{fleet}app"
    twins = {f"{fleet}twin@kvm", f"{fleet}twin@hv"}

    def members(group: str) -> set[str]:
        return {host for host in listing.get(group, {}).get("hosts", []) if host.startswith(fleet)}

    assert members("host_kvm") == {web, f"{fleet}twin@kvm"}
    assert members("host_hv") == {app, f"{fleet}twin@hv"}
    assert "host_dead" not in listing
    assert members("backend_libvirt") == {web, f"{fleet}twin@kvm"}
    assert members("backend_hyperv") == {app, f"{fleet}twin@hv"}
    assert members("state_stopped") == {web, *twins}
    assert members("state_running") == {app}
    assert members("label_role_web") == {web}
    assert members("label_tier_1") == {web}
    assert members("label_app_example_com_tier_front_end") == {app}

    hostvars = listing["_meta"]["hostvars"]
    assert hostvars[web]["polyvisor_state"] == "stopped"
    assert hostvars[web]["polyvisor_host"] == "kvm"
    assert hostvars[web]["polyvisor_labels"] == {"role": "web", "tier": "1"}
    assert re.fullmatch(r"[0-9a-f-]{36}", hostvars[web]["polyvisor_uuid"])
    assert hostvars[web]["polyvisor_addresses"] == []
    assert "ansible_host" not in hostvars[web]
    assert hostvars[app]["polyvisor_host"] == "hv"
    assert hostvars[app]["polyvisor_state"] == "running"
    addresses = [entry["address"] for entry in hostvars[app]["polyvisor_addresses"]]
    assert any(address.startswith("fe80:") for address in addresses), addresses
    assert hostvars[app]["ansible_host"].startswith("192.0.2."), addresses  # IPv4 first, never link-local


def test_inline_connections_and_constructed_groups(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        hv.create({"name": f"{names}db", "memory_mib": 256, "labels": {"role": "db"}})
    source = tmp_path / "inline.polyvisor.yml"
    source.write_text(
        f"""
plugin: polyvisor.hypervisors.polyvisor
connections:
  - name: hv-https
    uri: "{hyperv_host.psrp_uri}"
    password_env: {HV_PASSWORD_ENV}
    options: {{ca_path: "{hyperv_host.ca_path}"}}
  - uri: "hyperv://Administrator@127.0.0.1:1/?transport=winrm&scheme=http&auth=ntlm"
    password_env: {HV_PASSWORD_ENV}
keyed_groups:
  - key: polyvisor_labels.role | default('none')
    prefix: role
compose:
  vm_name_upper: polyvisor_name | upper
"""
    )
    listing, result = ansible.inventory(source, env={HV_PASSWORD_ENV: hyperv_host.password})
    assert "host 127.0.0.1 skipped" in re.sub(r"\s+", " ", result.stderr), result.stderr
    assert f"{names}db" in listing["host_hv_https"]["hosts"]
    assert f"{names}db" in listing["role_db"]["hosts"]
    assert listing["_meta"]["hostvars"][f"{names}db"]["vm_name_upper"] == f"{names}db".upper()
    assert hyperv_host.password not in result.output
