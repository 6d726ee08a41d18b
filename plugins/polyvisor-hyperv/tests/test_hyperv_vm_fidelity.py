"""The backend against behaviours the loopback host models as Windows does (issue 8: checkpoints, drives, NICs,
delete), over both transports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import PolyvisorError, UnsupportedError

pytestmark = pytest.mark.hyperv

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def _host(loopback: Any) -> Any:
    return loopback.engine.host


def test_delete_with_storage_leaves_a_pass_through_disk_alone(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # A pass-through drive's Path is the physical disk's friendly name (NEON HardDiskDrive.cs): as a path it is
    # relative to the session's current directory, where a file of that name may well exist.
    host = _host(loopback_http)
    number = 40 + len(host.physical_disks)
    friendly = f"Disk {number} 2.00 GB Bus 0 Lun 0 Target {number}"
    host.add_physical_disk(number, friendly)
    bystander = host.add_file("C:\\" + friendly)
    before = set(host.files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    host.add_hard_disk(uuid.UUID(vm.uuid), None, "SCSI", disk_number=number)
    vm.delete(storage=True)
    assert set(host.files.paths()) == before  # the VHD went, the file named like the physical disk stayed
    assert host.files.exists(bystander)
    host.remove_file(bystander)
