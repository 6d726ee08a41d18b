"""The examples of docs/ansible.md run as they are shown: the playbook and the inventory source."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import polyvisor

from .conftest import remove_vms
from .support import PREFIX, ROOT, Ansible, HypervHost

EXAMPLES = ROOT / "docs" / "examples" / "ansible"


def test_the_page_includes_the_examples_these_tests_run() -> None:
    page = (ROOT / "docs" / "ansible.md").read_text(encoding="utf-8")
    examples = ("vm-lifecycle.yml", "fleet.polyvisor.yml", "config.toml", "errors.yml", "selection.yml")
    for example in (*examples, "host-resources.yml", "host-resources-down.yml", "cached.polyvisor.yml"):
        assert f"```{{literalinclude}} examples/ansible/{example}" in page, example


def test_the_documented_playbook_walks_a_vm_on_the_loopback_hyperv_host(
    ansible: Ansible, hyperv_host: HypervHost, names: str
) -> None:
    name = f"{names}docs"
    result = ansible.playbook(
        EXAMPLES / "vm-lifecycle.yml",
        "-e",
        f"polyvisor_uri={hyperv_host.psrp_uri}",
        "-e",
        f"polyvisor_ca={hyperv_host.ca_path}",
        "-e",
        f"vm_name={name}",
        env={"POLYVISOR_PASSWORD": hyperv_host.password},
    )
    assert result.returncode == 0, result.output
    assert result.recap()["localhost"]["changed"] == 4, result.output
    assert re.search(rf"{name} is running with labels .*'role': 'web'", result.stdout), result.stdout
    assert hyperv_host.password not in result.output
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        assert not hv.exists(name)


def test_the_documented_inventory_lists_the_config_groups_vms(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        hv.create({"name": f"{names}inv", "memory_mib": 256, "labels": {"team": "infra"}})
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[connections.hv01]
uri = "{hyperv_host.psrp_uri}"
password_env = "HV01_PASSWORD"
options = {{ ca_path = "{hyperv_host.ca_path}" }}

[connections.elsewhere]
uri = "qemu+tcp://127.0.0.1:1/system"

[groups]
lab = ["hv01"]
"""
    )
    env = {"POLYVISOR_CONFIG": str(config), "HV01_PASSWORD": hyperv_host.password}
    listing, result = ansible.inventory(EXAMPLES / "fleet.polyvisor.yml", env=env)
    assert "skipped" not in result.stderr, result.stderr  # "elsewhere" is outside the lab group: never asked
    assert f"{names}inv" in listing["team_infra"]["hosts"]
    assert f"{names}inv" in listing["host_hv01"]["hosts"]


def _config(host: HypervHost, path: Path) -> Path:
    path.write_text(
        f"""
[connections.hv01]
uri = "{host.psrp_uri}"
password_env = "HV01_PASSWORD"
options = {{ ca_path = "{host.ca_path}" }}
""",
        encoding="utf-8",
    )
    return path


