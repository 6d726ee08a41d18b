"""create --wait-ready and wait-ready, on memory://, whose guests model cloud-init finishing (or not)."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from polyvisor import Plugins
from polyvisor.cli import cli
from polyvisor.testing import memory_plugin
from polyvisor.testing.memory import READY_ERROR

from .conftest import Run, as_json


@pytest.fixture
def mrun() -> Run:
    """Run ``polyvisor -c memory:///cli-ready-<hex> ARGS...`` in-process, on a host of the test's own."""
    plugins = Plugins(load_entry_points=False)
    plugins.register(memory_plugin, name="memory")
    uri = f"memory:///cli-ready-{uuid.uuid4().hex}"

    def invoke(*args: str, input: str | None = None, **kwargs: Any) -> Result:
        return CliRunner().invoke(cli, ["-c", uri, *args], obj=plugins, input=input, catch_exceptions=False, **kwargs)

    return invoke


def _spec(tmp_path: Path, **labels: str) -> str:
    spec = tmp_path / "web.toml"
    text = 'name = "web"\nmemory_mib = 256\n[[nics]]\nnetwork = "default"\n[labels]\n'
    spec.write_text(text + "".join(f'"{key}" = "{value}"\n' for key, value in labels.items()))
    return str(spec)


@pytest.fixture
def ssh_port() -> Iterator[int]:
    """A port on 127.0.0.1 that greets like an SSH server."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(5)


def test_create_wait_ready_starts_and_waits_for_cloud_init(mrun: Run, tmp_path: Path) -> None:
    result = mrun("create", _spec(tmp_path, **{"polyvisor.test/ready-delay": "0.3"}), "--wait-ready")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["web: running (running)", "web: ready: cloud-init: done"]
    again = as_json(mrun("--json", "wait-ready", "web", "--timeout", "5"))
    assert again["vm"] == "web"
    assert again["ready"]["sources"] == [{"source": "cloud-init", "detail": "done", "errors": []}]
    assert again["ready"]["errors"] == []


def test_a_guest_that_never_gets_ready_times_out_within_timeout(mrun: Run, tmp_path: Path) -> None:
    result = mrun("create", _spec(tmp_path, **{"polyvisor.test/ready": "never"}), "--wait-ready", "--timeout", "1")
    assert result.exit_code == 5, result.output
    assert "waiting for 'web' to be ready; asked cloud-init: cloud-init: not ready (running" in result.stderr
    assert "web" in mrun("list").stdout, "the VM is left as it is"


def test_errors_of_the_guest_are_printed_and_exit_1(mrun: Run, tmp_path: Path) -> None:
    result = mrun("--json", "create", _spec(tmp_path, **{"polyvisor.test/ready": "error"}), "--wait-ready")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ready"]["errors"] == [f"cloud-init: {READY_ERROR}"]
    assert f"cloud-init: {READY_ERROR}" in result.stderr


def test_the_ssh_source_can_be_aimed_at_a_forwarded_port(mrun: Run, tmp_path: Path, ssh_port: int) -> None:
    mrun("create", _spec(tmp_path, **{"polyvisor.test/ready": "no-agent"}), "--start")
    result = mrun("wait-ready", "web", "--ssh-host", "127.0.0.1", "--ssh-port", str(ssh_port), "--timeout", "10")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"web: ready: ssh: 127.0.0.1:{ssh_port} answered SSH-2.0-OpenSSH_9.2p1\n"
    refused = mrun("wait-ready", "web", "--ready-source", "cloud-init")
    assert refused.exit_code == 8
    assert "'cloud-init' cannot answer for this VM" in refused.stderr


def test_ready_options_go_with_wait_ready(mrun: Run, tmp_path: Path) -> None:
    result = mrun("create", _spec(tmp_path), "--ssh-port", "2222")
    assert result.exit_code == 2
    assert "--ready-source, --ssh-host and --ssh-port go with --wait-ready" in result.stderr
    assert "no VMs" in mrun("list").stdout
