from __future__ import annotations

import pytest

from polyvisor import DiskSpec, Firmware, NicSpec, PowerState, SnapshotTree, ValidationError, VMSpec
from polyvisor.model import Snapshot


def test_spec_defaults_and_generation() -> None:
    spec = VMSpec(name="web-1")
    assert (spec.cpus, spec.memory_mib, spec.firmware, spec.generation) == (1, 512, Firmware.BIOS, 1)
    assert VMSpec(name="x", firmware="uefi", secure_boot=True).generation == 2  # type: ignore[arg-type]


def test_spec_from_dict_builds_nested_items() -> None:
    spec = VMSpec.from_dict(
        {
            "name": "db",
            "cpus": 4,
            "disks": [{"size_mib": 1024}, {"image": "/var/lib/x.qcow2", "disk_format": "qcow2", "bus": "sata"}],
            "nics": [{"network": "isolated", "mac": "52:54:00:AA:BB:CC"}],
            "labels": {"team": "infra"},
            "kernel": {"kernel": "/boot/vmlinuz", "cmdline": "console=ttyS0"},
        }
    )
    assert spec.disks[0] == DiskSpec(size_mib=1024)
    assert spec.disks[1].bus == "sata"
    assert spec.nics[0] == NicSpec(network="isolated", mac="52:54:00:aa:bb:cc")
    assert dict(spec.labels) == {"team": "infra"}
    assert spec.kernel is not None
    assert spec.kernel.cmdline == "console=ttyS0"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "cpus": True}, "cpus"),
        ({"name": "x", "cpus": 2.5}, "cpus"),
        ({"name": "x", "memory_mib": 8}, "memory_mib"),
        ({"name": " padded"}, "name"),
        ({"name": "tab\tname"}, "name"),
        ({"name": "back\\slash"}, "name"),
        ({"name": "x", "boot_order": ["disk", "disk"]}, "boot_order"),
        ({"name": "x", "arch": "z80"}, "arch"),
        ({"name": "x", "accelerator": "hax"}, "accelerator"),
        ({"name": "x", "disks": "big"}, "disks"),
        ({"name": "x", "disks": [{"size_mib": 1, "bus": "floppy"}]}, "disk.bus"),
        ({"name": "x", "disks": [{}]}, "disk"),
        ({"name": "x", "nics": [{"model": "E1000; rm"}]}, "nic.model"),
        ({"name": "x", "kernel": {"kernel": "/k", "cmdline": "a\nb"}}, "kernel.cmdline"),
        ({"name": "x", "labels": ["a"]}, "labels"),
        ({"name": "x", "extra": 1}, "spec"),
        ({}, "spec"),
    ],
)
def test_invalid_specs_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VMSpec.from_dict(data)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_hostile_but_valid_values_are_kept_verbatim() -> None:
    name = 'it\'s <b>&amp;<b> "q" $(x) `y` ✓'
    description = "line\nline\r\n\ttab <&> ]]>"
    spec = VMSpec(name=name, description=description, labels={"k": description})
    assert spec.name == name
    assert spec.description == description
    assert spec.labels["k"] == description


def test_labels_are_immutable_and_sorted() -> None:
    spec = VMSpec(name="x", labels={"b": "2", "a": "1"})
    assert list(spec.labels) == ["a", "b"]
    with pytest.raises(TypeError):
        spec.labels["c"] = "3"  # type: ignore[index]


def test_snapshot_tree() -> None:
    snaps = (
        Snapshot("a", None, None, PowerState.STOPPED, False),
        Snapshot("b", "a", None, PowerState.RUNNING, True),
        Snapshot("c", "b", None, PowerState.STOPPED, False, is_current=True),
        Snapshot("d", "a", None, PowerState.STOPPED, False),
    )
    tree = SnapshotTree(snaps)
    assert [s.name for s in tree.roots] == ["a"]
    assert [s.name for s in tree.children("a")] == ["b", "d"]
    assert [s.name for s in tree.descendants("a")] == ["b", "c", "d"]
    assert tree.current is not None
    assert tree.current.name == "c"
    assert "b" in tree
    assert len(tree) == 4
    with pytest.raises(KeyError):
        tree["zz"]


def test_transitional_states() -> None:
    assert PowerState.STARTING.is_transitional
    assert not PowerState.RUNNING.is_transitional
