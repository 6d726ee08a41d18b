"""connect() never guesses a hypervisor; listings are plain values that never talk to one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import polyvisor
from polyvisor import Connection, Plugins, ValidationError
from polyvisor.backend import Credentials
from polyvisor.model import DetailsNotLoaded, VMInfo
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


@pytest.fixture
def no_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $POLYVISOR_URI and a config file that does not exist; returns its path."""
    monkeypatch.delenv("POLYVISOR_URI", raising=False)
    missing = tmp_path / "nowhere" / "config.toml"
    monkeypatch.setenv("POLYVISOR_CONFIG", str(missing))
    return missing


def test_connect_without_a_uri_says_how_to_name_a_hypervisor(no_default: Path, plugins: Plugins) -> None:
    with pytest.raises(ValidationError) as caught:
        polyvisor.connect(plugins=plugins)
    message = str(caught.value)
    assert caught.value.field == "uri"
    assert "$POLYVISOR_URI" in message
    assert "polyvisor.connect('qemu:///system')" in message, "it shows how to pass a URI"
    assert "default" in message
    assert "$POLYVISOR_CONFIG" in message
    assert not no_default.exists()


def test_connect_takes_the_uri_from_the_environment(
    no_default: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch, host_name: str
) -> None:
    monkeypatch.setenv("POLYVISOR_URI", f"memory:///{host_name}")
    with polyvisor.connect(plugins=plugins) as conn:
        assert conn.uri.driver == "memory"


def test_connect_takes_the_config_default(
    plugins: Plugins, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host_name: str
) -> None:
    monkeypatch.delenv("POLYVISOR_URI", raising=False)
    config = tmp_path / "config.toml"
    config.write_text(f'default = "lab"\n[connections.lab]\nuri = "memory:///{host_name}"\n', encoding="utf-8")
    monkeypatch.setenv("POLYVISOR_CONFIG", str(config))
    with polyvisor.connect(plugins=plugins) as conn:
        assert conn.uri.render() == f"memory:///{host_name}"


class Bare(MemoryBackend):
    """Lists without details, as backends that cannot read them in bulk do (libvirt)."""

    def list_vms(self) -> list[VMInfo]:
        return [dataclasses.replace(info, details=None) for info in super().list_vms()]


@pytest.fixture
def bare(host_name: str) -> Iterator[Connection]:
    uri = URI.parse(f"memory:///{host_name}")
    with Connection(Bare(uri, Credentials()), uri) as conn:
        yield conn


def _backend(conn: Connection) -> Bare:
    assert isinstance(conn.backend, Bare)
    return conn.backend


def test_a_listing_without_details_says_how_to_get_them(bare: Connection) -> None:
    bare.create({"name": "web", "cpus": 2, "labels": {"a": "1"}})
    (info,) = bare.list()
    assert info.details is None
    assert info.name == "web"
    for attribute in ("cpus", "memory_mib", "labels", "description", "extra"):
        with pytest.raises(DetailsNotLoaded) as caught:
            getattr(info, attribute)
        assert "list(details=True)" in str(caught.value)
        assert "'web'" in str(caught.value)
    assert isinstance(caught.value, LookupError)
    (detailed,) = bare.list(details=True)
    assert (detailed.cpus, dict(detailed.labels)) == (2, {"a": "1"})


def test_listing_entries_compare_without_io(bare: Connection) -> None:
    bare.create({"name": "a"})
    bare.create({"name": "b"})
    first = bare.list()
    second = bare.list()
    detailed = bare.list(details=True)
    calls = _backend(bare).calls
    before = len(calls)
    bare.close()  # nothing below may talk to the hypervisor
    assert first == second
    assert first[0] != first[1]
    assert first[0] != detailed[0], "details are part of the value"
    assert {hash(info) for info in first} == {hash(info) for info in second}
    assert first[0] in set(second)
    assert repr(first[0]).startswith("VMInfo(")
    assert first[0].state is first[0].status.state
    assert len(calls) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        first[0].name = "renamed"  # type: ignore[misc]


def test_detailed_listing_entries_hash_without_io(mem: Connection) -> None:
    mem.create({"name": "a", "labels": {"k": "v"}})
    (info,) = mem.list(details=True)
    mem.close()
    assert hash(info) == hash(dataclasses.replace(info))


def test_a_handle_from_a_listing_entry_costs_no_round_trip(mem: Connection) -> None:
    mem.create({"name": "a"})
    (info,) = mem.list()
    assert isinstance(mem.backend, MemoryBackend)
    before = list(mem.backend.calls)
    vm = mem.vm(info)
    assert mem.backend.calls == before
    assert (vm.uuid, vm.seen_name) == (info.uuid, "a")
