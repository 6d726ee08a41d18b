"""The collection as Ansible sees it: ansible-galaxy builds and installs it, ansible-doc reads every plugin."""

from __future__ import annotations

import json

import pytest

from .support import FQCN, Ansible


@pytest.mark.parametrize(("kind", "name"), [("module", "vm"), ("inventory", "polyvisor")])
def test_ansible_doc_reads_the_installed_plugins_documentation(ansible: Ansible, kind: str, name: str) -> None:
    result = ansible.run("ansible-doc", "-t", kind, "--json", f"{FQCN}.{name}")
    assert result.returncode == 0, result.output
    doc = json.loads(result.stdout)[f"{FQCN}.{name}"]
    assert doc["doc"]["short_description"]
    assert doc["examples"]
    if kind == "module":
        assert doc["return"]["vm"]["contains"]["state"]
        assert doc["doc"]["options"]["password"].get("no_log", True)
