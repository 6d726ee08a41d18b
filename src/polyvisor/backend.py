"""The interface a backend implements: deadlines in, plain values out.

A backend turns the contract's primitives into hypervisor calls. The core (:mod:`polyvisor.vm` and the verb
engine, :mod:`polyvisor.verbs`) does everything that must be identical across backends: state checks, idempotence,
waiting, ``ensure``, validation, capability gates, retries after a dropped connection and serialized label
updates. So a backend may assume it is only called from a state the contract allows, and must:

* raise errors from :mod:`polyvisor.errors` only, with the native error as ``__cause__``;
* honour the :class:`Deadline` every blocking primitive receives: return, or raise
  :class:`~polyvisor.errors.TimeoutError`, before it passes, cancelling whatever it started on the hypervisor
  (a pipeline, a job) and leaving the VM as the hypervisor has it;
* bound every other call (reads, label writes) by :meth:`Deadline.current`, the caller's deadline the core
  applies around each backend call: no socket wait and no retry past it;
* return from lifecycle primitives once the hypervisor accepted the request (the core waits for the state);
* list VMs in a constant number of round trips, whatever their number, returning plain values;
* raise :class:`~polyvisor.errors.ConnectionLostError` when the link to the hypervisor drops, and reopen it on
  the next call (the core retries read-only calls once; subscriptions come back with a gap event);
* never turn a graceful shutdown into a power-off.

Capabilities are declared once. A *method feature* (:data:`METHOD_FEATURES`) is declared by overriding its
methods; an *option feature* (a parameter of another call, such as UEFI firmware or memory snapshots) is declared
in :attr:`Backend.option_features`. :meth:`Backend.static_features` derives the set from the class, and
:meth:`Backend.probe_features` and :meth:`Backend.probe_vm_features` may only narrow it for one host or VM.
See "Writing a backend" in the docs.
"""

from __future__ import annotations

import abc
import contextlib
import math
import queue
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from polyvisor.errors import PolyvisorError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    AddressAnswer,
    DiskInfo,
    DiskSpec,
    Event,
    EventKind,
    Feature,
    GraphicsInfo,
    GuestAddress,
    HostDevice,
    HostInfo,
    NetworkInfo,
    NicSpec,
    ReadyAnswer,
    Secret,
    ShutdownMode,
    Snapshot,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.networks import NetworkSpec
from polyvisor.storage import LocalImage, Progress, StoragePool, Volume, VolumeFormat
from polyvisor.uri import URI

if TYPE_CHECKING:
    from polyvisor.guestexec import ExecResult, GuestCredentials

__all__ = [
    "METHOD_FEATURES",
    "OPTION_FEATURES",
    "SYSTEM_CLOCK",
    "Backend",
    "Clock",
    "ConsoleChannel",
    "Credentials",
    "Deadline",
    "EventSink",
    "Secret",
    "Subscription",
    "feature_declaration_problems",
    "validate_timeout",
]


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


