"""The power state machine: Start-VM, Stop-VM, Save-VM, Suspend-VM, Resume-VM, Restart-VM, Remove-VMSavedState.

State changes pass through the transitional states Hyper-V shows (Starting, Stopping, Saving, Pausing, Resuming,
Reset) for ``delays[state]`` seconds, with the lock released so that a concurrent Get-VM observes them; the caller
blocks until the target state is reached, as the cmdlets do. A forced turn-off overtakes whatever is in flight.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .faults import invalid_state, no_shutdown_service
from .records import GUEST_IGNORES_SHUTDOWN, GUEST_NO_SHUTDOWN_SERVICE, TRANSITIONAL, AlreadyInState, VMRecord
from .state import HostState

__all__ = ["PowerStates", "powered_off"]


class PowerStates:
    """Each VM's power state and the verbs that change it."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition
        self._shutdowns_waiting = 0

    @property
    def shutdowns_waiting(self) -> int:
        """How many Stop-VM calls are blocked on a guest that ignores them."""
        with self._cond:
            return self._shutdowns_waiting

    def _transition(
        self,
        vm_id: uuid.UUID,
        *,
        allowed: Iterable[str],
        via: str,
        target: str,
        already: Iterable[str] = (),
        before: Callable[[VMRecord], None] | None = None,
        after: Callable[[VMRecord], None] | None = None,
    ) -> VMRecord:
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.state in set(already):
                raise AlreadyInState(vm.name)
            if vm.state not in set(allowed):
                raise invalid_state(vm)
            if before is not None:
                before(vm)
            token = object()
            vm.op_token = token
            vm.state = via
            self._cond.notify_all()
            delay = self._state.delays.get(via, 0.0)
        if delay > 0:
            time.sleep(delay)
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.op_token is not token:
                # A forced turn-off overtook this operation: Hyper-V reports the original one as failed.
                raise invalid_state(vm)
            vm.op_token = None
            vm.state = target
            if after is not None:
                after(vm)
            self._cond.notify_all()
            return copy.deepcopy(vm)

    def start_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Start an Off or Saved VM (a Paused one resumes); blocks until Running."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.state == "Paused":
                return self.resume_vm(vm_id)

        def check_memory(vm: VMRecord) -> None:
            used = sum(
                v.config.memory_startup
                for v in self._state.vms.values()
                if v.id != vm.id and v.state not in {"Off", "Saved"}
            )
            if used + vm.config.memory_startup > self._state.memory_capacity:
                raise HostError(
                    f"'{vm.name}' failed to start.\n'{vm.name}' could not initialize.\n"
                    f"Not enough memory in the system to start the virtual machine {vm.name}.",
                    error_id="OperationFailed",
                    category="NotSpecified",
                    target_name=vm.name,
                )

        def running(vm: VMRecord) -> None:
            vm.started_at = self._state.now()
            for nic in vm.config.network_adapters:
                if nic.mac is None:
                    nic.mac = self._state.next_mac()

        return self._transition(
            vm_id,
            allowed={"Off", "Saved"},
            via="Starting",
            target="Running",
            already={"Running"},
            before=check_memory,
            after=running,
        )

    def shutdown_vm(self, vm_id: uuid.UUID, cancel: threading.Event | None = None, *, force: bool = False) -> VMRecord:
        """Stop-VM without -TurnOff: ask the guest to shut down and wait until the VM is Off.

        A guest without a working shutdown integration service makes Stop-VM ask whether to turn the VM off
        instead: -Force (``force``) answers yes, so the VM is powered off at once; without it a non-interactive
        session cannot answer and the cmdlet fails, leaving the VM running. A guest that ignores the request keeps
        Stop-VM waiting until the VM is off some other way, ``guest_shutdown_timeout`` passes, or ``cancel``
        (the pipeline's stop signal) is set.
        """
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.state == "Off":
                raise AlreadyInState(vm.name)
            if vm.state != "Running":
                raise invalid_state(vm)
            if vm.guest == GUEST_NO_SHUTDOWN_SERVICE:
                if force:
                    return self.turn_off_vm(vm_id)
                raise no_shutdown_service(vm)
            if vm.guest == GUEST_IGNORES_SHUTDOWN:
                self._shutdowns_waiting += 1
                try:
                    return self._wait_for_ignored_shutdown(vm_id, cancel)
                finally:
                    self._shutdowns_waiting -= 1
                    self._cond.notify_all()
        return self._transition(vm_id, allowed={"Running"}, via="Stopping", target="Off", after=powered_off)

    def _wait_for_ignored_shutdown(self, vm_id: uuid.UUID, cancel: threading.Event | None) -> VMRecord:
        """Wait, with the lock held only while looking, until the VM is off, the pipeline stops or time runs out."""
        deadline = self._state.now() + self._state.guest_shutdown_timeout
        with self._cond:
            while True:
                vm = self._state.vm_record(vm_id)
                if vm.state == "Off":
                    return copy.deepcopy(vm)
                if cancel is not None and cancel.is_set():
                    raise HostError(
                        "The pipeline has been stopped.",
                        error_id="PipelineStopped",
                        category="OperationStopped",
                        exception_type="System.Management.Automation.PipelineStoppedException",
                    )
                remaining = deadline - self._state.now()
                if remaining <= 0:
                    raise HostError(
                        f"'{vm.name}' failed to shut down.\nThe operation timed out.",
                        error_id="OperationFailed",
                        category="OperationTimeout",
                        target_name=vm.name,
                    )
                # The stop signal is a threading.Event, not this condition: look again every 50 ms.
                self._cond.wait(min(remaining, 0.05))

    def turn_off_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Power off at once, from Running, Paused, Saved (its saved state is discarded) or any transitional state
        (it overtakes that operation); NEON VirtualMachine.cs allows VirtualMachineAction.Stop from Saved."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.state == "Off":
                raise AlreadyInState(vm.name)
            if vm.state not in {"Running", "Paused", "Saved"} | TRANSITIONAL:
                raise invalid_state(vm)
            vm.op_token = object()  # whatever was in flight now fails
            vm.state = "Off"
            powered_off(vm)
            self._cond.notify_all()
            return copy.deepcopy(vm)

    def save_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Save a Running or Paused VM's memory to disk."""
        return self._transition(
            vm_id,
            allowed={"Running", "Paused"},
            via="Saving",
            target="Saved",
            already={"Saved"},
            after=_memory_saved,
        )

    def suspend_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Pause a Running VM."""
        return self._transition(vm_id, allowed={"Running"}, via="Pausing", target="Paused", already={"Paused"})

    def resume_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Resume a Paused VM."""
        return self._transition(vm_id, allowed={"Paused"}, via="Resuming", target="Running", already={"Running"})

    def restart_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Hard-reset a Running VM."""

        def reset(vm: VMRecord) -> None:
            vm.started_at = self._state.now()

        return self._transition(vm_id, allowed={"Running"}, via="Reset", target="Running", after=reset)

    def remove_saved_state(self, vm_id: uuid.UUID) -> VMRecord:
        """Discard a Saved VM's memory: it becomes Off."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.state != "Saved":
                raise invalid_state(vm)
            vm.state = "Off"
            powered_off(vm)
            self._cond.notify_all()
            return copy.deepcopy(vm)


def powered_off(vm: VMRecord) -> None:
    """The guest stops running: its uptime ends."""
    vm.started_at = None


def _memory_saved(vm: VMRecord) -> None:
    vm.started_at = None
