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
from typing import Any

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "docs", "tests", "conformance", "bench-smoke"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PY = sys.executable
GUEST_DIR = Path("/var/lib/libvirt/images/polyvisor-guest")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting; no binary or oversized file in the tree."""
    session.run(PY, "scripts/check-text-only", external=True)
    session.run(PY, "-m", "ruff", "check", ".", external=True)
    session.run(PY, "-m", "ruff", "format", "--check", ".", external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core, the plugins, the Ansible collection's plugins and this file."""
    session.run(PY, "-m", "mypy", external=True)
    # Ansible loads the collection's files by path (plugins/inventory/polyvisor.py is no package of the repo), so
    # mypy checks them apart, named from the collection's root: that file is plugins.inventory.polyvisor, not a
    # second `polyvisor` (which resolves to this checkout's src/).
    collection = ROOT / "integrations" / "ansible"
    files = sorted(str(path) for path in (collection / "plugins").rglob("*.py"))
    session.run(
        PY,
        "-m",
        "mypy",
        "--explicit-package-bases",
        *files,
        env={"MYPYPATH": os.pathsep.join([str(collection), str(ROOT / "src")])},
        external=True,
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    out = Path(tempfile.mkdtemp(prefix="polyvisor-docs-"))
    session.run(PY, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out), external=True)


def junit(name: str) -> list[str]:
    """A JUnit report for one pytest run when ``scripts/test`` asked for them (its failure digest reads them);
    xunit1, since some tests record figures with ``record_property``, which xunit2 warns about."""
    directory = os.environ.get("POLYVISOR_REPORT_DIR")
    if not directory:
        return []
    return [f"--junitxml={Path(directory) / name}.xml", "-o", "junit_logging=system-out", "-o", "junit_family=xunit1"]


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests of the core and both backends (real libvirtd, loopback Hyper-V host)."""
    session.run(PY, "-m", "pytest", *junit("tests"), *session.posargs, external=True)


@nox.session
def conformance(session: nox.Session) -> None:
    """The conformance kit against every backend: memory://, test:///default, qemu:///system, loopback Hyper-V."""
    kit = [PY, "-m", "pytest", "-p", "polyvisor.testing", "-q", "-p", "no:cacheprovider"]
    # memory:// and the loopback Hyper-V host make a guest that ignores shutdown from a label; a real guest needs
    # its own spec (a kernel argument). libvirt's test driver cannot model one, so its deadline cases skip.
    kit_dir = Path(tempfile.mkdtemp(prefix="polyvisor-kit-"))
    label_stubborn = kit_dir / "stubborn.json"
    label_stubborn.write_text(json.dumps({"labels": {"polyvisor.test/guest": "ignore-shutdown"}}))
    stubborn = ["--polyvisor-stubborn-spec", str(label_stubborn)]
    # memory:// clones real local files, and its guests report an address (here half a second after boot) once
    # they have a NIC.
    memory_base = kit_dir / "base.img"
    memory_base.write_bytes(b"polyvisor conformance base image\n" + bytes(1024 * 1024))
    memory_address = kit_dir / "address.json"
    memory_address.write_text(json.dumps({"nics": [{}], "labels": {"polyvisor.test/address-delay": "0.5"}}))
    memory_provisioning = [
        *("--polyvisor-base-image", str(memory_base)),
        *("--polyvisor-address-spec", str(memory_address)),
    ]
    session.run(
        *kit,
        *junit("conformance-memory"),
        "--polyvisor-uri",
        "memory:///conformance",
        *stubborn,
        *memory_provisioning,
        external=True,
    )
    # libvirt targets load the kit's libvirt extras: a base volume made in a pool of the target for the session
    # (the test driver's storage lives in the testing process, so it is made there), and seeds read back from the
    # pool. The test driver fakes an address for each NIC of a running domain.
    libvirt_kit = [*kit, "-p", "polyvisor_libvirt.testing"]
    test_address = kit_dir / "test-address.json"
    test_address.write_text(json.dumps({"nics": [{"network": "default"}]}))
    test_provisioning = [
        *("--polyvisor-libvirt-base-volume", f"default-pool/pvconf-base-{secrets.token_hex(4)}.qcow2=64"),
        *("--polyvisor-address-spec", str(test_address)),
    ]
    session.run(
        *libvirt_kit,
        *junit("conformance-test"),
        "--polyvisor-uri",
        "test:///default",
        *test_provisioning,
        external=True,
    )
    spec = GUEST_DIR / "x86_64" / "conformance-spec.json"
    if spec.exists() or os.environ.get("CI") == "true":
        before = pool_volumes()
        real_stubborn = ["--polyvisor-stubborn-spec", str(spec.with_name("conformance-stubborn-spec.json"))]
        # The guest's init gives each NIC a TEST-NET-1 address, which its QEMU guest agent reports.
        real_address = kit_dir / "qemu-address.json"
        real_address.write_text(json.dumps({"nics": [{"network": "polyvisor-isolated"}]}))
        real_provisioning = [
            *("--polyvisor-libvirt-base-volume", f"{TEST_POOL}/pvconf-base-{secrets.token_hex(4)}.qcow2=64"),
            *("--polyvisor-address-spec", str(real_address)),
        ]
        session.run(
            *libvirt_kit,
            *junit("conformance-qemu"),
            *("--polyvisor-uri", "qemu:///system", "--polyvisor-spec", str(spec)),
            *real_stubborn,
            *real_provisioning,
            external=True,
        )
        for log in Path("/var/log/libvirt/qemu").glob("pvconf-*.log"):
            log.unlink()  # libvirt keeps one QEMU log per domain name, forever
        left = pool_volumes() - before
        if left:
            session.error(f"the conformance suite left volumes in the test pool: {sorted(left)}")
    else:
        session.warn(f"{spec} missing: run scripts/build-guest-image to include qemu:///system")
    # The loopback host holds a base VHDX from its start; a guest on a switch reports addresses through KVP
    # (--kvp-delay seconds after it starts). The Hyper-V extras name a VM's disk files for the delete-storage case.
    hyperv_base = "C:\\PolyvisorKit\\base.vhdx"
    hyperv_address = kit_dir / "hyperv-address.json"
    hyperv_address.write_text(json.dumps({"nics": [{"network": "Default Switch"}]}))
    hyperv_provisioning = [
        *("--polyvisor-base-image", hyperv_base),
        *("--polyvisor-address-spec", str(hyperv_address)),
    ]
    with loopback_hyperv_host("--base-vhd", f"{hyperv_base}=64") as (ready, env):
        user = ready["username"]
        urls = {endpoint["scheme"]: endpoint for endpoint in ready["endpoints"]}
        https, http = urls["https"], urls["http"]
        targets = [
            # PSRP over HTTPS, verifying the host's certificate against its test CA.
            (f"hyperv://{user}@127.0.0.1:{https['port']}/?transport=psrp", [f"ca_path={https['ca_path']}"]),
            # The WinRM shell over plain HTTP with NTLM message encryption.
            (f"hyperv://{user}@127.0.0.1:{http['port']}/?transport=winrm&scheme=http&auth=ntlm", []),
        ]
        for (uri, options), transport in zip(targets, ("psrp", "winrm"), strict=True):
            extra = [arg for option in options for arg in ("--polyvisor-option", option)]
            password = ["--polyvisor-password-env", PASSWORD_ENV]
            session.run(
                *kit,
                *("-p", "polyvisor_hyperv.testing"),
                *junit(f"conformance-hyperv-{transport}"),
                "--polyvisor-uri",
                uri,
                *extra,
                *password,
                *stubborn,
                *hyperv_provisioning,
                env=env,
                external=True,
            )