def test_the_documented_error_handling_names_the_host_as_the_config_does(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    page = (ROOT / "docs" / "ansible.md").read_text(encoding="utf-8")
    env = {"POLYVISOR_CONFIG": str(_config(hyperv_host, tmp_path / "config.toml")), "HV01_PASSWORD": "Wrong-4711"}
    result = ansible.playbook(EXAMPLES / "errors.yml", "-e", f"vm_name={names}web", env=env)
    assert result.returncode == 0, result.output
    shown = re.search(r'"msg": "skipped: (.*)"', result.stdout)
    assert shown is not None, result.stdout
    message = shown.group(1)
    assert message.endswith("[host hv01]"), message  # the config's name, not 127.0.0.1
    # The page shows the same message, up to the endpoint's address.
    documented = re.search(r'"msg": "skipped: (.*)"', page)
    assert documented is not None, "docs/ansible.md shows no output of errors.yml"
    endpoint = re.compile(r"https?://[^/]+/")
    assert endpoint.sub("URL/", message) == endpoint.sub("URL/", documented.group(1)), documented.group(1)


def test_the_page_quotes_the_ephemeral_hypervisor_warning_the_module_gives(ansible: Ansible) -> None:
    page = " ".join((ROOT / "docs" / "ansible.md").read_text(encoding="utf-8").split())
    result, run = ansible.module("vm", {"uri": "test:///default", "name": "test"})
    assert result["failed"] is False, run.output
    (warning,) = run.warnings
    assert warning in page, warning


def test_the_documented_selection_playbook_patches_the_labs_web_vms(
    ansible: Ansible, hyperv_host: HypervHost, second_hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    hv01 = {"uri": hyperv_host.psrp_uri, "password": hyperv_host.password, "ca_path": hyperv_host.ca_path}
    hv02 = {"uri": second_hyperv_host.winrm_uri, "password": second_hyperv_host.password}
    try:
        for host, made in ((hv01, ["web1", "db1"]), (hv02, ["web2"])):
            with polyvisor.connect(**host) as conn:
                for name in made:
                    conn.create({"name": f"{names}{name}", "memory_mib": 256, "labels": {"role": name[:-1]}})
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[connections.hv01]
uri = "{hyperv_host.psrp_uri}"
password_env = "HV01_PASSWORD"
options = {{ ca_path = "{hyperv_host.ca_path}" }}

[connections.hv02]
uri = "{second_hyperv_host.winrm_uri}"
password_env = "HV02_PASSWORD"

[groups]
lab = ["hv01", "hv02"]
""",
            encoding="utf-8",
        )
        env = {
            "POLYVISOR_CONFIG": str(config),
            "HV01_PASSWORD": hyperv_host.password,
            "HV02_PASSWORD": second_hyperv_host.password,
        }
        for run, changed in (("first", 2), ("again", 0)):
            result = ansible.playbook(EXAMPLES / "selection.yml", env=env)
            assert result.returncode == 0, result.output
            assert result.recap()["localhost"]["changed"] == (1 if changed else 0), (run, result.output)
            assert re.search(rf"hv01/{names}web1 is (stopped|running)", result.stdout), result.stdout
            assert re.search(rf"hv02/{names}web2 is (stopped|running)", result.stdout), result.stdout
            assert re.search(r"\d+ of \d+ web VMs changed", result.stdout), result.stdout
            assert hyperv_host.password not in result.output
            assert second_hyperv_host.password not in result.output
        for host, name, role in ((hv01, "web1", "web"), (hv02, "web2", "web"), (hv01, "db1", "db")):
            with polyvisor.connect(**host) as conn:
                vm = conn.vm(f"{names}{name}")
                info = vm.info()
                if role == "web":
                    assert info.state.value == "running"
                    assert dict(info.labels) == {"role": "web", "patched": "2026-12"}
                    assert [snapshot.name for snapshot in vm.snapshots()] == ["patched-2026-12"]
                else:
                    assert info.state.value == "stopped"
                    assert dict(info.labels) == {"role": "db"}
    finally:
        remove_vms(second_hyperv_host.winrm_uri, names, password=second_hyperv_host.password)


def test_the_documented_host_resources_playbooks_build_and_tear_down_a_site(
    ansible: Ansible, hyperv_host: HypervHost, tmp_path: Path
) -> None:
    site = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    image = tmp_path / "base.img"
    with image.open("wb") as out:
        out.truncate(4 * 1024 * 1024)
        out.write(b"polyvisor docs image\n" * 1000)
    args = ["-e", f"polyvisor_uri={hyperv_host.psrp_uri}", "-e", f"polyvisor_ca={hyperv_host.ca_path}"]
    args += ["-e", f"prefix={site}", "-e", f"image={image}"]
    env = {"POLYVISOR_PASSWORD": hyperv_host.password}
    hv = {"password": hyperv_host.password, "ca_path": hyperv_host.ca_path}
    try:
        up = ansible.playbook(EXAMPLES / "host-resources.yml", *args, env=env)
        assert up.returncode == 0, up.output
        assert up.recap()["localhost"]["changed"] == 6, up.output
        assert re.search(rf"{site}-web1 runs with 2 CPUs; heartbeat: ", up.stdout), up.stdout
        again = ansible.playbook(EXAMPLES / "host-resources.yml", *args, env=env)
        assert again.returncode == 0, again.output
        assert again.recap()["localhost"]["changed"] == 0, again.output
        down = ansible.playbook(EXAMPLES / "host-resources-down.yml", *args, env=env)
        assert down.returncode == 0, down.output
        assert down.recap()["localhost"]["changed"] == 6, down.output
        assert hyperv_host.password not in up.output + again.output + down.output
    finally:
        remove_vms(hyperv_host.psrp_uri, f"{site}-", **hv)
    with polyvisor.connect(hyperv_host.psrp_uri, **hv) as conn:
        assert site + "-images" not in [pool.name for pool in conn.pools()]
        assert site + "-isolated" not in [network.name for network in conn.networks()]
