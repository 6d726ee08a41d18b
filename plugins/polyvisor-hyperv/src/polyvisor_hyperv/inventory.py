"""Reading: the host, VMs (in bulk, details included), and labels in Notes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, PolyvisorError, ValidationError
from polyvisor.model import (
    DynamicMemory,
    Feature,
    GuestArchitecture,
    HostInfo,
    PowerState,
    VMDetails,
    VMInfo,
    VMStatus,
    normalize_uuid,
)
from polyvisor_hyperv.client import HyperVClient, MiB, as_guid, as_text, then, vm_step
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.hardware import Hardware
from polyvisor_hyperv.nat import NAT_LABEL, NatNics, nat_label
from polyvisor_hyperv.notes import STATE_LABEL, join_notes, split_notes
from polyvisor_hyperv.states import enum_name, to_status
from polyvisor_hyperv.transport import Row

__all__ = ["VM_PROPERTIES", "Inventory"]

VM_PROPERTIES = (
    "Id",
    "Name",
    "State",
    "ProcessorCount",
    "MemoryStartup",
    "MemoryAssigned",
    "DynamicMemoryEnabled",
    "MemoryMinimum",
    "MemoryMaximum",
    "Notes",
    "Generation",
    "CheckpointType",
    "ParentSnapshotId",
    "ParentSnapshotName",
)


class Inventory:
    """What the host and its VMs are."""

    def __init__(self, client: HyperVClient, nat: NatNics) -> None:
        self._client = client
        self._nat = nat
        self._generations: dict[str, int] = {}  # a VM's generation never changes: read once per connection
        # Whether a VM has dynamic memory: set at create (nothing in polyvisor switches it), refreshed by every
        # info() and listing.
        self._dynamic: dict[str, bool] = {}
        self._hardware = Hardware(client)

    def host_info(self) -> HostInfo:
        rows = self._client.run(
            [Step("Get-VMHost")],
            doing="reading the host (Get-VMHost)",
            select=(
                "ComputerName",
                "FullyQualifiedDomainName",
                "LogicalProcessorCount",
                "MemoryCapacity",
                "VirtualHardDiskPath",
                "VirtualMachinePath",
            ),
        )
        if not rows:
            raise PolyvisorError("Get-VMHost returned nothing; is the Hyper-V role installed?", host=self._client.host)
        row = rows[0]
        self._client.vhd_directory = as_text(row.get("VirtualHardDiskPath")) or None
        name = as_text(row.get("ComputerName"))
        # VMHost.FullyQualifiedDomainName is Win32_ComputerSystem.Domain: the DNS domain of a domain member, or the
        # workgroup's name ("WORKGROUP"). VMHost has no PartOfDomain, so a dot tells them apart: DNS domains of AD
        # have one, workgroup names hardly ever do. Known misses (no FQDN, or a wrong one): a single-label AD domain,
        # and a workgroup whose NetBIOS name contains a period (allowed, not customary). Asking
        # Win32_ComputerSystem.PartOfDomain would settle it at the cost of another request.
        domain = as_text(row.get("FullyQualifiedDomainName"))
        fqdn = f"{name}.{domain}" if name and "." in domain else None
        return HostInfo(
            hostname=name,
            hypervisor="hyperv",
            hypervisor_version="",
            cpus=int(row.get("LogicalProcessorCount") or 0),
            memory_mib=int(row.get("MemoryCapacity") or 0) // MiB,
            arch="x86_64",
            extra={
                "domain": domain,
                "fqdn": fqdn,
                "virtual_hard_disk_path": as_text(row.get("VirtualHardDiskPath")),
                "virtual_machine_path": as_text(row.get("VirtualMachinePath")),
                "transport": self._client.options.transport,
            },
            # Hyper-V runs x86_64 guests only, on the host's processor.
            architectures=(GuestArchitecture("x86_64"),),
        )

    def list_vms(self) -> list[VMInfo]:
        rows = self._client.run([Step("Get-VM")], doing="listing VMs", select=VM_PROPERTIES)
        buffers: dict[str, int] = {}
        if any(row.get("DynamicMemoryEnabled") for row in rows):
            # The buffer is on VMMemory only: one more request, for all VMs, when any has dynamic memory.
            memory = self._client.run(
                [Step("Get-VM"), then("Get-VMMemory")], doing="reading memory settings", select=("VMId", "Buffer")
            )
            buffers = {as_guid(row.get("VMId")): int(row.get("Buffer") or 0) for row in memory}
        return [self._vm_info(row, buffers.get(as_guid(row.get("Id")))) for row in rows]

    def lookup(self, ref: str) -> VMInfo:
        uuid = normalize_uuid(ref)
        if uuid is not None:
            try:
                return self.info(uuid)
            except NotFoundError:
                pass  # a VM may be named like a GUID
        matches = [vm for vm in self.list_vms() if vm.name == ref]
        if not matches:
            raise NotFoundError(f"no VM named or with Id {ref!r}; list them with conn.list()", host=self._client.host)
        if len(matches) > 1:
            ids = ", ".join(vm.uuid for vm in matches)
            raise ValidationError(f"{len(matches)} VMs are named {ref!r} ({ids}); address one by its UUID", field="vm")
        return matches[0]

    def status(self, uuid: str) -> VMStatus:
        """The VM's status: one Get-VM (State only), or the state its last verb just read."""
        return self._client.status(uuid)

    def probe_vm_features(self, uuid: str) -> frozenset[Feature] | None:
        """A Generation 1 VM has no NIC hot-plug (Generation 2 only: What-s-new-in-Hyper-V-on-Windows.md); a VM
        with dynamic memory has no live memory change (Hyper-V balances a running VM's memory itself, within the
        range, and lets its startup memory change only while it is off)."""
        generation = self._generations.get(uuid)
        dynamic = self._dynamic.get(uuid)
        if generation is None or dynamic is None:
            row = self._client.vm_row(uuid, ("Generation", "DynamicMemoryEnabled"))
            generation = self._generations[uuid] = int(row.get("Generation") or 0)
            dynamic = self._dynamic[uuid] = bool(row.get("DynamicMemoryEnabled"))
        # A TPM is Generation 2 only (Enable-VMTPM; see .hardware).
        lacking = {Feature.NIC_HOTPLUG, Feature.TPM} if generation == 1 else set()
        if dynamic:
            lacking.add(Feature.RECONFIGURE_LIVE_MEMORY)
        return frozenset(Feature) - lacking if lacking else None

    def info(self, uuid: str) -> VMInfo:
        row = self._client.vm_row(uuid, VM_PROPERTIES)
        buffer = None
        if row.get("DynamicMemoryEnabled"):
            memory = self._client.run(
                [vm_step(uuid), then("Get-VMMemory")], doing="reading memory settings", vm=uuid, select=("Buffer",)
            )
            buffer = int(memory[0].get("Buffer") or 0) if memory else None
        nat = nat_label(as_text(row.get("Notes")))
        # A NAT NIC's forwards are the host's static mappings to its address: one more request, for such a VM only.
        info = self._vm_info(row, buffer, self._nat.forwards(nat) if nat else None)
        if info.details is None:
            return info
        # The TPM, processor and assigned devices are not Get-VM properties: read them for info() (not listings).
        facts = self._hardware.facts(uuid, int(info.details.extra["generation"]))
        return replace(info, details=replace(info.details, extra={**info.details.extra, **facts}))

    def _vm_info(self, row: Row, buffer: int | None = None, forwards: list[dict[str, Any]] | None = None) -> VMInfo:
        status = to_status(row.get("State"))
        description, labels = split_notes(as_text(row.get("Notes")))
        labels.pop(STATE_LABEL, None)  # a reverted VM has its checkpoint's Notes, record included
        labels.pop(NAT_LABEL, None)
        nat = nat_label(as_text(row.get("Notes")))
        # One Get-VM returns every property, so listings carry the details at no extra cost.
        details = VMDetails(
            cpus=int(row.get("ProcessorCount") or 0),
            memory_mib=_memory_mib(row, status.state),
            dynamic_memory=_dynamic_memory(row, buffer),
            labels=labels,
            description=description,
            extra={
                "generation": int(row.get("Generation") or 0),
                "checkpoint_type": enum_name(row.get("CheckpointType")),
                "current_snapshot": as_text(row.get("ParentSnapshotName")) or None,
                **({"nat": [address.fact() for address in nat.addresses]} if nat else {}),
                **({"forwards": forwards} if forwards is not None else {}),
            },
        )
        info = VMInfo(
            uuid=as_guid(row.get("Id")),
            name=as_text(row.get("Name")),
            status=status,
            has_saved_state=status.state is PowerState.SAVED,
            details=details,
        )
        self._client.remember(info.uuid, info.name)
        if details.extra["generation"]:
            self._generations[info.uuid] = int(details.extra["generation"])
        self._dynamic[info.uuid] = details.dynamic_memory is not None
        return info

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        """Write the labels into Notes only if Notes still hold what was just read (a conditional write).

        A write whose reply the network held past its caller's deadline may still reach the host later, after a
        newer write: were it unconditional, it would undo the newer one. ``Get-VM | Where-Object Notes -CEQ <read>
        | Set-VM`` applies only on the Notes it was computed from, so a late write finds them changed and does
        nothing. The same request reads Notes back: if they are not what was written, someone else wrote in between
        (another machine, or such a late write), and the labels are written again on what is there now, until the
        call's deadline (:meth:`Deadline.current`).
        """
        deadline = Deadline.current()
        while True:
            notes = as_text(self._client.vm_row(uuid, ("Notes",)).get("Notes"))
            human, current = split_notes(notes)
            # The backend's own NAT label is no label of the caller's: it stays as it is.
            kept = {NAT_LABEL: current[NAT_LABEL]} if NAT_LABEL in current else {}
            wanted = join_notes(human, {**labels, **kept})
            rows = self._client.run(
                [
                    vm_step(uuid),
                    then("Where-Object", Property="Notes", CEQ=SWITCH, Value=notes),
                    then("Set-VM", Notes=wanted),
                    vm_step(uuid),
                ],
                doing="writing labels to Notes (Set-VM)",
                vm=uuid,
                select=("Notes",),
            )
            if not rows:
                raise NotFoundError(f"no VM with Id {uuid}", host=self._client.host, vm=uuid)
            if as_text(rows[0].get("Notes")) == wanted:
                return
            deadline.check("writing labels (Notes kept changing under the write)", host=self._client.host, vm=uuid)


def _memory_mib(row: Row, state: PowerState) -> int:
    """The memory the VM has now (Hyper-V's assigned memory) while it runs or is paused, else its startup memory."""
    assigned = int(row.get("MemoryAssigned") or 0)
    if state in (PowerState.RUNNING, PowerState.PAUSED) and assigned:
        return assigned // MiB
    return int(row.get("MemoryStartup") or 0) // MiB


def _dynamic_memory(row: Row, buffer: int | None) -> DynamicMemory | None:
    if not row.get("DynamicMemoryEnabled"):
        return None
    low = int(row.get("MemoryMinimum") or 0) // MiB
    high = int(row.get("MemoryMaximum") or 0) // MiB
    return DynamicMemory(max(low, 16), max(high, low, 16), buffer if buffer and 5 <= buffer <= 2000 else None)
