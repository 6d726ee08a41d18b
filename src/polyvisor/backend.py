"""The interface a backend implements.

A backend turns the contract's primitives into hypervisor calls. The core (:mod:`polyvisor.connection`) does
everything that must be identical across backends: state checks, idempotence, waiting, ``ensure``, validation.
So a backend method may assume it is only called from a state the contract allows, and must:

* raise errors from :mod:`polyvisor.errors` only, with the native error as ``__cause__``;
* return quickly from lifecycle primitives once the hypervisor accepted the request (the core waits);
* list VMs in a constant number of round trips, whatever their number.

Optional features default to raising :class:`~polyvisor.errors.UnsupportedError`; declare what you implement in
:meth:`Backend.capabilities`. See "Writing a backend" in the docs.
"""

from __future__ import annotations

import abc
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polyvisor.errors import UnsupportedError
from polyvisor.model import (
    Capabilities,
    DiskSpec,
    Event,
    EventKind,
    Feature,
    GuestAddress,
    HostInfo,
    NetworkInfo,
    NicSpec,
    ShutdownMode,
    Snapshot,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.uri import URI

__all__ = ["Backend", "Credentials", "Secret", "Subscription"]


class Secret:
    """A string that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret text; hand it only to the library that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Credentials:
    """What ``connect(uri, **credentials)`` received, with secrets wrapped."""

    username: str | None = None
    password: Secret | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Other keyword arguments (``ca_path``, ``transport``, ...); backends reject the ones they do not know."""

    @classmethod
    def from_kwargs(cls, uri: URI, kwargs: Mapping[str, Any]) -> Credentials:
        """Merge keyword arguments with the URI's user and password (keywords win)."""
        options = dict(kwargs)
        username = options.pop("username", None) or uri.username
        password = options.pop("password", None)
        if password is None and uri.password is not None:
            password = uri.password
        if isinstance(password, str):
            password = Secret(password)
        return cls(username=username, password=password, options=options)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={'***' if self.password else None})"


Subscription = Callable[[], None]
"""Returned by :meth:`Backend.subscribe`; call it to stop receiving events."""


