"""Checks and test sessions. ``scripts/test`` runs them all in the project's .venv (``nox --no-venv``)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "docs", "tests", "conformance"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PY = sys.executable
GUEST_DIR = Path("/var/lib/libvirt/images/polyvisor-guest")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.run(PY, "-m", "ruff", "check", ".", external=True)
    session.run(PY, "-m", "ruff", "format", "--check", ".", external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core, the plugins and this file."""
    session.run(PY, "-m", "mypy", external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    out = Path(tempfile.mkdtemp(prefix="polyvisor-docs-"))
    session.run(PY, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out), external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests of the core and both backends (real libvirtd, loopback Hyper-V host)."""
    session.run(PY, "-m", "pytest", *session.posargs, external=True)


@nox.session
def conformance(session: nox.Session) -> None:
    """The conformance kit against every backend: test:///default, qemu:///system, loopback Hyper-V."""
    kit = [PY, "-m", "pytest", "-p", "polyvisor.testing", "-q", "-p", "no:cacheprovider"]
    session.run(*kit, "--polyvisor-uri", "test:///default", external=True)
    spec = GUEST_DIR / "x86_64" / "conformance-spec.json"
    if spec.exists() or os.environ.get("CI") == "true":
        session.run(*kit, "--polyvisor-uri", "qemu:///system", "--polyvisor-spec", str(spec), external=True)
    else:
        session.warn(f"{spec} missing: run scripts/build-guest-image to include qemu:///system")
    with loopback_hyperv_host() as (endpoints, env):
        for transport in ("psrp", "winrm"):
            session.run(
                *kit,
                "--polyvisor-uri",
                f"hyperv://{endpoints['username']}@127.0.0.1:{endpoints['https_port']}/?transport={transport}",
                "--polyvisor-option",
                f"ca_path={endpoints['ca_path']}",
                "--polyvisor-password-env",
                "POLYVISOR_LOOPBACK_PASSWORD",
                env=env,
                external=True,
            )


@contextmanager
def loopback_hyperv_host() -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Run ``python -m polyvisor_hyperv.host`` for the duration of the block."""
    state = Path(tempfile.mkdtemp(prefix="polyvisor-hvhost-"))
    ready = state / "ready.json"
    env = {**os.environ, "POLYVISOR_LOOPBACK_PASSWORD": secrets.token_urlsafe(16)}
    process = subprocess.Popen(
        [PY, "-m", "polyvisor_hyperv.host", "--state-dir", str(state), "--ready-file", str(ready)],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the loopback Hyper-V host did not start; see its output above")
            time.sleep(0.1)  # waiting on another process's file: there is no event to await
        endpoints = json.loads(ready.read_text())
        yield endpoints, env
    finally:
        process.terminate()
        process.wait(timeout=30)
