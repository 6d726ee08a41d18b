"""The guest inside each VM, as far as Hyper-V sees it: whether it answers shutdown requests and reports its
addresses through KVP (:data:`~.records.GUEST_BEHAVIOURS`), set through the Python API or by the test hook, the
``polyvisor.test/guest`` label in the VM's Notes."""

from __future__ import annotations

import uuid

from .records import (
    GUEST_BEHAVIOURS,
    GUEST_IGNORES_SHUTDOWN,
    GUEST_NO_KVP,
    GUEST_RESPONSIVE,
    VMRecord,
    guest_label,
)
from .state import HostState

__all__ = ["GuestSimulation", "follow_guest_label"]


class GuestSimulation:
    """How each VM's guest answers Hyper-V's integration services (shutdown, key-value pair exchange)."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition

    def set_guest_responds_to_shutdown(self, vm_id: uuid.UUID, responds: bool) -> None:
        """Make the guest of ``vm_id`` honour (True) or ignore (False) shutdown requests."""
        self.set_guest(vm_id, GUEST_RESPONSIVE if responds else GUEST_IGNORES_SHUTDOWN)

    def set_guest(self, vm_id: uuid.UUID, behaviour: str) -> None:
        """Set how the guest of ``vm_id`` answers shutdown requests (one of :data:`GUEST_BEHAVIOURS`)."""
        if behaviour not in GUEST_BEHAVIOURS:
            raise ValueError(f"unknown guest behaviour {behaviour!r}; use one of {sorted(GUEST_BEHAVIOURS)}")
        with self._cond:
            self._state.vm_record(vm_id).guest = behaviour
            self._cond.notify_all()

    def kvp_reports(self, vm: VMRecord) -> bool:
        """Whether the guest's KVP daemon has reported its addresses: it runs one, and the VM has been Running
        for ``kvp_delay`` seconds (Hyper-V learns guest addresses through the data exchange integration service)."""
        if vm.state != "Running" or vm.started_at is None or vm.guest == GUEST_NO_KVP:
            return False
        return self._state.now() - vm.started_at >= self._state.kvp_delay

    def heartbeat(self, vm: VMRecord) -> str | None:
        """The guest's heartbeat as ``Get-VM`` shows it (a VMHeartbeatStatus name): none unless the VM is Running;
        ``NoContact`` until the guest's integration services start, ``kvp_delay`` seconds after it started (the
        heartbeat is a kernel driver, so a guest without a KVP daemon has one too); then ``OkApplicationsHealthy``."""
        if vm.state != "Running" or vm.started_at is None:
            return None
        if self._state.now() - vm.started_at < self._state.kvp_delay:
            return "NoContact"
        return "OkApplicationsHealthy"


def follow_guest_label(vm: VMRecord, old_notes: str) -> None:
    """The test hook: when the ``polyvisor.test/guest`` label changes, the guest behaves as it says."""
    new = guest_label(vm.config.notes)
    if new != guest_label(old_notes):
        vm.guest = new if new in GUEST_BEHAVIOURS else GUEST_RESPONSIVE
