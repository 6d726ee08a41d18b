"""Every libvirt error code is mapped, and real errors from the test driver arrive as polyvisor errors."""

from __future__ import annotations

import libvirt
import pytest

import polyvisor
from polyvisor import (
    AlreadyExistsError,
    BackendError,
    Connection,
    InvalidStateError,
    NotFoundError,
    PowerState,
    UnsupportedError,
    ValidationError,
)
from polyvisor_libvirt.backend import LibvirtBackend
from polyvisor_libvirt.errors import ERROR_KINDS, ErrorKind, code_name, map_libvirt_errors


def test_every_libvirt_error_code_has_an_explicit_entry() -> None:
    codes = {name for name in vars(libvirt) if name.startswith("VIR_ERR_")}
    assert codes - set(ERROR_KINDS) == set()


def test_code_names_are_not_error_levels() -> None:
    assert code_name(libvirt.VIR_ERR_INTERNAL_ERROR) == "VIR_ERR_INTERNAL_ERROR"
    assert code_name(libvirt.VIR_ERR_NO_MEMORY) == "VIR_ERR_NO_MEMORY"
    assert ERROR_KINDS["VIR_ERR_NO_DOMAIN"] is ErrorKind.NOT_FOUND


def _raw(conn: Connection) -> libvirt.virConnect:
    backend = conn.backend
    assert isinstance(backend, LibvirtBackend)
    return backend._client.conn


def test_missing_domain_is_not_found(conn: Connection) -> None:
    with pytest.raises(NotFoundError) as caught, map_libvirt_errors("looking up", host="h", vm="ghost"):
        _raw(conn).lookupByName("ghost")
    assert isinstance(caught.value.__cause__, libvirt.libvirtError)
    assert "ghost" in str(caught.value)
    assert "h" in str(caught.value)


def test_operation_invalid_carries_the_current_state(conn: Connection) -> None:
    dom = _raw(conn).lookupByName("test")
    if dom.isActive():
        dom.destroy()
    with pytest.raises(InvalidStateError) as caught, map_libvirt_errors("stopping", state=lambda: PowerState.STOPPED):
        dom.destroy()
    assert caught.value.state is PowerState.STOPPED


def test_duplicate_definition_already_exists(conn: Connection) -> None:
    xml = _raw(conn).lookupByName("test").XMLDesc(0).replace("6695eb01", "00000000")
    with pytest.raises(AlreadyExistsError), map_libvirt_errors("defining"):
        _raw(conn).defineXML(xml)


def test_malformed_xml_is_a_validation_error(conn: Connection) -> None:
    with pytest.raises(ValidationError), map_libvirt_errors("defining"):
        _raw(conn).defineXML("<domain")


def test_unsupported_flag_is_unsupported(conn: Connection) -> None:
    dom = _raw(conn).lookupByName("test")
    if not dom.isActive():
        dom.create()
    with pytest.raises(UnsupportedError), map_libvirt_errors("shutting down"):
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)


def test_unmapped_kinds_keep_code_and_message(conn: Connection) -> None:
    dom = _raw(conn).lookupByName("test")
    if not dom.isActive():
        dom.create()
    with pytest.raises(BackendError) as caught, map_libvirt_errors("starting"):
        dom.create()  # already running: the test driver reports an internal error
    assert caught.value.code == "VIR_ERR_INTERNAL_ERROR"
    assert caught.value.native_message


def test_bad_uri_is_a_connection_error() -> None:
    with pytest.raises(polyvisor.ConnectionError):
        polyvisor.connect("test:///nonexistent/polyvisor/config.xml")


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ValidationError, match="ca_path"):
        polyvisor.connect("test:///default", ca_path="/x")


def test_verbs_on_a_missing_vm_raise_not_found(conn: Connection) -> None:
    with pytest.raises(NotFoundError):
        conn.vm("no-such-vm")


def test_an_unreadable_arp_table_says_whose_fault_it_is() -> None:
    from polyvisor_libvirt.addresses import arp_detail

    # libvirt 9.0's own words when its ARP reader meets the kernel's 20-byte end-of-dump message.
    detail = arp_detail("internal error: wrong nlmsg len")
    assert detail.startswith("cannot read the host's ARP table (internal error: wrong nlmsg len): a libvirt bug")
    assert "not the host's or polyvisor's" in detail
    other = arp_detail("Operation not permitted")
    assert other == "cannot read the host's ARP table (Operation not permitted)"
