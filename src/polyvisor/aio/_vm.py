"""The asyncio face of a VM handle: :class:`polyvisor.VM`'s calls as coroutines.

The contract's rules stay in :mod:`polyvisor.connection`: this module runs each verb's blocking phases (checks,
the request) in the connection's threads and does its waiting on the event loop, woken by the backend's events
and polling as the sync face does (:class:`~polyvisor.connection.Waiting`). A task waiting for a state holds no
thread. Cancelling it stops the wait at once and leaves the VM as the hypervisor has it: nothing is rolled back,
and a request already sent runs to its end in the background, bounded by the verb's deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from polyvisor.aio._events import Wakeup
from polyvisor.backend import Deadline
from polyvisor.backend import validate_timeout as _check_timeout
from polyvisor.errors import NotFoundError
from polyvisor.guest import ADDRESS_TIMEOUT
from polyvisor.model import (
    Capabilities,
    DiskSpec,
    GuestAddress,
    NicSpec,
    PowerState,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VMInfo,
    VMStatus,
)
from polyvisor.provisioning.addresses import AddressFamily
from polyvisor.transitions import VERBS, Verb
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT
from polyvisor.vm import _ENSURE_STEPS, VM, Progress, Waiting

if TYPE_CHECKING:
    from polyvisor.aio._connection import AsyncConnection

__all__ = ["AsyncVM"]

_T = TypeVar("_T")


class AsyncVM:
    """A handle on one VM, identified by UUID, for asyncio. Every coroutine asks the hypervisor afresh.

    ``sync`` is the :class:`polyvisor.VM` underneath.
    """

    def __init__(self, connection: AsyncConnection, sync: VM) -> None:
        self.connection = connection
        self.sync = sync
        self.uuid = sync.uuid

    def __repr__(self) -> str:
        return f"<polyvisor.aio.AsyncVM {self.uuid} (last seen as {self.seen_name!r}) on {self.connection.host}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncVM) and other.uuid == self.uuid and other.connection is self.connection

    def __hash__(self) -> int:
        return hash(self.uuid)

    @property
    def seen_name(self) -> str:
        """The name as this handle last read it, for messages; it may be stale: :meth:`name` asks afresh."""
        return self.sync.seen_name

    async def _call(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await self.connection._call(call, *args, **kwargs)

    # -- facts -----------------------------------------------------------------------------------------------------
    async def name(self) -> str:
        """Return the VM's name now (names can change; the UUID does not)."""
        return await self._call(self.sync.name)

    async def info(self) -> VMInfo:
        """Return fresh facts about the VM, details included."""
        return await self._call(self.sync.info)

    async def status(self) -> VMStatus:
        """Return the VM's status now."""
        return await self._call(self.sync.status)

    async def state(self) -> PowerState:
        """Return the VM's normalized power state now."""
        return (await self.status()).state

    async def capabilities(self) -> Capabilities:
        """The features this VM supports: the connection's, narrowed by what the backend finds for this VM."""
        return await self._call(self.sync.capabilities)

    async def labels(self) -> Mapping[str, str]:
        """Return the VM's labels now."""
        return await self._call(self.sync.labels)

    # -- lifecycle -------------------------------------------------------------------------------------------------
    async def start(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power on (or restore saved memory); return once running."""
        return await self._verb("start", timeout, wait)

    async def shutdown(
        self,
        *,
        timeout: float = SHUTDOWN_TIMEOUT,
        mode: ShutdownMode | str = ShutdownMode.DEFAULT,
        wait: bool = True,
    ) -> VMStatus:
        """Ask the guest to shut down and wait until it is stopped.

        On timeout, :class:`~polyvisor.errors.TimeoutError` is raised and the VM is left running; cancelling the
        task leaves it running too: a graceful shutdown never turns into a power-off.
        """
        return await self._verb("shutdown", timeout, wait, await self._call(self.sync._shutdown_mode, mode))

    async def stop(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power off at once. Refused on a saved VM (use :meth:`discard_saved_state`)."""
        return await self._verb("stop", timeout, wait)

    async def reset(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Hard reset a running VM."""
        return await self._verb("reset", timeout, wait)

    async def reboot(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Ask the guest to reboot."""
        return await self._verb("reboot", timeout, wait)

    async def pause(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Freeze the VM in host memory."""
        return await self._verb("pause", timeout, wait)

    async def resume(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Unfreeze a paused VM."""
        return await self._verb("resume", timeout, wait)

    async def save(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Save memory to disk and stop; :meth:`start` restores it, running."""
        return await self._verb("save", timeout, wait)

    async def discard_saved_state(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Throw away saved memory, leaving the VM stopped."""
        return await self._verb("discard_saved_state", timeout, wait)

    async def delete(self, *, storage: bool = False, force: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Remove the VM; its disks too with ``storage=True``. A saved VM needs ``force=True``.

        Deleting a VM that is already gone returns without acting.
        """
        _check_timeout(timeout)
        deadline = Deadline(timeout)
        try:
            await self._settled(VERBS["delete"], deadline)  # a transition is waited out here, holding no thread
        except NotFoundError:
            return
        await self._call(self.sync.delete, storage=storage, force=force, timeout=deadline.remaining())

    async def wait_for(
        self,
        state: PowerState | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Wait until the VM is in ``state``; raise :class:`~polyvisor.errors.TimeoutError` otherwise."""
        return await self._wait_until(self.sync._waiting_for(state, timeout, progress))

    async def ensure(
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
        target, deadline = self.sync._ensure_begin(state, timeout)
        for _ in range(_ENSURE_STEPS):
            status = await self._settled(None, deadline)
            step = self.sync._ensure_step(status, target, force, progress)
            if step is None:
                return status
            await self._verb(step, None, True, deadline=deadline)
        raise self.sync._unreached(target)

    # -- labels ------------------------------------------------------------------------------------------------------
    async def set_labels(self, labels: Mapping[str, str]) -> Mapping[str, str]:
        """Replace every label with ``labels``; return what the hypervisor now holds."""
        return await self._call(self.sync.set_labels, labels)

    async def update_labels(
        self, values: Mapping[str, str] | None = None, *, remove: Iterable[str] | str = ()
    ) -> Mapping[str, str]:
        """Add or change the labels in ``values`` and remove the keys in ``remove``; return the result.

        Serialized with every other update in this process and on this machine, as :meth:`polyvisor.VM.update_labels`.
        """
        return await self._call(self.sync.update_labels, values, remove=remove)

    # -- snapshots -------------------------------------------------------------------------------------------------
    async def snapshot(
        self, name: str, *, memory: bool = False, description: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> Snapshot:
        """Take a snapshot (a checkpoint on Hyper-V); with ``memory`` the running state is kept too."""
        return await self._call(self.sync.snapshot, name, memory=memory, description=description, timeout=timeout)

    async def snapshots(self) -> SnapshotTree:
        """Return the VM's snapshots as a tree."""
        return await self._call(self.sync.snapshots)

    async def revert(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Revert to the named snapshot: running or paused if it holds memory, otherwise stopped."""
        _check_timeout(timeout)
        deadline = Deadline(timeout)
        await self._call(self.sync._revert_request, name, deadline)
        return await self._settled(None, deadline)

    async def delete_snapshot(self, name: str, *, children: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a snapshot; its children move to its parent unless ``children`` deletes them too."""
        await self._call(self.sync.delete_snapshot, name, children=children, timeout=timeout)

    # -- devices and guest -----------------------------------------------------------------------------------------
    async def attach_disk(self, disk: DiskSpec | Mapping[str, Any], *, live: bool | None = None) -> str:
        """Attach a disk (hot when the VM runs and ``live`` is not False); return its target name."""
        return await self._call(self.sync.attach_disk, disk, live=live)

    async def detach_disk(self, target: str, *, live: bool | None = None) -> None:
        """Detach the disk with this target name (e.g. ``vdb``)."""
        await self._call(self.sync.detach_disk, target, live=live)

    async def attach_nic(self, nic: NicSpec | Mapping[str, Any], *, live: bool | None = None) -> str:
        """Attach a NIC; return its MAC address."""
        return await self._call(self.sync.attach_nic, nic, live=live)

    async def detach_nic(self, mac: str, *, live: bool | None = None) -> None:
        """Detach the NIC with this MAC address."""
        await self._call(self.sync.detach_nic, mac, live=live)

    async def addresses(self, sources: Sequence[str] | None = None) -> list[GuestAddress]:
        """Return the guest's addresses per interface, asking ``sources`` in order (default: the backend's)."""
        return await self._call(self.sync.addresses, sources)

    async def wait_for_address(
        self,
        *,
        timeout: float = ADDRESS_TIMEOUT,
        family: AddressFamily | str | None = AddressFamily.IPV4,
        sources: Sequence[str] | None = None,
    ) -> GuestAddress:
        """Wait until the guest has a usable address and return it (see :meth:`polyvisor.VM.wait_for_address`).

        Each round asks the sources in a thread; between rounds the task sleeps on the event loop, holding no thread.
        """
        sync = self.sync
        wait = await self._call(sync._address_wait_begin, timeout, family, sources)
        while True:
            found, answers = await self._call(sync._address_attempt, wait.chosen, wait.wanted)
            if found is not None:
                return found
            await asyncio.sleep(wait.pause(answers))

    async def reconfigure(
        self,
        *,
        cpus: int | None = None,
        memory_mib: int | None = None,
        live: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> VMInfo:
        """Change the VM's CPU count and/or memory (see :meth:`polyvisor.VM.reconfigure`)."""
        return await self._call(self.sync.reconfigure, cpus=cpus, memory_mib=memory_mib, live=live, timeout=timeout)

    async def resize_disk(self, target: str, size_mib: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Grow a disk (see :meth:`polyvisor.VM.resize_disk`)."""
        await self._call(self.sync.resize_disk, target, size_mib, timeout=timeout)

    async def console_output(self) -> str:
        """Return what the guest wrote to its serial console so far."""
        return await self._call(self.sync.console_output)

    # -- the machinery -----------------------------------------------------------------------------------------------
    async def _verb(
        self,
        verb_name: str,
        timeout: float | None,
        wait: bool,
        mode: ShutdownMode = ShutdownMode.DEFAULT,
        *,
        deadline: Deadline | None = None,
    ) -> VMStatus:
        """The sync face's ``VM._run``: checks and the request in a thread, the waits on the event loop."""
        sync = self.sync
        verb, bound = await self._call(sync._verb_deadline, verb_name, timeout, deadline)
        status = await self._settled(verb, bound)
        action = sync._action(verb_name, mode)
        finished = await self._call(sync._act, verb, action, bound, status)
        if finished is not None:
            return finished
        if not wait:
            return await self.status()
        return await self._wait_until(sync._verb_waiting(verb, action, bound))

    async def _settled(self, verb: Verb | None, deadline: Deadline) -> VMStatus:
        status = await self.status()
        waiting = self.sync._settling(verb, status, deadline)
        return status if waiting is None else await self._wait_until(waiting)

    async def _wait_until(self, waiting: Waiting) -> VMStatus:
        """The sync face's ``VM._wait_until``, sleeping on the event loop: events end a sleep early."""
        status = await self.status()
        if waiting.done(status):
            return status  # most verbs return in their target state: no subscription needed
        wakeup = Wakeup()
        cancel = await self.connection._subscribe(wakeup.sink, native=True) if waiting.has_events else None
        try:
            while True:
                wakeup.clear()  # before reading: an event from now on ends the next sleep
                status = await self.status()
                if waiting.reached(status):
                    return status
                again = waiting.repeat_due()
                if again is not None:
                    await self._call(again)
                await wakeup.sleep(waiting.next_delay())
        finally:
            if cancel is not None:
                self.connection._release(cancel)
