"""The polyvisor.hypervisors.guest connection in real guests on libvirtd, driven by real ansible-playbook.

* The tiny guest (busybox, Debian's qemu-guest-agent, no Python; ``scripts/build-guest-image``): raw commands,
  a script copied in, files both ways, the documented example, and the hosts that cannot be reached (a stopped VM,
  a running one whose agent never starts).
* The Debian 12 cloud guest (python3, sudo; ``scripts/build-cloud-image``): real modules, with and without
  pipelining, become, copy and fetch.

Everything is named ``pvtest-...`` and removed afterwards, also when a test fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor.testing import eventually

from .support import FQCN, KVM_URI, ROOT, Ansible, unavailable
from .test_guest_connection import load_plugin

PLUGIN = f"{FQCN}.guest"
EXAMPLES = ROOT / "docs" / "examples" / "ansible"
CLOUD_MANIFEST = Path("/var/lib/libvirt/images/polyvisor-guest/debian12-cloud/manifest.json")
HOSTILE = ["it's", 'say "hi"', "$(touch /tmp/pwned)", "`id`", "tab\there", "ü😀", "-n", "*", "; rm -rf /"]


def remove_prefixed(prefix: str) -> None:
    """Power off and delete, disks included, every VM of qemu:///system named with ``prefix``."""
    assert prefix.startswith("pvtest-"), prefix
    with polyvisor.connect(KVM_URI) as conn:
        for info in conn.list():
            if info.name.startswith(prefix):
                vm = conn.vm(info)
                vm.ensure("stopped", force=True)
                vm.delete(storage=True, force=True)
    for log in Path("/var/log/libvirt/qemu").glob(f"{prefix}*.log"):
        log.unlink(missing_ok=True)


def agent_answers(vm: polyvisor.VM) -> bool | None:
    try:
        return vm.exec(["true"], timeout=10).ok or None
    except (polyvisor.TimeoutError, polyvisor.BackendError):
        return None


def booted(vm: polyvisor.VM) -> bool | None:
    try:
        return vm.exec(["test", "-e", "/var/lib/cloud/instance/boot-finished"], timeout=10).ok or None
    except (polyvisor.TimeoutError, polyvisor.BackendError):
        return None


@dataclass(frozen=True)
class TinyGuests:
    """The module's tiny guests: ``ready`` (its agent answers), ``stopped`` and ``agentless`` (running; PID 1 is a
    shell, so qemu-guest-agent never starts)."""

    ready: polyvisor.VM
    stopped: polyvisor.VM
    agentless: polyvisor.VM

    def inventory(self, directory: Path) -> Path:
        path = directory / "hosts.ini"
        path.write_text(
            "[tiny]\n"
            + "".join(f"{vm.seen_name}\n" for vm in (self.ready, self.stopped, self.agentless))
            + f"[tiny:vars]\nansible_connection={PLUGIN}\npolyvisor_uri={KVM_URI}\n",
            encoding="utf-8",
        )
        return path


@pytest.fixture(scope="module")
def tiny(kvm_spec: dict[str, Any]) -> Iterator[TinyGuests]:
    prefix = f"pvtest-{uuid.uuid4().hex[:8]}-"
    try:
        with polyvisor.connect(KVM_URI) as conn:
            ready = conn.create({**kvm_spec, "name": f"{prefix}tiny", "labels": {"access": "agent"}})
            stopped = conn.create({**kvm_spec, "name": f"{prefix}off"})
            kernel = {**kvm_spec["kernel"], "cmdline": kvm_spec["kernel"]["cmdline"] + " rdinit=/bin/sh"}
            agentless = conn.create({**kvm_spec, "name": f"{prefix}noagent", "kernel": kernel})
            ready.start()
            agentless.start()
            eventually(lambda: agent_answers(ready), timeout=180, what="the tiny guest's agent", interval=1.0)
            yield TinyGuests(ready, stopped, agentless)
    finally:
        remove_prefixed(prefix)


