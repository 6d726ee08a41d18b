"""A VM handle's identity and facts, the ground every room of :class:`polyvisor.VM` builds on.

:class:`VMHandle` knows which VM it names (UUID, connection, the name it last saw) and reads its facts afresh;
:class:`~polyvisor.guest.GuestOps` adds devices and the guest on top, :class:`~polyvisor.VM` the lifecycle,
labels and snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from polyvisor.calls import read
from polyvisor.model import Capabilities, PowerState, VMInfo, VMStatus

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["VMHandle"]


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

    def name(self) -> str:
        """Return the VM's name now (names can change; the UUID does not)."""
        self._name = read(self.connection, lambda b: b.lookup(self.uuid)).name
        return self._name

    def info(self) -> VMInfo:
        """Return fresh facts about the VM, details included."""
        info = read(self.connection, lambda b: b.info(self.uuid))
        self._name = info.name
        return info

    def status(self) -> VMStatus:
        """Return the VM's status now."""
        return read(self.connection, lambda b: b.status(self.uuid))

    def state(self) -> PowerState:
        """Return the VM's normalized power state now."""
        return self.status().state

    def capabilities(self) -> Capabilities:
        """The features this VM supports: the connection's, narrowed by what the backend finds for this VM."""
        base = self.connection.capabilities
        narrowed = read(self.connection, lambda b: b.probe_vm_features(self.uuid))
        if narrowed is None:
            return base
        return Capabilities(base.features & narrowed, backend=base.backend)

    def labels(self) -> Mapping[str, str]:
        """Return the VM's labels now."""
        return self.info().labels
