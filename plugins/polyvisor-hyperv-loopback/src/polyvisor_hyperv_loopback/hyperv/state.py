"""What every part of the in-memory Hyper-V host shares: its settings, its records and the lock guarding them."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable

from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.wildcards import has_wildcard, wildcard_match

from .filesystem import FileEntry, VirtualFileSystem
from .records import (
    DEFAULT_SWITCH_ID,
    TRANSITIONAL,
    VHD_ROOT,
    VM_ROOT,
    GiB,
    MiB,
    NetAdapterRecord,
    SwitchRecord,
    VMRecord,
)

__all__ = ["HostState"]


class HostState:
    """The host's settings (the Python-only knobs), its VMs and switches, and the condition guarding them all."""

    def __init__(
        self,
        *,
        computer_name: str = "HV-LOOPBACK",
        domain: str = "WORKGROUP",
        logical_processor_count: int = 8,
        memory_capacity: int = 32 * GiB,
        transition_delay: float = 0.05,
        guest_shutdown_timeout: float = 30.0,
        cmdlet_latency: float = 0.0,
        merge_delay: float = 0.2,
        kvp_delay: float = 3.0,
    ) -> None:
        self.computer_name = computer_name
        self.kvp_delay = kvp_delay
        """Seconds after a VM starts running until its guest's KVP daemon reports its IP addresses."""
        self.cmdlet_latency = cmdlet_latency
        """Seconds every Hyper-V cmdlet takes before it acts (real ones take tens to hundreds of ms: WMI calls)."""
        self.domain = domain
        """Win32_ComputerSystem.Domain: the DNS domain of a domain member, else the workgroup's name."""
        self.logical_processor_count = logical_processor_count
        self.memory_capacity = memory_capacity
        self.virtual_machine_path = VM_ROOT
        self.virtual_hard_disk_path = VHD_ROOT
        self.delays: dict[str, float] = dict.fromkeys(TRANSITIONAL, transition_delay)
        self.guest_shutdown_timeout = guest_shutdown_timeout
        self.files = VirtualFileSystem()
        self.files.make_directory(VM_ROOT)
        self.files.make_directory(VHD_ROOT)
        self.drive_capacity = 2 * 1024 * GiB
        """Bytes of each drive (C:, D:, ...): Get-PSDrive shows what the files on it leave free."""
        self._cond = threading.Condition(threading.RLock())
        self.vms: dict[uuid.UUID, VMRecord] = {}
        """Every VM, by id: the live records (hold :attr:`condition`)."""
        self.switches: dict[uuid.UUID, SwitchRecord] = {
            DEFAULT_SWITCH_ID: SwitchRecord(DEFAULT_SWITCH_ID, "Default Switch", "Internal")
        }
        """Every virtual switch, by id: the live records (hold :attr:`condition`)."""
        self.net_adapters: list[NetAdapterRecord] = [
            NetAdapterRecord("Ethernet", "Contoso 12345 Gigabit Network Device", "00-15-5D-00-00-01")
        ]
        """The host's physical network adapters, which External switches are bound to."""
        self._mac_counter = 0x10
        self.merge_delay = merge_delay
        self.physical_disks: dict[int, str] = {}  # disk number -> friendly name (pass-through candidates)

    def set_transition_delay(self, seconds: float, state: str | None = None) -> None:
        """Set how long a transitional state lasts: one (``state``) or all of them."""
        with self._cond:
            for name in [state] if state else list(self.delays):
                self.delays[name] = seconds

    def cmdlet_pause(self, cancel: threading.Event | None) -> None:
        """Wait out one cmdlet's latency with no lock held, so concurrent pipelines wait together; a stop ends it."""
        if self.cmdlet_latency > 0:
            (cancel if cancel is not None else threading.Event()).wait(self.cmdlet_latency)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked on every state change); return whether it did."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def add_physical_disk(self, number: int, friendly_name: str) -> None:
        """Give the host an (offline) physical disk that Add-VMHardDiskDrive -DiskNumber can pass through."""
        with self._cond:
            self.physical_disks[number] = friendly_name

    def add_file(self, path: str, size: int = 4 * MiB) -> str:
        """Place a plain file (an ISO image, say) on the host and return its normalized path."""
        return self.files.create(FileEntry(path=path, size=size, file_size=size)).path

    def snapshot_of_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Return a deep copy of one VM's record (for assertions)."""
        with self._cond:
            return copy.deepcopy(self.vm_record(vm_id))

    @property
    def condition(self) -> threading.Condition:
        """The lock (and condition) guarding the whole host, for the modules that model more of it."""
        return self._cond

    def now(self) -> float:
        """Return the host's monotonic clock."""
        return time.monotonic()

    def vm_record(self, vm_id: uuid.UUID) -> VMRecord:
        """The live record of a VM (not a copy); hold :attr:`condition` while using it."""
        vm = self.vms.get(vm_id)
        if vm is None:
            # VirtualizationObjectLocator.GetVirtualMachineById: CreateObjectNotFoundException, no target object.
            raise HostError(
                f'Hyper-V was unable to find a virtual machine with id "{vm_id}".',
                error_id="ObjectNotFound",
                category="ObjectNotFound",
            )
        return vm

    def list_vms(self) -> list[VMRecord]:
        """Return copies of every VM, ordered by name."""
        with self._cond:
            return [copy.deepcopy(vm) for vm in sorted(self.vms.values(), key=lambda v: v.name.casefold())]

    def get_vm(self, vm_id: uuid.UUID) -> VMRecord:
        """Return a copy of the VM with ``vm_id``; raise HostError if there is none."""
        with self._cond:
            return copy.deepcopy(self.vm_record(vm_id))

    def find_vms(self, name: str, *, object_not_found: bool = False) -> list[VMRecord]:
        """Return copies of the VMs whose name matches ``name`` (wildcards allowed; no match and none: error).

        The error is InvalidParameter / InvalidArgument as Get-VM writes it, or with ``object_not_found``
        ObjectNotFound / ObjectNotFound as every other cmdlet does (WriteNonMatchingNameErrors).
        """
        with self._cond:
            found = [vm for vm in self.vms.values() if wildcard_match(name, vm.name)]
            if not found and not has_wildcard(name):
                kind = "ObjectNotFound" if object_not_found else "InvalidParameter"
                raise HostError(
                    f'Hyper-V was unable to find a virtual machine with name "{name}".',
                    error_id=kind,
                    category="ObjectNotFound" if object_not_found else "InvalidArgument",
                    target_name=name,
                    target_object=name,
                )
            return [copy.deepcopy(vm) for vm in sorted(found, key=lambda v: v.name.casefold())]

    def next_mac(self) -> str:
        """Return the next dynamic MAC address from Hyper-V's range; hold :attr:`condition`."""
        self._mac_counter += 1
        return f"00155D{self._mac_counter:06X}"