class Backend(abc.ABC):
    """One open connection to one hypervisor host."""

    #: Capability set; backends usually compute it in ``__init__``.
    uri: URI

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """Return the features this connection supports."""

    def vm_capabilities(self, uuid: str) -> Capabilities:
        """Return the features one VM supports (defaults to the connection's)."""
        return self.capabilities()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; must be safe to call twice."""

    # -- host -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def host_info(self) -> HostInfo:
        """Return facts about the host."""

    def networks(self) -> list[NetworkInfo]:
        """Return the networks or switches VMs can attach to."""
        raise UnsupportedError("this backend does not list networks", feature=Feature.NETWORKS)

    # -- inventory --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def list_vms(self) -> list[VMInfo]:
        """Return every VM, in a constant number of round trips."""

    @abc.abstractmethod
    def lookup(self, ref: str) -> VMInfo:
        """Return the VM whose UUID or name is ``ref``; raise NotFoundError."""

    def info(self, uuid: str) -> VMInfo:
        """Return fresh facts about the VM with this UUID."""
        return self.lookup(uuid)

    def status(self, uuid: str) -> VMStatus:
        """Return the VM's status (override when cheaper than :meth:`info`)."""
        return self.info(uuid).status

    # -- lifecycle primitives (called only from states the contract allows) ----------------------------------
    @abc.abstractmethod
    def create(self, spec: VMSpec) -> VMInfo:
        """Define the VM (stopped); on failure leave nothing behind."""

    @abc.abstractmethod
    def start(self, uuid: str) -> None:
        """Power on, or restore saved memory when there is some."""

    @abc.abstractmethod
    def shutdown(self, uuid: str, mode: ShutdownMode) -> None:
        """Ask the guest to shut down; return without waiting."""

    @abc.abstractmethod
    def stop(self, uuid: str) -> None:
        """Power off at once."""

    def reset(self, uuid: str) -> None:
        """Hard reset."""
        raise UnsupportedError("hard reset is not supported", feature=Feature.RESET)

    def reboot(self, uuid: str) -> None:
        """Ask the guest to reboot."""
        raise UnsupportedError("graceful reboot is not supported", feature=Feature.REBOOT)

    def pause(self, uuid: str) -> None:
        """Freeze the VM in host memory."""
        raise UnsupportedError("pause is not supported", feature=Feature.PAUSE)

    def resume(self, uuid: str) -> None:
        """Unfreeze a paused VM."""
        raise UnsupportedError("resume is not supported", feature=Feature.PAUSE)

    def save(self, uuid: str) -> None:
        """Save memory to disk and stop."""
        raise UnsupportedError("save is not supported", feature=Feature.SAVE)

    def discard_saved_state(self, uuid: str) -> None:
        """Throw away saved memory."""
        raise UnsupportedError("saved state is not supported", feature=Feature.SAVE)

    @abc.abstractmethod
    def delete(self, uuid: str, *, storage: bool) -> None:
        """Remove the VM (and its saved state and snapshot metadata); its volumes only if ``storage``."""

    # -- labels -------------------------------------------------------------------------------------------------
    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        """Replace all labels of the VM."""
        raise UnsupportedError("labels are not supported", feature=Feature.LABELS)

    # -- snapshots ----------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str) -> Snapshot:
        """Take a snapshot."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        """Return every snapshot of the VM."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    def snapshot_revert(self, uuid: str, name: str) -> None:
        """Revert to a snapshot."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool) -> None:
        """Delete a snapshot (and its descendants when ``children``)."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    # -- devices and guest ----------------------------------------------------------------------------------------
    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        """Attach a disk; return its target name."""
        raise UnsupportedError("attaching disks is not supported", feature=Feature.DISK_ATTACH)

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        """Detach the disk with this target name."""
        raise UnsupportedError("detaching disks is not supported", feature=Feature.DISK_ATTACH)

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        """Attach a NIC; return its MAC address."""
        raise UnsupportedError("attaching NICs is not supported", feature=Feature.NIC_ATTACH)

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        """Detach the NIC with this MAC address."""
        raise UnsupportedError("detaching NICs is not supported", feature=Feature.NIC_ATTACH)

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """Return guest addresses, trying sources in order."""
        raise UnsupportedError("guest addresses are not supported", feature=Feature.GUEST_ADDRESSES)

    def console_output(self, uuid: str) -> str:
        """Return what the guest wrote to its serial console so far."""
        raise UnsupportedError("console output is not supported", feature=Feature.CONSOLE)

    # -- events ---------------------------------------------------------------------------------------------------
    def subscribe(self, sink: queue.SimpleQueue[Event]) -> Subscription:
        """Deliver lifecycle events into ``sink`` until the returned callable is called.

        The default polls :meth:`list_vms` and reports differences; backends with native events override it
        and declare :attr:`~polyvisor.model.Feature.EVENTS`.
        """
        return _PollingWatcher(self, sink).start()

    #: Seconds between polls of the default :meth:`subscribe`.
    poll_interval: float = 0.5

    #: If set, the core repeats :meth:`shutdown` this often while waiting, for guests that miss the first
    #: request (an ACPI press while the guest is still booting is lost on most hypervisors).
    shutdown_retry_interval: float | None = None


class _PollingWatcher:
    """Turns successive inventories into events, for backends without native events."""

    def __init__(self, backend: Backend, sink: queue.SimpleQueue[Event]) -> None:
        self._backend = backend
        self._sink = sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="polyvisor-poll", daemon=True)
        self._seen: dict[str, VMInfo] = {}

    def start(self) -> Subscription:
        self._seen = {vm.uuid: vm for vm in self._backend.list_vms()}
        self._thread.start()
        return self._cancel

    def _cancel(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._backend.poll_interval):
            try:
                now = {vm.uuid: vm for vm in self._backend.list_vms()}
            except Exception:
                continue
            for uuid, vm in now.items():
                before = self._seen.get(uuid)
                if before is None:
                    self._sink.put(Event(EventKind.DEFINED, uuid, vm.name, vm.state))
                elif before.status != vm.status:
                    self._sink.put(Event(EventKind.STATE, uuid, vm.name, vm.state, vm.status.raw_state))
            for uuid, vm in self._seen.items():
                if uuid not in now:
                    self._sink.put(Event(EventKind.UNDEFINED, uuid, vm.name))
            self._seen = now
