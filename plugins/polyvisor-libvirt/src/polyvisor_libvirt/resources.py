"""The backend's host-resource primitives, a part of the facade kept apart so that it stays a facade: networks
(:mod:`.networks`), storage pools and volumes (:mod:`.pools`) and images moved over sparse streams
(:mod:`.transfers`)."""

from __future__ import annotations

from polyvisor.backend import Backend, Deadline
from polyvisor.model import NetworkInfo
from polyvisor.networks import NetworkSpec
from polyvisor.storage import LocalImage, Progress, StoragePool, Volume, VolumeFormat
from polyvisor_libvirt.bounded import CallPool, bounded
from polyvisor_libvirt.networks import Networks
from polyvisor_libvirt.pools import Pools
from polyvisor_libvirt.transfers import Transfers

__all__ = ["ResourcePrimitives"]


class ResourcePrimitives(Backend):
    """The networks, pools, volumes and image transfers of one connection (a base of :class:`.LibvirtBackend`)."""

    host: str
    _calls: CallPool
    _networks: Networks
    _pools: Pools
    _transfers: Transfers

    # -- networks ------------------------------------------------------------------------------------------------------
    @bounded("listing networks")
    def networks(self) -> list[NetworkInfo]:
        """Every libvirt network, with its mode and subnet read from its XML."""
        return self._networks.networks()

    @bounded("creating a network")
    def create_network(self, spec: NetworkSpec, deadline: Deadline) -> NetworkInfo:
        """Define, start and autostart a network (see :mod:`.networks`)."""
        return self._networks.create_network(spec, deadline)

    @bounded("deleting a network")
    def delete_network(self, name: str, deadline: Deadline) -> None:
        """Stop and undefine a network no domain is on."""
        self._networks.delete_network(name, deadline)

    # -- storage -----------------------------------------------------------------------------------------------------
    @bounded("listing storage pools")
    def pools(self) -> list[StoragePool]:
        """Every storage pool, with its type, path and sizes."""
        return self._pools.pools()

    @bounded("listing volumes")
    def volumes(self, pool: str | None) -> list[Volume]:
        """The pool's volumes (after a refresh), with format and sizes."""
        return self._pools.volumes(pool)

    def upload_image(
        self, image: LocalImage, pool: str | None, name: str, progress: Progress, deadline: Deadline
    ) -> Volume:
        """A sparse upload stream into a temporary volume, then renamed (see :mod:`.transfers`)."""
        return self._transfers.upload_image(image, pool, name, progress, deadline)

    def download_image(
        self, pool: str | None, name: str, destination: str, progress: Progress, deadline: Deadline
    ) -> int:
        """A sparse download stream into the local file."""
        return self._transfers.download_image(pool, name, destination, progress, deadline)

    @bounded("creating a storage pool")
    def create_pool(self, name: str, path: str | None, deadline: Deadline) -> StoragePool:
        """Define, build, start and autostart a dir pool."""
        return self._pools.create_pool(name, path)

    @bounded("deleting a storage pool")
    def delete_pool(self, name: str, deadline: Deadline) -> None:
        """Stop, delete (an empty directory) and undefine the pool."""
        self._pools.delete_pool(name)

    @bounded("creating a volume")
    def create_volume(self, pool: str | None, name: str, size: int, fmt: VolumeFormat, deadline: Deadline) -> Volume:
        """createXML of an empty volume."""
        return self._pools.create_volume(pool, name, size, fmt)

    @bounded("resizing a volume")
    def resize_volume(self, pool: str | None, name: str, size: int, deadline: Deadline) -> Volume:
        """virStorageVolResize."""
        return self._pools.resize_volume(pool, name, size)

    @bounded("deleting a volume")
    def delete_volume(self, pool: str | None, name: str, deadline: Deadline) -> None:
        """Delete the volume unless a domain uses it."""
        self._pools.delete_volume(pool, name)
