"""The collection as Ansible sees it: ansible-galaxy builds and installs it, ansible-doc reads every plugin."""

from __future__ import annotations

import json
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest

from .support import FQCN, NAME, NAMESPACE, ROOT, Ansible, program


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


def test_the_documented_build_and_install_commands_work(ansible: Ansible, tmp_path: Path) -> None:
    page = (ROOT / "docs" / "ansible.md").read_text(encoding="utf-8")
    installing = page.split("## Installing", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.removeprefix("$ ")) for line in installing.splitlines()]
    verbs = [command[:3] for command in commands]
    assert verbs == [["ansible-galaxy", "collection", verb] for verb in ("build", "install")], installing
    (tmp_path / "integrations").symlink_to(ROOT / "integrations", target_is_directory=True)
    collections = tmp_path / "collections"
    for command in commands:
        done = subprocess.run(
            [program(command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=240,
            env={**ansible.env, "ANSIBLE_COLLECTIONS_PATH": str(collections)},
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "dist" / f"{NAMESPACE}-{NAME}-0.1.0.tar.gz").is_file()
    assert (collections / "ansible_collections" / NAMESPACE / NAME / "plugins" / "modules" / "vms.py").is_file()
    assert not list((ROOT / "integrations" / "ansible").glob("*.tar.gz"))
