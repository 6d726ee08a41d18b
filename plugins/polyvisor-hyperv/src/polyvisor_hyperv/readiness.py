"""Whether a guest finished initializing, as far as Hyper-V can tell: its heartbeat integration service.

Hyper-V has no guest agent that reads files in the guest. What it offers (docs/hyperv-fidelity.md):

* the heartbeat service (``Msvm_HeartbeatComponent``; the ``Heartbeat`` property of ``Get-VM``, a
  ``VMHeartbeatStatus``): ``Ok*`` once the guest's integration services answer, which is after its kernel booted
  and before cloud-init has run its last stage. This is the ``heartbeat`` source; the enum's names are not
  localized, unlike the names of ``Get-VMIntegrationService``.
* the data exchange service (KVP): items the guest writes into its pool, which the host reads as
  ``Msvm_KvpExchangeComponent.GuestExchangeItems``. cloud-init's Hyper-V reporting handler writes its stages' events
  there when the guest's configuration enables it; polyvisor does not read them yet.

For a login, ask ``ssh`` too (``sources=["heartbeat", "ssh"]``), or alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyvisor.backend import Deadline
from polyvisor.model import ReadyAnswer
from polyvisor_hyperv.client import HyperVClient
from polyvisor_hyperv.states import enum_name

__all__ = ["HEARTBEAT_NAMES", "SOURCES", "Readiness", "heartbeat_answer"]

SOURCES = ("heartbeat",)
HEARTBEAT_NAMES = {
    0: "Unknown",
    1: "Disabled",
    2: "NoContact",
    3: "Error",
    4: "LostCommunication",
    5: "OkApplicationsUnknown",
    6: "OkApplicationsHealthy",
    7: "OkApplicationsCritical",
    8: "Paused",
}
"""``Microsoft.HyperV.PowerShell.VMHeartbeatStatus`` by number, for a reply that carries the number."""


def heartbeat_answer(value: object) -> ReadyAnswer:
    """The ``heartbeat`` source's answer from a VM's ``Heartbeat`` (a VMHeartbeatStatus, its name or number)."""
    name = enum_name(value, HEARTBEAT_NAMES)
    if name in ("OkApplicationsHealthy", "OkApplicationsUnknown"):
        return ReadyAnswer("heartbeat", True, f"{name}: the guest's integration services answer")
    if name == "Disabled":
        return ReadyAnswer(
            "heartbeat",
            detail="the heartbeat integration service is disabled for this VM; enable it "
            "(Enable-VMIntegrationService) or ask the ssh source",
            unavailable=True,
        )
    if name == "OkApplicationsCritical":
        return ReadyAnswer("heartbeat", detail=f"{name}: the guest reports an application in a critical state")
    if name in ("", "Unknown", "NoContact"):
        return ReadyAnswer(
            "heartbeat",
            detail=f"{name or 'no status'}: no heartbeat from the guest yet (still booting, or it runs no "
            "integration services)",
        )
    return ReadyAnswer("heartbeat", detail=f"{name}: the guest's heartbeat is not answering")


class Readiness:
    """Readiness answers of VMs, from Get-VM."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    def ready_answers(self, uuid: str, sources: Sequence[str], deadline: Deadline) -> list[ReadyAnswer]:
        """One answer per source; only ``heartbeat`` is Hyper-V's (one Get-VM, Heartbeat only)."""
        heartbeat = None
        out = []
        for source in sources:
            if source != "heartbeat":
                out.append(ReadyAnswer(source, detail="Hyper-V has no such source", unavailable=True))
                continue
            if heartbeat is None:
                heartbeat = heartbeat_answer(self._client.vm_row(uuid, ("Heartbeat",), deadline).get("Heartbeat"))
            out.append(heartbeat)
        return out