def validate_timeout(timeout: float) -> None:
    """Refuse a timeout that is not a number of seconds >= 0 (naming the ``timeout`` field)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValidationError(f"must be a number of seconds >= 0, got {timeout!r}", field="timeout")


class Clock(Protocol):
    """Where deadlines and waits read the time and sleep: :data:`SYSTEM_CLOCK`, or a test's fake one."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class _SystemClock:
    """The ``time`` module's monotonic clock and sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK: Clock = _SystemClock()
"""The real clock, the default of every :class:`Deadline` and wait."""


class Deadline:
    """The moment (on ``clock``, the monotonic clock by default) by which a call must return or raise TimeoutError."""

    __slots__ = ("at", "clock", "timeout")

    def __init__(self, timeout: float | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.timeout = math.inf if timeout is None else float(timeout)
        self.clock = clock
        self.at = clock.monotonic() + self.timeout

    @classmethod
    def never(cls) -> Deadline:
        """A deadline that never passes (for calls made outside any verb)."""
        return cls(None)

    @classmethod
    def current(cls) -> Deadline:
        """The deadline of the caller's call this thread is serving now, or :meth:`never` outside any.

        The core makes every backend call under the caller's deadline (:meth:`applied`), so a backend bounds the
        socket waits of any primitive, reads included, by this one: connect and read timeouts no longer than
        :meth:`remaining`, no retry once it passed.
        """
        return _CURRENT.get() or cls(None)

    @contextlib.contextmanager
    def applied(self) -> Iterator[Deadline]:
        """Make this deadline :meth:`current` inside the block (or keep an enclosing one that passes sooner)."""
        outer = _CURRENT.get()
        tighter = outer if outer is not None and outer.remaining() < self.remaining() else self
        token = _CURRENT.set(tighter)
        try:
            yield tighter
        finally:
            _CURRENT.reset(token)

    def extended(self, seconds: float) -> Deadline:
        """The same deadline ``seconds`` later: for the last read of a wait, or stopping what the deadline cut off."""
        later = Deadline.__new__(Deadline)
        later.timeout, later.clock, later.at = self.timeout, self.clock, self.at + seconds
        return later

    def socket_timeout(self, configured: float | None) -> float:
        """How long one socket wait may block: ``configured`` (None: no limit of its own), never past the deadline."""
        limit = math.inf if configured is None else configured
        return min(limit, self.remaining())

    def remaining(self) -> float:
        """Seconds left, never negative (``math.inf`` for :meth:`never`)."""
        return max(self.at - self.clock.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.clock.monotonic() >= self.at

    def check(self, doing: str, *, host: str | None = None, vm: str | None = None) -> None:
        """Raise :class:`~polyvisor.errors.TimeoutError` if the deadline has passed."""
        if self.expired:
            raise TimeoutError(
                f"timed out after {self.timeout:g}s {doing}; the VM was left as the hypervisor has it",
                host=host,
                vm=vm,
            )

    def __repr__(self) -> str:
        return f"Deadline(timeout={self.timeout:g}, remaining={self.remaining():.3f})"


_CURRENT: ContextVar[Deadline | None] = ContextVar("polyvisor_deadline", default=None)


class EventSink:
    """Where a backend delivers lifecycle events for one subscription.

    The core reads it; a backend only calls :meth:`emit`, :meth:`dropped`, :meth:`gap` and :meth:`fail`.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event | PolyvisorError | object] = queue.SimpleQueue()

    def emit(self, event: Event) -> None:
        """Deliver one event."""
        self._queue.put(event)

    def dropped(self) -> None:
        """Report, as soon as the backend notices, that the link is down: events may be missed from now on.

        Optional (the core then dates the outage from the :meth:`gap` or :meth:`fail` that follows); the core's
        sinks use it to say when a gap began.
        """

    def gap(self, detail: str) -> None:
        """Report that events may have been missed (the connection dropped and came back): re-read state."""
        self.emit(Event(EventKind.GAP, "", "", detail=detail))

    def fail(self, error: PolyvisorError) -> None:
        """End the subscription with ``error``: the stream's reader raises it."""
        self._queue.put(error)

    def take(self, timeout: float | None) -> Event | PolyvisorError | object | None:
        """Return the next item, or None after ``timeout`` seconds (for the core)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def put_marker(self, marker: object) -> None:
        """Queue a private marker (for the core, to wake readers)."""
        self._queue.put(marker)


class ConsoleChannel(abc.ABC):
    """A backend's open serial console. One reader and one writer may use it at once, from any threads."""

    @abc.abstractmethod
    def read(self, max_bytes: int, timeout: float) -> bytes | None:
        """Return up to ``max_bytes`` as soon as any arrived; ``b""`` once the stream ended (the VM stopped,
        another client took the console, :meth:`close`); None when nothing arrived within ``timeout`` seconds."""

    @abc.abstractmethod
    def write(self, data: bytes, timeout: float) -> None:
        """Send every byte of ``data`` within ``timeout`` seconds (TimeoutError otherwise); a stream that ended
        raises :class:`~polyvisor.errors.ConnectionLostError`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the console and every descriptor it holds; a read blocked meanwhile returns ``b""``. Idempotent."""


Subscription = Callable[[], None]
"""Returned by :meth:`Backend.subscribe`; call it to stop receiving events."""


