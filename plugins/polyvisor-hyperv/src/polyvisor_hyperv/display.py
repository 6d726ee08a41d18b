"""A Hyper-V VM's screen: VMConnect, which every VM has, and nothing to choose (docs/hyperv-fidelity.md).

Hyper-V gives each VM one console, Virtual Machine Connection: ``vmconnect.exe <host> <VM name>`` on a Windows
machine, which reaches the host on TCP port 2179 and authenticates to the host (not to the guest) with the
user's Windows account, so no console password exists. RDP clients that speak its variant connect to the same
port with the VM's Id as RDP's pre-connection blob; enhanced session mode runs RDP over VMBus through the same
port. The video adapter is synthetic (or the emulated S3 adapter of a generation 1 VM): a spec chooses neither
a protocol nor a video model, so no ``graphics-*`` or ``video-*`` capability is declared. Screenshots are not
taken yet: Hyper-V offers a thumbnail (``Msvm_VirtualSystemManagementService.GetVirtualSystemThumbnailImage``,
raw RGB 565), which the cmdlet-only request path cannot call.
"""

from __future__ import annotations

from polyvisor.model import GraphicsInfo
from polyvisor_hyperv.client import HyperVClient, as_text

__all__ = ["VMCONNECT_PORT", "Display"]

VMCONNECT_PORT = 2179
"""The TCP port VMConnect (and enhanced session) reaches a Hyper-V host on."""


class Display:
    """VMConnect details of VMs, from Get-VM (the name)."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    def graphics(self, uuid: str) -> GraphicsInfo:
        """How a Windows machine opens the VM's console: VMConnect to the host, by VM name (or Id over RDP)."""
        name = as_text(self._client.vm_row(uuid, ("Name",)).get("Name"))
        host = self._client.host
        return GraphicsInfo(
            protocol="rdp",
            host=host,
            port=VMCONNECT_PORT,
            listen=host,
            host_port=VMCONNECT_PORT,
            password_required=False,
            viewer=("vmconnect.exe", host, name),
            detail=f"VMConnect authenticates to the host with your Windows account; an RDP client that speaks "
            f"Hyper-V's variant connects to port {VMCONNECT_PORT} with the VM's Id {uuid} as its pre-connection blob",
        )
