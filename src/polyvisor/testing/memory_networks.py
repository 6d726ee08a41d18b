"""The networks of a ``memory://`` host, with the same rules as the real backends.

Every host starts with one network, ``default`` (mode ``nat``, as libvirt's stock network). Networks of every mode
can be made (:class:`~polyvisor.networks.NetworkSpec`); an ``external`` one is bound to one of the host's adapters
(:data:`ADAPTERS`), and an adapter takes one external network at most, as on Hyper-V. A network some VM's NIC is on
is refused on delete, naming the VMs.
"""

from __future__ import annotations

import threading
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from polyvisor.backend import Deadline
from polyvisor.errors import InUseError, NotFoundError
from polyvisor.model import NetworkInfo, NetworkMode
from polyvisor.networks import NetworkSpec
from polyvisor.testing.faults import Instrumented

__all__ = ["ADAPTERS", "DEFAULT_NETWORK", "MemoryNetworks", "NetworkPrimitives"]

DEFAULT_NETWORK = "default"
ADAPTERS = ("eth0", "eth1")
"""The host's physical adapters, which ``external`` networks are bound to."""


class MemoryNetworks:
    """The networks of one in-memory host; ``users(name)`` names the VMs with a NIC on a network."""

    def __init__(self, host: str, users: Callable[[str], list[str]], lock: threading.RLock) -> None:
        self._host = host
        self._users = users
        self._lock = lock
        default = NetworkInfo(DEFAULT_NETWORK, True, "memory", None, NetworkMode.NAT)
        self._networks: dict[str, NetworkInfo] = {DEFAULT_NETWORK: default}

    def list(self) -> list[NetworkInfo]:
        with self._lock:
            return sorted(self._networks.values(), key=lambda network: network.name)

    def resolve(self, name: str | None, vm: str | None = None) -> str:
        """The network a NIC asking for ``name`` is put on (None: the default network)."""
        with self._lock:
            wanted = name or DEFAULT_NETWORK
            if wanted not in self._networks:
                raise NotFoundError(
                    f"no network named {wanted!r}; list them with connection.networks()", host=self._host, vm=vm
                )
            return wanted

    def create(self, spec: NetworkSpec) -> NetworkInfo:
        with self._lock:
            extra = {}
            if spec.adapter is not None:
                if spec.adapter not in ADAPTERS:
                    raise NotFoundError(
                        f"the host has no network adapter {spec.adapter!r} (adapters: {', '.join(ADAPTERS)})",
                        host=self._host,
                    )
                bound = [n.name for n in self._networks.values() if n.extra.get("adapter") == spec.adapter]
                if bound:
                    raise InUseError(
                        f"adapter {spec.adapter!r} is already bound to network {bound[0]!r}; an adapter takes one "
                        "external network",
                        users=(),
                        host=self._host,
                    )
                extra["adapter"] = spec.adapter
            network = NetworkInfo(spec.name, True, "memory", str(uuid_module.uuid4()), spec.mode, spec.subnet, extra)
            self._networks[spec.name] = network
            return replace(network)

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._networks:
                raise NotFoundError(f"no network named {name!r}", host=self._host)
            users = self._users(name)
            if users:
                listed = ", ".join(repr(user) for user in users)
                raise InUseError(
                    f"network {name!r} is in use by {'VM' if len(users) == 1 else 'VMs'} {listed}; detach the NICs on "
                    "it (or delete the VMs) first",
                    users=users,
                    host=self._host,
                )
            del self._networks[name]


class _NetworkHost(Protocol):
    name: str
    networks: MemoryNetworks


class NetworkPrimitives(Instrumented):
    """The network primitives of :class:`~polyvisor.testing.memory.MemoryBackend`, each a call of its host's
    :class:`MemoryNetworks` (recorded, faults obeyed)."""

    host: _NetworkHost

    def networks(self) -> list[NetworkInfo]:
        return self.host.networks.list()

    def create_network(self, spec: NetworkSpec, deadline: Deadline) -> NetworkInfo:
        deadline.check(f"creating network {spec.name!r}", host=self.host.name)
        return self.host.networks.create(spec)

    def delete_network(self, name: str, deadline: Deadline) -> None:
        deadline.check(f"deleting network {name!r}", host=self.host.name)
        self.host.networks.delete(name)
