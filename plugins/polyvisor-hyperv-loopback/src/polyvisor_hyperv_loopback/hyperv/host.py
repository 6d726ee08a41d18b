"""The in-memory Hyper-V host: VMs, their power state machine, checkpoints, disks, NICs and switches.

Every public method is thread-safe (one condition variable guards the whole host) and raises ``HostError`` with
the error id, category and message Hyper-V reports. State changes pass through the transitional states Hyper-V
shows (Starting, Stopping, Saving, Pausing, Resuming, Reset) for ``delays[state]`` seconds, with the lock released
so that a concurrent Get-VM observes them; the caller blocks until the target state is reached, as the cmdlets do.
Behaviour that cannot be driven through cmdlets (the transition timings, files placed on the host) is reachable
through the Python API only. How the guest answers a shutdown request (:data:`GUEST_BEHAVIOURS`) is set through the
Python API, or by the test hook described in the package docstring: the ``polyvisor.test/guest`` label in Notes.

:class:`HyperVHost` holds the shared state (:mod:`.state`) and the rooms that model the verbs, as attributes the cmdlets
call directly: ``lifecycle`` (New-VM, Set-VM, Remove-VM), ``power`` (the state machine), ``checkpoints``, ``disks`` (VHD
files, chains, merges), ``drives``, ``network``, ``netnat`` (addresses, WinNAT), ``guests`` (shutdown and KVP
behaviour), ``metering`` (Measure-VM, virtual processor counters), ``display`` (screens, through WMI) and ``hardware``
(TPM, nested virtualization, assigned devices). It forwards none of their verbs: ``host.power.start_vm(vm_id)``, not
``host.start_vm(vm_id)``.
"""

from __future__ import annotations

from .checkpoints import Checkpoints
from .disks import VirtualDisks
from .display import Display
from .drives import Drives
from .guest import GuestSimulation
from .hardware import Hardware
from .lifecycle import VMLifecycle
from .metering import Metering
from .netnat import NetNat
from .network import Network
from .power import PowerStates
from .records import GiB
from .state import HostState

__all__ = ["HyperVHost"]


class HyperVHost(HostState):
    """A Windows Hyper-V host held in memory. Share one instance between connections.

    Its rooms share its state and its lock; each verb lives in exactly one of them.
    """

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
        super().__init__(
            computer_name=computer_name,
            domain=domain,
            logical_processor_count=logical_processor_count,
            memory_capacity=memory_capacity,
            transition_delay=transition_delay,
            guest_shutdown_timeout=guest_shutdown_timeout,
            cmdlet_latency=cmdlet_latency,
            merge_delay=merge_delay,
            kvp_delay=kvp_delay,
        )
        self.disks = VirtualDisks(self)
        """VHD files, differencing chains, background merges, files held open."""
        self.network = Network(self)
        """Virtual switches and network adapters."""
        self.guests = GuestSimulation(self)
        """How each guest answers shutdown requests, and when its KVP daemon reports addresses."""
        self.power = PowerStates(self)
        """The power state machine: Start-, Stop-, Save-, Suspend-, Resume-, Restart-VM."""
        self.checkpoints = Checkpoints(self, self.disks)
        """Checkpoints: take, find, restore, rename, remove."""
        self.drives = Drives(self)
        """Hard disk and DVD drives on the VMs' controllers."""
        self.lifecycle = VMLifecycle(self, self.disks, self.network)
        """New-VM, Set-VM, Set-VMFirmware, Remove-VM."""
        self.metering = Metering(self)
        """Resource metering (Measure-VM) and the hypervisor's virtual processor counters."""
        self.display = Display(self)
        """The VMs' screens as WMI shows them: video heads, settings, thumbnails."""
        self.hardware = Hardware(self)
        """The TPM and key protector, the processor's virtualization extensions, assigned host devices."""
        self.netnat = NetNat(self)
        """The host's interface addresses, its NAT network and the NAT's static mappings (WinNAT)."""