def playbook(directory: Path, text: str) -> Path:
    path = directory / "play.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_raw_commands_and_scripts_run_in_the_tiny_guest(ansible: Ansible, tiny: TinyGuests, tmp_path: Path) -> None:
    script = tmp_path / "probe.sh"
    script.write_bytes(b'#!/bin/sh\nprintf \'arg:%s\\n\' "$@"\nsha256sum "$0" | cut -c1-64\n')
    play = playbook(
        tmp_path,
        f"""
- hosts: {tiny.ready.seen_name}
  gather_facts: false
  vars:
    hostile: {json.dumps(HOSTILE, ensure_ascii=False)}
  tasks:
    - name: Every argument reaches printf as written, nothing is evaluated twice
      ansible.builtin.raw: printf '%s\\n' {{{{ hostile | map('quote') | join(' ') }}}}; test ! -e /tmp/pwned
      register: hostile_out
    - ansible.builtin.assert:
        that: hostile_out.stdout_lines == hostile
    - name: Exit codes and stderr come back
      ansible.builtin.raw: echo to-err >&2; exit 3
      register: failing
      failed_when: false
    - ansible.builtin.assert:
        that: [failing.rc == 3, "'to-err' in failing.stderr"]
    - name: A script is copied in (put_file) and run with its arguments
      ansible.builtin.script: {script} one "two words"
      register: probe
    - ansible.builtin.debug: {{var: probe.stdout_lines}}
""",
    )
    began = time.monotonic()
    result = ansible.run("ansible-playbook", "-i", str(tiny.inventory(tmp_path)), str(play))
    seconds = time.monotonic() - began
    assert result.returncode == 0, result.output
    assert result.recap()[tiny.ready.seen_name]["failed"] == 0
    digest = hashlib.sha256(script.read_bytes()).hexdigest()
    assert f'"arg:one",\n        "arg:two words",\n        "{digest}"' in result.stdout, result.stdout
    print(f"tiny guest play (6 tasks): {seconds:.1f} s")


