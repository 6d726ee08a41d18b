"""The seeds of the shared cloud guests, and what real cloud-init must make of them (issue 14, points 2-4).

Two guests, booted together: ``yaml`` carries a ``#cloud-config`` in the shapes that keys appended to user-data once
destroyed (a quoted ``"ssh_authorized_keys"`` key, an indented root, a ``...`` document end), meta-data values at the
edges of cloud-init's YAML reader, a host name of a full 63-character label and a static network-config; ``json``
carries the JSON form of ``#cloud-config``. The seed's own keys go to meta-data's ``public-keys`` in both.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from polyvisor.provisioning import CloudInit

from .cloudguest import CloudImage, KeyPair, cloud_spec

if TYPE_CHECKING:
    from polyvisor import VMSpec

EXTRA_USER = "pvtest"
ADDRESSES = {"yaml": "192.0.2.41", "json": "192.0.2.42"}  # TEST-NET-1 (RFC 5737), on the isolated network
RUNCMD_OUT = "/run/pvtest/runcmd.out"
WRITTEN_TEXT = "/etc/pvtest/written.txt"
WRITTEN_BINARY = "/etc/pvtest/written.bin"
JSON_WRITTEN = "/etc/pvtest/json-form.txt"
# Text with what a shell or a YAML reader could trip over; cloud-init writes it as it stands.
TEXT = "written by cloud-init: \"double\" 'single' $(id) `id` ;|&<> \\ # not a comment ü 😀\n"
BINARY = bytes(range(256))
# Accepted meta-data values that cloud-init's YAML reader once changed or refused (each must arrive as itself).
EDGE_META: dict[str, Any] = {
    "pv-nel": "a\x85b",  # NEL: read back as "a b" once
    "pv-del": "del\x7f",  # DEL: made cloud-init drop the whole meta-data once
    "pv-c1": "c1 \x80 \x9f",
    "pv-separators": "\u2028\u2029",
    "pv-quotes": "\"'`$(id)`;|&<>\\ ü 😀",
    "pv-float-big": 1e20,  # read back as the string "1e+20" once
    "pv-float-small": 1.5e-07,
    "pv-int-big": 12345678901234567890123456789,
    "pv-nested": [1e300, {"deep": [None, True, False, ""]}],
    "k" * 1022: "the longest key cloud-init's reader takes (1,024 characters with its quotes)",
}


def hostname_label(tag: str) -> str:
    """A host label of the full 63 characters RFC 1123 allows."""
    label = f"pv-{tag}-"
    return label + "x" * (63 - len(label))


def network_config(mac: str, address: str) -> dict[str, Any]:
    """Network config version 2: a static TEST-NET-1 address on the NIC with ``mac`` (no DHCP on that network)."""
    return {
        "version": 2,
        "ethernets": {"nic0": {"match": {"macaddress": mac}, "addresses": [f"{address}/24"], "dhcp4": False}},
    }


def yaml_user_data(keys: dict[str, KeyPair]) -> str:
    """A ``#cloud-config`` with users, write_files and runcmd: quoted key, indented root, ``...`` at its end."""
    runcmd = f'mkdir -p /run/pvtest && echo "runcmd: user=$(id -un) hostname=$(hostname)" > {RUNCMD_OUT}'
    return (
        "#cloud-config\n"
        '  "ssh_authorized_keys":\n'
        f"    - {json.dumps(keys['own'].public)}\n"
        "  users:\n"
        "    - default\n"
        f"    - name: {EXTRA_USER}\n"
        "      shell: /bin/bash\n"
        "      lock_passwd: true\n"
        f"      ssh_authorized_keys: [{json.dumps(keys['extra'].public)}]\n"
        "  write_files:\n"
        f"    - path: {WRITTEN_TEXT}\n"
        "      owner: root:adm\n"
        "      permissions: '0640'\n"
        f"      content: {json.dumps(TEXT, ensure_ascii=False)}\n"
        f"    - path: {WRITTEN_BINARY}\n"
        "      encoding: b64\n"
        f"      content: {base64.b64encode(BINARY).decode()}\n"
        "  runcmd:\n"
        f"    - {json.dumps(['sh', '-c', runcmd])}\n"
        f"    - [sh, -c, 'getent passwd {EXTRA_USER} >> {RUNCMD_OUT}']\n"
        "...\n"
    )


def json_user_data(keys: dict[str, KeyPair]) -> str:
    """The JSON form of ``#cloud-config`` (JSON is YAML): one line of JSON after the header."""
    runcmd = f'mkdir -p /run/pvtest && echo "runcmd: user=$(id -un) hostname=$(hostname)" > {RUNCMD_OUT}'
    config = {
        "ssh_authorized_keys": [keys["own"].public],
        "write_files": [{"path": JSON_WRITTEN, "content": TEXT}],
        "runcmd": [["sh", "-c", runcmd]],
    }
    return "#cloud-config\n" + json.dumps(config, ensure_ascii=False) + "\n"


def seeds(prefix: str, keys: dict[str, KeyPair], macs: dict[str, str]) -> dict[str, CloudInit]:
    """The two guests' ``cloud_init`` values."""
    tag = prefix.removeprefix("pvtest-").rstrip("-")
    return {
        "yaml": CloudInit(
            instance_id=f"iid-{tag} \"double\" 'single' $(id) ü",
            local_hostname=f"{hostname_label(tag)}.example.test",
            user_data=yaml_user_data(keys),
            meta_data=EDGE_META,
            network_config=network_config(macs["yaml"], ADDRESSES["yaml"]),
            ssh_authorized_keys=(keys["default"].public,),
        ),
        "json": CloudInit(
            instance_id=f"iid-{tag}-json",
            local_hostname=f"pv-{tag}-json",
            user_data=json_user_data(keys),
            network_config=network_config(macs["json"], ADDRESSES["json"]),
            ssh_authorized_keys=(keys["default"].public,),
        ),
    }


def macs_for(prefix: str) -> dict[str, str]:
    """MAC addresses of the session's own (concurrent sessions share the isolated network)."""
    tag = prefix.removeprefix("pvtest-").rstrip("-")
    octets = ":".join(tag[i : i + 2] for i in range(0, 4, 2))
    return {"yaml": f"52:54:00:{octets}:01", "json": f"52:54:00:{octets}:02"}


def guest_specs(image: CloudImage, prefix: str, keys: dict[str, KeyPair]) -> dict[str, VMSpec]:
    """The VM specs of the shared cloud guests, named with ``prefix``."""
    macs = macs_for(prefix)
    return {
        key: cloud_spec(image, f"{prefix}cloud-{key}", seed, mac=macs[key])
        for key, seed in seeds(prefix, keys, macs).items()
    }
