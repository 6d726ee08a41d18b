"""polyvisor's libvirt backend: KVM/QEMU, libvirt's test driver and any other libvirt URI.

Importing this package imports nothing heavy; :mod:`polyvisor_libvirt.backend` is what loads libvirt.
"""

from __future__ import annotations

__all__: list[str] = []
