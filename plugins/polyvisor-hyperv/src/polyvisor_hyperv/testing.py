"""The conformance kit's extras for Hyper-V targets: ``pytest -p polyvisor.testing -p polyvisor_hyperv.testing``.

Load it after ``polyvisor.testing``; it overrides one of the kit's fixtures, as the kit documents:

``polyvisor_volume_paths``
    The files of the VM's drives (``Get-VMHardDiskDrive``, pass-through disks left out): the ones the backend made
    for a VM the kit creates, which ``delete(storage=True)`` must remove. It asks the host through the kit's own
    connection.
"""

from __future__ import annotations

import pytest

from polyvisor import VM, Connection
from polyvisor.testing.fixtures import VolumePaths, extra_disk_paths
from polyvisor_hyperv.backend import HyperVBackend
from polyvisor_hyperv.client import as_text, then, vm_step

__all__ = ["polyvisor_volume_paths"]


@pytest.fixture(scope="session")
def polyvisor_volume_paths(polyvisor_connection: Connection) -> VolumePaths:
    """``paths(vm)``: the files of the VM's drives; on a target of another backend, the kit's default."""
    backend = polyvisor_connection.backend
    if not isinstance(backend, HyperVBackend):
        return extra_disk_paths

    def paths(vm: VM) -> list[str]:
        rows = backend._client.run(
            [vm_step(vm.uuid), then("Get-VMHardDiskDrive")],
            doing="listing the VM's disk files (the conformance kit)",
            vm=vm.uuid,
            select=("Path", "DiskNumber"),
        )
        return [as_text(row.get("Path")) for row in rows if row.get("Path") and row.get("DiskNumber") is None]

    return paths
