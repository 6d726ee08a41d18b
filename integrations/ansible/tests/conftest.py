"""Fixtures of the collection's tests: ansible-core with the collection installed, the hypervisors to drive.

* ``ansible``: the collection built and installed by ansible-galaxy into a private collections path;
* ``hyperv_host``: the loopback Hyper-V host (``polyvisor-hyperv-host``) in a subprocess, for the session, and
  ``second_hyperv_host``, another one for fleets;
* ``kvm``: libvirtd's ``qemu:///system`` with the tiny real guest's spec (``scripts/build-guest-image``);
* ``names``: a per-test name prefix; every VM named with it is deleted afterwards, on both hypervisors.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .support import GUEST_SPEC, KVM_URI, PASSWORD_ENV, PREFIX, Ansible, HypervHost, install_collection, unavailable

QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")


@pytest.fixture(scope="session")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> Ansible:
    """ansible-core with polyvisor.hypervisors installed from the tarball ansible-galaxy built."""
    return install_collection(tmp_path_factory.mktemp("ansible"))


@pytest.fixture(scope="session")
def hyperv_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HypervHost]:
    """Run ``python -m polyvisor_hyperv_loopback`` for the session; its VMs outlive every client process."""
    yield from _hyperv_host(tmp_path_factory)


@pytest.fixture(scope="session")
def second_hyperv_host(hyperv_host: HypervHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HypervHost]:
    """Another loopback Hyper-V host, for fleets of several hosts (its VMs die with it, at the session's end)."""
    yield from _hyperv_host(tmp_path_factory)


def _hyperv_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HypervHost]:
    try:
        import polyvisor_hyperv  # noqa: F401  # the backend the collection drives the host through
        from polyvisor_hyperv_loopback.launch import start_host
    except ImportError as error:
        unavailable(f"the Hyper-V backend or the loopback host is not installed: {error}")
    state = tmp_path_factory.mktemp("hvhost")
    password = secrets.token_urlsafe(16)
    with start_host(
        ["--http-port", "0", "--https-port", "0", "--state-dir", str(state)],
        ready_file=state / "ready.json",
        env={**os.environ, PASSWORD_ENV: password},
    ) as host:
        endpoints = host.endpoints
        yield HypervHost(
            username=host.ready["username"],
            password=password,
            https_port=endpoints["https"]["port"],
            http_port=endpoints["http"]["port"],
            ca_path=endpoints["https"]["ca_path"],
        )


@pytest.fixture(scope="session")
def kvm_spec() -> dict[str, Any]:
    """The tiny real guest's create spec (without a name), after checking libvirtd answers."""
    try:
        import libvirt

        import polyvisor_libvirt  # noqa: F401  # the backend the collection drives libvirtd through
    except ImportError as error:
        unavailable(f"libvirt-python or the libvirt backend is not installed: {error}")
    try:
        libvirt.open(KVM_URI).close()
    except libvirt.libvirtError as error:
        unavailable(f"{KVM_URI} does not answer ({error}); run scripts/libvirt-env start")
    if not GUEST_SPEC.exists():
        unavailable(f"{GUEST_SPEC} is missing; run scripts/build-guest-image --arch x86_64")
    spec: dict[str, Any] = json.loads(GUEST_SPEC.read_text())
    return spec


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique ``pvansible-xxxxxxxx-`` prefix; VMs named with it are removed from every hypervisor afterwards."""
    prefix = f"{PREFIX}{uuid.uuid4().hex[:8]}-"
    yield prefix
    uris: list[tuple[str, dict[str, Any]]] = []
    if "kvm_spec" in request.fixturenames:
        uris.append((KVM_URI, {}))
    if "hyperv_host" in request.fixturenames:
        host: HypervHost = request.getfixturevalue("hyperv_host")
        uris.append((host.psrp_uri, {"password": host.password, "ca_path": host.ca_path}))
    for uri, credentials in uris:
        remove_vms(uri, prefix, **credentials)
    for log in QEMU_LOG_DIR.glob(f"{prefix}*.log"):
        log.unlink()  # libvirtd keeps one QEMU log per domain name, forever


def remove_vms(uri: str, prefix: str, **credentials: Any) -> None:
    """Power off and delete, disks included, every VM whose name starts with ``prefix``."""
    import polyvisor

    assert prefix.startswith(PREFIX), prefix
    with polyvisor.connect(uri, **credentials) as conn:
        for info in conn.list():
            if info.name.startswith(prefix):
                vm = conn.vm(info)
                vm.ensure("stopped", force=True)
                vm.delete(storage=True, force=True)


@dataclass(frozen=True)
class Target:
    """One hypervisor a single-host module's task names: the task's connection options, and polyvisor's own."""

    name: str
    task: dict[str, Any]
    credentials: dict[str, Any]
    backend: str

    @property
    def uri(self) -> str:
        return str(self.task["uri"])

    def connect(self) -> Any:
        import polyvisor

        return polyvisor.connect(self.uri, **self.credentials)


TARGETS = [
    pytest.param("kvm", marks=pytest.mark.libvirtd, id="kvm"),
    pytest.param("psrp", marks=pytest.mark.loopback, id="hyperv-psrp"),
    pytest.param("winrm", marks=pytest.mark.loopback, id="hyperv-winrm"),
]
"""libvirtd's qemu:///system and the loopback Hyper-V host over both transports, for ``target``'s parametrize."""


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    """The hypervisor of a ``@pytest.mark.parametrize("target", TARGETS, indirect=True)`` case."""
    kind = request.param
    if kind == "kvm":
        try:
            import libvirt

            import polyvisor_libvirt  # noqa: F401  # the backend the collection drives libvirtd through
        except ImportError as error:
            unavailable(f"libvirt-python or the libvirt backend is not installed: {error}")
        try:
            libvirt.open(KVM_URI).close()
        except libvirt.libvirtError as error:
            unavailable(f"{KVM_URI} does not answer ({error}); run scripts/libvirt-env start")
        return Target("kvm", {"uri": KVM_URI}, {}, "libvirt")
    host: HypervHost = request.getfixturevalue("hyperv_host")
    if kind == "psrp":
        task = {"uri": host.psrp_uri, "password": host.password, "ca_path": host.ca_path}
        return Target("psrp", task, {"password": host.password, "ca_path": host.ca_path}, "Hyper-V")
    return Target("winrm", {"uri": host.winrm_uri, "password": host.password}, {"password": host.password}, "Hyper-V")
