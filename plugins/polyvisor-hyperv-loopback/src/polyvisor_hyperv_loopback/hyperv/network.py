"""Virtual switches and the VMs' network adapters: New-VMSwitch, Add-VMNetworkAdapter, Connect-VMNetworkAdapter."""

from __future__ import annotations

import copy
import uuid

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .faults import modify_failed, not_running_detail
from .records import NetAdapterRecord, NetworkAdapterRecord, SwitchRecord, VMRecord
from .state import HostState

__all__ = ["Network"]


class Network:
    """The host's virtual switches and the network adapters connected to them."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition

    def list_switches(self) -> list[SwitchRecord]:
        """Return every virtual switch, ordered by name."""
        with self._cond:
            return [copy.deepcopy(s) for s in sorted(self._state.switches.values(), key=lambda s: s.name.casefold())]

    def switch_by_name(self, name: str) -> SwitchRecord:
        """The live switch named ``name`` (case-insensitive); hold the condition."""
        for switch in self._state.switches.values():
            if switch.name.casefold() == name.casefold():
                return switch
        raise HostError(
            f'Hyper-V was unable to find a virtual switch with name "{name}".',
            error_id="InvalidParameter",
            category="InvalidArgument",
            target_name=name,
        )

    def new_switch(
        self,
        name: str,
        switch_type: str,
        notes: str = "",
        *,
        net_adapter: str | None = None,
        allow_management_os: bool = True,
    ) -> SwitchRecord:
        """Create an Internal or Private switch, or an External one bound to the physical adapter named
        ``net_adapter`` (which no other switch may have)."""
        with self._cond:
            description = None
            if net_adapter is not None:
                adapter = self.net_adapter_by_name(net_adapter)
                description = adapter.interface_description
                for other in self._state.switches.values():
                    if other.net_adapter == description:
                        raise HostError(
                            f"Failed while adding virtual Ethernet switch connections. The network adapter "
                            f"'{adapter.name}' is already bound to the virtual switch '{other.name}'.",
                            error_id="Unspecified",
                            category="InvalidOperation",
                            target_name=name,
                        )
                switch_type = "External"
            switch = SwitchRecord(uuid.uuid4(), name, switch_type, notes, description, allow_management_os)
            self._state.switches[switch.id] = switch
            return copy.deepcopy(switch)

    def net_adapters(self) -> list[NetAdapterRecord]:
        """The host's physical network adapters."""
        with self._cond:
            return [copy.deepcopy(adapter) for adapter in self._state.net_adapters]

    def net_adapter_by_name(self, name: str) -> NetAdapterRecord:
        """The physical adapter named ``name`` (case-insensitive); hold the condition."""
        for adapter in self._state.net_adapters:
            if adapter.name.casefold() == name.casefold():
                return adapter
        raise HostError(
            f"No MSFT_NetAdapter objects found with property 'Name' equal to '{name}'.  Verify the value of the "
            "property and retry.",
            error_id="CmdletizationQuery_NotFound_Name,Get-NetAdapter",
            category="ObjectNotFound",
            target_name=name,
        )

    def remove_switch(self, switch_id: uuid.UUID) -> None:
        """Delete a switch; adapters connected to it become disconnected."""
        with self._cond:
            switch = self._state.switches.pop(switch_id)
            for vm in self._state.vms.values():
                for nic in vm.config.network_adapters:
                    if nic.switch_name is not None and nic.switch_name.casefold() == switch.name.casefold():
                        nic.switch_name = None

    def add_network_adapter(
        self,
        vm_id: uuid.UUID,
        name: str,
        switch_name: str | None,
        static_mac: str | None = None,
        is_legacy: bool = False,
    ) -> NetworkAdapterRecord:
        """Add an adapter (legacy adapters need a Generation 1 VM that is Off)."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if switch_name is not None:
                self.switch_by_name(switch_name)
            if is_legacy and (vm.generation == 2 or vm.state != "Off"):
                raise modify_failed(vm, "Legacy Network Adapter", not_running_detail())
            require_nic_hotplug(vm)
            mac = static_mac.replace("-", "").replace(":", "").upper() if static_mac else None
            if mac is None and vm.state not in {"Off", "Saved"}:
                mac = self._state.next_mac()
            nic = NetworkAdapterRecord(uuid.uuid4(), name, switch_name, mac, static_mac is None, is_legacy)
            vm.config.network_adapters.append(nic)
            self._cond.notify_all()
            return copy.deepcopy(nic)

    def remove_network_adapter(self, vm_id: uuid.UUID, adapter_id: uuid.UUID) -> None:
        """Remove one adapter (from a running VM only on Generation 2)."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            require_nic_hotplug(vm)
            vm.config.network_adapters = [n for n in vm.config.network_adapters if n.adapter_id != adapter_id]
            self._cond.notify_all()

    def connect_network_adapter(self, vm_id: uuid.UUID, adapter_id: uuid.UUID, switch_name: str | None) -> None:
        """Connect an adapter to a switch (None disconnects)."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if switch_name is not None:
                switch_name = self.switch_by_name(switch_name).name
            for nic in vm.config.network_adapters:
                if nic.adapter_id == adapter_id:
                    nic.switch_name = switch_name
            self._cond.notify_all()


def require_nic_hotplug(vm: VMRecord) -> None:
    """Network adapters are hot added and removed on Generation 2 VMs only (WSDOCS What's new in Hyper-V, "Hot add
    and remove for network adapters and memory"). The error a Generation 1 VM gets is an ASSUMPTION: the modify
    failure with the invalid-state detail, as for the other devices that need the VM off."""
    if vm.generation == 1 and vm.state not in {"Off", "Saved"}:
        raise modify_failed(vm, "Network Adapter", not_running_detail())
