"""The rules of device calls, once for both faces: the host's devices as values, and a spec's devices checked.

:meth:`polyvisor.Connection.host_devices` (and through it :class:`polyvisor.aio.AsyncConnection`'s) is
:func:`host_devices`; :meth:`polyvisor.Connection.create` asks :func:`check_spec_devices` before the backend acts,
so every backend refuses the same things the same way: a device the host does not list, a PCI or USB device where
the connection does not pass that bus through, and a device another VM has (naming that VM).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyvisor.backend import Deadline
from polyvisor.calls import read
from polyvisor.errors import InUseError, ValidationError
from polyvisor.model import Feature, HostDevice, HostDeviceKind, VMSpec

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["KIND_FEATURES", "check_spec_devices", "host_devices"]

KIND_FEATURES = {HostDeviceKind.PCI: Feature.PCI_PASSTHROUGH, HostDeviceKind.USB: Feature.USB_PASSTHROUGH}
"""The capability that passing through a device of each bus needs."""


def host_devices(conn: Connection, deadline: Deadline) -> list[HostDevice]:
    """See :meth:`polyvisor.Connection.host_devices`."""
    conn.capabilities.require(Feature.HOST_DEVICES, host=conn.host)
    return read(conn, lambda b: b.host_devices(), deadline)


def check_spec_devices(conn: Connection, spec: VMSpec, deadline: Deadline) -> list[HostDevice]:
    """Return the spec's host devices as the host lists them, or raise before anything is made: ValidationError for
    a device the host does not list, UnsupportedError for a bus the connection does not pass through, InUseError
    naming the VM that already has one."""
    if not spec.host_devices:
        return []
    listed = {device.name: device for device in host_devices(conn, deadline)}
    chosen = []
    for index, name in enumerate(spec.host_devices):
        device = listed.get(name)
        if device is None:
            known = ", ".join(sorted(listed)) or "none"
            raise ValidationError(
                f"the host has no assignable device named {name!r} (it lists: {known}); pick one that "
                "conn.host_devices() lists",
                field=f"host_devices[{index}]",
            )
        conn.capabilities.require(KIND_FEATURES[device.kind], host=conn.host, vm=spec.name)
        if device.used_by is not None:
            raise InUseError(
                f"host device {name!r} is already given to VM {device.used_by!r}; remove it from that VM (or "
                "delete the VM) first, or pick another device",
                users=(device.used_by,),
                host=conn.host,
            )
        chosen.append(device)
    return chosen
