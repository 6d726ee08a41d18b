"""``python -m polyvisor_hyperv.host``: endpoints on stdout and in --ready-file, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import polyvisor_hyperv.host

from ._clients import PASSWORD, USER
from ._engine_check import require_real_engine

pytestmark = pytest.mark.hyperv

_SRC = Path(polyvisor_hyperv.host.__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SRC), env.get("PYTHONPATH")]))
    env.pop("POLYVISOR_HYPERV_HOST_PASSWORD", None)
    env.update(extra)
    return env


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"host exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("host did not become ready")
        time.sleep(0.05)


def test_cli_serves_http_and_https_until_sigterm(tmp_path: Path) -> None:
    require_real_engine()
    import winrm

    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyvisor_hyperv.host",
            "--username",
            USER,
            "--password-env",
            "LOOPBACK_PW",
            "--http-port",
            "0",
            "--https-port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--ready-file",
            str(ready),
        ],
        env=_env(LOOPBACK_PW=PASSWORD),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(ready, process)
        info = json.loads(ready.read_text())
        by_scheme = {endpoint["scheme"]: endpoint for endpoint in info["endpoints"]}
        assert set(by_scheme) == {"http", "https"}
        assert by_scheme["http"]["ca_path"] is None
        assert Path(by_scheme["https"]["ca_path"]).is_file()
        for endpoint in by_scheme.values():
            session = winrm.Session(
                endpoint["url"],
                auth=(USER, PASSWORD),
                transport="ntlm",
                proxy=None,
                ca_trust_path=endpoint["ca_path"],
            )
            assert session.run_cmd("echo", ["cli"]).std_out == b"cli\r\n"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)

    assert process.returncode == 0, stderr
    assert by_scheme["http"]["url"].encode() in stdout
    assert PASSWORD.encode() not in stdout + stderr + ready.read_bytes()


def test_cli_requires_the_password_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polyvisor_hyperv.host", "--http-port", "0"],
        env=_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert b"POLYVISOR_HYPERV_HOST_PASSWORD" in result.stderr
