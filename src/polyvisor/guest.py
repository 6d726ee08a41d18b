"""A VM's devices and its guest: disks, NICs, addresses, console, CPUs and memory.

:class:`GuestOps` is the part of :class:`polyvisor.VM` that acts on what the VM is made of rather than on its
power state; it lives apart so that either room reads in one sitting. It builds on the handle's identity and reads
(:class:`~polyvisor.handle.VMHandle`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polyvisor import blocking
from polyvisor.backend import Deadline
from polyvisor.calls import change, read
from polyvisor.errors import InvalidStateError, ValidationError
from polyvisor.handle import VMHandle, vm_capabilities
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    DiskInfo,
    DiskSpec,
    Feature,
    GuestAddress,
    NicKind,
    NicSpec,
    PowerState,
    Readiness,
    VMInfo,
    validate_int,
)
from polyvisor.provisioning.addresses import AddressFamily
from polyvisor.provisioning.readiness import SSH_PORT
from polyvisor.verbs import addresses, readiness
from polyvisor.verbs.addresses import ADDRESS_SOURCES, ADDRESS_TIMEOUT
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT
from polyvisor.verbs.readiness import READY_TIMEOUT
from polyvisor.verbs.stats import vm_stats

__all__ = ["ADDRESS_SOURCES", "ADDRESS_TIMEOUT", "READY_TIMEOUT", "GuestOps"]


class GuestOps(VMHandle):
    """Devices, guest addresses, console, CPUs and memory of one VM (the part of :class:`polyvisor.VM` that acts
    on what the VM is made of)."""

    # -- devices and guest -------------------------------------------------------------------------------------
    def attach_disk(
        self, disk: DiskSpec | Mapping[str, Any], *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Attach a disk (hot when the VM runs and ``live`` is not False); return its target name."""
        if not isinstance(disk, DiskSpec):
            disk = DiskSpec.from_dict(disk)
        deadline = self._deadline(timeout)
        live = self._live(live, Feature.DISK_ATTACH, Feature.DISK_HOTPLUG, deadline)
        return change(
            self.connection,
            lambda b: b.attach_disk(self.uuid, disk, live=live),
            "attaching a disk",
            self._name,
            deadline,
        )

    def detach_disk(self, target: str, *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Detach the disk with this target name (e.g. ``vdb``)."""
        deadline = self._deadline(timeout)
        live = self._live(live, Feature.DISK_ATTACH, Feature.DISK_HOTPLUG, deadline)
        change(
            self.connection,
            lambda b: b.detach_disk(self.uuid, target, live=live),
            "detaching a disk",
            self._name,
            deadline,
        )

    def attach_nic(
        self, nic: NicSpec | Mapping[str, Any], *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Attach a NIC; return its MAC address."""
        if not isinstance(nic, NicSpec):
            nic = NicSpec.from_dict(nic)
        deadline = self._deadline(timeout)
        live = self._live(live, Feature.NIC_ATTACH, Feature.NIC_HOTPLUG, deadline)
        if nic.kind is NicKind.USER:
            self.capabilities().require(Feature.USER_NETWORKING, host=self.connection.host, vm=self._name)
            if nic.forwards:
                raise ValidationError(
                    "port forwards are part of the VM's definition: give them in the spec when creating the VM",
                    field="nic.forwards",
                )
        if nic.kind is NicKind.NAT:
            self.capabilities().require(Feature.NAT_FORWARDING, host=self.connection.host, vm=self._name)
            raise ValidationError(
                "a NAT NIC's static address reaches the guest through its cloud-init seed at first boot: give the NIC "
                "in the spec when creating the VM",
                field="nic.kind",
            )
        return change(
            self.connection, lambda b: b.attach_nic(self.uuid, nic, live=live), "attaching a NIC", self._name, deadline
        )

    def detach_nic(self, mac: str, *, live: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Detach the NIC with this MAC address."""
        deadline = self._deadline(timeout)
        live = self._live(live, Feature.NIC_ATTACH, Feature.NIC_HOTPLUG, deadline)
        mac = mac.lower()
        change(
            self.connection,
            lambda b: b.detach_nic(self.uuid, mac, live=live),
            "detaching a NIC",
            self._name,
            deadline,
        )

    def addresses(
        self, sources: Sequence[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[GuestAddress]:
        """Return the guest's addresses per interface, asking ``sources`` in order (default: the backend's)."""
        chosen = addresses.address_sources(self, sources)
        deadline = self._deadline(timeout)
        vm_capabilities(self.connection, self.uuid, deadline).require(
            Feature.GUEST_ADDRESSES, host=self.connection.host, vm=self._name
        )
        return read(self.connection, lambda b: b.addresses(self.uuid, chosen), deadline)

    def wait_for_address(
        self,
        *,
        timeout: float = ADDRESS_TIMEOUT,
        family: AddressFamily | str | None = AddressFamily.IPV4,
        sources: Sequence[str] | None = None,
    ) -> GuestAddress:
        """Wait until the guest has a usable address (not loopback or link-local) and return it.

        ``sources`` are asked in order each round (default: the backend's ``address_sources``: libvirt's agent,
        DHCP lease and ARP table; Hyper-V's KVP); the first usable address wins. On timeout,
        :class:`~polyvisor.errors.TimeoutError` says what each source answered last ("agent: not connected",
        "lease: no lease for 52:54:00:.."). A VM that is not running (or stops while waiting) raises
        :class:`~polyvisor.errors.InvalidStateError`: it will not get an address.
        """
        return blocking.run(self, addresses.wait_for_address(self, timeout, family, sources))

    def wait_until_ready(
        self,
        *,
        timeout: float = READY_TIMEOUT,
        sources: Sequence[str] | None = None,
        ssh_host: str | None = None,
        ssh_port: int = SSH_PORT,
    ) -> Readiness:
        """Wait until the guest finished initializing, and say who told: an address is not readiness.

        The wait is over once **every** source asked says the guest is ready:

        * ``cloud-init`` (libvirt, ``memory://``): cloud-init's result file, ``/run/cloud-init/result.json``,
          read through the guest agent; it is written when cloud-init's last stage ends.
        * ``heartbeat`` (Hyper-V): the guest's heartbeat integration service answers (``Get-VM`` Heartbeat ``Ok*``);
          the guest's integration services run, which says less than cloud-init's end.
        * ``ssh`` (every backend): ``ssh_host``:``ssh_port`` (default: the first usable guest address, port 22)
          accepts a TCP connection and sends an SSH identification line (``SSH-2.0-...``). Nothing is sent to it.

        Without ``sources``: the backend's sources that can answer for this VM, plus ``ssh`` if ``ssh_host`` is
        given, and ``ssh`` alone if nothing else can (a guest without an agent channel). A named source that can
        never answer for this VM raises :class:`~polyvisor.errors.UnsupportedError` at once. A guest that finished
        with errors is ready: :attr:`~polyvisor.model.Readiness.errors` lists them. On timeout,
        :class:`~polyvisor.errors.TimeoutError` says what each source answered last; a VM that is not running (or
        stops while waiting) raises :class:`~polyvisor.errors.InvalidStateError`.
        """
        return blocking.run(self, readiness.wait_until_ready(self, timeout, sources, ssh_host, ssh_port))

    def reconfigure(
        self,
        *,
        cpus: int | None = None,
        memory_mib: int | None = None,
        live: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> VMInfo:
        """Change the VM's CPU count and/or memory; return the VM's info afterwards.

        A stopped VM changes its definition (capability ``reconfigure``). A running VM changes live where the
        hypervisor allows it (``reconfigure-live-cpus``, ``reconfigure-live-memory``; within the maximum it started
        with, or dynamic memory's range), else :class:`~polyvisor.errors.UnsupportedError`; ``live=False`` on a
        running VM is refused with :class:`~polyvisor.errors.InvalidStateError` (stop it first). A saved or paused
        VM is refused too.
        """
        if cpus is None and memory_mib is None:
            raise ValidationError("give cpus, memory_mib or both", field="reconfigure")
        if cpus is not None:
            validate_int(cpus, "cpus", maximum=1024)
        if memory_mib is not None:
            validate_int(memory_mib, "memory_mib", minimum=16, maximum=64 * 1024 * 1024)
        deadline = self._deadline(timeout)
        caps = vm_capabilities(self.connection, self.uuid, deadline)
        caps.require(Feature.RECONFIGURE, host=self.connection.host, vm=self._name)
        state = self._state(deadline)
        if state is PowerState.STOPPED and live is not True:
            go_live = False
        elif state is PowerState.RUNNING and live is not False:
            go_live = True
            if cpus is not None:
                caps.require(Feature.RECONFIGURE_LIVE_CPUS, host=self.connection.host, vm=self._name)
            if memory_mib is not None:
                caps.require(Feature.RECONFIGURE_LIVE_MEMORY, host=self.connection.host, vm=self._name)
        else:
            accepted = (
                (PowerState.RUNNING,)
                if live
                else (PowerState.STOPPED,)
                if live is False
                else (
                    PowerState.STOPPED,
                    PowerState.RUNNING,
                )
            )
            raise InvalidStateError(
                f"cannot reconfigure {self._name!r} while it is {state.value}"
                + ("; stop it first to change the stored definition" if state is PowerState.RUNNING else "")
                + ("; start it to change it live" if live and state is PowerState.STOPPED else ""),
                state=state,
                accepted=accepted,
                host=self.connection.host,
                vm=self._name,
            )
        change(
            self.connection,
            lambda b: b.reconfigure(self.uuid, cpus=cpus, memory_mib=memory_mib, live=go_live, deadline=deadline),
            "reconfiguring CPUs and memory",
            self._name,
            deadline,
        )
        return self._info(deadline)

    def disks(self, *, timeout: float = DEFAULT_TIMEOUT) -> list[DiskInfo]:
        """Return the VM's hard disks (not CD-ROMs), each with its target name, image path and virtual size."""
        deadline = self._deadline(timeout)
        vm_capabilities(self.connection, self.uuid, deadline).require(
            Feature.DISK_RESIZE, host=self.connection.host, vm=self._name
        )
        return read(self.connection, lambda b: b.disks(self.uuid), deadline)

    def resize_disk(self, target: str, size_mib: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Grow the disk with this target name (``vda``, ``scsi0:1``, as :meth:`attach_disk` returned it) to
        ``size_mib``. Disks only grow: a smaller size raises :class:`~polyvisor.errors.ValidationError`; the guest
        must grow its partitions and file systems itself."""
        if not isinstance(target, str) or not target:
            raise ValidationError(f"{target!r} is not a disk target name such as 'vda'", field="target")
        validate_int(size_mib, "size_mib", maximum=64 * 1024 * 1024)
        deadline = self._deadline(timeout)
        vm_capabilities(self.connection, self.uuid, deadline).require(
            Feature.DISK_RESIZE, host=self.connection.host, vm=self._name
        )
        change(
            self.connection,
            lambda b: b.resize_disk(self.uuid, target, size_mib, deadline),
            "resizing a disk",
            self._name,
            deadline,
        )

    def console_output(self, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Return what the guest wrote to its serial console so far."""
        deadline = self._deadline(timeout)
        vm_capabilities(self.connection, self.uuid, deadline).require(
            Feature.CONSOLE, host=self.connection.host, vm=self._name
        )
        return read(self.connection, lambda b: b.console_output(self.uuid), deadline)

    def stats(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStats:
        """Return one sample of the VM's counters (CPU time, memory, disk and network I/O); see
        :mod:`polyvisor.metrics`, whose :func:`~polyvisor.metrics.rates` turns two samples into rates."""
        return blocking.run(self, vm_stats(self, timeout))

    def _state(self, deadline: Deadline) -> PowerState:
        return read(self.connection, lambda b: b.status(self.uuid), deadline).state

    def _live(self, live: bool | None, cold: Feature, hot: Feature, deadline: Deadline) -> bool:
        caps = vm_capabilities(self.connection, self.uuid, deadline)
        caps.require(cold, host=self.connection.host, vm=self._name)
        state = self._state(deadline)
        running = state in (PowerState.RUNNING, PowerState.PAUSED)
        if live is None:
            live = running
        if live:
            if not running:
                raise InvalidStateError(
                    "live=True needs a running VM; pass live=False to change the stored definition",
                    state=state,
                    accepted=(PowerState.RUNNING, PowerState.PAUSED),
                    host=self.connection.host,
                    vm=self._name,
                )
            caps.require(hot, host=self.connection.host, vm=self._name)
        return live
