"""A TPM 2.0 in a real guest: a spec's ``tpm`` gives the tiny x86_64 guest a TPM that libvirt emulates with swtpm.

The guest's side is read through its agent (raw libvirt), independently of the code under test: the guest kernel
(Debian's cloud kernel: ``CONFIG_TCG_TPM=y``, ``CONFIG_TCG_TIS=y``, ``CONFIG_TCG_CRB=y``, all built in) binds
the device, so ``/dev/tpm0`` exists and sysfs says it is a TPM 2.0. Once the VM is deleted, swtpm's state for it is
gone too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polyvisor import Feature
from polyvisor.testing import eventually

from .agent import AgentError, GuestAgent
from .pvguest import wait_marker
from .support import wait_for_agent

if TYPE_CHECKING:
    import libvirt

    from .pvguest import Guests
    from .support import GuestImage

SWTPM_STATE = Path("/var/lib/libvirt/swtpm")
"""Where libvirt keeps each domain's swtpm state, in a directory named after its UUID."""


def _version(agent: GuestAgent) -> str | None:
    try:
        return agent.read_file("/sys/class/tpm/tpm0/tpm_version_major").decode().strip()
    except AgentError:
        return None


def test_a_tpm_in_the_spec_is_a_tpm_2_in_the_guest(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    assert guests.conn.supports(Feature.TPM), guests.conn.capabilities.why_not(Feature.TPM)
    vm = guests.create(x86_image, "tpm", tpm=True)
    assert vm.info().extra["tpm"] == "2.0"
    vm.start()
    wait_marker(vm, x86_image)
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    wait_for_agent(dom, timeout=60)  # the ready marker comes before the agent's channel is connected
    agent = GuestAgent(dom)
    version = eventually(lambda: _version(agent), timeout=30, what="the guest's /sys/class/tpm/tpm0")
    assert version == "2"
    assert agent.exists("/dev/tpm0")
    assert (SWTPM_STATE / vm.uuid).is_dir()

    vm.stop()
    vm.delete(storage=True)
    assert not (SWTPM_STATE / vm.uuid).exists()


def test_a_guest_without_a_tpm_has_none(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    vm = guests.create(x86_image, "notpm")
    assert "tpm" not in vm.info().extra
    vm.start()
    wait_marker(vm, x86_image)
    agent = GuestAgent(libvirt_conn.lookupByUUIDString(vm.uuid))
    eventually(agent.answers, timeout=30, what="the guest agent")
    assert not agent.exists("/sys/class/tpm/tpm0/tpm_version_major")
    vm.stop()