METHOD_FEATURES: Mapping[Feature, tuple[str, ...]] = MappingProxyType(
    {
        Feature.CREATE: ("create",),
        Feature.PAUSE: ("pause", "resume"),
        Feature.SAVE: ("save", "discard_saved_state"),
        Feature.RESET: ("reset",),
        Feature.REBOOT: ("reboot",),
        Feature.SNAPSHOTS: ("snapshot_create", "snapshot_list", "snapshot_revert", "snapshot_delete"),
        Feature.LABELS: ("set_labels",),
        Feature.EVENTS: ("subscribe",),
        Feature.NETWORKS: ("networks",),
        Feature.DISK_ATTACH: ("attach_disk", "detach_disk"),
        Feature.NIC_ATTACH: ("attach_nic", "detach_nic"),
        Feature.GUEST_ADDRESSES: ("addresses",),
        Feature.READINESS: ("ready_answers",),
        Feature.CONSOLE: ("console_output",),
        Feature.CONSOLE_STREAM: ("open_console",),
        Feature.GUEST_EXEC: ("guest_exec",),
        Feature.GUEST_FILES: ("guest_read_file", "guest_write_file"),
        Feature.RECONFIGURE: ("reconfigure",),
        Feature.DISK_RESIZE: ("resize_disk",),
        Feature.STORAGE: ("pools", "volumes"),
        Feature.IMAGE_UPLOAD: ("upload_image",),
        Feature.IMAGE_DOWNLOAD: ("download_image",),
        Feature.POOL_WRITE: ("create_pool", "delete_pool"),
        Feature.VOLUME_WRITE: ("create_volume", "delete_volume"),
        Feature.VOLUME_RESIZE: ("resize_volume",),
        Feature.NETWORK_WRITE: ("create_network", "delete_network"),
        Feature.STATS: ("stats",),
        Feature.GRAPHICS: ("graphics",),
        Feature.SCREENSHOT: ("screenshot",),
        Feature.HOST_DEVICES: ("host_devices",),
    }
)
"""Features a backend declares by overriding these methods (all of them)."""

OPTION_FEATURES: Mapping[Feature, Feature | None] = MappingProxyType(
    {
        Feature.SHUTDOWN_ACPI: None,
        Feature.SHUTDOWN_AGENT: None,
        Feature.DELETE_STORAGE: None,
        Feature.DIRECT_KERNEL_BOOT: None,
        Feature.UEFI: None,
        Feature.SECURE_BOOT: Feature.UEFI,
        Feature.ACCELERATOR_CHOICE: None,
        Feature.ARCHITECTURE_CHOICE: None,
        Feature.READONLY_DISK: None,
        Feature.SNAPSHOT_MEMORY: Feature.SNAPSHOTS,
        Feature.SNAPSHOT_DESCRIPTION: Feature.SNAPSHOTS,
        Feature.DISK_HOTPLUG: Feature.DISK_ATTACH,
        Feature.NIC_HOTPLUG: Feature.NIC_ATTACH,
        Feature.DISK_CLONE_LINKED: Feature.CREATE,
        Feature.DISK_CLONE_COPY: Feature.CREATE,
        Feature.CLOUD_INIT: Feature.CREATE,
        Feature.DYNAMIC_MEMORY: Feature.CREATE,
        Feature.USER_NETWORKING: Feature.CREATE,
        Feature.NAT_FORWARDING: Feature.CREATE,
        Feature.MEMORY_BUFFER: Feature.DYNAMIC_MEMORY,
        Feature.RECONFIGURE_LIVE_CPUS: Feature.RECONFIGURE,
        Feature.RECONFIGURE_LIVE_MEMORY: Feature.RECONFIGURE,
        Feature.NETWORK_ISOLATED: Feature.NETWORK_WRITE,
        Feature.NETWORK_INTERNAL: Feature.NETWORK_WRITE,
        Feature.NETWORK_NAT: Feature.NETWORK_WRITE,
        Feature.NETWORK_EXTERNAL: Feature.NETWORK_WRITE,
        Feature.NETWORK_ADDRESSES: Feature.NETWORK_WRITE,
        Feature.GUEST_LOGIN: Feature.GUEST_EXEC,
        Feature.GRAPHICS_VNC: Feature.CREATE,
        Feature.GRAPHICS_SPICE: Feature.CREATE,
        Feature.GRAPHICS_NONE: Feature.CREATE,
        Feature.GRAPHICS_PASSWORD: Feature.CREATE,
        Feature.VIDEO_VIRTIO: Feature.CREATE,
        Feature.VIDEO_QXL: Feature.CREATE,
        Feature.VIDEO_VGA: Feature.CREATE,
        Feature.VIDEO_BOCHS: Feature.CREATE,
        Feature.VIDEO_NONE: Feature.CREATE,
        Feature.TPM: Feature.CREATE,
        Feature.NESTED_VIRTUALIZATION: Feature.CREATE,
        Feature.PCI_PASSTHROUGH: Feature.HOST_DEVICES,
        Feature.USB_PASSTHROUGH: Feature.HOST_DEVICES,
    }
)
"""Features that are options of other calls, each with the feature it builds on (or None).

A backend lists the ones it supports in :attr:`Backend.option_features`.
"""


