"""The rules of the network calls, once for both faces: validation, capability gates, the host's other networks.

:class:`polyvisor.Connection`'s ``create_network`` and ``delete_network`` (and through them
:class:`polyvisor.aio.AsyncConnection`'s) are these functions. Everything that can be refused is refused before the
backend is asked to act: the spec (:class:`~polyvisor.networks.NetworkSpec`), a mode or an address range the
connection does not declare, a name another network has (names that differ only in case count as taken: Hyper-V
treats them as one), a subnet that overlaps another network's. A network some VM is on is refused by the backend,
which names the VMs (:class:`~polyvisor.errors.InUseError`), before it deletes anything.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.calls import change, read
from polyvisor.errors import AlreadyExistsError, NotFoundError, ValidationError
from polyvisor.model import Feature, NetworkInfo, NetworkMode, validate_name
from polyvisor.networks import MODE_FEATURES, NetworkSpec, parse_mode

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["create_network", "delete_network"]


def _listing(conn: Connection, deadline: Deadline) -> list[NetworkInfo]:
    return read(conn, lambda b: b.networks(), deadline)


def create_network(
    conn: Connection,
    name: str,
    mode: NetworkMode | str,
    subnet: str | None,
    adapter: str | None,
    timeout: float,
) -> NetworkInfo:
    """See :meth:`polyvisor.Connection.create_network`."""
    caps = conn.capabilities
    caps.require(Feature.NETWORK_WRITE, host=conn.host)
    validate_timeout(timeout)
    deadline = Deadline(timeout, conn.clock)
    spec = NetworkSpec(name, parse_mode(mode), subnet, adapter)
    caps.require(MODE_FEATURES[spec.mode], host=conn.host)
    if spec.subnet is not None:
        caps.require(Feature.NETWORK_ADDRESSES, host=conn.host)
    elif spec.mode in (NetworkMode.INTERNAL, NetworkMode.NAT) and caps.supports(Feature.NETWORK_ADDRESSES):
        raise ValidationError(
            f"an {spec.mode.value} network on this host needs an address range: give subnet= (such as "
            "'10.77.0.0/24'), one no other network of the host uses",
            field="subnet",
        )
    existing = _listing(conn, deadline)
    for other in existing:
        if other.name.casefold() == spec.name.casefold():
            raise AlreadyExistsError(
                f"a network named {other.name!r} already exists; pick another name or delete it first", host=conn.host
            )
    if spec.subnet is not None:
        wanted = ipaddress.IPv4Network(spec.subnet)
        for other in existing:
            if other.subnet is not None and ipaddress.ip_network(other.subnet).overlaps(wanted):
                raise ValidationError(
                    f"{spec.subnet} overlaps {other.subnet}, the range of network {other.name!r}; choose another",
                    field="subnet",
                )
    return change(
        conn, lambda b: b.create_network(spec, deadline), f"creating network {spec.name!r}", deadline=deadline
    )


def delete_network(conn: Connection, name: str, timeout: float) -> None:
    """See :meth:`polyvisor.Connection.delete_network`."""
    conn.capabilities.require(Feature.NETWORK_WRITE, host=conn.host)
    validate_timeout(timeout)
    deadline = Deadline(timeout, conn.clock)
    wanted = validate_name(name, "name")  # an existing network may have a name polyvisor would not give a new one
    names = [network.name for network in _listing(conn, deadline)]
    if wanted not in names:
        raise NotFoundError(
            f"no network named {wanted!r} (networks: {', '.join(sorted(names)) or 'none'})", host=conn.host
        )
    change(conn, lambda b: b.delete_network(wanted, deadline), f"deleting network {wanted!r}", deadline=deadline)
