"""The polyvisor.hypervisors.guest connection plugin on memory://: its checks and refusals, and its file copies.

memory:// keeps its VMs in the memory of the process that made them, and every Ansible task runs in a process of
its own; so these tests load the plugin through ansible-core's own plugin loader, in this process, next to the VMs
they make (and one real ansible-playbook run shows what a task on a missing VM reports). Commands themselves need
a real guest's /bin/sh: test_guest_connection_kvm.py runs them in real guests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import polyvisor

from .support import FQCN, ROOT, Ansible

PLUGIN = f"{FQCN}.guest"
MiB = 1024 * 1024

Make = Callable[..., Any]


_loaded: list[Path] = []


def load_plugin(ansible: Ansible, **variables: Any) -> Any:
    """The connection plugin, made by ansible-core's loader from the collection ansible-galaxy installed (the loader
    is set up once per process), with the host variables a task would give it."""
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader, init_plugin_loader

    if not _loaded:
        init_plugin_loader([str(ansible.home / "collections")])
        _loaded.append(ansible.home)
    connection = connection_loader.get(PLUGIN, PlayContext())
    assert connection is not None, f"ansible-core did not find {PLUGIN}"
    connection.set_options(var_options=variables)
    return connection


@pytest.fixture(scope="module")
def guest_connection(ansible: Ansible) -> Make:
    """:func:`load_plugin` for this module's tests."""
    return lambda **variables: load_plugin(ansible, **variables)


@pytest.fixture
def memory_host() -> Iterator[tuple[str, polyvisor.Connection]]:
    """A fresh memory:// host of this process with a running VM ``web1`` and a stopped ``db1``."""
    uri = f"memory:///pvansible-{uuid.uuid4().hex[:8]}"
    with polyvisor.connect(uri) as conn:
        conn.create({"name": "web1", "memory_mib": 64}).start()
        conn.create({"name": "db1", "memory_mib": 64})
        yield uri, conn


def test_files_copy_in_and_out_byte_for_byte(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection], tmp_path: Path
) -> None:
    uri, conn = memory_host
    data = bytes(range(256)) * 4096 + b"\r\n\x00end"
    source = tmp_path / "payload.bin"
    source.write_bytes(data)
    connection = guest_connection(inventory_hostname="web1", polyvisor_uri=uri)
    try:
        connection.put_file(str(source), "/tmp/payload.bin")
        assert conn.vm("web1").read_file("/tmp/payload.bin") == data
        back = tmp_path / "back.bin"
        connection.fetch_file("/tmp/payload.bin", str(back))
        assert back.read_bytes() == data
    finally:
        connection.close()


def test_the_inventorys_variables_find_the_vm_by_uuid(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection], tmp_path: Path
) -> None:
    uri, conn = memory_host
    web1 = conn.vm("web1")
    # As the inventory sets them for a VM listed as name@connection: the UUID wins over the host's name.
    connection = guest_connection(
        inventory_hostname="web1@lab",
        polyvisor_name="web1",
        polyvisor_uuid=web1.uuid,
        polyvisor_hypervisor={"name": "lab", "uri": uri},
    )
    source = tmp_path / "f"
    source.write_bytes(b"found")
    try:
        connection.put_file(str(source), "/tmp/f")
    finally:
        connection.close()
    assert web1.read_file("/tmp/f") == b"found"


def test_a_missing_guest_file_is_file_not_found(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection], tmp_path: Path
) -> None:
    from ansible.errors import AnsibleFileNotFound

    uri, _conn = memory_host
    connection = guest_connection(inventory_hostname="web1", polyvisor_uri=uri)
    with pytest.raises(AnsibleFileNotFound, match=r"/tmp/absent does not exist in VM 'web1'"):
        connection.fetch_file("/tmp/absent", str(tmp_path / "x"))
    connection.close()


