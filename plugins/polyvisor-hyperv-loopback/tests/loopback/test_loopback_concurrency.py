"""Host latency and concurrency: Hyper-V cmdlets take time, and concurrent pipelines run concurrently."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pypsrp.powershell import PowerShell, RunspacePool

from polyvisor_hyperv_loopback import LoopbackHost
from polyvisor_hyperv_loopback.__main__ import _parser
from polyvisor_hyperv_loopback.engine import Engine
from polyvisor_hyperv_loopback.engine_api import CommandSpec
from polyvisor_hyperv_loopback.hyperv import HyperVHost

from ._clients import PASSWORD, USER, psrp_wsman

LATENCY = 0.3


@pytest.fixture
def slow_engine() -> Engine:
    engine = Engine(HyperVHost(transition_delay=0, cmdlet_latency=LATENCY))
    engine.invoke_pipeline([CommandSpec("New-VM", False, [("Name", "slow")])])
    return engine


def _get_vm(engine: Engine, cancel: threading.Event | None = None) -> float:
    began = time.monotonic()
    result = engine.invoke_pipeline(
        [
            CommandSpec("Get-VM", False, [("Name", "slow")]),
            CommandSpec("Select-Object", False, [("Property", "State")]),
        ],
        cancel=cancel,
    )
    assert result.terminating is None
    return time.monotonic() - began


def test_each_hyperv_cmdlet_takes_the_configured_latency_and_utilities_none(slow_engine: Engine) -> None:
    elapsed = _get_vm(slow_engine)
    # Get-VM waits once; Select-Object (not a Hyper-V cmdlet) does not.
    assert LATENCY <= elapsed < 2 * LATENCY


def test_concurrent_pipelines_wait_out_their_latency_together(slow_engine: Engine) -> None:
    began = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: _get_vm(slow_engine), range(6)))
    # Serialized, six pipelines would take at least 6 x LATENCY; the in-memory Hyper-V lock is not held while
    # waiting, so together they take about one (the bound is what serializing would cost, not a speed target).
    assert time.monotonic() - began < 6 * LATENCY


def test_a_stopped_pipeline_stops_waiting() -> None:
    engine = Engine(HyperVHost(transition_delay=0, cmdlet_latency=30))
    cancel = threading.Event()
    cancel.set()
    began = time.monotonic()
    result = engine.invoke_pipeline([CommandSpec("Get-VM", False, [])], cancel=cancel)
    assert time.monotonic() - began < 5
    assert result.output == []


def test_the_cli_and_the_constructor_take_the_latency(tmp_path: object) -> None:
    assert _parser().parse_args(["--cmdlet-latency-ms", "100"]).cmdlet_latency_ms == 100
    assert _parser().parse_args([]).cmdlet_latency_ms == 0
    with LoopbackHost(USER, PASSWORD, cmdlet_latency=0.1) as host:
        assert host.engine.host.cmdlet_latency == pytest.approx(0.1)


def test_pipelines_of_one_pool_and_of_several_pools_run_concurrently_over_psrp() -> None:
    with LoopbackHost(USER, PASSWORD, cmdlet_latency=LATENCY) as host:
        pools = [RunspacePool(psrp_wsman(host)) for _ in range(4)]
        for pool in pools:
            pool.open()
        try:

            def run(pool: RunspacePool) -> list[object]:
                ps = PowerShell(pool)
                ps.add_cmdlet("Get-VMHost")
                return ps.invoke()

            began = time.monotonic()
            with ThreadPoolExecutor(4) as executor:
                results = list(executor.map(run, pools))
            assert all(len(result) == 1 for result in results)
            # Serialized, four pipelines would take at least 4 x LATENCY.
            assert time.monotonic() - began < 4 * LATENCY
        finally:
            for pool in pools:
                pool.close()


def test_a_pipeline_is_released_when_its_final_receive_is_answered(http_host: LoopbackHost) -> None:
    """pypsrp's invoke() sends Command and Receive and no Signal; Windows answers the Receive with the output and
    CommandState Done (pypsrp tests/tests_pypsrp/responses/test_psrp_run_protocol_version_2.3.yml). A Signal
    Terminate afterwards (pypsrp's close(), test_psrp_multiple_invocations.yml) is still answered."""
    with RunspacePool(psrp_wsman(http_host)) as pool:
        before = http_host.requests_served
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Output").add_argument("one")
        assert ps.invoke() == ["one"]
        assert http_host.requests_served - before == 2  # Command, one Receive with output and Done
        ps.close()  # Signal Terminate of a finished pipeline: no fault
        shell = next(iter(http_host._service._shells.values()))  # type: ignore[union-attr]
        for _ in range(3):
            again = PowerShell(pool)
            again.add_cmdlet("Write-Output").add_argument("two")
            assert again.invoke() == ["two"]
        assert shell.pipeline_count == 0


def test_a_slow_pipeline_is_answered_by_one_receive() -> None:
    """Windows sends no PIPELINE_STATE Running when a pipeline starts: a 10 s pipeline's Receives carry only its
    output and its final state (pypsrp tests/tests_pypsrp/responses/test_psrp_long_running_cmdlet.yml)."""
    with LoopbackHost(USER, PASSWORD, cmdlet_latency=LATENCY) as host, RunspacePool(psrp_wsman(host)) as pool:
        before = host.requests_served
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VMHost")
        assert len(ps.invoke()) == 1
        assert host.requests_served - before == 2  # Command, then one Receive with output and Done
