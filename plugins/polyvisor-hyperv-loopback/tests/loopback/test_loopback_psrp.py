"""pypsrp (unmodified) against the loopback host's PowerShell remoting endpoint."""

from __future__ import annotations

import pytest
import requests
from pypsrp.client import Client
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool

from polyvisor_hyperv_loopback import LoopbackHost

from ._clients import PASSWORD, USER, psrp_wsman
from ._stub_engine import StubEngine

pytestmark = pytest.mark.loopback

INVALID_ARGUMENT = 5  # System.Management.Automation.ErrorCategory
INVALID_OPERATION = 7


def test_cmdlet_output_keeps_the_hyper_v_types(http_host: LoopbackHost, stub_engine: StubEngine) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VM").add_parameter("Name", ["web", "db"]).add_parameter("Force")
        output = ps.invoke()

    assert not ps.had_errors
    assert [vm.adapted_properties for vm in output] == [
        {"Name": "web", "State": "Off"},
        {"Name": "db", "State": "Off"},
    ]
    assert output[0].types[0] == "Microsoft.HyperV.PowerShell.VirtualMachine"
    command = stub_engine.pipelines[-1][0]
    assert (command.name, command.is_script) == ("Get-VM", False)
    assert list(command.parameters) == [("Name", ["web", "db"]), ("Force", None)]


def test_non_terminating_error_reaches_the_error_stream(http_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VM").add_parameter("Name", ["web", "missing-vm"])
        output = ps.invoke()

    assert [vm.adapted_properties["Name"] for vm in output] == ["web"]
    assert ps.had_errors is False  # like Windows: only a failed pipeline sets had_errors
    assert ps.state == PSInvocationState.COMPLETED
    [error] = ps.streams.error
    assert str(error) == 'Hyper-V was unable to find a virtual machine with name "missing-vm".'
    assert error.category == INVALID_ARGUMENT
    assert error.fq_error == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    assert error.exception is not None
    assert error.exception.types[0] == "Microsoft.HyperV.PowerShell.VirtualizationException"
    assert (error.target_name, error.reason) == ("missing-vm", "VirtualizationException")


def test_terminating_error_fails_the_pipeline(http_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Start-VM").add_parameter("Name", "web")
        ps.invoke()

    assert ps.had_errors is True
    assert ps.state == PSInvocationState.FAILED
    [error] = ps.streams.error
    assert error.category == INVALID_OPERATION
    assert error.fq_error == "InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM"
    assert error.exception is not None
    assert error.exception.types[0] == "Microsoft.HyperV.PowerShell.VirtualizationException"


def test_engine_exception_fails_the_pipeline_instead_of_hanging(http_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("No-SuchThing")
        ps.invoke()

    assert ps.had_errors
    assert "does not know No-SuchThing" in str(ps.streams.error[0])


def test_pipeline_input_and_several_pipelines_per_pool(http_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        first = PowerShell(pool)
        first.add_cmdlet("Write-Output")
        second = PowerShell(pool)
        second.add_cmdlet("Write-Output").add_argument("arg")

        # pypsrp takes a list although its annotation says otherwise.
        assert first.invoke(input=[1, "two", 3.5]) == [1, "two", 3.5]  # type: ignore[arg-type]
        assert second.invoke() == ["arg"]


def test_large_output_is_fragmented_across_receives(http_host: LoopbackHost) -> None:
    before = http_host.requests_served
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Big").add_parameter("Count", 60).add_parameter("Size", 20000)
        output = ps.invoke()

    assert len(output) == 60
    assert all(len(item) == 20000 and item.startswith(f"{i:06d}") for i, item in enumerate(output))
    # 1.2 MB of output cannot fit in the 512000-byte envelopes pypsrp negotiates.
    assert http_host.requests_served - before >= 3 + 5


def test_large_input_within_the_envelope_limit(http_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Output").add_argument("i" * 300000)
        assert ps.invoke() == ["i" * 300000]


def test_requests_beyond_max_envelope_size_are_refused(stub_engine: StubEngine) -> None:
    with (
        LoopbackHost(USER, PASSWORD, engine=stub_engine, max_envelope_size=153600) as host,
        RunspacePool(psrp_wsman(host)) as pool,
    ):
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Output").add_argument("i" * 300000)
        with pytest.raises(WSManFaultError) as caught:
            ps.invoke()

    assert caught.value.code == 2150859025
    assert "MaxEnvelopeSize" in str(caught.value)


def test_stop_a_running_pipeline_cancels_the_engine(http_host: LoopbackHost, stub_engine: StubEngine) -> None:
    stub_engine.cancelled.clear()
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Wait-Cancel")
        ps.begin_invoke()
        ps.stop()
        assert ps.state == PSInvocationState.STOPPED
        assert stub_engine.cancelled.wait(10)
        again = PowerShell(pool)
        again.add_cmdlet("Write-Output").add_argument("alive")
        assert again.invoke() == ["alive"]


def test_warnings_reach_the_warning_stream(http_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Warning").add_argument("careful")
        ps.invoke()

    assert [str(record.message) for record in ps.streams.warning] == ["careful"]


def test_pool_is_alive_until_closed(http_host: LoopbackHost) -> None:
    pool = RunspacePool(psrp_wsman(http_host))
    pool.open()
    assert pool.is_alive()
    shells = http_host.open_shells
    pool.close()
    assert http_host.open_shells == shells - 1


def test_client_helpers(http_host: LoopbackHost) -> None:
    client = Client(http_host.host, port=http_host.port, username=USER, password=PASSWORD, ssl=False, no_proxy=True)
    output, _streams, had_errors = client.execute_ps("Get-Date")
    stdout, stderr, rc = client.execute_cmd("echo from-client")

    assert (output, had_errors) == ("script:Get-Date", False)
    assert (stdout, stderr, rc) == ("from-client\r\n", "", 0)


def test_https_with_the_test_ca(https_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(https_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VM")
        assert [vm.adapted_properties["Name"] for vm in ps.invoke()] == ["vm1"]


def test_https_basic(https_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(https_host, auth="basic")) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Output").add_argument("basic")
        assert ps.invoke() == ["basic"]


def test_https_without_trusting_the_ca_fails(https_host: LoopbackHost) -> None:
    # cert_validation=True: the system/REQUESTS_CA_BUNDLE store, which lacks the test CA.
    with pytest.raises(requests.exceptions.SSLError):
        RunspacePool(psrp_wsman(https_host, cert_validation=True)).open()


def test_wrong_password(http_host: LoopbackHost) -> None:
    with pytest.raises(AuthenticationError):
        RunspacePool(psrp_wsman(http_host, password="nope")).open()
