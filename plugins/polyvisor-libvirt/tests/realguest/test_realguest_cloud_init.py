"""Real cloud-init in a real Debian 12 cloud guest, seeded by polyvisor (issue 14's proof in CI).

The guest is scripts/build-cloud-image's: Debian's cloud kernel, cloud-init 22.4, openssh-server, qemu-guest-agent,
booted by GRUB from a linked clone of its qcow2 disk under qemu:///system (TCG). polyvisor builds the NoCloud seed
from the spec's ``cloud_init`` and attaches it; everything below is read back from inside the guest through the guest
agent. Two guests (seeds in :mod:`.cloudseeds`) are booted once per session and shared by these tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .agent import CLOUD_INIT_STATUS
from .cloudguest import cloud_init_reader
from .cloudseeds import (
    ADDRESSES,
    BINARY,
    EDGE_META,
    EXTRA_USER,
    JSON_WRITTEN,
    RUNCMD_OUT,
    TEXT,
    WRITTEN_BINARY,
    WRITTEN_TEXT,
)

if TYPE_CHECKING:
    from .cloudguest import CloudGuest, CloudImage, KeyPair

Recorder = Callable[[str, object], None]
GUESTS = ("yaml", "json")


def label(guest: CloudGuest) -> str:
    """The host label of the seed's local-hostname."""
    assert guest.seed.local_hostname is not None
    return guest.seed.local_hostname.split(".")[0]


def authorized_keys(guest: CloudGuest, user: str) -> list[str]:
    """The key lines of ``user``'s authorized_keys in the guest."""
    home = "/root" if user == "root" else f"/home/{user}"
    text = guest.read(f"{home}/.ssh/authorized_keys").decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("name", GUESTS)
def test_cloud_init_finishes_without_errors_on_the_cloud_kernel(
    cloud_guests: dict[str, CloudGuest], cloud_image: CloudImage, name: str, record_property: Recorder
) -> None:
    guest = cloud_guests[name]
    for key, seconds in guest.timings.items():
        record_property(f"{key}_seconds", round(seconds, 1))
    assert guest.result["v1"]["errors"] == []
    assert guest.result["v1"]["datasource"].startswith("DataSourceNoCloud [seed=/dev/sr"), guest.result
    status = json.loads(guest.read(CLOUD_INIT_STATUS))["v1"]
    for stage in ("init-local", "init", "modules-config", "modules-final"):
        assert status[stage]["errors"] == [], (stage, status[stage])
        assert status[stage]["finished"], (stage, status[stage])
    assert guest.run("cloud-init", "status", "--long").startswith("status: done\n")
    # Nothing cloud-init could not read or do: a #cloud-config it fails to parse is only a WARNING in its log.
    log = guest.read("/var/log/cloud-init.log").decode(errors="replace")
    assert [line for line in log.splitlines() if " WARNING: " in line or " ERROR: " in line] == []
    # The kernel of Debian's genericcloud images, which has no AHCI: it found the seed on polyvisor's CD-ROM.
    assert guest.run("uname", "-r").strip() == cloud_image.kernel_version
    assert cloud_image.kernel_version.endswith("-cloud-amd64")


@pytest.mark.parametrize("name", GUESTS)
def test_the_hostname_is_the_seeds(cloud_guests: dict[str, CloudGuest], name: str) -> None:
    guest = cloud_guests[name]
    assert guest.run("hostname").strip() == label(guest)
    assert guest.read("/etc/hostname").decode().strip() == label(guest)


def test_a_63_character_host_label_is_set(cloud_guest: CloudGuest) -> None:
    assert len(label(cloud_guest)) == 63
    assert guest_uname_nodename(cloud_guest) == label(cloud_guest)


def guest_uname_nodename(guest: CloudGuest) -> str:
    """The kernel's host name (what hostname(1) could set, not just /etc/hostname)."""
    return guest.read("/proc/sys/kernel/hostname").decode().strip()


@pytest.mark.parametrize("name", GUESTS)
def test_runcmd_ran_as_root_after_the_hostname_was_set(cloud_guests: dict[str, CloudGuest], name: str) -> None:
    guest = cloud_guests[name]
    lines = guest.read(RUNCMD_OUT).decode().splitlines()
    assert lines[0] == f"runcmd: user=root hostname={label(guest)}"
    if name == "yaml":  # its second command: the user the same cloud-config adds exists by then
        assert lines[1].startswith(f"{EXTRA_USER}:x:"), lines
        assert lines[1].endswith(f":/home/{EXTRA_USER}:/bin/bash"), lines


