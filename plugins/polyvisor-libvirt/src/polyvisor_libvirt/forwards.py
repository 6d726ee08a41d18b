"""The port forwards of user-mode NICs: libvirt keeps them in the definition, polyvisor sets them in QEMU.

A user-mode NIC is ``<interface type='user'>`` and its forwards libvirt's own ``<portForward>``. libvirt 9.0 hands
``<portForward>`` to its passt backend only, and Debian 12 builds libvirt without passt (the package's patch
``debian/Disable-passt-support.patch``: ``<backend type='passt'/>`` is refused as an invalid value). The NIC is then
QEMU's built-in user-mode stack (libslirp), which libvirt starts without the forwards; QEMU takes them through its
monitor (HMP ``hostfwd_add``: QMP has no such command), for as long as the QEMU process lives. So every start
(a boot or a restore: both make a new QEMU process) sets them again, while the VM is still paused.

The monitor command is built from validated values only: libvirt's device alias (checked below), the protocol,
an IPv4 loopback address and two port numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libvirt
import libvirt_qemu

from polyvisor.backend import Deadline
from polyvisor.errors import AlreadyExistsError, BackendError
from polyvisor.model import PortForward
from polyvisor_libvirt.domainxml import Definition

__all__ = ["Rule", "apply", "rules"]

_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Rule:
    """One forward to set on one NIC of a running QEMU."""

    mac: str
    alias: str | None
    forward: PortForward

    @property
    def command(self) -> str:
        """The HMP command: the netdev of libvirt's device ``netN`` is ``hostnetN``."""
        forward = self.forward
        return (
            f"hostfwd_add host{self.alias} "
            f"{forward.protocol}:{forward.host_address}:{forward.host_port}-:{forward.guest_port}"
        )


def rules(definition: Definition) -> list[Rule]:
    """The forwards of the definition's user-mode NICs (libvirt itself sets those of a passt backend)."""
    return [
        Rule(nic.mac, nic.alias, forward)
        for nic in definition.nics
        if nic.kind == "user" and not nic.passt
        for forward in nic.forwards
    ]


def apply(dom: libvirt.virDomain, found: list[Rule], deadline: Deadline, *, host: str) -> None:
    """Set each forward in the running (paused) QEMU of ``dom``; raise at the first one QEMU refuses."""
    for rule in found:
        deadline.check("forwarding the VM's ports", host=host, vm=dom.name())
        if rule.alias is None or not _ALIAS.match(rule.alias):
            raise BackendError(
                f"libvirt gave the user-mode NIC {rule.mac} no usable device alias ({rule.alias!r}); its forwards "
                "cannot be set",
                code="port-forward",
                host=host,
                vm=dom.name(),
            )
        reply = libvirt_qemu.qemuMonitorCommand(dom, rule.command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
        if reply.strip():  # HMP answers a forward it set with nothing, one it could not set with a sentence
            raise _refused(rule.forward, reply.strip(), host=host, vm=dom.name())


def _refused(forward: PortForward, reply: str, *, host: str, vm: str) -> BackendError | AlreadyExistsError:
    where = f"{forward.host_address}:{forward.host_port}/{forward.protocol}"
    if forward.host_port < 1024:
        return BackendError(
            f"QEMU could not listen on host port {where} ({reply}): QEMU runs as an unprivileged user, which "
            "may not bind ports below 1024; forward a host port of 1024 or above",
            code="port-forward",
            native_message=reply,
            host=host,
            vm=vm,
        )
    return AlreadyExistsError(
        f"host port {where} is in use ({reply}); stop what listens there, or give this VM another host port",
        host=host,
        vm=vm,
    )