PASSWORD_ENV = "POLYVISOR_HYPERV_HOST_PASSWORD"
TEST_POOL = "polyvisor-test"


def pool_volumes() -> set[str]:
    """Names of the volumes in the real-guest test pool."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        pool = conn.storagePoolLookupByName(TEST_POOL)
        pool.refresh(0)
        return set(pool.listVolumes())
    finally:
        conn.close()


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against peers, measured in the same run (not part of the default sessions)."""
    session.run(PY, "bench/bench_listing.py", "--vms", "1000", external=True)
    session.run(PY, "bench/bench_listing.py", "--vms", "200", "--uri", "qemu:///system", external=True)
    session.run(PY, "bench/bench_hyperv.py", external=True)
    session.run(PY, "bench/bench_fleet.py", external=True)
    session.run(PY, "bench/bench_provisioning.py", external=True)


@nox.session(name="bench-smoke")
def bench_smoke(session: nox.Session) -> None:
    """Every benchmark once at a tiny size, so CI proves each still runs end to end (its figures mean nothing)."""
    session.run(PY, "bench/bench_listing.py", "--vms", "20", "--repeat", "1", external=True)
    session.run(PY, "bench/bench_hyperv.py", "--calls", "3", "--threads", "2", "--per-thread", "2", external=True)
    fleet = ["--hyperv", "2", "--hosts", "4", "--vms", "2", "--repeat", "1", "--ensure-vms", "2", "--rounds", "1"]
    session.run(PY, "bench/bench_fleet.py", *fleet, "--forks", "4", external=True)
    session.run(PY, "bench/bench_provisioning.py", "--runs", "1", external=True)


@contextmanager
def loopback_hyperv_host(*options: str) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """Run the loopback Hyper-V host (``python -m polyvisor_hyperv_loopback``, with these extra options) for the
    duration of the block."""
    state = Path(tempfile.mkdtemp(prefix="polyvisor-hvhost-"))
    ready = state / "ready.json"
    env = {**os.environ, PASSWORD_ENV: secrets.token_urlsafe(16)}
    command = [PY, "-m", "polyvisor_hyperv_loopback", "--http-port", "0", "--https-port", "0", *options]
    process = subprocess.Popen([*command, "--state-dir", str(state), "--ready-file", str(ready)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the loopback Hyper-V host did not start; see its output above")
            time.sleep(0.1)  # waiting on another process's file: there is no event to await
        yield json.loads(ready.read_text()), env
    finally:
        process.terminate()
        process.wait(timeout=30)
