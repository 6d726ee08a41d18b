"""Accelerator choice on a host whose KVM does not work, and the aarch64 guest, through polyvisor's API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import libvirt
import pytest

from polyvisor import Connection, Feature, PowerState, ShutdownMode, UnsupportedError
from polyvisor_libvirt.kvmcheck import kvm_works

from .pvguest import guest_spec, wait_marker

if TYPE_CHECKING:
    from .pvguest import Guests
    from .support import GuestImage


Recorder = Callable[[str, object], None]


def test_kvm_is_refused_clearly_and_tcg_is_chosen_where_kvm_does_not_work(
    pv_conn: Connection, libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    assert pv_conn.supports(Feature.ACCELERATOR_CHOICE)
    try:
        libvirt_conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        domcaps_offer_kvm = True
    except libvirt.libvirtError:
        domcaps_offer_kvm = False
    kvm = kvm_works() and domcaps_offer_kvm

    if not kvm:
        with pytest.raises(UnsupportedError, match="KVM is not usable on this host") as raised:
            pv_conn.create(guest_spec(x86_image, f"{guests.prefix}kvm", accelerator="kvm"))
        assert "accelerator='tcg'" in str(raised.value)
        assert not [vm for vm in pv_conn.list() if vm.name.startswith(guests.prefix)]  # nothing was defined

    # Left to choose, the backend picks KVM only where it works (not wherever domain capabilities list it).
    vm = guests.create(x86_image, "auto", accelerator=None)
    assert vm.info().extra["domain_type"] == ("kvm" if kvm else "qemu")
    vm.start()
    wait_marker(vm, x86_image)
    vm.stop()


def test_aarch64_guest_boots_and_powers_off_on_the_power_button(
    libvirt_conn: libvirt.virConnect, guests: Guests, arm_image: GuestImage, record_property: Recorder
) -> None:
    vm = guests.create(arm_image, "arm")
    assert vm.info().extra["arch"] == "aarch64"
    started = time.monotonic()
    vm.start()
    wait_marker(vm, arm_image, timeout=120)
    boot_s = time.monotonic() - started
    assert f"console={arm_image.console}" in libvirt_conn.lookupByUUIDString(vm.uuid).XMLDesc(0)

    started = time.monotonic()
    # libvirt offers no ACPI on aarch64 without UEFI: the "ACPI" request presses the virt machine's power key.
    status = vm.shutdown(mode=ShutdownMode.ACPI, timeout=90)
    shutdown_s = time.monotonic() - started
    assert status.state is PowerState.STOPPED
    assert status.reason == "shutdown"
    footprint = guests.footprint(vm)
    vm.delete(storage=True)
    assert footprint.leftovers(libvirt_conn) == []
    record_property("boot_s", round(boot_s, 2))
    record_property("shutdown_s", round(shutdown_s, 2))
    print(f"aarch64: marker {boot_s:.2f} s, power-button shutdown {shutdown_s:.2f} s")
