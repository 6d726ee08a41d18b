"""What each test needs, as markers: assigned here, by directory and by the fixtures that start a component.

A test says what it needs by where it lives and by the fixtures it asks for, not by a marker its author must
remember. The markers (registered in ``pyproject.toml``) are named for the component:

* ``libvirtd``: talks to a libvirtd daemon (the system's ``qemu:///system``, or a private one the test starts);
* ``realguest``: boots real QEMU guests under libvirtd (``scripts/build-guest-image``); always with ``libvirtd``;
* ``loopback``: serves the loopback Hyper-V host (``polyvisor-hyperv-loopback``) and talks to it over the network.

Everything else needs no daemon and no guest: ``scripts/test --fast`` (``nox -s fast``) runs exactly that. A test
that starts a component without one of the fixtures below says so itself (``pytestmark = pytest.mark.loopback``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent

# Kerberos stays on this machine: with python-gssapi installed, a Negotiate client tries Kerberos first, and the
# system's krb5.conf (Debian's names MIT's public realm) would send it to KDCs on the Internet. Every test process
# and what it starts gets a krb5.conf with no realm and no DNS look-ups, and a ticket cache of its own, unless a
# test's realm (polyvisor_hyperv_loopback.realm) points them elsewhere.
_KERBEROS_DIR = tempfile.mkdtemp(prefix="polyvisor-krb5-")
atexit.register(shutil.rmtree, _KERBEROS_DIR, ignore_errors=True)
Path(_KERBEROS_DIR, "krb5.conf").write_text(
    "[libdefaults]\n    dns_lookup_kdc = false\n    dns_lookup_realm = false\n    rdns = false\n", encoding="utf-8"
)
os.environ["KRB5_CONFIG"] = f"{_KERBEROS_DIR}/krb5.conf"
os.environ["KRB5CCNAME"] = f"FILE:{_KERBEROS_DIR}/ccache"
os.environ.pop("KRB5_KTNAME", None)
os.environ.pop("KRB5_CLIENT_KTNAME", None)

COMPONENTS = ("libvirtd", "realguest", "loopback")
"""The markers of this file; a test without any of them needs no daemon and no guest."""

BY_DIRECTORY: dict[str, tuple[str, ...]] = {
    "plugins/polyvisor-libvirt/tests/realguest": ("realguest", "libvirtd"),
    # Their own sshd and listening libvirtd in front of qemu:///system.
    "plugins/polyvisor-libvirt/tests/remote": ("libvirtd",),
}
"""Directories (from the repository's root) whose every test needs these components."""

BY_FIXTURE: dict[str, tuple[str, ...]] = {
    # The loopback Hyper-V host, in this process or as a process of its own.
    "loopback_http": ("loopback",),
    "loopback_https": ("loopback",),
    "loopback_private": ("loopback",),
    "loopback_slow": ("loopback",),
    "loopback_hyperv": ("loopback",),
    "hyperv_host": ("loopback",),
    "http_host": ("loopback",),
    "https_host": ("loopback",),
    "open_http_host": ("loopback",),
    "fresh_http_host": ("loopback",),
    "real_host": ("loopback",),
    # A real MIT KDC on 127.0.0.1 and loopback hosts in its realm (Kerberos, CredSSP).
    "kerberos_realm": ("loopback",),
    "kerberos_http_host": ("loopback",),
    "kerberos_https_host": ("loopback",),
    # The mixed fleet: two loopback hosts and libvirtd's qemu:///system (with test:///default hosts).
    "mixed": ("loopback", "libvirtd"),
    # A private libvirtd the test starts; libvirtd's qemu:///system.
    "libvirtd": ("libvirtd",),
    "libvirt_conn": ("libvirtd",),
    # The Ansible tests' real guest on qemu:///system.
    "kvm_spec": ("realguest", "libvirtd"),
    # The real Debian 12 cloud guest (scripts/build-cloud-image) and the shared booted ones.
    "cloud_image": ("realguest", "libvirtd"),
    "cloud_guests": ("realguest", "libvirtd"),
    "cloud_guest": ("realguest", "libvirtd"),
}
"""Fixtures that start or reach a component, and what a test asking for one needs."""


def needs(item: pytest.Item) -> set[str]:
    """The components ``item`` needs, from its directory and its fixtures."""
    found: set[str] = set()
    path = Path(str(item.path)).resolve()
    for directory, markers in BY_DIRECTORY.items():
        if path.is_relative_to(ROOT / directory):
            found.update(markers)
    for name in getattr(item, "fixturenames", ()):
        found.update(BY_FIXTURE.get(name, ()))
    if "realguest" in {mark.name for mark in item.iter_markers()}:
        found.add("libvirtd")
    return found


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for marker in sorted(needs(item) - present):
            item.add_marker(marker)
