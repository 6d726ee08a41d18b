"""Changing a VM's size: CPUs and memory (``reconfigure``) and disk sizes (``resize_disk``).

Windows' rules, which the backend checks first so that a refusal names the limit:

* The virtual processor count changes only while the VM is off (``Set-VMProcessor -Count``): the backend declares
  no ``reconfigure-live-cpus``, so the core refuses first.
* Static memory changes while the VM runs (runtime memory resize, Windows Server 2016 and later: "You can also
  adjust the amount of memory assigned to a virtual machine while it's running, even if you haven't enabled Dynamic
  Memory", MicrosoftDocs/windowsserverdocs What-s-new-in-Hyper-V-on-Windows.md).
* With dynamic memory a running VM may raise its maximum and lower its minimum only (Hyper-V Dynamic Memory
  Overview, "Run-time Dynamic Memory configuration changes"); its startup memory is fixed while it runs, and
  Hyper-V alone decides how much of the range it has. So such a VM has no ``reconfigure-live-memory`` (the core
  refuses first: polyvisor's live ``memory_mib`` is the memory the VM runs with, within its range, which Hyper-V does
  not let anyone set); on a stopped one ``memory_mib`` is the startup memory, which must lie between the minimum and
  the maximum.
* ``Resize-VHD`` grows VHD and VHDX files; a disk on a running VM's IDE controller cannot be resized, one on its
  SCSI controller can (Resize-VHD.md). The backend never shrinks.
"""

from __future__ import annotations

from polyvisor.backend import Deadline
from polyvisor.errors import InvalidStateError, NotFoundError, UnsupportedError, ValidationError
from polyvisor.model import DiskInfo, Feature, PowerState
from polyvisor_hyperv.client import HyperVClient, MiB, as_text, then, vm_step
from polyvisor_hyperv.commands import Step
from polyvisor_hyperv.devices import Devices

__all__ = ["Sizing"]

_MEMORY = ("State", "DynamicMemoryEnabled", "MemoryStartup", "MemoryMinimum", "MemoryMaximum")


class Sizing:
    """CPUs, memory and disk sizes of an existing VM."""

    def __init__(self, client: HyperVClient, devices: Devices) -> None:
        self._client = client
        self._devices = devices

    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        if live and cpus is not None:
            raise UnsupportedError(
                "Hyper-V cannot change the virtual processor count of a running VM; stop it first",
                feature=Feature.RECONFIGURE_LIVE_CPUS,
                host=self._client.host,
                vm=uuid,
            )
        steps: list[Step] = []
        if cpus is not None:
            steps += [vm_step(uuid), then("Set-VMProcessor", Count=cpus)]
        if memory_mib is not None:
            steps += [vm_step(uuid), then("Set-VMMemory", **self._memory_change(uuid, memory_mib, live, deadline))]
        doing = "reconfiguring the VM (Set-VMProcessor, Set-VMMemory)" + (" while it runs" if live else "")
        self._client.run(steps, doing=doing, vm=uuid, deadline=deadline)

    def _memory_change(self, uuid: str, memory_mib: int, live: bool, deadline: Deadline) -> dict[str, int]:
        if memory_mib < 32 or memory_mib % 2:
            raise ValidationError(
                f"Hyper-V needs memory of at least 32 MiB in multiples of 2 MiB, got {memory_mib}", field="memory_mib"
            )
        row = self._client.vm_row(uuid, _MEMORY, deadline)
        if not row.get("DynamicMemoryEnabled"):
            return {"StartupBytes": memory_mib * MiB}  # off, or runtime memory resize while running
        low = int(row.get("MemoryMinimum") or 0) // MiB
        high = int(row.get("MemoryMaximum") or 0) // MiB
        if live:
            raise UnsupportedError(
                f"Hyper-V balances the memory of a running VM with dynamic memory itself, between {low} and {high} "
                "MiB; it cannot be set while the VM runs: stop it to change its startup memory",
                feature=Feature.RECONFIGURE_LIVE_MEMORY,
                host=self._client.host,
                vm=uuid,
            )
        if not low <= memory_mib <= high:
            raise ValidationError(
                f"{memory_mib} MiB is outside the VM's dynamic-memory range {low}-{high} MiB (minimum-maximum); "
                "the startup memory must lie within it",
                field="memory_mib",
            )
        return {"StartupBytes": memory_mib * MiB}

    def disks(self, uuid: str) -> list[DiskInfo]:
        """The VM's hard disk drives and their virtual sizes: ``Get-VMHardDiskDrive``, then one ``Get-VHD`` for
        every file (a pass-through disk, which has none, is left out)."""
        drives = [(target, as_text(row.get("Path"))) for target, row in self._devices.drives(uuid)]
        paths = [path for _target, path in drives if path]
        if not paths:
            return []
        rows = self._client.run(
            [Step("Get-VHD", {"Path": paths})],
            doing="reading the disks' sizes (Get-VHD)",
            vm=uuid,
            select=("Path", "Size"),
        )
        sizes = {as_text(row.get("Path")).lower(): int(row.get("Size") or 0) for row in rows}
        return [DiskInfo(target, path, sizes.get(path.lower(), 0)) for target, path in drives if path]

    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        drives = dict(self._devices.drives(uuid))
        if target not in drives:
            known = ", ".join(sorted(drives)) or "none"
            raise NotFoundError(f"no disk at {target!r} (disks: {known})", host=self._client.host, vm=uuid)
        path = as_text(drives[target].get("Path"))
        rows = self._client.run(
            [Step("Get-VHD", {"Path": path})],
            doing=f"reading disk {target} (Get-VHD)",
            vm=uuid,
            select=("Size", "VhdFormat"),
            deadline=deadline,
        )
        size = int(rows[0].get("Size") or 0) if rows else 0
        if size_mib * MiB < size:
            raise ValidationError(
                f"disk {target} is {size // MiB} MiB; {size_mib} MiB would shrink it, and disks only grow",
                field="size_mib",
            )
        if size_mib * MiB == size:
            return
        state = self._client.status(uuid, deadline).state
        if state is not PowerState.STOPPED and target.startswith("IDE:"):
            raise InvalidStateError(
                f"disk {target} is on the IDE controller, which Hyper-V cannot resize while the VM is {state.value}; "
                "stop it first (disks on SCSI resize online)",
                state=state,
                accepted=(PowerState.STOPPED,),
                host=self._client.host,
                vm=uuid,
            )
        self._client.run(
            [Step("Resize-VHD", {"Path": path, "SizeBytes": size_mib * MiB})],
            doing=f"growing disk {target} to {size_mib} MiB (Resize-VHD)",
            vm=uuid,
            deadline=deadline,
        )
