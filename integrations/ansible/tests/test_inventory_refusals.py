"""The inventory plugin refuses what it cannot honour, and the run fails with it: a misspelt option, a group the
config does not have, hosts that did not answer under ``strict``. Ansible goes on past a source that failed to
parse (an empty inventory, a playbook that runs on nothing, exit 0); these must not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import polyvisor

from .support import Ansible, HypervHost, Result

pytestmark = pytest.mark.loopback

HV_PASSWORD_ENV = "PVANSIBLE_HV_PASSWORD"
DEAD_URI = "hyperv://Administrator@127.0.0.1:1/?transport=winrm&scheme=http&auth=ntlm"


def _config(path: Path, host: HypervHost) -> Path:
    path.write_text(
        f"""
[connections.hv1]
uri = "{host.psrp_uri}"
password_env = "{HV_PASSWORD_ENV}"
options = {{ ca_path = "{host.ca_path}" }}

[connections.dead]
uri = "{DEAD_URI}"
password_env = "{HV_PASSWORD_ENV}"

[groups]
lab = ["hv1", "dead"]
down = ["dead"]
""",
        encoding="utf-8",
    )
    return path


def _inventory(ansible: Ansible, tmp_path: Path, host: HypervHost, body: str) -> Result:
    config = _config(tmp_path / "polyvisor.toml", host)
    source = tmp_path / "fleet.polyvisor.yml"
    source.write_text(f"plugin: polyvisor.hypervisors.polyvisor\nconfig: {config}\n{body}", encoding="utf-8")
    return ansible.run("ansible-inventory", "-i", str(source), "--list", env={HV_PASSWORD_ENV: host.password})


def _refused(result: Result, *words: str) -> str:
    """Assert the run failed, saying all of ``words``; return its stderr on one line."""
    said = re.sub(r"\s+", " ", result.stderr)
    assert result.returncode != 0, result.output
    for word in words:
        assert word in said, result.stderr
    return said


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("groupp: lab\n", ["unknown option", "groupp", "did you mean group"]),
        ("cachee: true\n", ["unknown option", "cachee", "did you mean cache"]),
    ],
    ids=["groupp", "cachee"],
)
def test_an_unknown_option_fails_the_run(
    ansible: Ansible, hyperv_host: HypervHost, tmp_path: Path, body: str, words: list[str]
) -> None:
    _refused(_inventory(ansible, tmp_path, hyperv_host, body), *words)


def test_an_unknown_group_fails_the_run(ansible: Ansible, hyperv_host: HypervHost, tmp_path: Path) -> None:
    _refused(_inventory(ansible, tmp_path, hyperv_host, "group: nosuch\n"), "'nosuch'", "lab", "down")
    # A playbook over the source fails too, rather than run on no host and succeed.
    playbook = tmp_path / "ping.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    played = ansible.run(
        "ansible-playbook", "-i", str(tmp_path / "fleet.polyvisor.yml"), str(playbook), env={HV_PASSWORD_ENV: "x"}
    )
    _refused(played, "'nosuch'")


def test_a_fleet_where_no_host_answered_fails_the_run(
    ansible: Ansible, hyperv_host: HypervHost, tmp_path: Path
) -> None:
    _refused(_inventory(ansible, tmp_path, hyperv_host, "group: down\n"), "no host answered", "dead")


def test_strict_fails_the_run_when_any_host_is_skipped(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        hv.create({"name": f"{names}strict", "memory_mib": 256})
    lenient = _inventory(ansible, tmp_path, hyperv_host, "group: lab\n")
    assert lenient.returncode == 0, lenient.output
    assert f"{names}strict" in lenient.stdout
    said = _refused(_inventory(ansible, tmp_path, hyperv_host, "group: lab\nstrict: true\n"), "strict", "dead")
    assert hyperv_host.password not in said


def test_inline_connections_with_a_group_or_a_config_fail_the_run(
    ansible: Ansible, hyperv_host: HypervHost, tmp_path: Path
) -> None:
    inline = f"connections:\n  - name: gone\n    uri: '{DEAD_URI}'\n"
    _refused(_inventory(ansible, tmp_path, hyperv_host, f"group: lab\n{inline}"), "connections", "group")


def test_a_skipped_host_is_named_as_the_config_names_it(
    ansible: Ansible, hyperv_host: HypervHost, tmp_path: Path
) -> None:
    result = _inventory(ansible, tmp_path, hyperv_host, "group: lab\n")
    assert result.returncode == 0, result.output
    said = re.sub(r"\s+", " ", result.stderr)
    assert "polyvisor: host dead skipped: " in said, result.stderr
    assert "[host dead]" in said, result.stderr
    assert "[host 127.0.0.1]" not in said, result.stderr
