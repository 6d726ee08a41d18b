"""VM handles: the verbs every backend shares, with the contract's rules applied once.

A :class:`VM`'s lifecycle verbs, waits and ``ensure`` are steps of the verb engine (:mod:`polyvisor.verbs`), run
blocking by :func:`polyvisor.blocking.run`; the asyncio face runs the same steps on the event loop. Labels and
snapshots are here; devices and the guest in :mod:`polyvisor.guest`. Backends only provide primitives
(:mod:`polyvisor.backend`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from polyvisor import blocking
from polyvisor._locks import label_lock
from polyvisor.calls import change
from polyvisor.errors import AlreadyExistsError, InvalidStateError
from polyvisor.guest import GuestOps
from polyvisor.handle import vm_capabilities
from polyvisor.inguest import InGuestOps
from polyvisor.model import (
    Feature,
    PowerState,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VMStatus,
    validate_labels,
    validate_name,
    validate_text,
)
from polyvisor.screen import ScreenOps
from polyvisor.verbs import engine
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT
from polyvisor.verbs.waiting import Progress

__all__ = ["VM"]


class VM(GuestOps, InGuestOps, ScreenOps):
    """A handle on one VM, identified by UUID. Every method asks the hypervisor afresh."""

    def __repr__(self) -> str:
        return f"<polyvisor.VM {self.uuid} (last seen as {self._name!r}) on {self.connection.host}>"

    # -- lifecycle -----------------------------------------------------------------------------------------------
    # Every verb returns or raises TimeoutError within ``timeout`` (+1 s); the deadline reaches the backend.
    # With ``wait=False`` a verb returns once the hypervisor accepted the request.
    def start(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power on (or restore saved memory); return once running."""
        return self._verb("start", timeout, wait)

    def shutdown(
        self,
        *,
        timeout: float = SHUTDOWN_TIMEOUT,
        mode: ShutdownMode | str = ShutdownMode.DEFAULT,
        wait: bool = True,
    ) -> VMStatus:
        """Ask the guest to shut down and wait until it is stopped.

        On timeout, :class:`~polyvisor.errors.TimeoutError` is raised and the VM is left running: a graceful
        shutdown never turns into a power-off.
        """
        return blocking.run(self, engine.run_verb(self, "shutdown", timeout=timeout, wait_=wait, mode=mode))

    def stop(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power off at once. Refused on a saved VM (use :meth:`discard_saved_state`)."""
        return self._verb("stop", timeout, wait)

    def reset(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Hard reset a running VM."""
        return self._verb("reset", timeout, wait)

    def reboot(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Ask the guest to reboot."""
        return self._verb("reboot", timeout, wait)

    def pause(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Freeze the VM in host memory."""
        return self._verb("pause", timeout, wait)

    def resume(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Unfreeze a paused VM."""
        return self._verb("resume", timeout, wait)

    def save(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Save memory to disk and stop; :meth:`start` restores it, running."""
        return self._verb("save", timeout, wait)

    def discard_saved_state(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Throw away saved memory, leaving the VM stopped."""
        return self._verb("discard_saved_state", timeout, wait)

    def _verb(self, verb_name: str, timeout: float, wait: bool) -> VMStatus:
        return blocking.run(self, engine.run_verb(self, verb_name, timeout=timeout, wait_=wait))

    def delete(self, *, storage: bool = False, force: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Remove the VM; its disks too with ``storage=True``. A saved VM needs ``force=True``.

        Deleting a VM that is already gone returns without acting.
        """
        blocking.run(self, engine.delete(self, storage, force, timeout))

    def wait_for(
        self,
        state: PowerState | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Wait until the VM is in ``state``; raise :class:`~polyvisor.errors.TimeoutError` otherwise."""
        return blocking.run(self, engine.wait_for(self, state, timeout, progress))

    def ensure(
        self,
        state: PowerState | str,
        *,
        timeout: float = SHUTDOWN_TIMEOUT,
        force: bool = False,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Bring the VM to ``state`` by composing allowed verbs, doing nothing if it is already there.

        ``force`` allows lossy shortcuts: power off instead of a graceful shutdown, and discarding saved
        memory. Supported targets: running, stopped, paused, saved.
        """
        return blocking.run(self, engine.ensure(self, state, timeout, force, progress))

    # -- labels -------------------------------------------------------------------------------------------------
    # One deadline bounds the whole update: the capability probe, the wait for the lock, the read, the write and
    # the read of the result.
    def set_labels(self, labels: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> Mapping[str, str]:
        """Replace every label with ``labels``; return what the hypervisor now holds."""
        clean = validate_labels(labels)
        deadline = self._deadline(timeout)
        vm_capabilities(self.connection, self.uuid, deadline).require(
            Feature.LABELS, host=self.connection.host, vm=self._name
        )
        with label_lock(self.uuid, deadline):
            change(self.connection, lambda b: b.set_labels(self.uuid, clean), "setting labels", self._name, deadline)
        return self._info(deadline).labels

    def update_labels(
        self,
        values: Mapping[str, str] | None = None,
        *,
        remove: Iterable[str] | str = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Mapping[str, str]:
        """Add or change the labels in ``values`` and remove the keys in ``remove``; return the result.

        Concurrent updates through any threads and connections of this process, and other processes on this
        machine, never lose each other's keys (see the contract on labels).
        """
        keys = (remove,) if isinstance(remove, str) else tuple(remove)  # one key, not its characters
        changes = validate_labels(values or {})
        deadline = self._deadline(timeout)
        vm_capabilities(self.connection, self.uuid, deadline).require(
            Feature.LABELS, host=self.connection.host, vm=self._name
        )
        with label_lock(self.uuid, deadline):
            merged = dict(self._info(deadline).labels)
            merged.update(changes)
            for key in keys:
                merged.pop(key, None)
            clean = validate_labels(merged)
            change(self.connection, lambda b: b.set_labels(self.uuid, clean), "updating labels", self._name, deadline)
        return self._info(deadline).labels

    # -- snapshots --------------------------------------------------------------------------------------------
    def snapshot(
        self, name: str, *, memory: bool = False, description: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> Snapshot:
        """Take a snapshot (a checkpoint on Hyper-V); with ``memory`` the running state is kept too."""
        validate_name(name, "snapshot name")
        validate_text(description, "description")
        deadline = self._deadline(timeout)
        caps = vm_capabilities(self.connection, self.uuid, deadline)
        caps.require(Feature.SNAPSHOTS, host=self.connection.host, vm=self._name)
        if description:
            caps.require(Feature.SNAPSHOT_DESCRIPTION, host=self.connection.host, vm=self._name)
        if memory:
            caps.require(Feature.SNAPSHOT_MEMORY, host=self.connection.host, vm=self._name)
            state = self._state(deadline)
            if state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise InvalidStateError(
                    f"a memory snapshot needs a running or paused VM, and this one is {state.value}; "
                    "start it first or pass memory=False",
                    state=state,
                    accepted=(PowerState.RUNNING, PowerState.PAUSED),
                    host=self.connection.host,
                    vm=self._name,
                )
        if name in blocking.run(self, engine.snapshots(self, deadline)):
            raise AlreadyExistsError(
                f"a snapshot named {name!r} already exists; pick another name",
                host=self.connection.host,
                vm=self._name,
            )
        return change(
            self.connection,
            lambda b: b.snapshot_create(self.uuid, name, memory=memory, description=description, deadline=deadline),
            f"taking snapshot {name!r}",
            self._name,
            deadline,
        )

    def snapshots(self, *, timeout: float = DEFAULT_TIMEOUT) -> SnapshotTree:
        """Return the VM's snapshots as a tree."""
        return blocking.run(self, engine.snapshots(self, self._deadline(timeout)))

    def revert(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Revert to the named snapshot: running or paused if it holds memory, otherwise stopped."""
        return blocking.run(self, engine.revert(self, name, timeout))

    def delete_snapshot(self, name: str, *, children: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a snapshot; its children move to its parent unless ``children`` deletes them too."""
        deadline = self._deadline(timeout)
        blocking.run(self, engine.require_snapshot(self, name, deadline))
        change(
            self.connection,
            lambda b: b.snapshot_delete(self.uuid, name, children=children, deadline=deadline),
            f"deleting snapshot {name!r}",
            self._name,
            deadline,
        )
