"""Long-running scripts: ``while``, ``Start-Sleep``, output that reaches the client while the script still runs, and
a stop (PSRP Stop / WinRS Terminate) that ends the script promptly, over both WS-Management shells."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator

import pytest
from pypsrp.complex_objects import PSInvocationState
from pypsrp.powershell import PowerShell, RunspacePool

from polyvisor_hyperv_loopback import LoopbackHost
from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

from ._clients import PASSWORD, USER, psrp_wsman, winrm_session
from ._engine_check import require_real_engine

pytestmark = pytest.mark.loopback

TICKER = '$i = 0\nwhile ($true) {\n    $i = $i + 1\n    "tick $i"\n    Start-Sleep -Milliseconds 50\n}\n'
CONSOLE_TICKER = (
    '$i = 0\nwhile ($true) {\n    $i = $i + 1\n    [Console]::Out.WriteLine("tick $i")\n    [Console]::Out.Flush()\n'
    "    Start-Sleep -Milliseconds 50\n}\n"
)


def _interpreter(cancel: threading.Event | None = None) -> Interpreter:
    session = Session(HyperVHost(transition_delay=0), cancel)
    return Interpreter(session, default_registry(), Console(io.BytesIO(), io.StringIO()))


def test_while_runs_its_block_while_the_condition_holds() -> None:
    assert _interpreter().run("$i = 0; while ($i -lt 3) { $i; $i = $i + 1 }; 'done'") == [0, 1, 2, "done"]


def test_start_sleep_waits_and_a_stop_cuts_it_short() -> None:
    began = time.monotonic()
    assert _interpreter().run("Start-Sleep -Milliseconds 120; 'woke'") == ["woke"]
    assert time.monotonic() - began >= 0.12
    cancel = threading.Event()
    cancel.set()
    began = time.monotonic()
    with pytest.raises(PipelineStopped) as stopped:
        _interpreter(cancel).run("Start-Sleep -Seconds 30")
    assert time.monotonic() - began < 1
    assert stopped.value.record.exception_type == "System.Management.Automation.PipelineStoppedException"


def test_output_streams_while_the_script_runs_and_a_stop_ends_the_loop() -> None:
    cancel = threading.Event()
    seen: list[object] = []
    two = threading.Event()

    def emit(item: object) -> None:
        seen.append(item)
        if len(seen) >= 2:
            two.set()

    outcome: list[BaseException] = []

    def run() -> None:
        try:
            _interpreter(cancel).run(TICKER, emit=emit)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert two.wait(5), "the first outputs reach the caller while the loop runs"
    cancel.set()
    worker.join(2)
    assert not worker.is_alive()
    assert seen[:2] == ["tick 1", "tick 2"]
    assert len(outcome) == 1
    assert isinstance(outcome[0], PipelineStopped)


@pytest.fixture(scope="module")
def real_host() -> Iterator[LoopbackHost]:
    require_real_engine()
    with LoopbackHost(USER, PASSWORD) as host:
        yield host


def test_psrp_output_streams_and_stop_ends_the_pipeline(real_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(real_host)) as pool:
        ps = PowerShell(pool)
        ps.add_script(TICKER)
        ps.begin_invoke()
        began = time.monotonic()
        while len(ps.output) < 2 and time.monotonic() - began < 5:
            ps.poll_invoke(timeout=1)
        assert ps.state == PSInvocationState.RUNNING
        assert [str(item) for item in ps.output[:2]] == ["tick 1", "tick 2"]
        # Another pipeline on another pool is served while this one runs.
        with RunspacePool(psrp_wsman(real_host)) as other:
            quick = PowerShell(other)
            quick.add_cmdlet("Get-VMHost")
            assert len(quick.invoke()) == 1
        began = time.monotonic()
        ps.stop()
        assert time.monotonic() - began < 2
        assert ps.state == PSInvocationState.STOPPED


def test_winrs_stdout_streams_and_terminate_ends_the_command(real_host: LoopbackHost) -> None:
    protocol = winrm_session(real_host).protocol
    shell = protocol.open_shell(codepage=65001)
    try:
        encoded = base64.b64encode(CONSOLE_TICKER.encode("utf-16-le")).decode("ascii")
        command = protocol.run_command(shell, "powershell.exe", ["-NoProfile", "-EncodedCommand", encoded])
        stdout = b""
        began = time.monotonic()
        done = False
        while stdout.count(b"\n") < 2 and time.monotonic() - began < 5:
            out, _err, _code, done = protocol.get_command_output_raw(shell, command)
            stdout += out
            assert not done
        assert stdout.splitlines()[:2] == [b"tick 1", b"tick 2"]
        # Another command in another shell is served while this one runs.
        assert winrm_session(real_host).run_cmd("hostname").status_code == 0
        protocol.cleanup_command(shell, command)  # the Terminate signal
        assert real_host.engine.host is not None
    finally:
        protocol.close_shell(shell)
