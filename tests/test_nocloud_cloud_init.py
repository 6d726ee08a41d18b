"""Seeds as real cloud-init reads them: Debian's cloud-init 22.4 package loads every seed these tests build.

Each case here once lost data in a guest (see issue 14): keys appended to user-data broke valid documents, control
characters and long keys made cloud-init drop the whole meta-data, floats came back as strings. The rule now: every
value :class:`~polyvisor.model.CloudInit` accepts reads back equal through cloud-init's own loaders, and anything
else is a :class:`~polyvisor.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cloud_init_reader import CloudInitReader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyvisor.errors import ValidationError
from polyvisor.model import CloudInit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0dGVzdGtleQ test@polyvisor"
# What YAML treats specially: refused characters, line breaks, a BOM, quoting and indicator characters.
AWKWARD = "\x00\x09\x0a\x0d\x1b\x7f\x80\x85\x9f\xa0\u2028\u2029\ufeff\ufffd\ufffe\uffff\U0001f600\"\\'#:-[]{},&*!|>%@`"


@pytest.fixture(scope="module")
def cloud_init() -> Iterator[CloudInitReader]:
    reader = CloudInitReader()
    yield reader
    reader.close()


def read(cloud_init: CloudInitReader, seed: CloudInit) -> dict[str, Any]:
    answer = cloud_init.read(seed.files())
    assert answer["warnings"] == [], answer["warnings"]
    return answer


def expected_meta(seed: CloudInit) -> dict[str, Any]:
    meta: dict[str, Any] = {"instance-id": seed.instance_id}
    if seed.local_hostname is not None:
        meta["local-hostname"] = seed.local_hostname
    if seed.ssh_authorized_keys:
        meta["public-keys"] = list(seed.ssh_authorized_keys)
    meta.update(_plain(seed.meta_data or {}))
    return meta


def _plain(value: Any) -> Any:
    """A frozen seed value as plain dicts and lists, as JSON (and cloud-init) give it back."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def test_the_reader_is_debians_cloud_init(cloud_init: CloudInitReader) -> None:
    assert cloud_init.version.startswith("22.4"), cloud_init.version


@pytest.mark.parametrize(
    "value",
    [
        "a\x85b",  # NEL: a line break to YAML, once read back as "a b"
        "del\x7f",  # DEL: once made cloud-init drop the whole document
        "c1 \x80 \x9f",
        "\u2028\u2029",
        "\ufffe\uffff",
        "\ufeffbom",
        AWKWARD,
        1e20,  # once read back as the string "1e+20"
        1.5e-07,
        -0.0,
        12345678901234567890123456789,
        [1e300, {"deep": [None, True, False, ""]}],
    ],
    ids=repr,
)
def test_meta_data_and_network_config_read_back_equal(cloud_init: CloudInitReader, value: Any) -> None:
    seed = CloudInit(
        instance_id=f"iid-{AWKWARD[-20:]}",
        local_hostname="web-1.example.test",
        meta_data={"value": value, f"key {AWKWARD}": value},
        network_config={"version": 2, "ethernets": {}, "x-value": value},
    )
    answer = read(cloud_init, seed)
    assert answer["meta-data"] == expected_meta(seed)
    assert answer["network-config"] == {"version": 2, "ethernets": {}, "x-value": value}


def test_a_key_up_to_the_yaml_limit_reads_back_and_a_longer_one_is_refused(cloud_init: CloudInitReader) -> None:
    longest = "k" * 1022  # 1024 characters with its quotes
    assert read(cloud_init, CloudInit(instance_id="i", meta_data={longest: 1}))["meta-data"][longest] == 1
    with pytest.raises(ValidationError, match="too long") as info:
        CloudInit(instance_id="i", meta_data={longest + "k": 1})
    assert info.value.field == "meta_data"
    # What is counted is the key as written: an escaped character takes six.
    with pytest.raises(ValidationError, match="too long"):
        CloudInit(instance_id="i", meta_data={"k" * 1000 + "\x7f" * 4: 1})


# A key that is not refused for its length, so the property below explores content rather than refusals.
_keys = st.text(st.characters(codec="utf-8"), max_size=12) | st.text(st.sampled_from(AWKWARD), max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=40)
    | st.text(st.sampled_from(AWKWARD), max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=250, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(meta=st.dictionaries(_keys, _json, max_size=5), network=st.dictionaries(_keys, _json, max_size=3))
def test_whatever_is_accepted_reads_back_equal(cloud_init: CloudInitReader, meta: dict[str, Any], network: Any) -> None:
    meta = {key: value for key, value in meta.items() if key not in ("instance-id", "local-hostname")}
    seed = CloudInit(instance_id="iid-prop", meta_data=meta, network_config=network)
    answer = read(cloud_init, seed)
    assert answer["meta-data"] == {"instance-id": "iid-prop", **meta}
    assert answer["network-config"] == network


@pytest.mark.parametrize(
    "user_data",
    [
        '#cloud-config\n{"runcmd": [["touch", "/run/json-form"]]}\n',
        "#cloud-config\nruncmd:\n  - [touch, /run/document-end]\n...\n",
        "#cloud-config\n  runcmd:\n    - [touch, /run/indented-root]\n",
        '#cloud-config\n"ssh_authorized_keys": ["ssh-ed25519 AAAAOWN user@own"]\nruncmd: [[touch, /run/quoted]]\n',
        "#cloud-config\nruncmd: [[touch, /run/no-final-newline]]",
    ],
    ids=["json-form", "document-end", "indented-root", "quoted-key", "no-final-newline"],
)
def test_keys_arrive_and_the_users_cloud_config_stays_whole(cloud_init: CloudInitReader, user_data: str) -> None:
    meant = cloud_init.read({"meta-data": b"{}", "user-data": user_data.encode()})["cloud-config"]
    assert isinstance(meant, dict), meant
    assert meant["runcmd"], meant
    answer = read(cloud_init, CloudInit(instance_id="i", user_data=user_data, ssh_authorized_keys=(KEY,)))
    assert answer["cloud-config"] == meant  # the user's document, whole
    assert answer["public-keys"] == [KEY]  # and the key, in the place cloud-init also reads keys from


def test_keys_come_with_a_script_user_data(cloud_init: CloudInitReader) -> None:
    seed = CloudInit(instance_id="i", user_data="#!/bin/sh\necho hi\n", ssh_authorized_keys=(KEY, "ssh-rsa AAAAB3 b"))
    answer = read(cloud_init, seed)
    assert answer["public-keys"] == [KEY, "ssh-rsa AAAAB3 b"]
    assert seed.files()["user-data"] == b"#!/bin/sh\necho hi\n"


def test_a_nat_nics_network_config_reads_back_as_written(cloud_init: CloudInitReader) -> None:
    from polyvisor.provisioning.nat import NatAddress, network_config, with_nat_addresses

    addresses = [NatAddress("00:15:5d:01:02:03", "172.31.213.2", 24, "172.31.213.1")]
    answer = read(cloud_init, with_nat_addresses(CloudInit(instance_id="iid-nat"), addresses))
    assert answer["network-config"] == network_config(addresses)
    assert answer["network-config"]["ethernets"]["nat0"]["match"] == {"macaddress": "00:15:5d:01:02:03"}
