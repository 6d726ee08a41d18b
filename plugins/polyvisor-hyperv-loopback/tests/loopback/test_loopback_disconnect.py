"""Disconnected runspace pools, driven by pypsrp as a client drives Windows: Disconnect, Reconnect, Connect from a new
client session, Enumerate, and the Disconnected stage of an idle-expired pool (docs/hyperv-fidelity.md)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from pypsrp.complex_objects import PSInvocationState, RunspacePoolState
from pypsrp.exceptions import WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import NAMESPACES, SelectorSet

from polyvisor.testing import eventually
from polyvisor_hyperv_loopback import LoopbackHost

from ._clients import PASSWORD, USER, psrp_wsman
from ._stub_engine import StubEngine

SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
RECONNECT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Reconnect"
SHELL_DISCONNECTED = 2150859204


@pytest.fixture
def host(stub_engine: StubEngine) -> Iterator[LoopbackHost]:
    with LoopbackHost(USER, PASSWORD, engine=stub_engine) as started:
        yield started


def _sleeper(pool: RunspacePool, seconds: float, word: str) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", seconds).add_statement()
    ps.add_cmdlet("Write-Output").add_argument(word)
    ps.begin_invoke()
    return ps


def _reconnect_command(pool: RunspacePool, ps: PowerShell) -> None:
    """MS-PSRP 3.1.5.3.18: a second Reconnect, naming the command, reconnects it (pypsrp has no call for it)."""
    selectors = SelectorSet()
    selectors.add_option("ShellId", pool.shell.id or "")
    body = ET.Element(f"{{{NAMESPACES['rsp']}}}Reconnect", CommandId=str(ps.id).upper())
    pool.connection.invoke(RECONNECT, pool.shell.resource_uri, body, selector_set=selectors)
    ps.state = PSInvocationState.RUNNING


def _state(wsman: Any, pool: RunspacePool) -> str:
    body = wsman.get(SHELL_URI, selector_set=pool.shell._selector_set)
    return str(body.findtext("rsp:Shell/rsp:State", namespaces=NAMESPACES))


def test_a_pipeline_runs_on_while_its_pool_is_disconnected_and_its_output_waits(host: LoopbackHost) -> None:
    wsman = psrp_wsman(host, operation_timeout=5)
    pool = RunspacePool(wsman)
    pool.open()
    ps = _sleeper(pool, 1, "done")
    pool.disconnect()
    assert _state(psrp_wsman(host), pool) == "Disconnected"
    pool.connect()  # the same client session: Reconnect
    assert pool.state == RunspacePoolState.OPENED
    with pytest.raises(WSManFaultError) as refused:  # the command itself is still disconnected
        ps.poll_invoke(timeout=1)  # type: ignore[arg-type]
    assert refused.value.code == SHELL_DISCONNECTED
    _reconnect_command(pool, ps)
    while ps.state == PSInvocationState.RUNNING:
        ps.poll_invoke(timeout=2)  # type: ignore[arg-type]
    assert ps.state == PSInvocationState.COMPLETED
    assert ps.output == ["done"]
    pool.close()


def test_a_new_client_session_enumerates_and_connects_to_a_disconnected_pool(host: LoopbackHost) -> None:
    pool = RunspacePool(psrp_wsman(host, operation_timeout=5))
    pool.open()
    ps = _sleeper(pool, 1, "two")
    pool.disconnect()
    found = [other for other in RunspacePool.get_runspace_pools(psrp_wsman(host)) if other.id == pool.id]
    assert len(found) == 1
    other = found[0]
    assert [str(pipeline_id).upper() for pipeline_id in other.pipelines] == [str(ps.id).upper()]
    other.connect()  # Connect with connectXml: a new client session
    assert other.state == RunspacePoolState.OPENED
    [pipeline] = other.create_disconnected_power_shells()
    assert pipeline.connect() == ["two"]
    # The old client session may not Reconnect a pool another session took over.
    with pytest.raises(WSManFaultError):
        pool.connect()
    other.close()


def test_reconnect_comes_only_from_the_session_that_disconnected(host: LoopbackHost) -> None:
    pool = RunspacePool(psrp_wsman(host))
    pool.open()
    pool.disconnect()
    stranger = psrp_wsman(host)  # another wsmv:SessionId
    selectors = SelectorSet()
    selectors.add_option("ShellId", pool.shell.id or "")
    with pytest.raises(WSManFaultError):
        stranger.reconnect(pool.shell.resource_uri, selector_set=selectors)
    pool.connect()
    assert _state(stranger, pool) == "Connected"
    pool.close()


def test_an_idle_pool_is_disconnected_before_it_is_deleted(stub_engine: StubEngine) -> None:
    with LoopbackHost(USER, PASSWORD, engine=stub_engine) as host:
        wsman = psrp_wsman(host)
        pool = RunspacePool(wsman, idle_timeout=1)
        pool.open()
        # Get is no activity: the pool idles out under it (pypsrp's test_psrp_is_alive_state_disconnected.yml).
        eventually(lambda: _state(wsman, pool) == "Disconnected", timeout=10, what="the pool to be Disconnected")
        with pytest.raises(WSManFaultError) as refused:
            PowerShell(pool).add_cmdlet("Get-VM").invoke()
        assert refused.value.code == SHELL_DISCONNECTED
        assert host.wait_for_open_shells(0, timeout=10), "the disconnected pool is deleted after its idle timeout"
