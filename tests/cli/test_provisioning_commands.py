"""create with an image, keys and user-data; address, reconfigure and resize-disk: run on memory://, which keeps
the whole provisioning contract."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from polyvisor import Plugins
from polyvisor.cli import cli
from polyvisor.testing import memory_plugin
from polyvisor.testing.memory import host_named

from .conftest import Run, as_json

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0dGVzdGtleQ me@laptop"


@pytest.fixture
def uri() -> str:
    return f"memory:///cli-{uuid.uuid4().hex}"


@pytest.fixture
def mrun(uri: str) -> Run:
    """Run ``polyvisor -c memory:///cli-<hex> ARGS...`` in-process, on a host of the test's own."""
    plugins = Plugins(load_entry_points=False)
    plugins.register(memory_plugin, name="memory")

    def invoke(*args: str, input: str | None = None, **kwargs: Any) -> Result:
        return CliRunner().invoke(cli, ["-c", uri, *args], obj=plugins, input=input, catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A spec, a 3 MiB base image, a public key file and user-data."""
    spec = tmp_path / "web.toml"
    spec.write_text('name = "web"\nmemory_mib = 256\n[[nics]]\nnetwork = "default"\n')
    base = tmp_path / "base.img"
    base.write_bytes(bytes(3 * 1024 * 1024))
    key = tmp_path / "id_ed25519.pub"
    key.write_text(f"# my laptop\n{KEY}\n\n")
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\npackages: [nginx]\n")
    return {"spec": spec, "base": base, "key": key, "user_data": user_data}


def _seed(uri: str, name: str) -> bytes:
    host = host_named(uri.removeprefix("memory:///"))
    vm = next(vm for vm in host.vms.values() if vm.name == name)
    return host.seeds[vm.seed_path]


def test_create_from_an_image_with_keys_user_data_and_an_address(mrun: Run, files: dict[str, Path], uri: str) -> None:
    result = mrun(
        "create", str(files["spec"]), "--image", str(files["base"]), "--disk-size", "2048",
        "--ssh-key", str(files["key"]), "--user-data", str(files["user_data"]), "--hostname", "web1",
        "--wait-address",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["web: running (running)", "web: address 10.0.0.1 (agent, eth0)"]
    shown = as_json(mrun("--json", "show", "web"))
    assert shown["extra"]["disk_bases"] == {"vda": str(files["base"])}
    assert shown["extra"]["disk_sizes_mib"] == {"vda": 2048}
    assert shown["extra"]["cdroms"] == {"hdc": "/memory/web/cidata.iso"}
    seed = _seed(uri, "web")
    assert b"#cloud-config\npackages: [nginx]\n" in seed  # the user-data as given, the key in meta-data
    assert f'"public-keys": [\n    "{KEY}"\n  ]'.encode() in seed
    assert b"ssh_authorized_keys" not in seed
    assert b'"local-hostname": "web1"' in seed
    assert b'"instance-id": "web"' in seed


def test_create_json_carries_the_address(mrun: Run, files: dict[str, Path]) -> None:
    data = as_json(mrun("--json", "create", str(files["spec"]), "--wait-address", "--address-timeout", "5"))
    assert data["action"] == "create"
    assert data["state"] == "running"
    assert data["address"] == {
        "address": "10.0.0.1",
        "prefix": 8,
        "interface": "eth0",
        "mac": "52:54:00:00:00:01",
        "source": "agent",
    }
    plain = as_json(mrun("--json", "create", "-", input='{"name": "plain"}'))
    assert "address" not in plain


def test_a_copy_clone(mrun: Run, files: dict[str, Path]) -> None:
    assert mrun("create", str(files["spec"]), "--image", str(files["base"]), "--clone", "copy").exit_code == 0
    assert as_json(mrun("--json", "show", "web"))["extra"]["disk_sizes_mib"] == {"vda": 3}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--clone", "copy"], "--clone, --disk-size and --pool go with --image"),
        (["--disk-size", "64"], "--clone, --disk-size and --pool go with --image"),
        (["--pool", "images"], "--clone, --disk-size and --pool go with --image"),
        (["--image", "/no/such/base.qcow2"], "base image '/no/such/base.qcow2' does not exist"),
        (["--address-timeout", "5"], "--address-timeout goes with --wait-address"),
        (["--hostname", "two\nlines"], "--hostname: 'two\\nlines' is not a host name"),
        (["--hostname", "web_1"], "--hostname: 'web_1' is not a host name"),
    ],
)
def test_create_refuses_bad_provisioning_options_and_creates_nothing(
    mrun: Run, files: dict[str, Path], extra: list[str], message: str
) -> None:
    result = mrun("create", str(files["spec"]), *extra)
    assert result.exit_code in (2, 3), result.output
    assert message in result.stderr
    assert "no VMs" in mrun("list").stdout


def test_a_private_key_or_an_empty_key_file_is_refused(mrun: Run, tmp_path: Path, files: dict[str, Path]) -> None:
    private = tmp_path / "id_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----\n")
    result = mrun("create", str(files["spec"]), "--ssh-key", str(private))
    assert result.exit_code == 2
    assert f"--ssh-key: {private} holds a private key; give the public one ({private}.pub)" in result.stderr
    empty = tmp_path / "empty.pub"
    empty.write_text("# nothing here\n")
    result = mrun("create", str(files["spec"]), "--ssh-key", str(empty))
    assert result.exit_code == 2
    assert "holds no SSH public key" in result.stderr


def test_the_seed_fields_override_those_of_the_spec(mrun: Run, tmp_path: Path, uri: str) -> None:
    spec = tmp_path / "seeded.json"
    spec.write_text(json.dumps({"name": "seeded", "cloud_init": {"local_hostname": "old", "user_data": "#x\n"}}))
    assert mrun("create", str(spec), "--hostname", "new").exit_code == 0
    seed = _seed(uri, "seeded")
    assert b'"local-hostname": "new"' in seed
    assert b"#x\n" in seed


def test_address_lists_and_waits(mrun: Run, files: dict[str, Path]) -> None:
    mrun("create", str(files["spec"]), "--start")
    lines = mrun("address", "web").stdout.splitlines()
    assert lines[0].split() == ["INTERFACE", "ADDRESS", "PREFIX", "MAC", "SOURCE", "USABLE"]
    assert lines[3].split() == ["eth0", "10.0.0.1", "8", "52:54:00:00:00:01", "agent", "yes"]
    assert mrun("address", "web", "--wait").stdout == "10.0.0.1\n"
    listed = as_json(mrun("--json", "address", "web", "--family", "ipv6"))["addresses"]
    assert [(a["address"], a["usable"]) for a in listed] == [("::1", False), ("fe80::5054:ff:fe00:1", False)]
    waited = as_json(mrun("--json", "address", "web", "--wait", "--family", "any", "--source", "agent"))
    assert waited["address"]["address"] == "10.0.0.1"


def test_an_address_wait_that_times_out_says_what_each_source_answered(mrun: Run, files: dict[str, Path]) -> None:
    mrun("create", "-", "--start", input='{"name": "mute", "nics": [{}], "labels": {"polyvisor.test/address": "none"}}')
    result = mrun("address", "mute", "--wait", "--timeout", "0")
    assert result.exit_code == 5
    assert "asked agent: agent: agent not connected" in result.stderr
    stopped = mrun("address", "mute", "--timeout", "3")
    assert stopped.exit_code == 2
    assert "--timeout goes with --wait" in stopped.stderr
    mrun("stop", "mute")
    refused = mrun("address", "mute", "--wait")
    assert refused.exit_code == 4
    assert "start it first" in refused.stderr
    unknown = mrun("address", "mute", "--source", "lease")
    assert unknown.exit_code == 2
    assert "this backend offers ['agent']" in unknown.stderr


def test_reconfigure_cold_and_live(mrun: Run, files: dict[str, Path]) -> None:
    mrun("create", "-", input='{"name": "box", "memory_mib": 1024}')
    assert mrun("reconfigure", "box", "--cpus", "2", "--memory", "2048").stdout == "box: 2 CPUs, 2 GiB (stopped)\n"
    mrun("start", "box")
    data = as_json(mrun("--json", "reconfigure", "box", "--memory", "512", "--live"))
    assert (data["action"], data["cpus"], data["memory_mib"], data["state"]) == ("reconfigure", 2, 512, "running")
    cold = mrun("reconfigure", "box", "--cpus", "4", "--cold")
    assert cold.exit_code == 4
    assert "stop it first" in cold.stderr
    above = mrun("reconfigure", "box", "--memory", "4096")
    assert above.exit_code == 2
    assert "the memory it booted with" in above.stderr
    nothing = mrun("reconfigure", "box")
    assert nothing.exit_code == 2
    assert "give --cpus, --memory or both" in nothing.stderr


def test_resize_disk_grows_and_never_shrinks(mrun: Run, files: dict[str, Path]) -> None:
    mrun("create", "-", input='{"name": "disk", "disks": [{"size_mib": 1024}]}')
    assert mrun("resize-disk", "disk", "vda", "2048").stdout == "disk: disk vda is now 2 GiB\n"
    data = as_json(mrun("--json", "resize-disk", "disk", "vda", "3000"))
    assert data == {"action": "resize-disk", "vm": "disk", "uuid": data["uuid"], "target": "vda", "size_mib": 3000}
    shrink = mrun("resize-disk", "disk", "vda", "1024")
    assert shrink.exit_code == 2
    assert "disks only grow; give at least 3000" in shrink.stderr
    missing = mrun("resize-disk", "disk", "vdz", "4096")
    assert missing.exit_code == 3
    assert "its disks: ['vda']" in missing.stderr


def test_user_data_and_network_config_arrive_byte_for_byte(mrun: Run, files: dict[str, Path], uri: str) -> None:
    user_data = b'#cloud-config\r\nruncmd:\r\n  - [echo, "caf\xc3\xa9"]\r\n'  # CRLF and UTF-8 stay as they are
    files["user_data"].write_bytes(user_data)
    network = files["user_data"].with_name("network-config")
    network.write_bytes(b"version: 2\r\nethernets: {eth0: {dhcp4: true}}\r\n")
    result = mrun(
        "create", str(files["spec"]), "--user-data", str(files["user_data"]),
        "--network-config", str(network), "--ssh-key", str(files["key"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    seed = _seed(uri, "web")
    assert user_data in seed
    assert network.read_bytes() in seed


@pytest.mark.parametrize("option", ["--user-data", "--network-config"])
def test_a_file_that_is_not_utf8_is_refused_naming_the_option(mrun: Run, files: dict[str, Path], option: str) -> None:
    files["user_data"].write_bytes(b"#cloud-config\nhostname: caf\xe9\n")  # Latin-1
    result = mrun("create", str(files["spec"]), option, str(files["user_data"]))
    assert result.exit_code == 2, result.output
    assert f"{option}: {files['user_data']} is not UTF-8 text (byte 27: b'\\xe9')" in result.stderr
    assert "no VMs" in mrun("list").stdout


def test_forward_adds_a_user_mode_nic_first_and_a_held_port_fails_the_start(
    mrun: Run, files: dict[str, Path], tmp_path: Path
) -> None:
    result = mrun("--json", "create", str(files["spec"]), "--forward", "2222:22", "--forward", "5353:53/udp")
    assert result.exit_code == 0, result.output
    info = as_json(mrun("--json", "show", "web"))
    assert [(f["host_port"], f["guest_port"], f["protocol"]) for f in info["extra"]["forwards"]] == [
        (2222, 22, "tcp"),
        (5353, 53, "udp"),
    ]
    assert mrun("start", "web").exit_code == 0
    other = tmp_path / "other.json"
    other.write_text('{"name": "other", "nics": [{"kind": "user", "forwards": ["8080:80"]}]}')
    result = mrun("create", str(other), "--forward", "2222:22", "--start")
    assert result.exit_code == 9, result.output
    assert "127.0.0.1:2222/tcp is in use (VM 'web'" in result.output
    info = as_json(mrun("--json", "show", "other"))
    assert info["state"] == "stopped"
    assert [f["host_port"] for f in info["extra"]["forwards"]] == [8080, 2222]  # joined its user-mode NIC


@pytest.mark.parametrize(
    ("forward", "words"),
    [
        ("0:22", "ports are 1-65535"),
        ("2222:70000", "ports are 1-65535"),
        ("0.0.0.0:2222:22", "not a loopback address"),
        ("2222", "HOSTPORT:GUESTPORT"),
    ],
)
def test_a_bad_forward_is_refused_before_anything_is_made(
    mrun: Run, files: dict[str, Path], forward: str, words: str
) -> None:
    result = mrun("create", str(files["spec"]), "--forward", forward)
    assert result.exit_code == 2
    assert "--forward" in result.output
    assert words in result.output
    assert "web" not in mrun("list").output


def test_one_host_port_given_twice_is_refused(mrun: Run, files: dict[str, Path]) -> None:
    result = mrun("create", str(files["spec"]), "--forward", "2222:22", "--forward", "2222:80")
    assert result.exit_code == 2
    assert "forwarded twice" in result.output