class Backend(abc.ABC):
    """One open connection to one hypervisor host."""

    #: The backend's name in messages ("libvirt", "Hyper-V").
    name: ClassVar[str] = "this backend"

    #: The option features (:data:`OPTION_FEATURES`) this backend supports; method features are derived.
    option_features: ClassVar[frozenset[Feature]] = frozenset()

    #: If set, the core repeats :meth:`shutdown` this often while waiting, for guests that miss the first
    #: request (an ACPI press while the guest is still booting is lost on most hypervisors). A backend may set
    #: it per connection, when it depends on the driver.
    shutdown_retry_interval: float | None = None

    #: Whether the hypervisor keeps its VMs only while connections to it are open (libvirt's test driver,
    #: ``memory://``, which live in the connecting process or in libvirtd's): what a process did through it is
    #: gone once the process exits. A backend may set it per connection, when it depends on the driver.
    ephemeral: bool = False

    #: Why the probe took features away on this connection ("KVM is not usable here ..."), by feature: the core
    #: puts the reason into the UnsupportedError a call for one of them raises, and ``polyvisor host`` shows it.
    feature_reasons: Mapping[Feature, str] = MappingProxyType({})

    uri: URI

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        problems = feature_declaration_problems(cls)
        if problems:
            raise TypeError(f"{cls.__qualname__} declares its features inconsistently: {'; '.join(problems)}")

    @classmethod
    def import_dependencies(cls, uri: URI) -> None:
        """Import now, on the calling thread, every module a connection to ``uri`` would import on first use.

        :class:`~polyvisor.Fleet` calls it before it fans out: first imports racing on several threads can
        deadlock (``_DeadlockError``). A backend that imports its client libraries lazily overrides it.
        """
        return  # by default, importing the backend's module imports all it needs

    # -- capabilities ---------------------------------------------------------------------------------------
    @classmethod
    def static_features(cls) -> frozenset[Feature]:
        """The features this class implements: overridden method features plus :attr:`option_features`."""
        implemented = {
            feature
            for feature, methods in METHOD_FEATURES.items()
            if all(getattr(cls, name) is not getattr(Backend, name) for name in methods)
        }
        return frozenset(implemented | cls.option_features)

    def probe_features(self) -> frozenset[Feature] | None:
        """Narrow :meth:`static_features` for this host (None: no narrowing). Called once, at connect."""
        return None

    def probe_vm_features(self, uuid: str) -> frozenset[Feature] | None:
        """Narrow the connection's features for one VM (None: no narrowing)."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; must be safe to call twice."""

    # -- host -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def host_info(self) -> HostInfo:
        """Return facts about the host."""

    def networks(self) -> list[NetworkInfo]:
        """Return the networks or switches VMs can attach to (with their mode and subnet where known)."""
        raise UnsupportedError("this backend does not list networks", feature=Feature.NETWORKS)

    def host_devices(self) -> list[HostDevice]:
        """Return the host's PCI and USB devices a VM can be given, each with the VM that has it (``used_by``)."""
        raise UnsupportedError("listing host devices is not supported", feature=Feature.HOST_DEVICES)

    def create_network(self, spec: NetworkSpec, deadline: Deadline) -> NetworkInfo:
        """Create the network (libvirt: define, start, autostart) or switch; on failure leave nothing behind.

        The core has checked the spec against the declared mode features and the host's other networks (no name
        taken, no subnet overlapping)."""
        raise UnsupportedError("creating networks is not supported", feature=Feature.NETWORK_WRITE)

    def delete_network(self, name: str, deadline: Deadline) -> None:
        """Delete the network named exactly ``name``; one a VM's NIC is on is InUseError naming the VMs."""
        raise UnsupportedError("deleting networks is not supported", feature=Feature.NETWORK_WRITE)

    # -- inventory --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def list_vms(self) -> list[VMInfo]:
        """Return every VM in a constant number of round trips; details only where they come in bulk."""

    @abc.abstractmethod
    def lookup(self, ref: str) -> VMInfo:
        """Return the VM whose UUID or name is ``ref`` (details optional); raise NotFoundError."""

    @abc.abstractmethod
    def info(self, uuid: str) -> VMInfo:
        """Return fresh facts about the VM with this UUID, details included."""

    def status(self, uuid: str) -> VMStatus:
        """Return the VM's status (override when cheaper than :meth:`lookup`)."""
        return self.lookup(uuid).status

    # -- lifecycle primitives (called only from states the contract allows) ----------------------------------
    @abc.abstractmethod
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        """Define the VM (stopped); on failure leave nothing behind.

        The core has checked the spec against the declared features, and its ``host_devices`` against
        :meth:`host_devices` (each listed, of a bus the connection passes through, and no other VM's)."""

    @abc.abstractmethod
    def start(self, uuid: str, deadline: Deadline) -> None:
        """Power on, or restore saved memory when there is some; a restored VM must end up running."""

    @abc.abstractmethod
    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        """Ask the guest to shut down; never power off. May return before the guest is off."""

    @abc.abstractmethod
    def stop(self, uuid: str, deadline: Deadline) -> None:
        """Power off at once."""

    def reset(self, uuid: str, deadline: Deadline) -> None:
        """Hard reset."""
        raise UnsupportedError("hard reset is not supported", feature=Feature.RESET)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """Ask the guest to reboot."""
        raise UnsupportedError("graceful reboot is not supported", feature=Feature.REBOOT)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        """Freeze the VM in host memory."""
        raise UnsupportedError("pause is not supported", feature=Feature.PAUSE)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        """Unfreeze a paused VM."""
        raise UnsupportedError("resume is not supported", feature=Feature.PAUSE)

    def save(self, uuid: str, deadline: Deadline) -> None:
        """Save memory to disk and stop; :meth:`start` must bring it back running, also if it was paused."""
        raise UnsupportedError("save is not supported", feature=Feature.SAVE)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        """Throw away saved memory."""
        raise UnsupportedError("saved state is not supported", feature=Feature.SAVE)

    @abc.abstractmethod
    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Remove the VM (and its saved state and snapshot metadata); its volumes only if ``storage``."""

    # -- labels -------------------------------------------------------------------------------------------------
    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        """Replace all labels of the VM (the core serializes read-modify-write updates)."""
        raise UnsupportedError("labels are not supported", feature=Feature.LABELS)

    # -- snapshots ----------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        """Take a snapshot."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        """Return every snapshot of the VM."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        """Revert to a snapshot, to the power state recorded in it."""
        raise UnsupportedError("snapshots are not supported", feature=Feature.SNAPSHOTS)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
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

    address_sources: ClassVar[tuple[str, ...]] = ()
    """The address sources this backend knows, in the order :meth:`polyvisor.VM.wait_for_address` asks them by default
    (libvirt: ``agent``, ``lease``, ``arp``; Hyper-V: ``kvp``)."""

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """Return guest addresses, trying sources in order."""
        raise UnsupportedError("guest addresses are not supported", feature=Feature.GUEST_ADDRESSES)

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        """Ask each source in turn and say what it answered: addresses, or why there were none.

        The default asks :meth:`addresses` one source at a time and reports an error's message as the detail;
        override it to explain better ("agent not connected", "no lease for 52:54:00:..").
        """
        answers = []
        for source in sources:
            try:
                found = tuple(self.addresses(uuid, (source,)))
            except PolyvisorError as error:
                answers.append(AddressAnswer(source, (), error.message))
                continue
            answers.append(AddressAnswer(source, found, "" if found else "no addresses yet"))
        return answers

    ready_sources: ClassVar[tuple[str, ...]] = ()
    """The readiness sources this backend knows, in the order :meth:`polyvisor.VM.wait_until_ready` asks them
    (libvirt: ``cloud-init``, read through the guest agent; Hyper-V: ``heartbeat``). The core adds ``ssh``."""

    def ready_answers(self, uuid: str, sources: Sequence[str], deadline: Deadline) -> list[ReadyAnswer]:
        """Ask each source whether the guest finished initializing; one answer per source, in order.

        An answer that is not ready says why (``detail``), and whether waiting can change it (``unavailable``
        when it cannot: no agent channel, a disabled integration service). Raise only when the VM or the
        connection is gone; no call may outlive ``deadline``.
        """
        raise UnsupportedError("readiness is not supported", feature=Feature.READINESS)

    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        """Change CPUs and/or memory: in the stored definition (``live=False``, VM stopped) or on the running VM
        (``live=True``, within the maximum it started with).

        Raise :class:`~polyvisor.errors.ValidationError` for values the VM cannot take (above a maximum, below a
        dynamic-memory minimum), naming the limit.
        """
        raise UnsupportedError("reconfiguring CPUs and memory is not supported", feature=Feature.RECONFIGURE)

    def disks(self, uuid: str) -> list[DiskInfo]:
        """Return the VM's hard disks (not CD-ROMs) with their virtual sizes, in the VM's order."""
        raise UnsupportedError("listing disks with their sizes is not supported", feature=Feature.DISK_RESIZE)

    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        """Grow the disk with this target name to ``size_mib``; a smaller size raises ValidationError (never shrink)."""
        raise UnsupportedError("resizing disks is not supported", feature=Feature.DISK_RESIZE)

    def console_output(self, uuid: str) -> str:
        """Return what the guest wrote to its serial console so far."""
        raise UnsupportedError("console output is not supported", feature=Feature.CONSOLE)

    # -- inside the guest: its serial console, commands and files -----------------------------------------------
    # The core has checked the VM runs, the arguments (:mod:`polyvisor.guestexec`) and the credentials: given
    # exactly when the backend declares ``guest-login``.
    def open_console(self, uuid: str, *, force: bool, deadline: Deadline) -> ConsoleChannel:
        """Open the guest's serial console; one open elsewhere is InUseError unless ``force`` takes it over."""
        raise UnsupportedError("serial console streams are not supported", feature=Feature.CONSOLE_STREAM)

    def guest_exec(
        self,
        uuid: str,
        argv: tuple[str, ...],
        stdin: bytes,
        credentials: GuestCredentials | None,
        deadline: Deadline,
    ) -> ExecResult:
        """Run ``argv`` (never joined into shell text) with ``stdin``, wait for its end within ``deadline`` and
        return its exit status and output; on timeout say whether the process may still run in the guest."""
        raise UnsupportedError("commands in the guest are not supported", feature=Feature.GUEST_EXEC)

    def guest_read_file(
        self, uuid: str, path: str, limit: int, credentials: GuestCredentials | None, deadline: Deadline
    ) -> bytes:
        """Return the bytes of the guest's file at ``path``: NotFoundError if absent, ValidationError past ``limit``."""
        raise UnsupportedError("copying files out of the guest is not supported", feature=Feature.GUEST_FILES)

    def guest_write_file(
        self, uuid: str, path: str, data: bytes, credentials: GuestCredentials | None, deadline: Deadline
    ) -> None:
        """Write ``data`` to the guest's file at ``path``, replacing it (its directory must exist)."""
        raise UnsupportedError("copying files into the guest is not supported", feature=Feature.GUEST_FILES)

    # -- the screen (called only for a running or paused VM) -------------------------------------------------------
    def graphics(self, uuid: str) -> GraphicsInfo:
        """Say how a viewer on the caller's machine reaches the VM's screen: the live protocol, address and port
        (an automatic port as the running VM has it), and the tunnel a remote host's loopback needs. Never the
        password."""
        raise UnsupportedError("graphics are not supported", feature=Feature.GRAPHICS)

    def screenshot(self, uuid: str, deadline: Deadline) -> bytes:
        """Return the VM's screen now as PNG bytes (:mod:`polyvisor.png` converts other formats)."""
        raise UnsupportedError("screenshots are not supported", feature=Feature.SCREENSHOT)

    # -- storage --------------------------------------------------------------------------------------------------
    # Names reach these primitives validated (:func:`polyvisor.storage.validate_volume_name`, pool names as VM
    # names); ``pool=None`` is the host's default pool. A volume that is not there is NotFoundError.
    def pools(self) -> list[StoragePool]:
        """Return every pool, in a constant number of round trips."""
        raise UnsupportedError("storage pools are not supported", feature=Feature.STORAGE)

    def volumes(self, pool: str | None) -> list[Volume]:
        """Return every volume of a pool (unfinished uploads with ``partial=True``), in a constant number of round
        trips per pool."""
        raise UnsupportedError("storage pools are not supported", feature=Feature.STORAGE)

    def upload_image(
        self, image: LocalImage, pool: str | None, name: str, progress: Progress, deadline: Deadline
    ) -> Volume:
        """Copy the local image into the pool as ``name`` (AlreadyExistsError if taken): under a temporary name
        (:func:`polyvisor.storage.partial_name`) until complete, then renamed; on any failure nothing is left under
        the final name and the temporary one is removed. Report progress after each chunk."""
        raise UnsupportedError("uploading images is not supported", feature=Feature.IMAGE_UPLOAD)

    def download_image(
        self, pool: str | None, name: str, destination: str, progress: Progress, deadline: Deadline
    ) -> int:
        """Write the volume's bytes into the local file ``destination`` (made new by the caller); return its size."""
        raise UnsupportedError("downloading images is not supported", feature=Feature.IMAGE_DOWNLOAD)

    def create_pool(self, name: str, path: str | None, deadline: Deadline) -> StoragePool:
        """Create (and start) a directory pool at ``path`` (None: the backend's default place for ``name``)."""
        raise UnsupportedError("creating pools is not supported", feature=Feature.POOL_WRITE)

    def delete_pool(self, name: str, deadline: Deadline) -> None:
        """Delete an empty pool and its directory; a pool holding volumes is InUseError naming them."""
        raise UnsupportedError("deleting pools is not supported", feature=Feature.POOL_WRITE)

    def create_volume(self, pool: str | None, name: str, size: int, fmt: VolumeFormat, deadline: Deadline) -> Volume:
        """Create an empty volume of ``size`` bytes."""
        raise UnsupportedError("creating volumes is not supported", feature=Feature.VOLUME_WRITE)

    def delete_volume(self, pool: str | None, name: str, deadline: Deadline) -> None:
        """Delete a volume; one that a VM uses (directly, or as the base of its disk) is InUseError naming it."""
        raise UnsupportedError("deleting volumes is not supported", feature=Feature.VOLUME_WRITE)

    def resize_volume(self, pool: str | None, name: str, size: int, deadline: Deadline) -> Volume:
        """Grow a volume to ``size`` bytes (the core refuses shrinking)."""
        raise UnsupportedError("resizing volumes is not supported", feature=Feature.VOLUME_RESIZE)

    def stats(self, uuids: Sequence[str] | None) -> list[VMStats]:
        """Sample the counters of these VMs (None: every VM) in a constant number of round trips, within
        :meth:`Deadline.current` (a read: no socket wait and no retry past it).

        A VM in ``uuids`` that no longer exists is left out. Give None, with the reason in ``missing``, for what the
        hypervisor cannot say (never a zero); see :mod:`polyvisor.metrics.counters`.
        """
        raise UnsupportedError("VM statistics are not supported", feature=Feature.STATS)

    # -- events ---------------------------------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> Subscription:
        """Deliver lifecycle events into ``sink`` until the returned callable is called.

        Override it only for native events (that declares :attr:`~polyvisor.model.Feature.EVENTS`); without it
        the core polls :meth:`list_vms`. When the connection drops, say so with :meth:`EventSink.dropped`, then
        report :meth:`EventSink.gap` once it is back, or :meth:`EventSink.fail` when it cannot come back within
        about a second: the core then keeps trying for the stream's reconnect window (subscribing again after a
        listing succeeds), so a backend need not wait longer itself.
        """
        raise UnsupportedError("native events are not supported", feature=Feature.EVENTS)


