"""The KVM usability check: baseline CPUID features and devices that are not KVM."""

from __future__ import annotations

from pathlib import Path

from polyvisor_libvirt.kvmcheck import kvm_works, missing_features

# Leaf 1 and 0x80000001 of a plain x86-64 vCPU: fpu tsc msr pae apic cmov fxsr sse sse2 | pni | lm.
_EDX1 = sum(1 << bit for bit in (0, 4, 5, 6, 9, 15, 24, 25, 26))
FULL = {0x1: (0x1, 0, 0, 0, 0, 1, _EDX1), 0x80000001: (0x80000001, 0, 0, 0, 0, 0, 1 << 29)}


def test_a_baseline_vcpu_misses_nothing() -> None:
    assert missing_features(FULL) == []


def test_a_vcpu_without_sse3_is_not_usable() -> None:
    # What nested KVM under some outer hypervisors offers: guests then hang right after the real-mode setup.
    leaves = {**FULL, 0x1: (0x1, 0, 0, 0, 0, 0, _EDX1)}
    assert missing_features(leaves) == ["pni"]


def test_missing_leaves_count_as_missing_features() -> None:
    assert missing_features({0x1: FULL[0x1]}) == ["lm"]


def test_a_device_that_is_absent_or_not_kvm_does_not_work(tmp_path: Path) -> None:
    assert kvm_works(str(tmp_path / "kvm")) is False
    assert kvm_works("/dev/null") is False  # opens read/write, but answers no KVM ioctl
