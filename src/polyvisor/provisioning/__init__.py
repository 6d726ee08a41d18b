"""Provisioning building blocks that do not depend on a backend.

:func:`build_seed_iso` turns a :class:`~polyvisor.model.CloudInit` (what a guest receives on first boot) into the
bytes of a ``cidata`` ISO any hypervisor can attach as a CD-ROM; :mod:`polyvisor.provisioning.addresses` holds the
address-wait policy (which address is usable, how to explain a timeout).
"""

from polyvisor.provisioning.nocloud import CloudInit, build_seed_iso

__all__ = ["CloudInit", "build_seed_iso"]
