"""The readiness wait on a real QEMU guest: cloud-init's run files read through a real QEMU guest agent.

The tiny guest is not cloud-init (``scripts/build-guest-image``): it runs qemu-ga but writes no ``/run/cloud-init``.
So the test writes, through the agent with raw libvirt, the files cloud-init 22.4 writes (``status.json`` while a
stage runs, ``result.json`` when modules-final ends, in the layout of its ``cmd/main.py``), and checks what the
wait makes of each: the product reads what is in the guest; the guest is not changed to suit it.
"""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest

from polyvisor import TimeoutError, UnsupportedError
from polyvisor.testing import eventually

from .pvguest import wait_marker
from .test_realguest_provisioning import agent, wait_agent

if TYPE_CHECKING:
    import libvirt

    from .pvguest import Guests
    from .support import GuestImage

RESULT = {"v1": {"datasource": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]", "errors": []}}


def guest_run(dom: libvirt.virDomain, path: str, *args: str) -> None:
    """Run a program in the guest through the agent and wait until it exits 0."""
    pid = agent(dom, "guest-exec", path=path, arg=list(args), **{"capture-output": True})["pid"]
    done = eventually(
        lambda: (status := agent(dom, "guest-exec-status", pid=pid))["exited"] and status,
        timeout=20,
        what=f"{path} {' '.join(args)} in the guest",
        interval=0.1,
    )
    assert done["exitcode"] == 0, done


def guest_put(dom: libvirt.virDomain, path: str, data: bytes) -> None:
    """Write a whole file in the guest through the agent."""
    handle = agent(dom, "guest-file-open", path=path, mode="w")
    try:
        agent(dom, "guest-file-write", handle=handle, **{"buf-b64": base64.b64encode(data).decode()})
    finally:
        agent(dom, "guest-file-close", handle=handle)


def test_readiness_follows_cloud_inits_files_in_the_guest(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    vm = guests.create(x86_image, "ready")
    vm.start()
    wait_marker(vm, x86_image)
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    wait_agent(dom)

    began = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        vm.wait_until_ready(timeout=2)
    assert time.monotonic() - began < 2 + 1, "bounded by the timeout"
    assert "asked cloud-init: cloud-init: not ready (not started: no /run/cloud-init/status.json yet)" in str(
        caught.value
    )

    guest_run(dom, "/bin/mkdir", "-p", "/run/cloud-init")
    status = {"v1": {"datasource": None, "stage": "modules-final", "modules-final": {"start": 12.5, "errors": []}}}
    guest_put(dom, "/run/cloud-init/status.json", json.dumps(status).encode())
    with pytest.raises(TimeoutError, match=r"cloud-init: not ready \(running \(stage modules-final\)\)"):
        vm.wait_until_ready(timeout=1)

    failed = {"v1": {**RESULT["v1"], "errors": ["('scripts_user', RuntimeError('runparts: 1 failures'))"]}}
    guest_put(dom, "/run/cloud-init/result.json", json.dumps(failed, indent=1).encode())
    ready = vm.wait_until_ready(timeout=30)
    assert ready.sources == ("cloud-init",)
    assert ready.answers[0].detail == "done, with 1 error (DataSourceNoCloud [seed=/dev/sr0][dsmode=net])"
    assert ready.errors == ("cloud-init: ('scripts_user', RuntimeError('runparts: 1 failures'))",)
    vm.stop()


def test_a_vm_without_an_agent_channel_is_refused_at_once(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    vm = guests.create(x86_image, "ready-noagent")
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    root = ET.fromstring(dom.XMLDesc(0))
    devices = root.find("devices")
    assert devices is not None
    for channel in devices.findall("channel"):
        devices.remove(channel)  # a VM defined without the guest agent's channel
    libvirt_conn.defineXML(ET.tostring(root, encoding="unicode"))
    vm.start()
    began = time.monotonic()
    with pytest.raises(UnsupportedError, match=r"'cloud-init' cannot answer for this VM: agent not configured"):
        vm.wait_until_ready(timeout=60, sources=["cloud-init"])
    assert time.monotonic() - began < 5, "refused, not waited on"
    vm.stop()
