"""The storage of a ``memory://`` host: pools of volumes held in memory, with the same rules as the real backends.

Every host starts with one pool, ``default`` at ``/memory/pools/default``; :meth:`MemoryStorage.create_pool`
adds directory pools (at ``/memory/pools/<name>`` unless a path is given). A volume keeps its bytes; its path is
``<pool path>/<name>``, which a disk spec's ``image`` names (attached as it is, or cloned). An upload is read from
the local file in chunks of :data:`~polyvisor.storage.TRANSFER_CHUNK`, kept under its temporary name until the
last chunk, then renamed; holes of a sparse file are counted as done, not as sent. A deadline that passes, or a
progress callback that raises, between two chunks ends it, and the temporary volume is removed.

A test can leave an unfinished upload behind as a killed client would (:meth:`MemoryStorage.leave_partial`).
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from polyvisor.backend import Deadline
from polyvisor.errors import InUseError, NotFoundError, ValidationError
from polyvisor.storage import (
    TRANSFER_CHUNK,
    LocalImage,
    Progress,
    StoragePool,
    TransferProgress,
    Volume,
    VolumeFormat,
    data_extents,
    is_partial,
    partial_name,
    probe_format,
)
from polyvisor.testing.faults import Instrumented

__all__ = ["POOL_ROOT", "MemoryStorage", "StoragePrimitives"]

POOL_ROOT = "/memory/pools"
CAPACITY = 1024 * 1024 * 1024 * 1024
"""Bytes every memory:// pool can hold (a terabyte, shared by nobody)."""


@dataclass
class _Volume:
    data: bytearray
    format: VolumeFormat
    capacity: int


@dataclass
class _Pool:
    name: str
    path: str
    volumes: dict[str, _Volume] = field(default_factory=dict)

    def allocation(self) -> int:
        return sum(len(volume.data) for volume in self.volumes.values())


