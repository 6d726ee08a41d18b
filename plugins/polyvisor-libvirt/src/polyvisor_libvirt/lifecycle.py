"""A libvirt domain from creation to deletion, and the power verbs between: one libvirt call each.

* ``create`` resolves what needs the host (pools, clones, the seed: :mod:`.storage`, :mod:`.images`; networks:
  :mod:`.devices`), plans the domain (:mod:`.planner`) and defines it; on any failure it undefines the domain and
  deletes the volumes made for it.
* ``delete`` undefines the domain with its managed save, snapshot and checkpoint metadata and NVRAM, and deletes the
  volumes polyvisor made for it when asked (the cloud-init seed always).
* A graceful shutdown through the guest agent is sent from a thread of its own (:class:`_ShutdownRequest`): libvirt
  answers it only once the guest is off, and the verb's deadline must not wait for that.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid as uuid_module
from pathlib import Path

import libvirt

from polyvisor.backend import Deadline
from polyvisor.errors import InvalidStateError
from polyvisor.model import NicKind, PowerState, ShutdownMode, VMInfo, VMSpec
from polyvisor_libvirt import domainxml, forwards, machines, planner
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.devices import Devices
from polyvisor_libvirt.domainxml import Definition, DomainPlan
from polyvisor_libvirt.hostdevices import HostDevices
from polyvisor_libvirt.images import Images
from polyvisor_libvirt.inventory import Inventory
from polyvisor_libvirt.probe import HostCaps, kvm_usable
from polyvisor_libvirt.storage import Storage

__all__ = ["Lifecycle"]

log = logging.getLogger("polyvisor.libvirt")


def _flag(name: str) -> int:
    # Older libvirt lacks some flags; a missing one contributes nothing.
    value: int = getattr(libvirt, name, 0)
    return value


class Lifecycle:
    """Domains from creation to deletion, and their power verbs, over one client."""

    def __init__(
        self,
        client: LibvirtClient,
        host_caps: HostCaps,
        *,
        inventory: Inventory,
        storage: Storage,
        devices: Devices,
        images: Images,
        hostdevs: HostDevices,
        acpi_shutdown: bool,
    ) -> None:
        self._client = client
        self._host_caps = host_caps
        self._inventory = inventory
        self._storage = storage
        self._devices = devices
        self._images = images
        self._hostdevs = hostdevs
        # Whether ShutdownMode.DEFAULT presses the ACPI button (QEMU/KVM, where the core repeats it) rather than
        # libvirt's own default, which tries the agent first.
        self._acpi_shutdown = acpi_shutdown
        # The running instance (domain ID) each agent shutdown request went to.
        self._shutdowns: dict[str, _ShutdownRequest] = {}
        self._booted: dict[str, float] = {}  # when this connection booted a VM (monotonic), for reset()

    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        """Define the domain; on any failure, undefine it and delete the volumes made for it."""
        deadline.check("creating the VM", host=self._client.host, vm=spec.name)
        conn = self._client.live()
        created: list[libvirt.virStorageVol] = []
        dom: libvirt.virDomain | None = None
        try:
            plan = self._plan(spec, created, deadline)
            xml = domainxml.build_domain(plan)
            deadline.check("creating the VM", host=self._client.host, vm=spec.name)
            with self._client.errors("defining the VM", host=self._client.host, vm=spec.name):
                dom = conn.defineXML(xml)
            return self._inventory.info(plan.uuid)
        except BaseException:
            self._rollback(dom, created, spec.name)
            raise

    def _rollback(self, dom: libvirt.virDomain | None, volumes: list[libvirt.virStorageVol], name: str) -> None:
        if dom is not None:
            try:
                dom.undefineFlags(self._undefine_flags())
            except libvirt.libvirtError:
                log.warning("could not undefine the half-created VM %r on %s", name, self._client.host)
        self._storage.delete_volumes(volumes, name)

    def _plan(self, spec: VMSpec, created: list[libvirt.virStorageVol], deadline: Deadline) -> DomainPlan:
        """Resolve what needs the host (volumes, clones and the seed are made here, in ``created``), then plan."""
        guest = planner.choose_guest(self._host_caps, spec, host=self._client.host)
        planner.check_spec(spec, guest, driver=self._client.uri.driver, host=self._client.host)
        domain_type = planner.choose_domain_type(
            spec,
            guest,
            driver=self._client.uri.driver,
            kvm_usable=lambda: self._kvm_ok(guest.arch),
            host=self._client.host,
        )
        new_uuid = str(uuid_module.uuid4())
        sources = []
        clone_pools: list[libvirt.virStoragePool] = []
        for index, disk in enumerate(spec.disks):
            stem = f"{new_uuid}-disk{index}"
            if disk.clone is None:
                sources.append(self._storage.disk_source(disk, stem, spec.name, created))
                continue
            pool = self._storage.clone_pool(disk, spec.name)
            clone_pools.append(pool)
            sources.append(self._images.clone(disk, pool, stem, spec.name, created, deadline))
        seed = None
        if spec.cloud_init is not None:
            # The seed sits with the VM's disks: the first pool a disk names, else its first clone's, else the default.
            named = next((disk.pool for disk in spec.disks if disk.pool), None)
            pool = clone_pools[0] if named is None and clone_pools else self._storage.pool(named, spec.name)
            seed = self._images.seed(spec.cloud_init, pool, new_uuid, spec.name, created, deadline)
        if spec.cdrom is not None:
            self._storage.require_file(spec.cdrom, spec.name, "CD-ROM image")
        networks = [
            None if nic.kind is NicKind.USER else self._devices.network_name(nic, spec.name) for nic in spec.nics
        ]
        plan = planner.plan_domain(
            spec,
            guest,
            uuid=new_uuid,
            domain_type=domain_type,
            driver=self._client.uri.driver,
            is_local=self._client.uri.is_local,
            disk_sources=sources,
            networks=networks,
            seed=seed,
        )
        return self._hostdevs.plan(spec, plan)  # the TPM, a nested CPU and host devices

    def _kvm_ok(self, arch: str) -> bool:
        return kvm_usable(self._client.conn, local=self._client.uri.is_local, arch=arch)

    def start(self, uuid: str, deadline: Deadline) -> None:
        """create(): boots, or restores the managed-save image (a job the deadline bounds), ending running.

        libvirt restores the run state recorded in the image: one saved while paused (by another client, or
        before polyvisor saved with VIR_DOMAIN_SAVE_RUNNING) comes back paused, so it is resumed. A VM with port
        forwards starts paused and runs once they are set (:mod:`.forwards`).
        """
        with self._client.acting(uuid, "starting the VM", deadline) as dom:
            if forwards.rules(self._client.definition(dom, fresh=True)):
                self._start_forwarded(dom, uuid, deadline)
                return
            if not dom.hasManagedSaveImage(0):
                dom.create()
                self._booted[uuid] = time.monotonic()
                return
            self._client.bounded(dom, deadline, "restoring the saved VM", dom.create)
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                deadline.check("resuming the restored VM", host=self._client.host, vm=dom.name())
                dom.resume()

    def _start_forwarded(self, dom: libvirt.virDomain, uuid: str, deadline: Deadline) -> None:
        """Start paused, set the forwards, run; a forward QEMU refuses undoes the start (a restored VM is saved
        again), so the VM is left as it was."""
        saved = dom.hasManagedSaveImage(0)
        paused = libvirt.VIR_DOMAIN_START_PAUSED
        if saved:
            self._client.bounded(dom, deadline, "restoring the saved VM", lambda: dom.createWithFlags(paused))
        else:
            dom.createWithFlags(paused)
            self._booted[uuid] = time.monotonic()
        try:
            live = forwards.rules(self._client.definition(dom, fresh=True))
            forwards.apply(dom, live, deadline, host=self._client.host)
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                if saved:
                    dom.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING)
                else:
                    dom.destroy()
            raise
        dom.resume()

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        """Ask the guest to shut down (ACPI, agent, or the default).

        On QEMU/KVM the default is the ACPI power button, which the core repeats until the guest reacts. libvirt's
        own default tries the guest agent first, and while a guest boots the agent channel can look connected with
        no agent answering yet: libvirt then holds the request for up to a minute before it falls back to ACPI.
        The default is refused for a VM whose architecture has neither (:func:`.machines.refuse_default_shutdown`);
        the core refuses the explicit modes from the VM's capabilities.
        """
        default = libvirt.VIR_DOMAIN_SHUTDOWN_DEFAULT
        if self._acpi_shutdown:
            default = libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
        flags = {
            ShutdownMode.DEFAULT: default,
            ShutdownMode.ACPI: libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
            ShutdownMode.AGENT: libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
        }[mode]
        with self._client.acting(uuid, f"shutting the VM down ({mode.value})", deadline) as dom:
            if mode is ShutdownMode.DEFAULT and self._client.uri.driver in planner.QEMU_DRIVERS:
                arch = self._client.definition(dom, fresh=False).arch
                if arch:
                    machines.refuse_default_shutdown(arch, host=self._client.host, vm=dom.name())
            instance = dom.ID()
            pending = self._shutdowns.get(uuid)
            if pending is not None and pending.instance == instance and pending.in_flight:
                # The core repeats requests for lost ACPI presses; the agent still holds the last one (libvirt
                # answers an agent shutdown only once the guest is off), so a repeat could only queue behind it.
                return
            # libvirt holds an agent request until the guest is off: send it on a connection of its own.
            target = self._client.side_domain(uuid) if flags == libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT else dom
            request = _ShutdownRequest(target, flags, instance)
            self._shutdowns[uuid] = request
            error = request.send(min(deadline.remaining(), _SHUTDOWN_ACCEPT_WAIT))
            log.debug(
                "shutdown request (%s) to %s: %s", mode.value, dom.name(), "in flight" if request.in_flight else error
            )
            if error is not None:
                if _going_down(dom, error):
                    return  # it stopped (or is stopping) between the core's state check and this (repeated) request
                raise error

    def stop(self, uuid: str, deadline: Deadline) -> None:
        """destroy(): power off at once."""
        with self._client.acting(uuid, "powering the VM off", deadline) as dom:
            dom.destroy()

    def reset(self, uuid: str, deadline: Deadline) -> None:
        """Hard reset.

        On QEMU/TCG a reset that lands within a few milliseconds of a boot can leave the guest hung in its firmware,
        running but silent (here: 6 hangs in 18 resets sent at once after start(), none in 20 sent 50 ms or more
        later). So a reset soon after this connection booted the VM waits out that moment, within the deadline.
        """
        with self._client.acting(uuid, "resetting the VM", deadline) as dom:
            booted = self._booted.pop(uuid, None)
            if booted is not None:
                settle = booted + _RESET_SETTLE - time.monotonic()
                if 0 < settle < deadline.remaining():
                    time.sleep(settle)  # a fixed moment after boot: nothing reports the guest's firmware progress
            dom.reset(0)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """Ask the guest to reboot."""
        with self._client.acting(uuid, "rebooting the VM", deadline) as dom:
            dom.reboot(0)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        """suspend()."""
        with self._client.acting(uuid, "pausing the VM", deadline) as dom:
            dom.suspend()

    def resume(self, uuid: str, deadline: Deadline) -> None:
        """resume()."""
        with self._client.acting(uuid, "resuming the VM", deadline) as dom:
            dom.resume()

    def save(self, uuid: str, deadline: Deadline) -> None:
        """managedSave(): memory to disk, start() restores it running (a job the deadline bounds).

        VIR_DOMAIN_SAVE_RUNNING records "running" in the image even when the VM is paused now: the contract's
        start() from saved ends running.
        """
        with self._client.acting(uuid, "saving the VM", deadline) as dom:
            self._client.bounded(
                dom, deadline, "saving the VM", lambda: dom.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING)
            )

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        """managedSaveRemove()."""
        with self._client.acting(uuid, "discarding the saved state", deadline) as dom:
            dom.managedSaveRemove(0)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Undefine with managed save, snapshot/checkpoint metadata and NVRAM; volumes polyvisor made if asked.

        ``storage=True`` deletes the volumes polyvisor created for this VM (recorded in its metadata) and never
        a disk given as ``image=``: those belong to whoever brought them. The cloud-init seed (an owned volume
        attached as a CD-ROM) goes with the VM either way: it is part of the VM, not storage a caller keeps.
        """
        self._booted.pop(uuid, None)  # per-VM bookkeeping must not outlive the VM on a long-lived connection
        self._shutdowns.pop(uuid, None)
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        volumes = self._storage.volumes_to_delete(definition, storage=storage)
        self._refuse_active(dom, definition.name)
        deadline.check("deleting the VM", host=self._client.host, vm=definition.name)
        with self._client.errors(
            "deleting the VM", host=self._client.host, vm=definition.name, state=self._client.state_of(dom)
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
        self._client.cache.drop(definition.uuid)
        self._remove_serial_logs(definition)

    def _refuse_active(self, dom: libvirt.virDomain, name: str) -> None:
        # libvirt undefines a running domain without complaint, leaving it running as a transient one (and its
        # volumes in use): a client that started it after the core's state check must not get that.
        with self._client.errors("checking the VM is stopped", host=self._client.host, vm=name):
            active = bool(dom.isActive())
        if active:
            state = self._client.status(dom, name).state
            raise InvalidStateError(
                f"cannot delete a VM that is {state.value}; it was started meanwhile: stop or shut it down first",
                state=state,
                accepted=(PowerState.STOPPED,),
                host=self._client.host,
                vm=name,
            )

    def _remove_serial_logs(self, definition: Definition) -> None:
        # The serial log files polyvisor named for this VM (see _plan); a file the user configured stays.
        if not self._client.uri.is_local:
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


_RESET_SETTLE = 0.2
"""Seconds after a boot before a hard reset may reach a QEMU guest (see ``reset``)."""

_SHUTDOWN_ACCEPT_WAIT = 1.0
"""Seconds to wait for libvirt to answer a shutdown request before treating it as accepted and in flight."""


def _going_down(dom: libvirt.virDomain, error: libvirt.libvirtError) -> bool:
    """Whether a refused shutdown request met a guest that is off or on its way off: inactive, in libvirt's
    shutting-down state, or refused as "not running" (the guest powered off while QEMU was still exiting)."""
    if error.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in str(error):
        return True
    with contextlib.suppress(libvirt.libvirtError):
        return not dom.isActive() or dom.state()[0] in (libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_SHUTOFF)
    return False


class _ShutdownRequest:
    """One graceful shutdown request, sent from a worker thread.

    An ACPI request returns at once, but libvirt answers a request through the guest agent only once the guest is
    off, or after its own agent timeout (60 s); the caller's deadline must bound neither. So the request is sent
    from a thread, and the verb returns once libvirt answered or a short wait passed; the core then waits for the
    state within the deadline, and the request may finish on its own afterwards.
    """

    def __init__(self, dom: libvirt.virDomain, flags: int, instance: int) -> None:
        self.instance = instance
        self._dom = dom
        self._flags = flags
        self._error: libvirt.libvirtError | None = None
        self._thread = threading.Thread(target=self._run, name="polyvisor-libvirt-shutdown", daemon=True)

    @property
    def in_flight(self) -> bool:
        """Whether libvirt has not answered yet."""
        return self._thread.is_alive()

    def send(self, wait: float) -> libvirt.libvirtError | None:
        """Send the request; return libvirt's error if it answered with one within ``wait`` seconds."""
        self._thread.start()
        self._thread.join(wait)
        return None if self.in_flight else self._error

    def _run(self) -> None:
        try:
            self._dom.shutdownFlags(self._flags)
        except libvirt.libvirtError as error:
            self._error = error
            log.debug("shutdown request ended with %s", error)
