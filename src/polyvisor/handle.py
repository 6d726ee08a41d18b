"""A VM handle's identity and facts, the ground every room of :class:`polyvisor.VM` builds on.

:class:`VMHandle` knows which VM it names (UUID, connection, the name it last saw) and reads its facts afresh;
:class:`~polyvisor.guest.GuestOps` adds devices and the guest on top, :class:`~polyvisor.VM` the lifecycle,
labels and snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.calls import read
from polyvisor.model import Capabilities, PowerState, VMInfo, VMStatus
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["VMHandle", "vm_capabilities"]


class VMHandle:
    """One VM, identified by UUID, and its facts; every method asks the hypervisor afresh."""

    def __init__(self, connection: Connection, uuid: str, name: str) -> None:
        self.connection = connection
        self.uuid = uuid
        self._name = name  # as last seen, for messages only

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VMHandle) and other.uuid == self.uuid and other.connection is self.connection

    def __hash__(self) -> int:
        return hash(self.uuid)

    @property
    def seen_name(self) -> str:
        """The name as this handle last read it, for messages; it may be stale: :meth:`name` asks afresh."""
        return self._name

    # Every read takes a ``timeout`` (seconds, DEFAULT_TIMEOUT unless told): it returns or raises TimeoutError within
    # it (+1 s), however the network between here and the host behaves.
    def name(self, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Return the VM's name now (names can change; the UUID does not)."""
        self._name = read(self.connection, lambda b: b.lookup(self.uuid), self._deadline(timeout)).name
        return self._name

    def info(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMInfo:
        """Return fresh facts about the VM, details included."""
        return self._info(self._deadline(timeout))

    def status(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Return the VM's status now."""
        return read(self.connection, lambda b: b.status(self.uuid), self._deadline(timeout))

    def state(self, *, timeout: float = DEFAULT_TIMEOUT) -> PowerState:
        """Return the VM's normalized power state now."""
        return self.status(timeout=timeout).state

    def capabilities(self, *, timeout: float = DEFAULT_TIMEOUT) -> Capabilities:
        """The features this VM supports: the connection's, narrowed by what the backend finds for this VM."""
        return vm_capabilities(self.connection, self.uuid, self._deadline(timeout))

    def labels(self, *, timeout: float = DEFAULT_TIMEOUT) -> Mapping[str, str]:
        """Return the VM's labels now."""
        return self.info(timeout=timeout).labels

    def _deadline(self, timeout: float) -> Deadline:
        validate_timeout(timeout)
        return Deadline(timeout, self.connection.clock)

    def _info(self, deadline: Deadline | None) -> VMInfo:
        info = read(self.connection, lambda b: b.info(self.uuid), deadline)
        self._name = info.name
        return info


def vm_capabilities(connection: Connection, uuid: str, deadline: Deadline | None = None) -> Capabilities:
    """The features the VM with this UUID supports: the connection's, narrowed by what the backend finds for it."""
    base = connection.capabilities
    narrowed = read(connection, lambda b: b.probe_vm_features(uuid), deadline)
    if narrowed is None:
        return base
    return Capabilities(base.features & narrowed, backend=base.backend)
