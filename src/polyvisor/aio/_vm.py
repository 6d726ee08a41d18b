"""The asyncio face of a VM handle: :class:`polyvisor.VM`'s calls as coroutines.

The contract's rules stay in the verb engine (:mod:`polyvisor.verbs`): this module runs the same steps as the sync
face, carrying out their blocking requests (reads, the request itself) in the connection's threads and their
waits on the event loop, woken by the backend's events and polling with the same policy
(:class:`~polyvisor.verbs.waiting.Waiting`). A task waiting for a state holds no thread. Cancelling it stops the
wait at once and leaves the VM as the hypervisor has it: nothing is rolled back, and a request already sent runs
to its end in the background, bounded by the verb's deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from polyvisor.aio._console import AsyncConsole
from polyvisor.aio._events import Wakeup
from polyvisor.aio._knock import knock
from polyvisor.backend import Backend, Subscription
from polyvisor.console import Console
from polyvisor.errors import PolyvisorError
from polyvisor.guestexec import MAX_FILE_BYTES, ExecResult, GuestCredentials
from polyvisor.handle import vm_capabilities
from polyvisor.inguest import EXEC_TIMEOUT
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    Capabilities,
    DiskInfo,
    DiskSpec,
    GraphicsInfo,
    GuestAddress,
    NicSpec,
    PowerState,
    Readiness,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VMInfo,
    VMStatus,
)
from polyvisor.provisioning.addresses import AddressFamily
from polyvisor.provisioning.readiness import SSH_PORT
from polyvisor.verbs import addresses, display, engine, inguest, readiness
from polyvisor.verbs.addresses import ADDRESS_TIMEOUT
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT
from polyvisor.verbs.ops import Change, Knock, Probe, Query, Read, Sleep, Steps, Subscribe, Unsubscribe
from polyvisor.verbs.readiness import READY_TIMEOUT
from polyvisor.verbs.stats import vm_stats
from polyvisor.verbs.waiting import Progress
from polyvisor.vm import VM

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
    def _timed(self, call: Callable[..., _T], timeout: float, *args: Any, **kwargs: Any) -> Awaitable[_T]:
        return self.connection._timed(call, timeout, *args, **kwargs)

    async def name(self, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Return the VM's name now (names can change; the UUID does not)."""
        return await self._timed(self.sync.name, timeout)

    async def info(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMInfo:
        """Return fresh facts about the VM, details included."""
        return await self._timed(self.sync.info, timeout)

    async def status(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Return the VM's status now."""
        return await self._timed(self.sync.status, timeout)

    async def state(self, *, timeout: float = DEFAULT_TIMEOUT) -> PowerState:
        """Return the VM's normalized power state now."""
        return (await self.status(timeout=timeout)).state

    async def capabilities(self, *, timeout: float = DEFAULT_TIMEOUT) -> Capabilities:
        """The features this VM supports: the connection's, narrowed by what the backend finds for this VM."""
        return await self._timed(self.sync.capabilities, timeout)

    async def labels(self, *, timeout: float = DEFAULT_TIMEOUT) -> Mapping[str, str]:
        """Return the VM's labels now."""
        return await self._timed(self.sync.labels, timeout)

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
        return await self._run(engine.run_verb(self.sync, "shutdown", timeout=timeout, wait_=wait, mode=mode))

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
        await self._run(engine.delete(self.sync, storage, force, timeout))

    async def wait_for(
        self,
        state: PowerState | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Wait until the VM is in ``state``; raise :class:`~polyvisor.errors.TimeoutError` otherwise."""
        return await self._run(engine.wait_for(self.sync, state, timeout, progress))

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
        return await self._run(engine.ensure(self.sync, state, timeout, force, progress))

    # -- labels ------------------------------------------------------------------------------------------------------
    async def set_labels(self, labels: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> Mapping[str, str]:
        """Replace every label with ``labels``; return what the hypervisor now holds."""
        return await self._timed(self.sync.set_labels, timeout, labels)

    async def update_labels(
        self,
        values: Mapping[str, str] | None = None,
        *,
        remove: Iterable[str] | str = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Mapping[str, str]:
        """Add or change the labels in ``values`` and remove the keys in ``remove``; return the result.

        Serialized with every other update in this process and on this machine, as :meth:`polyvisor.VM.update_labels`.
        """
        return await self._timed(self.sync.update_labels, timeout, values, remove=remove)

    # -- snapshots -------------------------------------------------------------------------------------------------
    async def snapshot(
        self, name: str, *, memory: bool = False, description: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> Snapshot:
        """Take a snapshot (a checkpoint on Hyper-V); with ``memory`` the running state is kept too."""
        return await self._timed(self.sync.snapshot, timeout, name, memory=memory, description=description)

    async def snapshots(self, *, timeout: float = DEFAULT_TIMEOUT) -> SnapshotTree:
        """Return the VM's snapshots as a tree."""
        return await self._timed(self.sync.snapshots, timeout)

    async def revert(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Revert to the named snapshot: running or paused if it holds memory, otherwise stopped."""
        return await self._run(engine.revert(self.sync, name, timeout))

    async def delete_snapshot(self, name: str, *, children: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a snapshot; its children move to its parent unless ``children`` deletes them too."""
        await self._timed(self.sync.delete_snapshot, timeout, name, children=children)

    # -- devices and guest -----------------------------------------------------------------------------------------
    async def attach_disk(
        self, disk: DiskSpec | Mapping[str, Any], *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Attach a disk (hot when the VM runs and ``live`` is not False); return its target name."""
        return await self._timed(self.sync.attach_disk, timeout, disk, live=live)

    async def detach_disk(self, target: str, *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Detach the disk with this target name (e.g. ``vdb``)."""
        await self._timed(self.sync.detach_disk, timeout, target, live=live)

    async def attach_nic(
        self, nic: NicSpec | Mapping[str, Any], *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Attach a NIC; return its MAC address."""
        return await self._timed(self.sync.attach_nic, timeout, nic, live=live)

    async def detach_nic(self, mac: str, *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Detach the NIC with this MAC address."""
        await self._timed(self.sync.detach_nic, timeout, mac, live=live)

    async def addresses(
        self, sources: Sequence[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[GuestAddress]:
        """Return the guest's addresses per interface, asking ``sources`` in order (default: the backend's)."""
        return await self._timed(self.sync.addresses, timeout, sources)

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
        return await self._run(addresses.wait_for_address(self.sync, timeout, family, sources))

    async def wait_until_ready(
        self,
        *,
        timeout: float = READY_TIMEOUT,
        sources: Sequence[str] | None = None,
        ssh_host: str | None = None,
        ssh_port: int = SSH_PORT,
    ) -> Readiness:
        """Wait until the guest finished initializing (see :meth:`polyvisor.VM.wait_until_ready`).

        The backend's sources are asked in a thread; the SSH port is knocked at and the pauses slept on the event
        loop, holding no thread.
        """
        return await self._run(readiness.wait_until_ready(self.sync, timeout, sources, ssh_host, ssh_port))

    async def reconfigure(
        self,
        *,
        cpus: int | None = None,
        memory_mib: int | None = None,
        live: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> VMInfo:
        """Change the VM's CPU count and/or memory (see :meth:`polyvisor.VM.reconfigure`)."""
        return await self._timed(self.sync.reconfigure, timeout, cpus=cpus, memory_mib=memory_mib, live=live)

    async def disks(self, *, timeout: float = DEFAULT_TIMEOUT) -> list[DiskInfo]:
        """Return the VM's hard disks with their sizes (see :meth:`polyvisor.VM.disks`)."""
        return await self._timed(self.sync.disks, timeout)

    async def resize_disk(self, target: str, size_mib: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Grow a disk (see :meth:`polyvisor.VM.resize_disk`)."""
        await self._timed(self.sync.resize_disk, timeout, target, size_mib)

    async def console_output(self, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Return what the guest wrote to its serial console so far."""
        return await self._timed(self.sync.console_output, timeout)

    async def stats(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStats:
        """Return one sample of the VM's counters (see :meth:`polyvisor.VM.stats`)."""
        return await self._run(vm_stats(self.sync, timeout))

    # -- inside the guest ------------------------------------------------------------------------------------------
    async def console(self, *, force: bool = False, timeout: float = DEFAULT_TIMEOUT) -> AsyncConsole:
        """Open the guest's serial console (see :meth:`polyvisor.VM.console`); use it in ``async with``."""
        channel = await self._run(inguest.open_console(self.sync, force, timeout))
        sync = Console(channel, host=self.connection.host, vm=self.seen_name, clock=self.connection.clock)
        return AsyncConsole(self.connection, sync)

    async def exec(
        self,
        argv: Sequence[str | bytes],
        *,
        input: bytes | str | None = None,  # noqa: A002  # subprocess.run's name for the same thing
        credentials: GuestCredentials | None = None,
        timeout: float = EXEC_TIMEOUT,
    ) -> ExecResult:
        """Run ``argv`` in the guest and return how it ended (see :meth:`polyvisor.VM.exec`)."""
        return await self._run(inguest.exec_command(self.sync, argv, input, credentials, timeout))

    async def read_file(
        self,
        path: str,
        *,
        credentials: GuestCredentials | None = None,
        limit: int = MAX_FILE_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> bytes:
        """Return the bytes of a file in the guest (see :meth:`polyvisor.VM.read_file`)."""
        return await self._run(inguest.read_file(self.sync, path, credentials, limit, timeout))

    async def write_file(
        self,
        path: str,
        data: bytes | str,
        *,
        credentials: GuestCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Write a file in the guest (see :meth:`polyvisor.VM.write_file`)."""
        await self._run(inguest.write_file(self.sync, path, data, credentials, timeout))

    # -- the screen ----------------------------------------------------------------------------------------------------
    async def graphics(self, *, timeout: float = DEFAULT_TIMEOUT) -> GraphicsInfo:
        """Say how to reach the running VM's screen (see :meth:`polyvisor.VM.graphics`)."""
        return await self._run(display.graphics(self.sync, timeout))

    async def screenshot(self, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Return the running (or paused) VM's screen as PNG bytes (see :meth:`polyvisor.VM.screenshot`)."""
        return await self._run(display.screenshot(self.sync, timeout))

    # -- the machinery -----------------------------------------------------------------------------------------------
    async def _verb(self, verb_name: str, timeout: float, wait: bool) -> VMStatus:
        return await self._run(engine.run_verb(self.sync, verb_name, timeout=timeout, wait_=wait))

    async def _run(self, steps: Steps[_T]) -> _T:
        """Run the verb engine's steps: the blocking requests in the connection's threads, the waits on the event
        loop (an event ends a sleep early), as :func:`polyvisor.blocking.run` does in the caller's thread."""
        sync = self.sync
        wakeup: Wakeup | None = None
        cancel: Subscription | None = None
        answer: Any = None
        error: PolyvisorError | None = None
        uuid = self.uuid

        def status_of(backend: Backend) -> VMStatus:
            return backend.status(uuid)

        try:
            while True:
                try:
                    op = steps.send(answer) if error is None else steps.throw(error)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                answer, error = None, None
                try:
                    if isinstance(op, Read):
                        if wakeup is not None:
                            wakeup.clear()  # before reading: an event from now on ends the next sleep
                        answer = await self.connection._read(status_of, op.deadline)
                    elif isinstance(op, Query):
                        answer = await self.connection._read(op.call, op.deadline)
                    elif isinstance(op, Change):
                        answer = await self.connection._change(op.call, op.doing, sync.seen_name, op.deadline)
                    elif isinstance(op, Probe):
                        answer = await self._call(vm_capabilities, sync.connection, self.uuid, op.deadline)
                    elif isinstance(op, Sleep):
                        await (asyncio.sleep(op.seconds) if wakeup is None else wakeup.sleep(op.seconds))
                    elif isinstance(op, Knock):
                        answer = await knock(op)
                    elif isinstance(op, Subscribe):
                        wakeup = Wakeup()
                        cancel = await self.connection._subscribe(wakeup.sink, native=True)
                    elif isinstance(op, Unsubscribe):
                        wakeup = None
                        if cancel is not None:
                            ending, cancel = cancel, None
                            self.connection._release(ending)
                except PolyvisorError as failed:
                    error = failed
        finally:
            if cancel is not None:
                self.connection._release(cancel)