@pytest.mark.parametrize("name", GUESTS)
def test_the_seeds_key_and_the_users_own_key_reach_the_default_user(
    cloud_guests: dict[str, CloudGuest], cloud_image: CloudImage, cloud_keys: dict[str, KeyPair], name: str
) -> None:
    guest = cloud_guests[name]
    keys = authorized_keys(guest, cloud_image.default_user)
    # meta-data's public-keys (the seed's) and the user-data's ssh_authorized_keys (quoted in the YAML form): both.
    assert sorted(keys) == sorted([cloud_keys["default"].public, cloud_keys["own"].public])
    # Debian's disable_root: root's copy of the keys only tells the user whom to log in as.
    for line in authorized_keys(guest, "root"):
        assert f'Please login as the user \\"{cloud_image.default_user}\\"' in line, line


def test_a_user_the_cloud_config_adds_gets_its_key(cloud_guest: CloudGuest, cloud_keys: dict[str, KeyPair]) -> None:
    assert authorized_keys(cloud_guest, EXTRA_USER) == [cloud_keys["extra"].public]
    assert cloud_guest.run("id", "-un", EXTRA_USER).strip() == EXTRA_USER


def test_write_files_writes_text_and_binary_byte_for_byte(cloud_guest: CloudGuest) -> None:
    assert cloud_guest.read(WRITTEN_TEXT).decode() == TEXT
    assert cloud_guest.run("stat", "-c", "%a %U %G", WRITTEN_TEXT).split() == ["640", "root", "adm"]
    assert cloud_guest.read(WRITTEN_BINARY) == BINARY


def test_the_json_form_of_cloud_config_is_applied_whole(cloud_guests: dict[str, CloudGuest]) -> None:
    guest = cloud_guests["json"]
    assert guest.seed.user_data is not None
    assert guest.seed.user_data.splitlines()[1].startswith("{")
    assert guest.read(JSON_WRITTEN).decode() == TEXT


@pytest.mark.parametrize("name", GUESTS)
def test_the_user_data_arrives_unedited(cloud_guests: dict[str, CloudGuest], name: str) -> None:
    guest = cloud_guests[name]
    assert guest.seed.user_data is not None
    assert guest.read("/var/lib/cloud/instance/user-data.txt") == guest.seed.user_data.encode()


def test_meta_data_values_at_the_readers_edges_arrive_as_themselves(cloud_guest: CloudGuest) -> None:
    instance = json.loads(cloud_guest.read("/run/cloud-init/instance-data-sensitive.json"))
    meta = instance["ds"]["meta_data"]
    for key, value in EDGE_META.items():
        assert meta[key] == value, key[:40]
        assert type(meta[key]) is type(value), key[:40]
    assert instance["v1"]["instance_id"] == cloud_guest.seed.instance_id
    assert instance["v1"]["local_hostname"] == label(cloud_guest)


@pytest.mark.parametrize("name", GUESTS)
def test_the_network_config_is_applied(cloud_guests: dict[str, CloudGuest], name: str) -> None:
    guest = cloud_guests[name]
    shown = guest.run("ip", "-4", "-o", "addr", "show")
    assert f" {ADDRESSES[name]}/24 " in shown, shown
    assert ADDRESSES[name] in {address.address for address in guest.vm.addresses(["agent"])}


@pytest.mark.parametrize("name", GUESTS)
def test_debians_cloud_init_on_the_host_reads_each_seed_as_the_guest_did(
    cloud_guests: dict[str, CloudGuest], name: str
) -> None:
    guest = cloud_guests[name]
    reader = cloud_init_reader().CloudInitReader()
    try:
        answer: dict[str, Any] = reader.read(guest.seed.files())
    finally:
        reader.close()
    assert answer["warnings"] == []
    instance = json.loads(guest.read("/run/cloud-init/instance-data-sensitive.json"))
    guest_meta = dict(instance["ds"]["meta_data"])
    assert guest_meta.pop("dsmode") == "net"  # NoCloud's own default, added in the guest
    assert answer["meta-data"] == guest_meta
    assert answer["public-keys"] == instance["v1"]["public_ssh_keys"]
    assert isinstance(answer["cloud-config"], dict), answer["cloud-config"]
    assert answer["cloud-config"]["runcmd"], answer["cloud-config"]


def test_the_agent_reads_files_as_bytes(cloud_guest: CloudGuest) -> None:
    # The helper itself: a file the guest agent reads back is the file's bytes (checked against base64 in the guest).
    encoded = cloud_guest.run("base64", "-w0", WRITTEN_BINARY)
    assert base64.b64decode(encoded) == cloud_guest.read(WRITTEN_BINARY) == BINARY
