"""A Hyper-V VM's screen: VMConnect, which every VM has, and nothing to choose (docs/hyperv-fidelity.md).

Hyper-V gives each VM one console, Virtual Machine Connection: ``vmconnect.exe <host> <VM name>`` on a Windows
machine, which reaches the host on TCP port 2179 and authenticates to the host (not to the guest) with the
user's Windows account, so no console password exists. RDP clients that speak its variant connect to the same
port with the VM's Id as RDP's pre-connection blob; enhanced session mode runs RDP over VMBus through the same
port. The video adapter is synthetic (or the emulated S3 adapter of a generation 1 VM): a spec chooses neither
a protocol nor a video model, so no ``graphics-*`` or ``video-*`` capability is declared.

A screenshot is Hyper-V's thumbnail of the screen, ``Msvm_VirtualSystemManagementService.
GetVirtualSystemThumbnailImage``, taken at the screen's current mode (``Msvm_VideoHead``) by the fixed script
``scripts/thumbnail.ps1`` (the VM's Id is its parameter, compared as a value, never written into a WQL query): raw
RGB 565, which :func:`polyvisor.png.from_rgb565` reads and :func:`polyvisor.png.encode` writes as a PNG. The method's
return value 32775 (invalid state: the VM shows no screen) is InvalidStateError; any other failure is a
BackendError naming the code.
"""

from __future__ import annotations

import base64
import binascii

from polyvisor import png
from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, InvalidStateError, NotFoundError
from polyvisor.model import GraphicsInfo, PowerState
from polyvisor_hyperv.client import HyperVClient, as_text
from polyvisor_hyperv.commands import Script

__all__ = ["FALLBACK_MODE", "VMCONNECT_PORT", "Display"]

VMCONNECT_PORT = 2179
"""The TCP port VMConnect (and enhanced session) reaches a Hyper-V host on."""
FALLBACK_MODE = (1024, 768)
"""The thumbnail's size when the VM has no video head to read its mode from (it shows no screen then)."""
_INVALID_STATE = 32775
_RETURN_VALUES = {
    32768: "failed",
    32769: "access denied",
    32770: "not supported",
    32771: "status is unknown",
    32772: "timeout",
    32773: "invalid parameter",
    32774: "system is in use",
    32776: "incorrect data type",
    32777: "system is not available",
    32778: "out of memory",
}
"""GetVirtualSystemThumbnailImage's return values, as Microsoft's page for the method lists them."""


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

    def screenshot(self, uuid: str, deadline: Deadline) -> bytes:
        """The VM's screen now, as PNG bytes: the thumbnail at the screen's own size, one request."""
        doing = "taking a screenshot (GetVirtualSystemThumbnailImage)"
        host = self._client.host
        width, height = FALLBACK_MODE
        rows = self._client.run(
            [Script("thumbnail", {"Id": uuid, "Width": width, "Height": height})],
            doing=doing,
            vm=uuid,
            deadline=deadline,
        )
        row = rows[0] if rows else {}
        vm = self._client.vm_label(uuid)
        if not int(row.get("Found") or 0):
            raise NotFoundError(f"no VM with Id {uuid} ({doing})", host=host, vm=vm)
        code = int(row.get("ReturnValue") or 0)
        if code == _INVALID_STATE:
            state = self._client.status(uuid, deadline).state
            raise InvalidStateError(
                f"the VM shows no screen while {state.value} ({doing} returned 32775, invalid state); start it first",
                state=state,
                accepted=(PowerState.RUNNING, PowerState.PAUSED),
                host=host,
                vm=vm,
            )
        if code != 0:
            meaning = _RETURN_VALUES.get(code, "an unknown return value")
            raise BackendError(f"{doing} returned {code} ({meaning})", code=code, host=host, vm=vm)
        width, height = int(row.get("Width") or 0), int(row.get("Height") or 0)
        try:
            pixels = base64.b64decode(as_text(row.get("Data")), validate=True)
            return png.encode(png.from_rgb565(pixels, width, height))
        except (binascii.Error, ValueError) as error:
            raise BackendError(
                f"{doing}: the host sent an image that cannot be read: {error}", host=host, vm=vm
            ) from None