def test_hosts_that_cannot_take_commands_are_unreachable_saying_why(
    ansible: Ansible, tiny: TinyGuests, tmp_path: Path
) -> None:
    play = playbook(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.raw: 'true'\n")
    limit = f"{tiny.stopped.seen_name},{tiny.agentless.seen_name}"
    result = ansible.run("ansible-playbook", "-i", str(tiny.inventory(tmp_path)), str(play), "--limit", limit)
    assert result.returncode == 4, result.output
    recap = result.recap()
    assert recap[tiny.stopped.seen_name]["unreachable"] == 1
    assert recap[tiny.agentless.seen_name]["unreachable"] == 1
    assert f"VM '{tiny.stopped.seen_name}' on {KVM_URI} is stopped" in result.output, result.output
    assert "start it first" in result.output
    assert f"the guest agent of VM '{tiny.agentless.seen_name}'" in result.output, result.output
    assert "is it running in the guest (qemu-guest-agent)?" in result.output


def test_the_plugin_copies_files_both_ways_and_feeds_stdin(
    tiny: TinyGuests, ansible: Ansible, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    connection = load_plugin(ansible, inventory_hostname=tiny.ready.seen_name, polyvisor_uri=KVM_URI)
    request.addfinalizer(connection.close)
    data = os.urandom(1024 * 1024) + b"\x00\r\n"
    source, back = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(data)
    began = time.monotonic()
    connection.put_file(str(source), "/tmp/pv-ansible.bin")
    put = time.monotonic() - began
    code, stdout, _stderr = connection.exec_command("sha256sum /tmp/pv-ansible.bin; cat", in_data=b"\xff\x00stdin")
    assert code == 0
    assert stdout == hashlib.sha256(data).hexdigest().encode() + b"  /tmp/pv-ansible.bin\n\xff\x00stdin"
    began = time.monotonic()
    connection.fetch_file("/tmp/pv-ansible.bin", str(back))
    fetched = time.monotonic() - began
    assert back.read_bytes() == data
    code, _out, _err = connection.exec_command("rm /tmp/pv-ansible.bin")
    assert code == 0
    # A pipelined module is larger than one agent request carries: it goes through a file, removed afterwards.
    code, stdout, _stderr = connection.exec_command("sha256sum; exit 7", in_data=data)
    assert (code, stdout) == (7, hashlib.sha256(data).hexdigest().encode() + b"  -\n")
    code, stdout, _stderr = connection.exec_command("ls -a /tmp")
    assert b".polyvisor-ansible-" not in stdout
    print(f"1 MiB into the tiny guest: {put:.1f} s, out: {fetched:.1f} s")


def test_the_documented_example_runs_through_the_inventory(ansible: Ansible, tiny: TinyGuests) -> None:
    """docs/ansible.md's inventory and playbook, as shown: the VM connects with no setting of its own."""
    result = ansible.run(
        "ansible-playbook",
        "-i",
        str(EXAMPLES / "guest.polyvisor.yml"),
        str(EXAMPLES / "guest-commands.yml"),
        "--limit",
        tiny.ready.seen_name,
    )
    assert result.returncode == 0, result.output
    assert result.recap()[tiny.ready.seen_name] == {
        "ok": 4,
        "changed": 2,
        "unreachable": 0,
        "failed": 0,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }, result.output
    said = f"{tiny.ready.seen_name}: ['Linux', '0', \"it's $(not) run\"]"
    assert json.dumps(said) in result.stdout, result.stdout  # the debug callback shows msg as JSON


def test_a_vm_listed_from_the_config_file_connects_by_its_connection(
    ansible: Ansible, tiny: TinyGuests, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[connections.kvm-lab]\nuri = "{KVM_URI}"\n', encoding="utf-8")
    source = tmp_path / "lab.polyvisor.yml"
    source.write_text(
        f"plugin: {FQCN}.polyvisor\nconfig: {config}\ndiscover_addresses: false\n"
        f"compose:\n  ansible_connection: \"'{PLUGIN}'\"\n",
        encoding="utf-8",
    )
    listing, _run = ansible.inventory(source)
    assert listing["_meta"]["hostvars"][tiny.ready.seen_name]["polyvisor_hypervisor"] == {
        "name": "kvm-lab",
        "uri": KVM_URI,
    }
    result = ansible.run(
        "ansible", tiny.ready.seen_name, "-i", str(source), "-m", "ansible.builtin.raw", "-a", "echo in-$(uname -s)"
    )
    assert result.returncode == 0, result.output
    assert "in-Linux" in result.stdout, result.output


# --- the Debian cloud guest: real modules need the guest's python3 -------------------------------------------------


@pytest.fixture(scope="module")
def cloud_guest(kvm_spec: dict[str, Any]) -> Iterator[polyvisor.VM]:
    """A Debian 12 cloud guest (a linked clone of scripts/build-cloud-image's disk) whose agent answers."""
    if not CLOUD_MANIFEST.exists():
        unavailable(f"no cloud guest at {CLOUD_MANIFEST}; run scripts/build-cloud-image as root")
    manifest = json.loads(CLOUD_MANIFEST.read_text())
    prefix = f"pvtest-{uuid.uuid4().hex[:8]}-"
    spec = {
        "name": f"{prefix}cloud",
        "memory_mib": 1024,
        "cpus": 1,
        "arch": "x86_64",
        "accelerator": "tcg",
        "disks": [{"image": manifest["disk"], "clone": "linked", "pool": "polyvisor-test"}],
        "nics": [{"network": "polyvisor-isolated"}],
        "cloud_init": {"instance_id": f"{prefix}cloud", "user_data": "#cloud-config\n{}\n"},
    }
    try:
        with polyvisor.connect(KVM_URI) as conn:
            vm = conn.create(spec)
            began = time.monotonic()
            vm.start()
            eventually(lambda: agent_answers(vm), timeout=420, what="the cloud guest's agent", interval=2.0)
            agent = time.monotonic() - began
            # Until cloud-init is done, boot restarts services (the agent among them, which libvirt then reports
            # as "not available for now"): Ansible starts on a booted guest, as it would over SSH.
            eventually(lambda: booted(vm), timeout=420, what="cloud-init to finish", interval=2.0)
            print(
                f"cloud guest: agent answered {agent:.0f} s, boot finished {time.monotonic() - began:.0f} s after start"
            )
            yield vm
    finally:
        remove_prefixed(prefix)


def test_modules_run_in_the_cloud_guest_with_and_without_pipelining(
    ansible: Ansible, cloud_guest: polyvisor.VM, tmp_path: Path
) -> None:
    name = cloud_guest.seen_name
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"{name} ansible_connection={PLUGIN} polyvisor_uri={KVM_URI} ansible_python_interpreter=/usr/bin/python3\n"
    )
    fetched = tmp_path / "fetched"
    play = playbook(
        tmp_path,
        f"""
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
    - name: A module's own argv, not a shell line
      ansible.builtin.command:
        argv: [printf, "%s|", "it's", "$(id)", "a b"]
      register: argv_out
    - ansible.builtin.assert:
        that: argv_out.stdout == "it's|$(id)|a b|"
    - name: The agent runs as root
      ansible.builtin.command: id -un
      register: agent_user
    - name: become switches user with sudo, which needs no terminal
      ansible.builtin.command: id -un
      become: true
      become_user: nobody
      register: nobody
    - ansible.builtin.assert:
        that: [agent_user.stdout == "root", nobody.stdout == "nobody"]
    - name: copy a file in
      ansible.builtin.copy:
        content: "{{{{ 'polyvisor ' * 1000 }}}}"
        dest: /tmp/pv-copied.txt
        mode: "0640"
    - name: fetch it back
      ansible.builtin.fetch:
        src: /tmp/pv-copied.txt
        dest: {fetched}/
        flat: false
    - ansible.builtin.setup:
        gather_subset: [min]
    - ansible.builtin.assert:
        that: ansible_facts.distribution == "Debian"
    - ansible.builtin.file:
        path: /tmp/pv-copied.txt
        state: absent
""",
    )
    timings = {}
    for pipelining in ("true", "false"):
        began = time.monotonic()
        result = ansible.run(
            "ansible-playbook", "-i", str(inventory), str(play), "-e", f"ansible_pipelining={pipelining}"
        )
        timings[pipelining] = time.monotonic() - began
        assert result.returncode == 0, result.output
        assert result.recap()[name]["failed"] == 0
        copied = fetched / name / "tmp" / "pv-copied.txt"
        assert copied.read_text() == "polyvisor " * 1000
        copied.unlink()
    print(f"cloud guest play (13 tasks): pipelining {timings['true']:.1f} s, without {timings['false']:.1f} s")
