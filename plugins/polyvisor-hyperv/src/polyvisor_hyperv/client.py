"""The client every part of the backend calls Hyper-V through: the transport, the host's name, and the calls all of
them make (a pipeline run, a VM piped into a cmdlet, a VM's row and status)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, PolyvisorError
from polyvisor.model import VMStatus, normalize_uuid
from polyvisor_hyperv.commands import Request, Script, Step
from polyvisor_hyperv.options import ConnectionOptions
from polyvisor_hyperv.states import to_status
from polyvisor_hyperv.transport import Invoker, Row

__all__ = ["HyperVClient", "MiB", "as_guid", "as_text", "then", "vm_step"]

MiB = 1024 * 1024
# How long the state a verb's own pipeline read stays good for the status query that confirms it (the core asks
# at once). It is used once, and never after any other request of this connection started or ended.
_OBSERVED_FOR = 1.0
# The power cmdlets: each returns once the VM is in the state it brings about (see backend.py).
_POWER_CMDLETS = frozenset(
    {"Start-VM", "Stop-VM", "Restart-VM", "Suspend-VM", "Resume-VM", "Save-VM", "Remove-VMSavedState"}
)


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


class HyperVClient:
    """One connection's transport, and what the backend's parts need from it."""

    def __init__(self, options: ConnectionOptions, transport: Invoker, host: str) -> None:
        self.options = options
        self.transport = transport
        self.host = host
        """The host name as messages show it."""
        self.vhd_directory: str | None = None
        """The host's VirtualHardDiskPath, once read."""
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        # Bumped when any request that may change something starts or ends; a verb's observed state is good only
        # while it has not moved since.
        self._generation = 0
        self._observed: dict[str, tuple[Any, int, float]] = {}

    def remember(self, uuid: str, name: str) -> None:
        """Note a VM's name as a listing or lookup showed it, for messages about it."""
        self._names[uuid] = name

    def vm_label(self, vm: str | None) -> str | None:
        """The VM as messages name it: its name as last seen, else what was given (a UUID, or a new VM's name)."""
        return None if vm is None else self._names.get(vm, vm)

    def run(
        self,
        steps: Sequence[Step | Script],
        *,
        doing: str,
        vm: str | None = None,
        select: Sequence[str] | None = None,
        deadline: Deadline | None = None,
    ) -> list[Row]:
        """Run one request; a verb's ``deadline`` stops it on the host when it passes (TimeoutError)."""
        return self._run(steps, doing, vm, select, deadline)[0]

    def _run(
        self,
        steps: Sequence[Step | Script],
        doing: str,
        vm: str | None,
        select: Sequence[str] | None,
        deadline: Deadline | None,
        *,
        changes: bool = True,
    ) -> tuple[list[Row], int]:
        """Run one request; return its rows and the generation once it ended."""
        request = Request(tuple(steps), tuple(select) if select is not None else None)
        if changes:
            self._bump()
        try:
            rows = self.transport.invoke(request, doing=doing, vm=self.vm_label(vm), deadline=deadline)
        finally:
            generation = self._bump() if changes else self._generation
        return rows, generation

    def _bump(self) -> int:
        with self._lock:
            self._generation += 1
            return self._generation

    def verb(self, uuid: str, command: str, doing: str, deadline: Deadline | None, **parameters: Any) -> None:
        """Pipe the VM into one cmdlet; after a power cmdlet the same pipeline reads the state it left.

        Hyper-V's power cmdlets return once the VM is in the state they bring about, so that state answers the
        status query with which the core confirms the verb, and the verb costs one pipeline.
        """
        if command not in _POWER_CMDLETS:
            self.run([vm_step(uuid), then(command, **parameters)], doing=doing, vm=uuid, deadline=deadline)
            return
        steps = [vm_step(uuid), then(command, **parameters), vm_step(uuid)]
        rows, generation = self._run(steps, doing, uuid, ("State",), deadline)
        if rows:
            with self._lock:
                if generation == self._generation:
                    self._observed[uuid] = (rows[0].get("State"), generation, time.monotonic())

    def vm_row(self, uuid: str, select: Sequence[str], deadline: Deadline | None = None) -> Row:
        """Return these properties of the VM; raise NotFoundError if there is none."""
        rows = self.run([vm_step(uuid)], doing="reading the VM", vm=uuid, select=select, deadline=deadline)
        if not rows:
            raise NotFoundError(f"no VM with Id {uuid}", host=self.host, vm=uuid)
        return rows[0]

    def status(self, uuid: str, deadline: Deadline | None = None) -> VMStatus:
        """Return the VM's status (one Get-VM, State only), or the state the VM's last verb just read."""
        with self._lock:
            observed = self._observed.pop(uuid, None)
            self._observed.clear()
            if observed is not None:
                state, generation, at = observed
                if generation == self._generation and time.monotonic() - at < _OBSERVED_FOR:
                    return to_status(state)
        rows, _ = self._run([vm_step(uuid)], "reading the VM", uuid, ("State",), deadline, changes=False)
        if not rows:
            raise NotFoundError(f"no VM with Id {uuid}", host=self.host, vm=uuid)
        return to_status(rows[0].get("State"))

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
