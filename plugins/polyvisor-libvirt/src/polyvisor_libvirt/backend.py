"""The libvirt backend: one :class:`LibvirtBackend` per open libvirt connection.

Listing reads states in bulk (``getAllDomainStats`` plus one ``listAllDomains`` filtered on managed-save images).
Definition facts (cpus, memory, labels, description) come from a per-connection cache of parsed domain XML that
libvirt's own events keep coherent: any lifecycle, metadata or device event for a domain drops its entry. So a
listing costs two calls plus one ``XMLDesc`` per domain not seen since it last changed, and two calls in the steady
state, whatever the number of VMs. Without events (a driver that cannot deliver them) nothing is cached.
"""

from __future__ import annotations

import contextlib
import logging
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import libvirt

from polyvisor.backend import Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import (
    InvalidStateError,
    PolyvisorError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.model import (
    DiskSpec,
    Feature,
    GuestAddress,
    HostInfo,
    NetworkInfo,
    NicSpec,
    PowerState,
    ShutdownMode,
    Snapshot,
    VMDetails,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.uri import URI
from polyvisor_libvirt import domainxml, planner
from polyvisor_libvirt.devices import Devices
from polyvisor_libvirt.domainxml import Definition, DomainPlan
from polyvisor_libvirt.probe import DRIVER_FEATURES, Firmwares, HostCaps, kvm_usable, parse_capabilities, probe_firmware
from polyvisor_libvirt.session import Session
from polyvisor_libvirt.snapshots import Snapshots
from polyvisor_libvirt.states import to_status

__all__ = ["LibvirtBackend"]

log = logging.getLogger("polyvisor.libvirt")
_T = TypeVar("_T")

_KNOWN_OPTIONS = frozenset({"readonly"})
_STATS = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON
_ADDRESS_SOURCES = {
    "agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
}


def _flag(name: str) -> int:
    # Older libvirt lacks some flags; a missing one contributes nothing.
    value: int = getattr(libvirt, name, 0)
    return value


class LibvirtBackend(Backend):
    """A polyvisor backend over one libvirt connection (any libvirt URI)."""

    name: ClassVar[str] = "libvirt"
    # Everything some libvirt driver can do; probe_features() narrows it to this connection's driver and host.
    option_features: ClassVar[frozenset[Feature]] = frozenset(
        {
            Feature.SHUTDOWN_ACPI,
            Feature.SHUTDOWN_AGENT,
            Feature.DELETE_STORAGE,
            Feature.DIRECT_KERNEL_BOOT,
            Feature.UEFI,
            Feature.SECURE_BOOT,
            Feature.ACCELERATOR_CHOICE,
            Feature.ARCHITECTURE_CHOICE,
            Feature.READONLY_DISK,
            Feature.SNAPSHOT_MEMORY,
            Feature.SNAPSHOT_DESCRIPTION,
            Feature.DISK_HOTPLUG,
            Feature.NIC_HOTPLUG,
        }
    )

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        unknown = sorted(set(credentials.options) - _KNOWN_OPTIONS)
        if unknown:
            raise ValidationError(
                f"the libvirt backend does not know the option(s) {', '.join(unknown)}; "
                f"it accepts username, password and {', '.join(sorted(_KNOWN_OPTIONS))}",
                field="options",
            )
        self.uri = uri
        self.host = uri.display_host
        self._session = Session(uri, credentials)
        self._snapshots = Snapshots(self._session)
        self._devices = Devices(self._session)
        # The running instance (domain ID) each agent shutdown request went to.
        self._agent_shutdowns: dict[str, int] = {}
        try:
            self._host_caps = self._read_host_caps()
            self._features = self._probe_features()
        except BaseException:
            self.close()  # no caller will ever close a backend that was not returned
            raise
        if uri.driver in ("qemu", "kvm"):
            # An ACPI press that arrives before the guest's ACPI daemon runs is lost: have the core repeat it.
            # The core declares this a ClassVar, but whether it applies depends on this connection's driver.
            self.shutdown_retry_interval = 2.0  # type: ignore[misc]

    # -- connection -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Deregister callbacks and close the connection; safe to call twice."""
        self._session.close()

    def subscribe(self, sink: EventSink) -> Subscription:
        """Lifecycle events (libvirt's, via the connection's one registration) until the returned callable runs."""
        self._session.live()
        if not self._session.events.available:
            return super().subscribe(sink)
        return self._session.events.subscribe(sink)

    def _read_host_caps(self) -> HostCaps:
        with self._session.errors("reading host capabilities", host=self.host):
            return parse_capabilities(self._session.conn.getCapabilities())

    def _probe_features(self) -> frozenset[Feature]:
        features = set(DRIVER_FEATURES.get(self.uri.driver, frozenset({Feature.CREATE, Feature.LABELS})))
        if self._session.events.available:
            features.add(Feature.EVENTS)
        with contextlib.suppress(libvirt.libvirtError):
            self._session.conn.listAllNetworks()
            features.add(Feature.NETWORKS)
        if self.uri.driver in ("qemu", "kvm"):
            firmware = self._firmware()
            if firmware.uefi:
                features.add(Feature.UEFI)
            if firmware.secure_boot:
                features.add(Feature.SECURE_BOOT)
            if self.uri.is_local:
                features.add(Feature.CONSOLE)
        if not self._has_pools():
            features.discard(Feature.DELETE_STORAGE)
        if len({guest.arch for guest in self._host_caps.guests}) > 1:
            features.add(Feature.ARCHITECTURE_CHOICE)
        return frozenset(features)

    def _firmware(self) -> Firmwares:
        arch = self._host_caps.arch
        virt_type = "kvm" if self._kvm_ok(arch) else "qemu"
        return probe_firmware(self._session.conn, local=self.uri.is_local, arch=arch, virt_type=virt_type)

    def _kvm_ok(self, arch: str) -> bool:
        return kvm_usable(self._session.conn, local=self.uri.is_local, arch=arch)

    def _has_pools(self) -> bool:
        try:
            self._session.conn.listAllStoragePools()
        except libvirt.libvirtError:
            return False
        return True

    # -- capabilities -----------------------------------------------------------------------------------------
    def probe_features(self) -> frozenset[Feature]:
        """The features of this connection's driver (probed at connect)."""
        return self._features

    def probe_vm_features(self, uuid: str) -> frozenset[Feature]:
        """Narrow the connection's features to what this VM's definition allows."""
        features = set(self._features)
        if self.uri.driver in ("qemu", "kvm"):
            definition = self._session.definition(self._session.domain(uuid), fresh=False)
            if not definition.guest_agent:
                features.discard(Feature.SHUTDOWN_AGENT)
            if not definition.serial_logs:
                features.discard(Feature.CONSOLE)
            disks = [disk for disk in definition.disks if disk.device == "disk"]
            if any(disk.format != "qcow2" for disk in disks) or definition.uefi:
                # Internal snapshots (the only revertible kind here) need qcow2 disks and no pflash NVRAM.
                features -= {Feature.SNAPSHOTS, Feature.SNAPSHOT_MEMORY, Feature.SNAPSHOT_DESCRIPTION}
        return frozenset(features)

    # -- host ----------------------------------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        """Facts from getInfo, getHostname, getVersion/getLibVersion and the capabilities."""
        conn = self._session.live()
        with self._session.errors("reading host facts", host=self.host):
            model, memory_mib, cpus, *_ = conn.getInfo()
            hostname = conn.getHostname()
            hypervisor = conn.getType()
            version = conn.getVersion()
            lib_version = conn.getLibVersion()
        return HostInfo(
            hostname=hostname,
            hypervisor=f"libvirt/{hypervisor}",
            hypervisor_version=_version(version),
            cpus=cpus,
            memory_mib=memory_mib,
            arch=self._host_caps.arch or model,
            extra=MappingProxyType({"libvirt_version": _version(lib_version), "driver": self.uri.driver}),
        )

    def networks(self) -> list[NetworkInfo]:
        """Every libvirt network."""
        conn = self._session.live()
        with self._session.errors("listing networks", host=self.host):
            return [
                NetworkInfo(name=net.name(), active=bool(net.isActive()), kind="libvirt-network", uuid=net.UUIDString())
                for net in conn.listAllNetworks()
            ]

    # -- inventory -----------------------------------------------------------------------------------------------
    def list_vms(self) -> list[VMInfo]:
        """Every domain in two bulk calls, whatever their number.

        Names, UUIDs and states come from the bulk calls. The details (CPUs, memory, labels, description) need
        the domain XML, which libvirt cannot return in bulk: they come from the definition cache when libvirt has
        not reported a change since it was read, and are otherwise left out (``details=None``; :meth:`info`
        reads them).
        """
        conn = self._session.live()
        with self._session.errors("listing VMs", host=self.host):
            try:
                stats = conn.getAllDomainStats(_STATS)
            except libvirt.libvirtError as error:
                if error.get_error_code() not in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
            saved = {dom.UUIDString() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
        out = []
        for dom, record in stats:
            uuid = dom.UUIDString()
            status = to_status(
                int(record.get("state.state", libvirt.VIR_DOMAIN_NOSTATE)),
                int(record.get("state.reason", 0)),
                managed_save=uuid in saved,
            )
            cached = self._session.cache.get(uuid)
            if cached is not None:
                out.append(self._info(cached, status, record))
                continue
            out.append(VMInfo(uuid, dom.name(), status, has_saved_state=status.state is PowerState.SAVED))
        return out

    def lookup(self, ref: str) -> VMInfo:
        """Find a domain by UUID or name: identity and status (details only when the cache has them)."""
        dom = self._session.domain(ref)
        uuid, name = dom.UUIDString(), dom.name()
        status = self._session.status(dom, name)
        cached = self._session.cache.get(uuid)
        if cached is not None:
            return self._info(cached, status, {})
        return VMInfo(uuid, name, status, has_saved_state=status.state is PowerState.SAVED)

    def info(self, uuid: str) -> VMInfo:
        """The domain with its details, read afresh (and kept in the cache for later listings)."""
        dom = self._session.domain(uuid)
        definition = self._session.definition(dom, fresh=True)
        return self._info(definition, self._session.status(dom, definition.name), {})

    def status(self, uuid: str) -> VMStatus:
        """The domain's state, reason and managed-save image, without reading its XML."""
        dom = self._session.domain(uuid)
        return self._session.status(dom, uuid)

    def _info(self, definition: Definition, status: VMStatus, record: Mapping[str, Any]) -> VMInfo:
        return VMInfo(
            definition.uuid,
            definition.name,
            status,
            has_saved_state=status.state is PowerState.SAVED,
            details=self._details(definition, record),
        )

    @staticmethod
    def _details(definition: Definition, record: Mapping[str, Any]) -> VMDetails:
        cpus = int(record.get("vcpu.current", definition.cpus))
        memory_kib = record.get("balloon.maximum")
        memory = int(memory_kib) // 1024 if memory_kib else definition.memory_mib
        return VMDetails(
            cpus=cpus,
            memory_mib=memory,
            labels=MappingProxyType(dict(definition.labels)),
            description=definition.description,
            extra=MappingProxyType(
                {
                    "arch": definition.arch,
                    "domain_type": definition.domain_type,
                    "owned_volumes": definition.owned_volumes,
                }
            ),
        )

    # -- creating ------------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        """Define the domain; on any failure, undefine it and delete the volumes made for it."""
        deadline.check("creating the VM", host=self.host, vm=spec.name)
        conn = self._session.live()
        created: list[libvirt.virStorageVol] = []
        dom: libvirt.virDomain | None = None
        try:
            plan = self._plan(spec, created)
            xml = domainxml.build_domain(plan)
            deadline.check("creating the VM", host=self.host, vm=spec.name)
            with self._session.errors("defining the VM", host=self.host, vm=spec.name):
                dom = conn.defineXML(xml)
            return self.info(plan.uuid)
        except BaseException:
            self._rollback(dom, created, spec.name)
            raise

    def _rollback(self, dom: libvirt.virDomain | None, volumes: list[libvirt.virStorageVol], name: str) -> None:
        if dom is not None:
            try:
                dom.undefineFlags(self._undefine_flags())
            except libvirt.libvirtError:
                log.warning("could not undefine the half-created VM %r on %s", name, self.host)
        self._devices.delete_volumes(volumes, name)

    def _plan(self, spec: VMSpec, created: list[libvirt.virStorageVol]) -> DomainPlan:
        """Resolve what needs the host (volumes are made here, in ``created``), then plan with the planner."""
        guest = planner.choose_guest(self._host_caps, spec, host=self.host)
        domain_type = planner.choose_domain_type(
            spec, guest, driver=self.uri.driver, kvm_usable=lambda: self._kvm_ok(guest.arch), host=self.host
        )
        new_uuid = str(uuid_module.uuid4())
        sources = [
            self._devices.disk_source(disk, f"{new_uuid}-disk{index}", spec.name, created)
            for index, disk in enumerate(spec.disks)
        ]
        if spec.cdrom is not None:
            self._devices.require_file(spec.cdrom, spec.name, "CD-ROM image")
        networks = [self._devices.network_name(nic, spec.name) for nic in spec.nics]
        return planner.plan_domain(
            spec,
            guest,
            uuid=new_uuid,
            domain_type=domain_type,
            driver=self.uri.driver,
            is_local=self.uri.is_local,
            disk_sources=sources,
            networks=networks,
        )

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self, uuid: str, deadline: Deadline) -> None:
        """create(): boots, or restores the managed-save image (a job the deadline bounds), ending running.

        libvirt restores the run state recorded in the image: one saved while paused (by another client, or
        before polyvisor saved with VIR_DOMAIN_SAVE_RUNNING) comes back paused, so it is resumed.
        """
        with self._session.acting(uuid, "starting the VM", deadline) as dom:
            if not dom.hasManagedSaveImage(0):
                dom.create()
                return
            self._session.bounded(dom, deadline, "restoring the saved VM", dom.create)
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                deadline.check("resuming the restored VM", host=self.host, vm=dom.name())
                dom.resume()

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        """Ask the guest to shut down (ACPI, agent, or the driver's default)."""
        flags = {
            ShutdownMode.DEFAULT: libvirt.VIR_DOMAIN_SHUTDOWN_DEFAULT,
            ShutdownMode.ACPI: libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
            ShutdownMode.AGENT: libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
        }[mode]
        with self._session.acting(uuid, f"shutting the VM down ({mode.value})", deadline) as dom:
            instance = dom.ID()
            if mode is ShutdownMode.AGENT and self._agent_shutdowns.get(uuid) == instance:
                # The core repeats requests for lost ACPI presses; the agent already has this one, and while
                # the guest goes down it stops answering, so a repeat could only fail.
                return
            try:
                dom.shutdownFlags(flags)
            except libvirt.libvirtError:
                if not dom.isActive():
                    return  # it stopped between the core's state check and this (repeated) request
                raise
            if mode is ShutdownMode.AGENT:
                self._agent_shutdowns[uuid] = instance

    def stop(self, uuid: str, deadline: Deadline) -> None:
        """destroy(): power off at once."""
        with self._session.acting(uuid, "powering the VM off", deadline) as dom:
            dom.destroy()

    def reset(self, uuid: str, deadline: Deadline) -> None:
        """Hard reset."""
        with self._session.acting(uuid, "resetting the VM", deadline) as dom:
            dom.reset(0)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """Ask the guest to reboot."""
        with self._session.acting(uuid, "rebooting the VM", deadline) as dom:
            dom.reboot(0)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        """suspend()."""
        with self._session.acting(uuid, "pausing the VM", deadline) as dom:
            dom.suspend()

    def resume(self, uuid: str, deadline: Deadline) -> None:
        """resume()."""
        with self._session.acting(uuid, "resuming the VM", deadline) as dom:
            dom.resume()

    def save(self, uuid: str, deadline: Deadline) -> None:
        """managedSave(): memory to disk, start() restores it running (a job the deadline bounds).

        VIR_DOMAIN_SAVE_RUNNING records "running" in the image even when the VM is paused now: the contract's
        start() from saved ends running.
        """
        with self._session.acting(uuid, "saving the VM", deadline) as dom:
            self._session.bounded(
                dom, deadline, "saving the VM", lambda: dom.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING)
            )

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        """managedSaveRemove()."""
        with self._session.acting(uuid, "discarding the saved state", deadline) as dom:
            dom.managedSaveRemove(0)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Undefine with managed save, snapshot/checkpoint metadata and NVRAM; volumes polyvisor made if asked.

        ``storage=True`` deletes the volumes polyvisor created for this VM (recorded in its metadata) and never
        a disk given as ``image=``: those belong to whoever brought them.
        """
        dom = self._session.domain(uuid)
        definition = self._session.definition(dom, fresh=True)
        volumes: list[libvirt.virStorageVol] = []
        if storage:
            for path in definition.owned_volumes:
                try:
                    volumes.append(self._session.conn.storageVolLookupByPath(path))
                except libvirt.libvirtError:
                    log.warning("volume %s of VM %r is already gone on %s", path, definition.name, self.host)
        self._refuse_active(dom, definition.name)
        deadline.check("deleting the VM", host=self.host, vm=definition.name)
        with self._session.errors(
            "deleting the VM", host=self.host, vm=definition.name, state=self._session.state_of(dom)
        ):
            try:
                dom.undefineFlags(self._undefine_flags())
            except libvirt.libvirtError as error:
                # Drivers that reject some flags (the test driver rejects NVRAM): retry with the portable ones.
                if error.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                )
            for volume in volumes:
                volume.delete(0)
        self._session.cache.drop(definition.uuid)
        self._remove_serial_logs(definition)

    def _refuse_active(self, dom: libvirt.virDomain, name: str) -> None:
        # libvirt undefines a running domain without complaint, leaving it running as a transient one (and its
        # volumes in use): a client that started it after the core's state check must not get that.
        with self._session.errors("checking the VM is stopped", host=self.host, vm=name):
            active = bool(dom.isActive())
        if active:
            state = self._session.status(dom, name).state
            raise InvalidStateError(
                f"cannot delete a VM that is {state.value}; it was started meanwhile: stop or shut it down first",
                state=state,
                accepted=(PowerState.STOPPED,),
                host=self.host,
                vm=name,
            )

    def _remove_serial_logs(self, definition: Definition) -> None:
        # The serial log files polyvisor named for this VM (see _plan); a file the user configured stays.
        if not self.uri.is_local:
            return
        for path in definition.serial_logs:
            if Path(path).name == f"{definition.uuid}-serial.log":
                with contextlib.suppress(FileNotFoundError):
                    Path(path).unlink()

    @staticmethod
    def _undefine_flags() -> int:
        flags: int = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | _flag("VIR_DOMAIN_UNDEFINE_NVRAM")
            | _flag("VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA")
        )
        return flags

    # -- labels --------------------------------------------------------------------------------------------------
    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        """Replace the labels element in the domain's metadata (live and persistent)."""
        with self._session.acting(uuid, "setting labels") as dom:
            xml = domainxml.labels_xml(labels) if labels else None
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                xml,
                domainxml.LABELS_PREFIX if xml else None,
                domainxml.LABELS_NS,
                self._session.affect(dom),
            )
            self._session.cache.drop(dom.UUIDString())

    # -- snapshots -----------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        """Take an internal snapshot (see :meth:`.snapshots.Snapshots.create`)."""
        return self._snapshots.create(uuid, name, memory=memory, description=description, deadline=deadline)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        """Every snapshot with its parent and whether it is current."""
        return self._snapshots.list(uuid)

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        """Revert; a snapshot taken without memory ends stopped."""
        self._snapshots.revert(uuid, name, deadline)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        """Delete one snapshot (its children move up) or the whole subtree."""
        self._snapshots.delete(uuid, name, children=children, deadline=deadline)

    # -- devices -------------------------------------------------------------------------------------------------
    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        """Create (or use) the disk and attach it at the next free target on its bus."""
        return self._devices.attach_disk(uuid, disk, live=live)

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        """Detach the disk with this target; the volume stays (delete(storage=True) removes owned ones)."""
        self._devices.detach_disk(uuid, target, live=live)

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        """Attach a NIC; a MAC is generated when none is given."""
        return self._devices.attach_nic(uuid, nic, live=live)

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        """Detach the NIC with this MAC."""
        self._devices.detach_nic(uuid, mac, live=live)

    # -- guest ---------------------------------------------------------------------------------------------------
    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """interfaceAddresses from each source in order; the first that answers with addresses wins."""
        dom = self._session.domain(uuid)
        last: PolyvisorError | None = None
        for source in sources:
            try:
                with self._session.errors(f"reading guest addresses ({source})", host=self.host, vm=dom.name()):
                    found = dom.interfaceAddresses(_ADDRESS_SOURCES[source], 0)
            except PolyvisorError as error:
                last = error
                continue
            out = [
                GuestAddress(
                    interface=name,
                    mac=(data.get("hwaddr") or None),
                    address=addr["addr"],
                    prefix=addr.get("prefix"),
                    source=source,
                )
                for name, data in sorted(found.items())
                for addr in data.get("addrs") or []
            ]
            if out:
                return out
        if last is not None and not isinstance(last, UnsupportedError):
            log.debug("no guest addresses for %s: %s", uuid, last)
        return []

    def console_output(self, uuid: str) -> str:
        """The serial log file of a local domain."""
        dom = self._session.domain(uuid)
        definition = self._session.definition(dom, fresh=False)
        if not definition.serial_logs or not self.uri.is_local:
            raise UnsupportedError(
                "this VM has no serial log file on this host; define it with a <serial> log",
                feature=Feature.CONSOLE,
                host=self.host,
                vm=definition.name,
            )
        try:
            with open(definition.serial_logs[0], "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""  # the guest has not run yet
        except OSError as error:
            raise PolyvisorError(
                f"cannot read the serial log {definition.serial_logs[0]}: {error}; check its permissions",
                host=self.host,
                vm=definition.name,
            ) from error


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, release = divmod(rest, 1000)
    return f"{major}.{minor}.{release}"
