"""What every part of the backend shares: the transport, the host's name, and the calls all of them make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, PolyvisorError
from polyvisor.model import VMStatus, normalize_uuid
from polyvisor_hyperv.commands import Request, Step
from polyvisor_hyperv.options import ConnectionOptions
from polyvisor_hyperv.states import status_from_vmstate
from polyvisor_hyperv.transport import Row, Transport

__all__ = ["MiB", "Session", "as_guid", "as_text", "then", "vm_step"]

MiB = 1024 * 1024


def vm_step(uuid: str) -> Step:
    """``Get-VM -Id <uuid>``: every verb addresses its VM by Id, piped in."""
    return Step("Get-VM", {"Id": uuid})


def then(command: str, **parameters: Any) -> Step:
    """A step that receives the previous step's output on its pipeline."""
    return Step(command, parameters, pipe=True)


def as_guid(value: Any) -> str:
    """A GUID as either transport renders it, normalized."""
    if isinstance(value, dict):  # Windows PowerShell 5.1 ConvertTo-Json may render a Guid as {"Guid": "..."}
        value = value.get("Guid") or value.get("value")
    return normalize_uuid(str(value)) or str(value)


def as_text(value: Any) -> str:
    """A property as text ("" for null)."""
    return "" if value is None else str(value)


class Session:
    """One connection's transport and what the backend's parts need from it."""

    def __init__(self, options: ConnectionOptions, transport: Transport, host: str) -> None:
        self.options = options
        self.transport = transport
        self.host = host
        """The host name as messages show it."""
        self.vhd_directory: str | None = None
        """The host's VirtualHardDiskPath, once read."""
        self._names: dict[str, str] = {}

    def remember(self, uuid: str, name: str) -> None:
        """Note a VM's name as a listing or lookup showed it, for messages about it."""
        self._names[uuid] = name

    def vm_label(self, vm: str | None) -> str | None:
        """The VM as messages name it: its name as last seen, else what was given (a UUID, or a new VM's name)."""
        return None if vm is None else self._names.get(vm, vm)

    def run(
        self,
        steps: Sequence[Step],
        *,
        doing: str,
        vm: str | None = None,
        select: Sequence[str] | None = None,
        deadline: Deadline | None = None,
    ) -> list[Row]:
        """Run one request; a verb's ``deadline`` stops it on the host when it passes (TimeoutError)."""
        request = Request(tuple(steps), tuple(select) if select is not None else None)
        return self.transport.invoke(request, doing=doing, vm=self.vm_label(vm), deadline=deadline)

    def verb(self, uuid: str, command: str, doing: str, deadline: Deadline | None, **parameters: Any) -> None:
        """Pipe the VM into one cmdlet."""
        self.run([vm_step(uuid), then(command, **parameters)], doing=doing, vm=uuid, deadline=deadline)

    def vm_row(self, uuid: str, select: Sequence[str], deadline: Deadline | None = None) -> Row:
        """Return these properties of the VM; raise NotFoundError if there is none."""
        rows = self.run([vm_step(uuid)], doing="reading the VM", vm=uuid, select=select, deadline=deadline)
        if not rows:
            raise NotFoundError(f"no VM with Id {uuid}", host=self.host, vm=uuid)
        return rows[0]

    def status(self, uuid: str, deadline: Deadline | None = None) -> VMStatus:
        """Return the VM's status (one Get-VM, State only)."""
        return status_from_vmstate(self.vm_row(uuid, ("State",), deadline).get("State"))

    def vhd_dir(self) -> str:
        """Return the host's VirtualHardDiskPath, where new disks go."""
        if self.vhd_directory is None:
            rows = self.run(
                [Step("Get-VMHost")], doing="reading the host (Get-VMHost)", select=("VirtualHardDiskPath",)
            )
            self.vhd_directory = as_text(rows[0].get("VirtualHardDiskPath")) if rows else ""
        if not self.vhd_directory:
            raise PolyvisorError("the host reports no VirtualHardDiskPath; set one with Set-VMHost", host=self.host)
        return self.vhd_directory