def feature_declaration_problems(cls: type[Backend]) -> list[str]:
    """Return what is inconsistent in a backend class's feature declaration (empty when nothing is)."""
    problems = []
    for feature, methods in METHOD_FEATURES.items():
        overridden = [name for name in methods if getattr(cls, name) is not getattr(Backend, name, None)]
        if overridden and len(overridden) != len(methods):
            missing = sorted(set(methods) - set(overridden))
            problems.append(f"{feature.value!r} needs {', '.join(methods)}; {', '.join(missing)} missing")
    for feature in cls.option_features:
        if not isinstance(feature, Feature):
            problems.append(f"{feature!r} is not a Feature")  # type: ignore[unreachable]  # a str at run time
        elif feature in METHOD_FEATURES:
            problems.append(f"{feature.value!r} is declared by overriding {', '.join(METHOD_FEATURES[feature])}")
        elif feature not in OPTION_FEATURES:
            problems.append(f"{feature.value!r} is in neither METHOD_FEATURES nor OPTION_FEATURES")
    static = cls.static_features() if not problems else frozenset()
    for feature in cls.option_features:
        base = OPTION_FEATURES.get(feature)
        if base is not None and base not in static:
            problems.append(f"{feature.value!r} builds on {base.value!r}, which is not implemented")
    return problems