class MemoryStorage:
    """The pools of one in-memory host; ``users(path)`` names the VMs whose disks use a path."""

    def __init__(self, host: str, users: Callable[[str], list[str]], lock: threading.RLock) -> None:
        self._host = host
        self._users = users
        self._lock = lock
        self._pools: dict[str, _Pool] = {"default": _Pool("default", f"{POOL_ROOT}/default")}

    # -- reading -----------------------------------------------------------------------------------------------
    def pools(self) -> list[StoragePool]:
        with self._lock:
            return [self._value(pool) for pool in self._pools.values()]

    def _value(self, pool: _Pool) -> StoragePool:
        used = pool.allocation()
        return StoragePool(pool.name, "dir", pool.path, CAPACITY, used, CAPACITY - used)

    def _pool(self, name: str | None) -> _Pool:
        pool = self._pools.get(name or "default")
        if pool is None:
            raise NotFoundError(
                f"no storage pool named {name!r} (pools: {', '.join(sorted(self._pools))})", host=self._host
            )
        return pool

    def volumes(self, pool: str | None) -> list[Volume]:
        with self._lock:
            found = self._pool(pool)
            return [self._volume(found, name) for name in sorted(found.volumes)]

    def _volume(self, pool: _Pool, name: str) -> Volume:
        volume = pool.volumes[name]
        path = posixpath.join(pool.path, name)
        return Volume(name, pool.name, path, volume.format, volume.capacity, len(volume.data), is_partial(name))

    def find(self, path: str) -> _Volume | None:
        """The volume at ``path``, if a pool holds one there."""
        with self._lock:
            for pool in self._pools.values():
                directory, name = posixpath.split(path)
                if directory == pool.path and name in pool.volumes:
                    return pool.volumes[name]
        return None

    def contains(self, path: str) -> bool:
        """Return whether a pool holds a volume at ``path``."""
        return self.find(path) is not None

    # -- transfers -----------------------------------------------------------------------------------------------
    def upload(self, image: LocalImage, pool: str | None, name: str, progress: Progress, deadline: Deadline) -> Volume:
        with self._lock:
            target = self._pool(pool)
            temporary = partial_name(name)
            target.volumes[temporary] = _Volume(bytearray(), image.format, image.virtual_size)
        try:
            sent = 0
            with image.path.open("rb") as source:
                for offset, length, is_data in data_extents(source.fileno(), image.size):
                    end = offset + length
                    while offset < end:
                        step = min(TRANSFER_CHUNK, end - offset)
                        deadline.check(f"uploading {name!r}", host=self._host)
                        if is_data:
                            source.seek(offset)
                            chunk = source.read(step)
                            sent += len(chunk)
                        else:
                            chunk = bytes(step)
                        with self._lock:
                            target.volumes[temporary].data += chunk
                        offset += step
                        progress(TransferProgress(offset, image.size, sent))
            with self._lock:
                target.volumes[name] = target.volumes.pop(temporary)
                return self._volume(target, name)
        finally:
            with self._lock:
                target.volumes.pop(temporary, None)

    def download(self, pool: str | None, name: str, destination: str, progress: Progress, deadline: Deadline) -> int:
        with self._lock:
            found = self._pool(pool)
            if name not in found.volumes:
                raise NotFoundError(f"pool {found.name!r} has no volume named {name!r}", host=self._host)
            data = bytes(found.volumes[name].data)
        with open(destination, "wb") as out:
            for offset in range(0, len(data), TRANSFER_CHUNK):
                deadline.check(f"downloading {name!r}", host=self._host)
                chunk = data[offset : offset + TRANSFER_CHUNK]
                out.write(chunk)
                progress(TransferProgress(offset + len(chunk), len(data), offset + len(chunk)))
            os.fsync(out.fileno())
        return len(data)

    def leave_partial(self, pool: str | None, name: str, data: bytes) -> str:
        """Leave what a killed client's upload of ``name`` would leave; return its temporary name (a test hook)."""
        with self._lock:
            temporary = partial_name(name)
            fmt, size = probe_format(data[:512], data[-512:], len(data))
            self._pool(pool).volumes[temporary] = _Volume(bytearray(data), fmt, size)
            return temporary

    # -- writing -----------------------------------------------------------------------------------------------
    def create_pool(self, name: str, path: str | None) -> StoragePool:
        with self._lock:
            where = posixpath.normpath(path) if path is not None else f"{POOL_ROOT}/{name}"
            if not where.startswith("/"):
                raise ValidationError(f"{path!r} is not an absolute path", field="path")
            if any(pool.path == where for pool in self._pools.values()):
                raise ValidationError(f"another pool already lives at {where!r}", field="path")
            self._pools[name] = pool = _Pool(name, where)
            return self._value(pool)

    def delete_pool(self, name: str) -> None:
        with self._lock:
            pool = self._pool(name)
            if pool.volumes:
                shown = ", ".join(sorted(pool.volumes))
                raise InUseError(
                    f"pool {name!r} still holds volumes ({shown}); delete them first", users=(), host=self._host
                )
            del self._pools[name]

    def create_volume(self, pool: str | None, name: str, size: int, fmt: VolumeFormat) -> Volume:
        with self._lock:
            found = self._pool(pool)
            found.volumes[name] = _Volume(bytearray(), fmt, size)
            return self._volume(found, name)

    def resize_volume(self, pool: str | None, name: str, size: int) -> Volume:
        with self._lock:
            found = self._pool(pool)
            if name not in found.volumes:
                raise NotFoundError(f"pool {found.name!r} has no volume named {name!r}", host=self._host)
            found.volumes[name].capacity = size
            return self._volume(found, name)

    def delete_volume(self, pool: str | None, name: str) -> None:
        with self._lock:
            found = self._pool(pool)
            if name not in found.volumes:
                raise NotFoundError(f"pool {found.name!r} has no volume named {name!r}", host=self._host)
            users = self._users(posixpath.join(found.path, name))
            if users:
                raise InUseError(
                    f"volume {name!r} is used by {_names(users)}; delete or detach their disks first",
                    users=users,
                    host=self._host,
                )
            del found.volumes[name]


def _names(users: Iterable[str]) -> str:
    listed = sorted(users)
    return ("VM " if len(listed) == 1 else "VMs ") + ", ".join(repr(user) for user in listed)


class _StorageHost(Protocol):
    storage: MemoryStorage


class StoragePrimitives(Instrumented):
    """The storage primitives of :class:`~polyvisor.testing.memory.MemoryBackend` (recorded, faults obeyed, as
    every primitive there), each a call of its host's :class:`MemoryStorage`."""

    host: _StorageHost

    def pools(self) -> list[StoragePool]:
        return self.host.storage.pools()

    def volumes(self, pool: str | None) -> list[Volume]:
        return self.host.storage.volumes(pool)

    def upload_image(
        self, image: LocalImage, pool: str | None, name: str, progress: Progress, deadline: Deadline
    ) -> Volume:
        return self.host.storage.upload(image, pool, name, progress, deadline)

    def download_image(
        self, pool: str | None, name: str, destination: str, progress: Progress, deadline: Deadline
    ) -> int:
        return self.host.storage.download(pool, name, destination, progress, deadline)

    def create_pool(self, name: str, path: str | None, deadline: Deadline) -> StoragePool:
        return self.host.storage.create_pool(name, path)

    def delete_pool(self, name: str, deadline: Deadline) -> None:
        self.host.storage.delete_pool(name)

    def create_volume(self, pool: str | None, name: str, size: int, fmt: VolumeFormat, deadline: Deadline) -> Volume:
        return self.host.storage.create_volume(pool, name, size, fmt)

    def resize_volume(self, pool: str | None, name: str, size: int, deadline: Deadline) -> Volume:
        return self.host.storage.resize_volume(pool, name, size)

    def delete_volume(self, pool: str | None, name: str, deadline: Deadline) -> None:
        self.host.storage.delete_volume(pool, name)
