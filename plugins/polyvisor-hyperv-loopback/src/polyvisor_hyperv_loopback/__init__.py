"""A loopback Windows/Hyper-V host: WinRM (WS-Management) and PowerShell remoting on 127.0.0.1.

Real pywinrm and pypsrp clients talk to it; PowerShell runs on the in-memory Hyper-V engine.

Test-host hook (no real Hyper-V host has it): a VM whose polyvisor labels (the label block polyvisor keeps in
the VM's ``Notes``) hold the key ``polyvisor.test/guest`` gets the guest that value names, so a conformance kit that
acts only through polyvisor's API can provoke guest behaviour:

* ``ignore-shutdown``: the guest accepts a shutdown request and never shuts down, so ``Stop-VM`` (without
  ``-TurnOff``) blocks until the VM is turned off, the pipeline is stopped (PSRP Ctrl+C signal, or the WinRS
  Terminate signal on the cmd shell), or the host's guest shutdown timeout passes;
* ``no-shutdown-service``: the guest does not answer the shutdown integration service, so ``Stop-VM`` asks whether
  to turn the VM off: ``-Force`` answers yes (the VM is powered off), and without it the prompt fails in the
  non-interactive session and the VM keeps running;
* ``no-kvp``: the guest shuts down when asked but runs no KVP daemon, so ``Get-VMNetworkAdapter`` never shows
  its IP addresses;
* ``responsive`` (or no such label): the guest shuts down when asked.

The host reads the label whenever the VM's Notes change (``Set-VM -Notes``, or a checkpoint restored); changing
other labels leaves the guest as it is, and removing the key makes the guest responsive again.
"""

from .engine_api import HostEngine
from .loopback import LoopbackHost

__all__ = ["HostEngine", "LoopbackHost"]
