"""The backend under races and failures: another client acting meanwhile, a failing connect, the cache."""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

import polyvisor
from polyvisor import Connection, DiskSpec, InvalidStateError, NicSpec, PolyvisorError, PowerState, VMSpec
from polyvisor.backend import Deadline
from polyvisor_libvirt import backend as backend_module
from polyvisor_libvirt.backend import LibvirtBackend


def test_delete_refuses_a_vm_another_client_started(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="raced", disks=[DiskSpec(size_mib=4)]))
    owned = vm.info().extra["owned_volumes"]
    dom = backend._client.conn.lookupByUUIDString(vm.uuid)
    dom.create()  # another client starts it after the core's state check
    with pytest.raises(InvalidStateError) as caught:
        backend.delete(vm.uuid, storage=True, deadline=Deadline.never())
    assert caught.value.state is PowerState.RUNNING
    assert dom.isPersistent(), "undefining a running domain would leave it transient"
    assert [backend._client.conn.storageVolLookupByPath(path).path() for path in owned] == list(owned)
    vm.stop()
    vm.delete(storage=True)


def test_a_definition_read_across_a_change_is_not_cached(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="cached"))
    real = backend._client.conn.lookupByUUIDString(vm.uuid)
    backend._client.cache.drop(vm.uuid)

    class ChangedWhileRead:
        """The domain, changed (and its cache entry dropped by the event) while its XML is on the wire."""

        def UUIDString(self) -> str:
            return real.UUIDString()

        def name(self) -> str:
            return real.name()

        def XMLDesc(self, flags: int) -> str:
            xml = real.XMLDesc(flags)
            backend._client.cache.drop(vm.uuid)  # what the event thread does on a change
            return xml

    backend._client.definition(ChangedWhileRead(), fresh=False)  # type: ignore[arg-type]
    assert backend._client.cache.get(vm.uuid) is None, "a definition older than a change was cached"
    backend._client.definition(real, fresh=False)
    assert backend._client.cache.get(vm.uuid) is not None


def test_a_change_to_another_domain_does_not_keep_a_definition_out(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="mine"))
    other = conn.create(VMSpec(name="theirs"))
    real = backend._client.conn.lookupByUUIDString(vm.uuid)
    backend._client.cache.drop(vm.uuid)

    class OtherChangedWhileRead:
        def UUIDString(self) -> str:
            return real.UUIDString()

        def name(self) -> str:
            return real.name()

        def XMLDesc(self, flags: int) -> str:
            xml = real.XMLDesc(flags)
            backend._client.cache.drop(other.uuid)  # an event for another domain, on a busy host
            return xml

    backend._client.definition(OtherChangedWhileRead(), fresh=False)  # type: ignore[arg-type]
    assert backend._client.cache.get(vm.uuid) is not None


def test_a_connection_failing_after_open_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[libvirt.virConnect] = []
    real_open = libvirt.open

    def recording_open(uri: str) -> libvirt.virConnect:
        opened.append(real_open(uri))
        return opened[-1]

    def failing_probe(_client: object) -> Any:
        raise PolyvisorError("probing failed")

    monkeypatch.setattr(libvirt, "open", recording_open)
    monkeypatch.setattr(backend_module, "read_host_caps", failing_probe)
    with pytest.raises(PolyvisorError, match="probing failed"):
        polyvisor.connect("test:///default")
    assert len(opened) == 1
    with pytest.raises(libvirt.libvirtError):
        opened[0].isAlive()  # closed: the half-built backend released it


class _DeadNetworkLookups:
    """The backend's connection, except that network lookups fail as on a connection that died."""

    def __init__(self, inner: libvirt.virConnect, error: libvirt.libvirtError) -> None:
        self._inner = inner
        self._error = error

    def networkLookupByName(self, name: str) -> libvirt.virNetwork:
        raise self._error

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_failing_network_lookup_is_mapped(conn: Connection, backend: LibvirtBackend) -> None:
    # A real error from a connection that died (closing the backend's own connection instead would leave its
    # event registrations holding it open, and with it the process-wide test hypervisor's state).
    dead = libvirt.open("test:///default")
    dead.close()
    with pytest.raises(libvirt.libvirtError) as died:
        dead.networkLookupByName("default")
    live = backend._client.conn
    backend._client.conn = _DeadNetworkLookups(live, died.value)  # type: ignore[assignment]
    try:
        with pytest.raises(PolyvisorError) as caught:
            backend.create(VMSpec(name="n", nics=[NicSpec(network="default")]), Deadline.never())
    finally:
        backend._client.conn = live
    assert caught.value.__cause__ is died.value
    assert not conn.exists("n")
