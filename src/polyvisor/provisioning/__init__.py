"""Provisioning building blocks that do not depend on a backend.

For now this is the cloud-init NoCloud seed builder: :class:`CloudInit` describes what a guest receives on first
boot and :func:`build_seed_iso` turns it into the bytes of a ``cidata`` ISO any hypervisor can attach as a CD-ROM.
"""

from polyvisor.provisioning.nocloud import CloudInit, build_seed_iso

__all__ = ["CloudInit", "build_seed_iso"]
