"""``polyvisor_hyperv_loopback.launch``: the one way test suites, nox and benchmarks start a host process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from polyvisor_hyperv_loopback.launch import HostDidNotStart, spawn_host, start_host

from ._clients import PASSWORD, USER
from ._engine_check import require_real_engine

pytestmark = pytest.mark.loopback

PASSWORD_ENV = "LOOPBACK_LAUNCH_PW"


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "POLYVISOR_HYPERV_HOST_PASSWORD"}
    return {**env, **extra}


def test_start_host_returns_once_the_host_serves_and_stop_ends_it(tmp_path: Path) -> None:
    require_real_engine()
    import winrm

    options = ["--username", USER, "--password-env", PASSWORD_ENV, "--http-port", "0", "--https-port", "0"]
    host = start_host(
        [*options, "--state-dir", str(tmp_path / "state")],
        ready_file=tmp_path / "ready.json",
        env=_env(**{PASSWORD_ENV: PASSWORD}),
        echo_stderr=False,
    )
    try:
        assert host.ready["username"] == USER
        assert set(host.endpoints) == {"http", "https"}
        assert Path(host.endpoints["https"]["ca_path"]).is_file()
        http = host.endpoints["http"]
        session = winrm.Session(http["url"], auth=(USER, PASSWORD), transport="ntlm", proxy=None, ca_trust_path=None)
        assert session.run_cmd("echo", ["up"]).std_out == b"up\r\n"
    finally:
        code = host.stop()
    assert code == 0
    assert host.process.returncode == 0
    assert PASSWORD not in host.stderr()


def test_a_host_that_exits_first_fails_with_its_stderr(tmp_path: Path) -> None:
    with pytest.raises(HostDidNotStart) as failed:
        start_host(["--http-port", "0"], ready_file=tmp_path / "ready.json", env=_env(), echo_stderr=False)
    message = str(failed.value)
    assert "exited with code 1 before writing" in message
    assert "set the password in the environment variable POLYVISOR_HYPERV_HOST_PASSWORD" in message


def test_a_host_that_never_gets_ready_fails_after_the_timeout_and_is_stopped(tmp_path: Path) -> None:
    stuck = "import sys, time; sys.stderr.write('still binding\\n'); sys.stderr.flush(); time.sleep(120)"
    host = spawn_host(ready_file=tmp_path / "ready.json", command=[sys.executable, "-c", stuck], echo_stderr=False)
    with pytest.raises(HostDidNotStart) as failed:
        host.wait_ready(timeout=1)
    message = str(failed.value)
    assert f"did not write {tmp_path / 'ready.json'} within 1 s" in message
    assert "still binding" in message
    assert host.process.returncode is not None  # stopped, not left running


def test_a_ready_file_from_an_earlier_run_is_not_taken_for_this_one(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text('{"endpoints": []}')
    with pytest.raises(HostDidNotStart):
        start_host(["--http-port", "0"], ready_file=ready, env=_env(), echo_stderr=False)
    assert not ready.exists()


def test_terminate_then_stop_lets_the_host_exit_cleanly(tmp_path: Path) -> None:
    require_real_engine()
    hosts = [
        start_host(
            ["--password-env", PASSWORD_ENV, "--http-port", "0"],
            ready_file=tmp_path / f"ready-{index}.json",
            env=_env(**{PASSWORD_ENV: PASSWORD}),
            echo_stderr=False,
        )
        for index in range(3)
    ]
    for host in hosts:
        host.terminate()
    assert [host.stop() for host in hosts] == [0, 0, 0]


def test_a_host_writes_its_threads_stacks_on_sigusr1_and_keeps_serving(tmp_path: Path) -> None:
    # What stop() asks of a host that does not exit after SIGTERM, before it kills it.
    import signal

    from polyvisor.testing import eventually

    options = ["--username", USER, "--password-env", PASSWORD_ENV, "--http-port", "0", "--https-port", "0"]
    host = start_host(
        [*options, "--state-dir", str(tmp_path / "state")],
        ready_file=tmp_path / "ready.json",
        env=_env(**{PASSWORD_ENV: PASSWORD}),
        echo_stderr=False,
    )
    try:
        host.process.send_signal(signal.SIGUSR1)
        eventually(lambda: "Current thread" in host.stderr() or "Thread 0x" in host.stderr(), what="the stacks")
        assert "__main__.py" in host.stderr()  # the main thread, waiting for SIGTERM
        assert host.process.poll() is None
    finally:
        code = host.stop()
    assert code == 0
