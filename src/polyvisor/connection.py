"""Connections: the host-level calls every backend shares (capabilities, host facts, inventory, create, watch).

The rules of the contract live in the core, once, for every backend: what a VM handle does is in
:mod:`polyvisor.vm` and the verb engine (:mod:`polyvisor.verbs`), events in :mod:`polyvisor.events`. Backends only
provide primitives (:mod:`polyvisor.backend`).
"""

from __future__ import annotations

import builtins  # the name ``list`` is the listing method inside the class
import logging
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

from polyvisor import device_calls, network_calls, storage_calls
from polyvisor.backend import SYSTEM_CLOCK, Backend, Clock, Deadline
from polyvisor.backend import validate_timeout as _check_timeout
from polyvisor.calls import change, read
from polyvisor.errors import (
    AlreadyExistsError,
    ConnectionError,
    NotFoundError,
    ValidationError,
)
from polyvisor.events import RECONNECT_WITHIN, EventStream
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    Capabilities,
    CloneMode,
    Feature,
    Firmware,
    HostDevice,
    HostInfo,
    NetworkInfo,
    NetworkMode,
    NicKind,
    VMInfo,
    VMSpec,
)
from polyvisor.storage import Progress, StoragePool, Volume, VolumeFormat
from polyvisor.storage_calls import TRANSFER_TIMEOUT
from polyvisor.uri import URI
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT
from polyvisor.verbs.display import display_needs
from polyvisor.vm import VM

__all__ = ["Connection"]

log = logging.getLogger("polyvisor")