def test_a_file_over_64_mib_is_refused_before_anything_is_sent(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection], tmp_path: Path
) -> None:
    from ansible.errors import AnsibleError

    uri, conn = memory_host
    big = tmp_path / "big.img"
    with big.open("wb") as handle:  # sparse: the size is checked before the file is read
        handle.truncate(64 * MiB + 1)
    connection = guest_connection(inventory_hostname="web1", polyvisor_uri=uri)
    with pytest.raises(AnsibleError, match=r"holds 67108865 bytes.*at most 67108864 bytes \(64 MiB\)"):
        connection.put_file(str(big), "/tmp/big.img")
    connection.close()
    with pytest.raises(polyvisor.NotFoundError):
        conn.vm("web1").read_file("/tmp/big.img")


def test_a_stopped_vm_is_unreachable_saying_to_start_it(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection]
) -> None:
    from ansible.errors import AnsibleConnectionFailure

    uri, _conn = memory_host
    connection = guest_connection(inventory_hostname="db1", polyvisor_uri=uri)
    with pytest.raises(AnsibleConnectionFailure, match=r"VM 'db1' on .* is stopped.*start it first"):
        connection.exec_command("true")


def test_a_hypervisor_without_a_guest_channel_is_unreachable_naming_the_feature(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection]
) -> None:
    from ansible.errors import AnsibleConnectionFailure

    uri, _conn = memory_host
    connection = guest_connection(inventory_hostname="web1", polyvisor_uri=f"{uri}?without=guest-exec")
    with pytest.raises(AnsibleConnectionFailure, match=r"does not declare guest-exec\).*ansible_connection=ssh"):
        connection.exec_command("true")


def test_guest_credentials_are_refused_where_the_channel_cannot_log_in(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection]
) -> None:
    from ansible.errors import AnsibleAuthenticationFailure

    uri, _conn = memory_host
    secret = "s3cret-" + uuid.uuid4().hex
    connection = guest_connection(
        inventory_hostname="web1", polyvisor_uri=uri, polyvisor_guest_user="admin", polyvisor_guest_password=secret
    )
    with pytest.raises(AnsibleAuthenticationFailure, match=r"cannot log in as 'admin'.*use become") as raised:
        connection.exec_command("true")
    assert secret not in str(raised.value)
    half = guest_connection(inventory_hostname="web1", polyvisor_uri=uri, polyvisor_guest_user="admin")
    with pytest.raises(AnsibleAuthenticationFailure, match=r"need both polyvisor_guest_user and .*only the user"):
        half.exec_command("true")


def test_a_guest_without_bin_sh_is_unreachable_saying_so(
    guest_connection: Make, memory_host: tuple[str, polyvisor.Connection]
) -> None:
    from ansible.errors import AnsibleConnectionFailure

    uri, _conn = memory_host  # memory://'s guests model a few programs, and no shell
    connection = guest_connection(inventory_hostname="web1", polyvisor_uri=uri)
    with pytest.raises(AnsibleConnectionFailure, match=r"VM 'web1' .* has no /bin/sh .* POSIX guest"):
        connection.exec_command("echo hi")
    connection.close()


def test_uri_and_connection_together_are_refused(guest_connection: Make) -> None:
    from ansible.errors import AnsibleError

    connection = guest_connection(inventory_hostname="web1", polyvisor_uri="memory:///x", polyvisor_connection="lab")
    with pytest.raises(AnsibleError, match=r"polyvisor_uri .* and polyvisor_connection .* both name"):
        connection.exec_command("true")


def test_a_task_on_a_vm_that_does_not_exist_is_unreachable(ansible: Ansible, tmp_path: Path) -> None:
    """A real ansible-playbook run: each task opens a memory:// host of its own, which has no VMs."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"ghost ansible_connection={PLUGIN} polyvisor_uri=memory:///pvansible-empty\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.raw: 'true'\n", encoding="utf-8"
    )
    result = ansible.run("ansible-playbook", "-i", str(inventory), str(playbook))
    assert result.returncode == 4, result.output  # 4: a host was unreachable
    assert result.recap()["ghost"]["unreachable"] == 1
    assert "no VM" in result.output, result.output
    assert "keeps its VMs only while a connection to it is open" in result.output


def test_the_page_includes_the_examples_the_kvm_tests_run() -> None:
    page = (ROOT / "docs" / "ansible.md").read_text(encoding="utf-8")
    for example in ("guest.polyvisor.yml", "guest-commands.yml"):
        assert f"```{{literalinclude}} examples/ansible/{example}" in page, example
