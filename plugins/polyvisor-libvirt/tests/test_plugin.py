"""The entry-point module registers every libvirt driver and never imports libvirt."""

from __future__ import annotations

import json
import subprocess
import sys

import polyvisor
from polyvisor.plugins import Plugins
from polyvisor_libvirt import plugin


def test_every_driver_is_registered_lazily() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(plugin, name="libvirt")
    entries = plugins.registry.entries
    for driver in ("test", "qemu", "kvm", "xen", "lxc", "esx", "vbox", "bhyve", "ch", "libxl", "vz", "openvz"):
        assert entries[driver].target == "polyvisor_libvirt.backend:LibvirtBackend"


def test_installed_entry_point_claims_test_uris() -> None:
    assert "test" in polyvisor.schemes(plugins=Plugins())


def test_listing_schemes_never_imports_libvirt() -> None:
    code = (
        "import json, sys, polyvisor; from polyvisor.plugins import Plugins; "
        "schemes = polyvisor.schemes(plugins=Plugins()); "
        "print(json.dumps([schemes, 'libvirt' in sys.modules, 'polyvisor_libvirt.backend' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    schemes, libvirt_loaded, backend_loaded = json.loads(out)
    assert "qemu" in schemes
    assert not libvirt_loaded
    assert not backend_loaded
