"""Storage and network calls over ``qemu+ssh://`` through a stalled wire (issue 16): a fault-injecting proxy
between the OpenSSH client and this session's sshd holds every byte, and each call on the real storage driver of
qemu:///system returns or raises TimeoutError within its timeout + 1 s, an upload or download stalled mid-way
included, leaving nothing under a transfer's final name (see :mod:`polyvisor.testing.stalls`).

The pool, volumes and network it makes are named ``pvtest-stall-...`` and removed, also when the test fails.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from servers import PrivateSshd

import polyvisor
from polyvisor.testing.stalls import stalled_host_calls, violations
from polyvisor.testing.wire import FaultyProxy

SYSTEM = "qemu:///system"


def _remove_leftovers(pool_name: str) -> None:
    """Remove the test's pool with all it holds, and any ``pvtest-stall-`` network or pool (raw libvirt)."""
    raw = libvirt.open(SYSTEM)
    try:
        for pool in raw.listAllStoragePools(0):
            if pool.name() != pool_name and not pool.name().startswith("pvtest-stall-"):
                continue
            with contextlib.suppress(libvirt.libvirtError):
                if not pool.isActive():
                    pool.create(0)
                pool.refresh(0)
                for volume in pool.listAllVolumes(0):
                    volume.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
        for net in raw.listAllNetworks(0):
            if net.name().startswith("pvtest-stall-"):
                with contextlib.suppress(libvirt.libvirtError):
                    net.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    net.undefine()
    finally:
        raw.close()


@pytest.fixture
def stall_pool() -> Iterator[str]:
    name = f"pvtest-stall-pool-{uuid.uuid4().hex[:8]}"
    with polyvisor.connect(SYSTEM) as local:
        local.create_pool(name)
    try:
        yield name
    finally:
        _remove_leftovers(name)


def test_storage_and_network_calls_stay_bounded_on_a_stalled_ssh_wire(
    sshd: PrivateSshd, stall_pool: str, tmp_path: Path
) -> None:
    seed = random.randrange(2**31)
    with FaultyProxy(("127.0.0.1", sshd.port), seed=seed) as proxy:
        host_key = " ".join(sshd.host_key.with_suffix(".pub").read_text().split()[:2])
        with sshd.known_hosts.open("a") as known:
            known.write(f"[127.0.0.1]:{proxy.port} {host_key}\n")  # the same host, reached through the proxy
        with polyvisor.connect(sshd.uri("ssh", port=proxy.port)) as conn:
            run = stalled_host_calls(conn, proxy, tmp_path, pool=stall_pool, timeout=2.0)
    print({row.call: round(row.seconds, 2) for row in run.timed})
    calls = {row.call for row in run.timed}
    expected = {"pools", "volumes", "networks", "create_pool", "create_volume", "upload_image", "download_image"}
    assert expected <= calls, calls
    assert not violations(run), "\n".join(violations(run))
    assert not run.leftovers, run.leftovers
