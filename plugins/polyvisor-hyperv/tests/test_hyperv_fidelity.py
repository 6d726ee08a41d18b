"""Behaviours of real Windows hosts the backend must survive: each against the loopback host modelling it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import PowerState
from polyvisor.errors import NotFoundError

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def test_hyperv_cmdlets_are_module_qualified_so_powercli_cannot_hide_them(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    # VMware PowerCLI exports Get-VM, Start-VM, Get-VMHost ... too; imported after Hyper-V it wins the bare names.
    from polyvisor_hyperv_loopback.cmdlets.powercli import import_powercli

    import_powercli(loopback_private.engine.registry)
    conn = connect(uri_for(loopback_private, transport))
    assert conn.host_info().hypervisor == "hyperv"
    vm = conn.create({"name": vm_name})
    try:
        assert [info.name for info in conn.list()] == [vm_name]
        vm.start()
        assert vm.state() is PowerState.RUNNING
        vm.stop()
    finally:
        vm.delete()


def test_winrm_shell_feeds_the_request_on_a_pipe_not_a_console(
    uri_for: UriFor, loopback_http: Any, connect: Connect
) -> None:
    # Console-mode stdin (pywinrm's default) never reaches end of input for [Console]::In.ReadToEnd(): the
    # request must go in pipe mode (WINRS_CONSOLEMODE_STDIN=FALSE), as Ansible's winrm plugin sends stdin.
    conn = connect(uri_for(loopback_http, "winrm", command_timeout="5"))
    assert conn.host_info().hypervisor == "hyperv"


def test_a_vm_removed_behind_our_back_is_not_found_by_its_id(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    # Get-VM -Id <missing> writes ObjectNotFound / ObjectNotFound: mapped by category, whatever the language.
    conn = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name})
    host = loopback_private.engine.host
    host.lifecycle.remove_vm(host.find_vms(vm_name)[0].id)
    with pytest.raises(NotFoundError) as info:
        vm.start()
    assert "unable to find a virtual machine with id" in str(info.value)


def test_host_info_reports_the_domain_and_an_fqdn_only_when_domain_joined(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect
) -> None:
    # VMHost.FullyQualifiedDomainName is Win32_ComputerSystem.Domain: the DNS domain, or the workgroup's name.
    conn = connect(uri_for(loopback_private, transport))
    extra = conn.host_info().extra
    assert (extra["domain"], extra["fqdn"]) == ("WORKGROUP", None)
    loopback_private.engine.host.domain = "corp.example.test"
    extra = conn.host_info().extra
    assert (extra["domain"], extra["fqdn"]) == ("corp.example.test", "HV-LOOPBACK.corp.example.test")
