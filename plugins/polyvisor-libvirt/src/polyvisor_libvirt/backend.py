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
import os
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import libvirt

from polyvisor.backend import Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import (
    InvalidStateError,
    NotFoundError,
    PolyvisorError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.model import (
    DiskFormat,
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
from polyvisor_libvirt.domainxml import Definition, DiskDevice, DomainPlan, NicDevice
from polyvisor_libvirt.probe import DRIVER_FEATURES, Firmwares, HostCaps, kvm_usable, parse_capabilities, probe_firmware
from polyvisor_libvirt.session import Session
from polyvisor_libvirt.snapshots import Snapshots
from polyvisor_libvirt.states import to_status

__all__ = ["LibvirtBackend"]

log = logging.getLogger("polyvisor.libvirt")
_T = TypeVar("_T")

_KNOWN_OPTIONS = frozenset({"readonly"})
_EXTENSIONS = {DiskFormat.QCOW2: "qcow2", DiskFormat.RAW: "img", DiskFormat.VHDX: "vhdx", DiskFormat.VHD: "vhd"}
_QEMU_FORMATS = {DiskFormat.QCOW2: "qcow2", DiskFormat.RAW: "raw", DiskFormat.VHDX: "vhdx", DiskFormat.VHD: "vpc"}
_FORMAT_BY_SUFFIX = {".qcow2": "qcow2", ".img": "raw", ".raw": "raw", ".iso": "raw", ".vhdx": "vhdx", ".vhd": "vpc"}
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
        for volume in volumes:
            try:
                volume.delete(0)
            except libvirt.libvirtError:
                log.warning("could not delete volume %s created for VM %r on %s", volume.path(), name, self.host)

    def _plan(self, spec: VMSpec, created: list[libvirt.virStorageVol]) -> DomainPlan:
        """Resolve what needs the host (volumes are made here, in ``created``), then plan with the planner."""
        guest = planner.choose_guest(self._host_caps, spec, host=self.host)
        domain_type = planner.choose_domain_type(
            spec, guest, driver=self.uri.driver, kvm_usable=lambda: self._kvm_ok(guest.arch), host=self.host
        )
        new_uuid = str(uuid_module.uuid4())
        sources = [
            self._disk_source(disk, f"{new_uuid}-disk{index}", spec.name, created)
            for index, disk in enumerate(spec.disks)
        ]
        if spec.cdrom is not None:
            self._require_file(spec.cdrom, spec.name, "CD-ROM image")
        networks = [self._network_name(nic, spec.name) for nic in spec.nics]
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

    def _network_name(self, nic: NicSpec, vm: str) -> str:
        if nic.network is not None:
            conn = self._session.live()
            with self._session.errors(f"finding network {nic.network!r}", host=self.host, vm=vm):
                try:
                    conn.networkLookupByName(nic.network)
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                        raise
                    raise NotFoundError(
                        f"no network named {nic.network!r}; list them with connection.networks()",
                        host=self.host,
                        vm=vm,
                    ) from error
            return nic.network
        names: list[str] = []
        with contextlib.suppress(libvirt.libvirtError):
            names = [net.name() for net in self._session.conn.listAllNetworks()]
        if "default" in names or not names:
            return "default"
        if len(names) == 1:
            return names[0]
        raise ValidationError(
            f"VM {vm!r}: this host has several networks ({', '.join(sorted(names))}) and none is called "
            "'default'; name one in the NIC spec",
            field="nic.network",
        )

    def _disk_source(
        self, disk: DiskSpec, volume_stem: str, vm: str, created: list[libvirt.virStorageVol]
    ) -> tuple[str, str]:
        if disk.image is not None:
            self._require_file(disk.image, vm, "disk image")
            fmt = _QEMU_FORMATS[disk.format] if disk.format else _guess_format(disk.image)
            return disk.image, fmt
        pool = self._pool(disk.pool, vm)
        fmt = disk.format or DiskFormat.QCOW2
        volume_xml = ET.Element("volume")
        ET.SubElement(volume_xml, "name").text = f"{volume_stem}.{_EXTENSIONS[fmt]}"
        ET.SubElement(volume_xml, "capacity", {"unit": "MiB"}).text = str(disk.size_mib)
        target = ET.SubElement(volume_xml, "target")
        ET.SubElement(target, "format", {"type": _QEMU_FORMATS[fmt]})
        with self._session.errors(
            f"creating a {disk.size_mib} MiB volume in pool {pool.name()!r}", host=self.host, vm=vm
        ):
            volume = pool.createXML(domainxml.to_text(volume_xml), 0)
            created.append(volume)
            return volume.path(), _QEMU_FORMATS[fmt]

    def _require_file(self, path: str, vm: str, what: str) -> None:
        """Refuse a missing image up front: known to a storage pool, or (on a local host) present on disk."""
        try:
            self._session.live().storageVolLookupByPath(path)
            return
        except libvirt.libvirtError:
            pass
        if not self.uri.is_local or Path(path).exists():
            return  # a remote host's files cannot be checked from here; libvirt reports them at start
        raise NotFoundError(
            f"the {what} {path!r} does not exist on this host; check the path (or create it) and retry",
            host=self.host,
            vm=vm,
        )

    def _pool(self, name: str | None, vm: str) -> libvirt.virStoragePool:
        conn = self._session.live()
        if name is not None:
            with self._session.errors(f"finding storage pool {name!r}", host=self.host, vm=vm):
                return conn.storagePoolLookupByName(name)
        with self._session.errors("listing storage pools", host=self.host, vm=vm):
            pools = conn.listAllStoragePools()
        by_name = {pool.name(): pool for pool in pools}
        if "default" in by_name:
            return by_name["default"]
        if len(pools) == 1:
            return pools[0]
        raise NotFoundError(
            f"no storage pool named 'default' (pools: {', '.join(sorted(by_name)) or 'none'}); "
            "create one (virsh pool-define-as default dir --target /var/lib/libvirt/images) or set disk.pool",
            host=self.host,
            vm=vm,
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
    def _change_device(self, uuid: str, element: ET.Element, *, live: bool, attach: bool, doing: str) -> None:
        dom = self._session.domain(uuid)
        xml = domainxml.to_text(element)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0)
        with self._session.errors(doing, host=self.host, vm=dom.name(), state=self._session.state_of(dom)):
            try:
                if attach:
                    dom.attachDeviceFlags(xml, flags)
                else:
                    dom.detachDeviceFlags(xml, flags)
            except libvirt.libvirtError as error:
                if live or error.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                # Drivers without device calls (the test driver): change the persistent definition instead.
                self._redefine_devices(dom, element, attach=attach)
        self._session.cache.drop(dom.UUIDString())

    def _redefine_devices(self, dom: libvirt.virDomain, element: ET.Element, *, attach: bool) -> None:
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        devices = root.find("devices")
        if devices is None:
            devices = ET.SubElement(root, "devices")
        if attach:
            devices.append(element)
        else:
            for child in list(devices):
                if _same_device(child, element):
                    devices.remove(child)
        self._session.live().defineXML(domainxml.to_text(root))

    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        """Create (or use) the disk and attach it at the next free target on its bus."""
        dom = self._session.domain(uuid)
        definition = self._session.definition(dom, fresh=True)
        used = {d.target for d in definition.disks}
        index = 0
        while domainxml.target_name(disk.bus, index) in used:
            index += 1
        target = domainxml.target_name(disk.bus, index)
        created: list[libvirt.virStorageVol] = []
        path, fmt = self._disk_source(disk, f"{definition.uuid}-{target}", definition.name, created)
        element = domainxml.disk_element(DiskDevice(path, target, disk.bus.value, fmt, readonly=disk.readonly))
        try:
            self._change_device(uuid, element, live=live, attach=True, doing=f"attaching disk {target}")
            if created:
                self._set_owned(dom, (*definition.owned_volumes, path))
        except BaseException:
            self._rollback(None, created, definition.name)
            raise
        return target

    def _set_owned(self, dom: libvirt.virDomain, paths: Sequence[str]) -> None:
        with self._session.errors("recording the VM's volumes", host=self.host, vm=dom.name()):
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                domainxml.owned_xml(paths) if paths else None,
                domainxml.STORAGE_PREFIX if paths else None,
                domainxml.STORAGE_NS,
                self._session.affect(dom),
            )
        self._session.cache.drop(dom.UUIDString())

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        """Detach the disk with this target; the volume stays (delete(storage=True) removes owned ones)."""
        dom = self._session.domain(uuid)
        definition = self._session.definition(dom, fresh=True)
        match = next((d for d in definition.disks if d.target == target), None)
        if match is None:
            raise NotFoundError(
                f"the VM has no disk {target!r} (it has {', '.join(d.target for d in definition.disks) or 'none'})",
                host=self.host,
                vm=definition.name,
            )
        element = self._device_element(dom, "disk", lambda el: _same_device(el, _target_probe(target)))
        self._change_device(uuid, element, live=live, attach=False, doing=f"detaching disk {target}")

    def _device_element(self, dom: libvirt.virDomain, tag: str, matches: Callable[[ET.Element], bool]) -> ET.Element:
        # libvirt matches a detach against the device as defined (a network NIC needs its source, a disk its
        # type), so hand it the device's own XML rather than a sketch of it.
        with self._session.errors("reading the VM definition", host=self.host, vm=dom.name()):
            root = ET.fromstring(dom.XMLDesc(0))
        found = next((el for el in root.iterfind(f"devices/{tag}") if matches(el)), None)
        if found is None:
            raise NotFoundError(f"the VM has no such {tag} any more", host=self.host, vm=dom.name())
        return found

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        """Attach a NIC; a MAC is generated when none is given."""
        dom = self._session.domain(uuid)
        mac = nic.mac or _random_mac()
        network = self._network_name(nic, dom.name())
        element = domainxml.nic_element(NicDevice(network, mac, nic.model))
        self._change_device(uuid, element, live=live, attach=True, doing=f"attaching a NIC on {network!r}")
        return mac

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        """Detach the NIC with this MAC."""
        dom = self._session.domain(uuid)
        definition = self._session.definition(dom, fresh=True)
        match = next((n for n in definition.nics if n.mac == mac), None)
        if match is None:
            raise NotFoundError(
                f"the VM has no NIC with MAC {mac} (it has {', '.join(n.mac for n in definition.nics) or 'none'})",
                host=self.host,
                vm=definition.name,
            )
        element = self._device_element(dom, "interface", lambda el: _same_device(el, _mac_probe(mac)))
        self._change_device(uuid, element, live=live, attach=False, doing=f"detaching NIC {mac}")

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

    # -- events --------------------------------------------------------------------------------------------------


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, release = divmod(rest, 1000)
    return f"{major}.{minor}.{release}"


def _guess_format(path: str) -> str:
    suffix = PurePath(path).suffix.lower()
    return _FORMAT_BY_SUFFIX.get(suffix, "raw")


def _random_mac() -> str:
    # 52:54:00 is the prefix QEMU/KVM guests conventionally use for locally administered MACs.
    tail = os.urandom(3)
    return "52:54:00:" + ":".join(f"{byte:02x}" for byte in tail)


def _target_probe(target: str) -> ET.Element:
    element = ET.Element("disk")
    ET.SubElement(element, "target", {"dev": target})
    return element


def _mac_probe(mac: str) -> ET.Element:
    element = ET.Element("interface")
    ET.SubElement(element, "mac", {"address": mac})
    return element


def _same_device(existing: ET.Element, wanted: ET.Element) -> bool:
    if existing.tag != wanted.tag:
        return False
    if wanted.tag == "disk":
        a, b = existing.find("target"), wanted.find("target")
        return a is not None and b is not None and a.get("dev") == b.get("dev")
    a, b = existing.find("mac"), wanted.find("mac")
    return a is not None and b is not None and (a.get("address") or "").lower() == (b.get("address") or "").lower()
