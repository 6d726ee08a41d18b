"""The collection as Ansible sees it: ansible-galaxy builds and installs it, ansible-doc reads every plugin."""

from __future__ import annotations

import json
import tarfile

import pytest

from .support import FQCN, NAME, NAMESPACE, Ansible


@pytest.mark.parametrize(("kind", "name"), [("module", "vm"), ("module", "vms"), ("inventory", "polyvisor")])
def test_ansible_doc_reads_the_installed_plugins_documentation(ansible: Ansible, kind: str, name: str) -> None:
    result = ansible.run("ansible-doc", "-t", kind, "--json", f"{FQCN}.{name}")
    assert result.returncode == 0, result.output
    doc = json.loads(result.stdout)[f"{FQCN}.{name}"]
    assert doc["doc"]["short_description"]
    assert doc["examples"]
    if kind == "module":
        assert doc["return"][name]["contains"]["state"]
        assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
        options = doc["doc"]["options"]
        password = options["password"] if name == "vm" else options["connections"]["suboptions"]["password"]
        assert password.get("no_log", True)


def test_the_built_tarball_leaves_out_the_tests(ansible: Ansible) -> None:
    with tarfile.open(ansible.home / f"{NAMESPACE}-{NAME}-0.1.0.tar.gz") as tarball:
        members = tarball.getnames()
    assert "plugins/modules/vms.py" in members
    assert not [member for member in members if member == "tests" or member.startswith("tests/")], members
