"""``polyvisor-hyperv-host`` (and ``python -m polyvisor_hyperv_loopback``): endpoints on stdout and in --ready-file,
clean SIGTERM.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import polyvisor_hyperv_loopback
import polyvisor_hyperv_loopback.__main__
from polyvisor_hyperv_loopback.launch import start_host

from ._clients import PASSWORD, USER
from ._engine_check import require_real_engine

pytestmark = pytest.mark.loopback

_SRC = Path(polyvisor_hyperv_loopback.__file__).resolve().parents[1]
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SCRIPT = "polyvisor-hyperv-host"


def _entry_point() -> str:
    """The ``module:function`` the distribution declares for its console script."""
    with _PYPROJECT.open("rb") as file:
        return str(tomllib.load(file)["project"]["scripts"][SCRIPT])


def _console_command() -> list[str]:
    """This distribution's installed console script, or, where it is not installed (a source checkout on
    PYTHONPATH), a Python that calls the same entry function the script would call, under the script's name."""
    declared = _entry_point()
    ours = [
        entry
        for entry in importlib.metadata.entry_points(group="console_scripts", name=SCRIPT)
        if entry.dist is not None and entry.dist.name == "polyvisor-hyperv-loopback" and entry.value == declared
    ]
    installed = shutil.which(SCRIPT, path=str(Path(sys.executable).parent))
    if ours and installed is not None:
        return [installed]
    module, function = declared.split(":")
    code = f"import sys; sys.argv[0] = {SCRIPT!r}; from {module} import {function}; {function}()"
    return [sys.executable, "-c", code]


def test_the_console_script_is_the_main_function() -> None:
    module, function = _entry_point().split(":")
    assert getattr(importlib.import_module(module), function) is polyvisor_hyperv_loopback.__main__.main


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SRC), env.get("PYTHONPATH")]))
    env.pop("POLYVISOR_HYPERV_HOST_PASSWORD", None)
    env.update(extra)
    return env


def test_cli_serves_http_and_https_until_sigterm(tmp_path: Path) -> None:
    require_real_engine()
    import winrm

    ready = tmp_path / "ready.json"
    host = start_host(
        [
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
        ],
        ready_file=ready,
        command=_console_command(),
        env=_env(LOOPBACK_PW=PASSWORD),
        stdout=subprocess.PIPE,
        echo_stderr=False,
    )
    try:
        info = host.ready
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
        host.stop(timeout=20)
    assert host.process.stdout is not None
    with host.process.stdout as out:
        stdout, stderr = out.read(), host.stderr().encode()

    assert host.process.returncode == 0, stderr
    assert by_scheme["http"]["url"].encode() in stdout
    assert PASSWORD.encode() not in stdout + stderr + ready.read_bytes()


@pytest.mark.parametrize(
    "command",
    [_console_command(), [sys.executable, "-m", "polyvisor_hyperv_loopback"]],
    ids=["console-script", "python-m"],
)
def test_cli_requires_the_password_variable(command: list[str]) -> None:
    result = subprocess.run(
        [*command, "--http-port", "0"],
        env=_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert b"polyvisor-hyperv-host: set the password in the environment variable POLYVISOR_HYPERV_HOST_PASSWORD" in (
        result.stderr
    )


def test_base_vhds_are_on_the_host_from_the_start(tmp_path: Path) -> None:
    require_real_engine()
    import winrm

    host = start_host(
        [
            *("--username", USER, "--password-env", "LOOPBACK_PW", "--http-port", "0"),
            *("--base-vhd", "C:\\Images\\a=b.vhdx=64", "--base-vhd", "D:\\Base\\small.vhd=8"),
        ],
        ready_file=tmp_path / "ready.json",
        command=[sys.executable, "-m", "polyvisor_hyperv_loopback"],
        env=_env(LOOPBACK_PW=PASSWORD),
        stdout=subprocess.DEVNULL,
        echo_stderr=False,
    )
    try:
        (endpoint,) = host.ready["endpoints"]
        session = winrm.Session(
            endpoint["url"], auth=(USER, PASSWORD), transport="ntlm", proxy=None, ca_trust_path=None
        )
        script = "Get-VHD -Path 'C:\\Images\\a=b.vhdx', 'D:\\Base\\small.vhd' | ConvertTo-Json -Compress"
        result = session.run_ps(script)
        assert result.status_code == 0, result.std_err
        found = [(vhd["Path"], vhd["Size"]) for vhd in json.loads(result.std_out)]
        assert found == [("C:\\Images\\a=b.vhdx", 64 * 1024 * 1024), ("D:\\Base\\small.vhd", 8 * 1024 * 1024)]
    finally:
        host.stop(timeout=20)
    assert host.process.returncode == 0, host.stderr()


@pytest.mark.parametrize("value", ["C:\\Images\\base.vhdx", "C:\\Images\\base.vhdx=0", "=64", "C:\\b.vhdx=big"])
def test_a_base_vhd_needs_a_path_and_a_size(value: str) -> None:
    with pytest.raises(SystemExit):
        polyvisor_hyperv_loopback.__main__._parser().parse_args(["--base-vhd", value])
