"""Whether the local KVM can really run an x86-64 guest, asked of ``/dev/kvm`` itself.

libvirt's domain capabilities list ``kvm`` whenever the module is loaded, and opening ``/dev/kvm`` only proves
permissions. Some hosts (nested virtualization under a minimal outer hypervisor) pass both yet expose a vCPU
without the baseline features every x86-64 guest kernel and QEMU CPU model rely on, and guests then hang at boot.
So the check also creates a VM and reads the CPUID KVM can offer: a vCPU lacking the x86-64 baseline means
KVM is not usable, and callers fall back to TCG.
"""

from __future__ import annotations

import fcntl
import functools
import os
import platform
import struct
from collections.abc import Mapping

__all__ = ["kvm_works"]

_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01
_KVM_GET_SUPPORTED_CPUID = 0xC008AE05  # _IOWR(KVMIO, 0x05, struct kvm_cpuid2)
_KVM_API_VERSION = 12
_CPUID_ENTRY = struct.Struct("=IIIIIIIIII")  # function, index, flags, eax, ebx, ecx, edx, padding[3]
_MAX_ENTRIES = 256

# (leaf, register, bit, name): what QEMU's default x86-64 models and every 64-bit distribution kernel expect.
_BASELINE = (
    (0x1, "edx", 0, "fpu"),
    (0x1, "edx", 4, "tsc"),
    (0x1, "edx", 5, "msr"),
    (0x1, "edx", 6, "pae"),
    (0x1, "edx", 9, "apic"),
    (0x1, "edx", 15, "cmov"),
    (0x1, "edx", 24, "fxsr"),
    (0x1, "edx", 25, "sse"),
    (0x1, "edx", 26, "sse2"),
    (0x1, "ecx", 0, "pni"),
    (0x80000001, "edx", 29, "lm"),
)
_REGISTERS = {"eax": 3, "ebx": 4, "ecx": 5, "edx": 6}


@functools.cache
def kvm_works(device: str = "/dev/kvm") -> bool:
    """Return whether ``device`` opens, creates a VM and offers an x86-64 baseline vCPU (cached per process).

    On non-x86 hosts only the first two are checked.
    """
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION) != _KVM_API_VERSION:
            return False
        vm = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        os.close(vm)
        if platform.machine() not in ("x86_64", "AMD64", "i686"):
            return True
        return not missing_features(_supported_cpuid(fd))
    except OSError:
        return False
    finally:
        os.close(fd)


def _supported_cpuid(fd: int) -> dict[int, tuple[int, ...]]:
    buffer = bytearray(struct.pack("=II", _MAX_ENTRIES, 0) + bytes(_CPUID_ENTRY.size * _MAX_ENTRIES))
    fcntl.ioctl(fd, _KVM_GET_SUPPORTED_CPUID, buffer, True)
    (count,) = struct.unpack_from("=I", buffer)
    leaves: dict[int, tuple[int, ...]] = {}
    for index in range(count):
        entry = _CPUID_ENTRY.unpack_from(buffer, 8 + index * _CPUID_ENTRY.size)
        if entry[1] == 0:  # sub-leaf 0 is the one the baseline names
            leaves.setdefault(entry[0], entry)
    return leaves


def missing_features(leaves: Mapping[int, tuple[int, ...]]) -> list[str]:
    """Return the baseline features absent from ``KVM_GET_SUPPORTED_CPUID`` leaves (by function)."""
    missing = []
    for leaf, register, bit, name in _BASELINE:
        entry = leaves.get(leaf)
        if entry is None or not entry[_REGISTERS[register]] >> bit & 1:
            missing.append(name)
    return missing
