"""docs/uris.md's Hyper-V worked example: docs/examples/remote_host.py with each documented Hyper-V URI, pointed at
the loopback host (only its host, port, user and CA file swapped in), prints what the page shows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import polyvisor

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "uris.md"
SCRIPT = ROOT / "docs" / "examples" / "remote_host.py"
DOC_HOST = "hv01.example.com"


def _block(label: str) -> str:
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"({label})=") + 2
    return "\n".join(lines[start : lines.index("```", start)])


@pytest.fixture
def web1(loopback_https: Any, loopback_http: Any, password: str) -> Iterator[str]:
    """A running VM named as the page's on both hosts (the page shows ``web1 running``); removed afterwards."""
    name = "web1"
    uris = [
        f"hyperv://hv-admin@127.0.0.1:{loopback_https.port}/?ca={loopback_https.ca_path}",
        f"hyperv://hv-admin@127.0.0.1:{loopback_http.port}/?scheme=http",
    ]
    for uri in uris:
        with polyvisor.connect(uri, password=password) as conn:
            assert not conn.exists(name), f"another test left {name!r} on {uri}"
            conn.create({"name": name}).start()
    try:
        yield name
    finally:
        for uri in uris:
            with polyvisor.connect(uri, password=password) as conn:
                if conn.exists(name):
                    vm = conn.vm(name)
                    vm.ensure("stopped", force=True)
                    vm.delete()


@pytest.mark.parametrize(
    ("label", "scheme"), [("remote-hyperv-psrp-uri", "hyperv"), ("remote-hyperv-winrm-uri", "hyperv+winrm")]
)
def test_the_hyperv_example_lists_the_host(
    loopback_https: Any, loopback_http: Any, username: str, password: str, web1: str, label: str, scheme: str
) -> None:
    host = loopback_https if scheme == "hyperv" else loopback_http
    uri = _block(label).replace(f"admin@{DOC_HOST}:5985", f"admin@{DOC_HOST}")
    uri = uri.replace(f"admin@{DOC_HOST}", f"{username}@127.0.0.1:{host.port}")
    uri = uri.replace("/etc/ssl/hv01-ca.pem", str(host.ca_path))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), uri],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "POLYVISOR_PASSWORD": password},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = _block("remote-hyperv-output").replace("hyperv to", f"{scheme} to").replace(DOC_HOST, "127.0.0.1")
    assert result.stdout.splitlines() == shown.splitlines()
    assert password not in result.stdout + result.stderr