class Connection:
    """An open connection to one hypervisor host. Use as a context manager, or call :meth:`close`."""

    def __init__(self, backend: Backend, uri: URI, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._backend: Backend | None = backend
        self.uri = uri
        self._clock = clock
        static = type(backend).static_features()
        probed = backend.probe_features()
        features = static if probed is None else static & probed
        reasons = {feature: why for feature, why in backend.feature_reasons.items() if feature not in features}
        self._capabilities = Capabilities(
            frozenset(features), backend=type(backend).name, reasons=MappingProxyType(reasons)
        )
        self._ephemeral = backend.ephemeral
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._retired = False

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else "open"
        return f"<polyvisor.Connection {self.uri.render()} {state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        """The backend object (for backend-specific extras); raises once the connection is closed."""
        if self._backend is None:
            raise ConnectionError("the connection is closed; open a new one with polyvisor.connect()", host=self.host)
        return self._backend

    @property
    def clock(self) -> Clock:
        """The clock the deadlines and waits of this connection's calls read; a test may set a fake one."""
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock

    @property
    def host(self) -> str:
        """The host name as messages show it."""
        return self.uri.display_host

    @property
    def closed(self) -> bool:
        """Return whether :meth:`close` was called."""
        return self._backend is None

    @property
    def ephemeral(self) -> bool:
        """Whether the hypervisor keeps its VMs only while connections to it are open (libvirt's test driver,
        ``memory://``), so that what a process does through it is gone once the process exits."""
        return self._ephemeral

    def close(self) -> None:
        """Close the connection and every event stream still open on it; calling it again does nothing."""
        self._retired = False  # closing its streams must not close it again
        if self._backend is not None:
            for stream in list(self._streams):
                stream.close()
            backend, self._backend = self._backend, None
            backend.close()

    # -- capabilities and host --------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """The features this connection supports (known since connect: no round trip)."""
        return self._capabilities

    def supports(self, feature: Feature) -> bool:
        """Return whether the connection declares ``feature``."""
        return self._capabilities.supports(feature)

    # Every call that talks to the host takes a ``timeout`` (seconds, DEFAULT_TIMEOUT unless told): it returns or
    # raises TimeoutError within it (+1 s), whatever the network between here and the host does.
    def host_info(self, *, timeout: float = DEFAULT_TIMEOUT) -> HostInfo:
        """Return facts about the host."""
        return read(self, lambda b: b.host_info(), self._deadline(timeout))

    def networks(self, *, timeout: float = DEFAULT_TIMEOUT) -> list[NetworkInfo]:
        """Return the networks (libvirt) or virtual switches (Hyper-V) VMs can attach to."""
        self._capabilities.require(Feature.NETWORKS, host=self.host)
        return read(self, lambda b: b.networks(), self._deadline(timeout))

    def host_devices(self, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[HostDevice]:
        """Return the host's PCI and USB devices a VM can be given (``VMSpec.host_devices``), each naming the VM that
        has it (``used_by``)."""
        return device_calls.host_devices(self, self._deadline(timeout))

    def _deadline(self, timeout: float) -> Deadline:
        _check_timeout(timeout)
        return Deadline(timeout, self._clock)

    def create_network(
        self,
        name: str,
        mode: NetworkMode | str = NetworkMode.ISOLATED,
        *,
        subnet: str | None = None,
        adapter: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> NetworkInfo:
        """Create a network (libvirt) or virtual switch (Hyper-V) and return it, ready for VMs' NICs.

        ``mode`` says who it connects (:class:`~polyvisor.model.NetworkMode`; each is a capability). ``subnet`` gives an
        ``internal`` or ``nat`` network its IPv4 range where the connection declares ``network-addresses``;
        ``adapter`` names the host adapter an ``external`` switch is bound to. A failure leaves nothing behind.
        """
        return network_calls.create_network(self, name, mode, subnet, adapter, timeout)

    def delete_network(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a network or switch; one a VM's NIC is on raises InUseError naming the VMs."""
        network_calls.delete_network(self, name, timeout)

    # -- inventory -------------------------------------------------------------------------------------------
    def list(self, *, details: bool = False, timeout: float = DEFAULT_TIMEOUT) -> list[VMInfo]:
        """Return every VM as plain values (one bulk query, whatever their number).

        With ``details``, CPUs, memory, labels and description are read too; on backends that cannot list
        them in bulk (libvirt) that costs one more call per VM, all within the one ``timeout``.
        """
        deadline = self._deadline(timeout)
        infos = read(self, lambda b: b.list_vms(), deadline)
        if not details:
            return infos
        out = []
        for info in infos:
            if info.details is None:
                try:
                    info = self._info(info.uuid, deadline)
                except NotFoundError:
                    continue  # deleted since the listing
            out.append(info)
        return out

    def stats(self, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[VMStats]:
        """Return one sample of every VM's counters, in one bulk query (see :mod:`polyvisor.metrics`)."""
        self._capabilities.require(Feature.STATS, host=self.host)
        return read(self, lambda b: b.stats(None), self._deadline(timeout))

    def _info(self, uuid: str, deadline: Deadline) -> VMInfo:
        return read(self, lambda b: b.info(uuid), deadline)

    def vm(self, ref: str | VMInfo, *, timeout: float = DEFAULT_TIMEOUT) -> VM:
        """Return a handle on the VM with this UUID or name, or from a listing entry (no round trip).

        Raise :class:`~polyvisor.errors.NotFoundError` if there is none.
        """
        if isinstance(ref, VMInfo):
            return VM(self, ref.uuid, ref.name)
        if not isinstance(ref, str) or not ref:
            raise ValidationError("give a VM name or UUID", field="vm")
        info = read(self, lambda b: b.lookup(ref), self._deadline(timeout))
        return VM(self, info.uuid, info.name)

    def exists(self, ref: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Return whether a VM with this UUID or name exists."""
        try:
            read(self, lambda b: b.lookup(ref), self._deadline(timeout))
        except NotFoundError:
            return False
        return True

    # -- creating --------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec | Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> VM:
        """Create (define) a stopped VM from a spec; a failure leaves nothing behind."""
        if not isinstance(spec, VMSpec):
            spec = VMSpec.from_dict(spec)
        deadline = self._deadline(timeout)
        caps = self._capabilities
        caps.require(Feature.CREATE, host=self.host)
        for needed, feature in (
            (spec.kernel is not None, Feature.DIRECT_KERNEL_BOOT),
            (spec.firmware is Firmware.UEFI, Feature.UEFI),
            (spec.secure_boot, Feature.SECURE_BOOT),
            (spec.accelerator is not None, Feature.ACCELERATOR_CHOICE),
            (bool(spec.labels), Feature.LABELS),
            (any(disk.readonly for disk in spec.disks), Feature.READONLY_DISK),
            (any(disk.clone is CloneMode.LINKED for disk in spec.disks), Feature.DISK_CLONE_LINKED),
            (any(disk.clone is CloneMode.COPY for disk in spec.disks), Feature.DISK_CLONE_COPY),
            (spec.cloud_init is not None, Feature.CLOUD_INIT),
            (spec.dynamic_memory is not None, Feature.DYNAMIC_MEMORY),
            (any(nic.kind is NicKind.USER for nic in spec.nics), Feature.USER_NETWORKING),
            (any(nic.kind is NicKind.NAT for nic in spec.nics), Feature.NAT_FORWARDING),
            (spec.dynamic_memory is not None and spec.dynamic_memory.buffer_percent is not None, Feature.MEMORY_BUFFER),
            *display_needs(spec),
            (spec.tpm is not None, Feature.TPM),
            (spec.nested_virtualization, Feature.NESTED_VIRTUALIZATION),
        ):
            if needed:
                caps.require(feature, host=self.host)
        if spec.arch is not None and not caps.supports(Feature.ARCHITECTURE_CHOICE):
            host_arch = read(self, lambda b: b.host_info(), deadline).arch
            if spec.arch.value != host_arch:
                caps.require(Feature.ARCHITECTURE_CHOICE, host=self.host)
        device_calls.check_spec_devices(self, spec, deadline)
        if self.exists(spec.name, timeout=deadline.remaining()):
            raise AlreadyExistsError(
                f"a VM named {spec.name!r} already exists; pick another name or delete it first",
                host=self.host,
                vm=spec.name,
            )
        info = change(self, lambda b: b.create(spec, deadline), "creating the VM", spec.name, deadline)
        log.info("created VM %r (%s) on %s", info.name, info.uuid, self.host)
        return VM(self, info.uuid, info.name)

    # -- storage (the rules are in polyvisor.storage_calls) --------------------------------------------------
    def pools(self, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[StoragePool]:
        """Return the host's storage pools (Hyper-V: its disk and VM paths and image folders) as values."""
        return storage_calls.pools(self, timeout)

    def volumes(self, pool: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[Volume]:
        """Return the volumes of a pool (the default pool without ``pool``), with format and sizes, in one listing."""
        return storage_calls.volumes(self, pool, timeout)

    def upload_image(
        self,
        local_path: str | os.PathLike[str],
        *,
        pool: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        timeout: float = TRANSFER_TIMEOUT,
    ) -> Volume:
        """Upload a local image file into a pool as ``name`` (default: the file's name); return the new volume,
        which a disk spec's ``image`` takes as it is.

        Only a complete upload appears under ``name``: an interrupted one (deadline, dropped connection, killed
        client) leaves nothing there. ``progress`` receives a :class:`~polyvisor.storage.TransferProgress` after
        each chunk.
        """
        return storage_calls.upload_image(self, local_path, pool, name, progress, timeout)

    def download_image(
        self,
        name: str,
        local_path: str | os.PathLike[str],
        *,
        pool: str | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        timeout: float = TRANSFER_TIMEOUT,
    ) -> Path:
        """Download a volume into a local file (or into a directory, under its name); return the file's path.

        The file appears only once complete; an existing one is replaced only with ``overwrite``.
        """
        return storage_calls.download_image(self, name, local_path, pool, overwrite, progress, timeout)

    def create_pool(self, name: str, *, path: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> StoragePool:
        """Create a directory pool (libvirt) or an image folder under the host's virtual hard disk path (Hyper-V)."""
        return storage_calls.create_pool(self, name, path, timeout)

    def delete_pool(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete an empty pool and its directory; one that still holds volumes raises InUseError naming them."""
        storage_calls.delete_pool(self, name, timeout)

    def create_volume(
        self,
        name: str,
        size_mib: int,
        *,
        pool: str | None = None,
        format: VolumeFormat | str = VolumeFormat.QCOW2,  # noqa: A002  # the word users know
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Volume:
        """Create an empty volume of ``size_mib`` MiB (qcow2 by default; Hyper-V makes VHDX or VHD)."""
        return storage_calls.create_volume(self, name, size_mib, pool, format, timeout)

    def resize_volume(
        self, name: str, size_mib: int, *, pool: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Volume:
        """Grow a volume to ``size_mib`` MiB; a smaller size raises ValidationError (volumes never shrink)."""
        return storage_calls.resize_volume(self, name, size_mib, pool, timeout)

    def delete_volume(self, name: str, *, pool: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a volume (an unfinished upload's too); one a VM uses raises InUseError naming the VM."""
        storage_calls.delete_volume(self, name, pool, timeout)

    # -- events ------------------------------------------------------------------------------------------------
    def watch(self, *, reconnect_within: float = RECONNECT_WITHIN) -> EventStream:
        """Return a stream of lifecycle events; iterate it, and close it (or use ``with``).

        Closing the connection closes the stream too. When the link drops, the stream keeps trying to reconnect
        for ``reconnect_within`` seconds (0: not at all); once back it yields an event of kind ``gap`` (``since``
        and ``until`` bound the outage) followed by events re-reading every VM whose state changed meanwhile. A
        stream that cannot come back in time raises :class:`~polyvisor.errors.ConnectionLostError` from iteration.
        """
        stream = EventStream(self, reconnect_within=reconnect_within, on_close=self._stream_closed)
        self._streams.add(stream)
        return stream

    def retire(self) -> None:
        """Close the connection once no event stream is open on it: at once if none is, else when the last closes.

        For a pool that stops reusing the connection (:class:`polyvisor.Fleet` after a dropped link) while a caller
        still watches through it: the stream carries on, reconnecting as streams do.
        """
        self._retired = True
        self._stream_closed()

    def _stream_closed(self) -> None:
        if self._retired and all(stream.closed for stream in list(self._streams)):
            self.close()
