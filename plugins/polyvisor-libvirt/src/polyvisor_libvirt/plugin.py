"""The entry-point module: registers every libvirt driver name without importing libvirt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyvisor.hookspecs import hookimpl

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry

__all__ = ["DRIVERS", "polyvisor_register_backends"]

#: libvirt's URI driver names (https://libvirt.org/uri.html); each accepts ``driver+transport://`` too.
DRIVERS = (
    "bhyve",
    "ch",
    "esx",
    "gsx",
    "hyperv-libvirt",
    "kvm",
    "libxl",
    "lxc",
    "openvz",
    "qemu",
    "test",
    "vbox",
    "vmwarefusion",
    "vmwareplayer",
    "vmwarews",
    "vpx",
    "vz",
    "xen",
)

_TARGET = "polyvisor_libvirt.backend:LibvirtBackend"


@hookimpl
def polyvisor_register_backends(registry: BackendRegistry) -> None:
    """Register the libvirt backend for every libvirt driver name."""
    for driver in DRIVERS:
        registry.add(driver, _TARGET, description=f"libvirt {driver} driver")
