"""The rules of the storage calls, once for both faces: validation, capability gates, deadlines, the local file.

:class:`polyvisor.Connection`'s storage methods (and through them :class:`polyvisor.aio.AsyncConnection`'s) are
these functions. Everything that can be refused is refused before the backend is called: names
(:func:`~polyvisor.storage.validate_volume_name`), sizes, a taken name, a missing or unreadable local file. A
download is written to a temporary file next to the destination and renamed only once complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.calls import change, read
from polyvisor.errors import AlreadyExistsError, NotFoundError, ValidationError
from polyvisor.model import Feature, validate_int
from polyvisor.storage import (
    LocalImage,
    Progress,
    StoragePool,
    TransferProgress,
    Volume,
    VolumeFormat,
    is_partial,
    partial_name,
    validate_volume_name,
)

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = [
    "TRANSFER_TIMEOUT",
    "create_pool",
    "create_volume",
    "delete_pool",
    "delete_volume",
    "download_image",
    "pools",
    "resize_volume",
    "upload_image",
    "volumes",
]

TRANSFER_TIMEOUT = 3600.0
"""The default bound of an upload or download, in seconds."""
MIB = 1024 * 1024
_MAX_MIB = 64 * 1024 * 1024


def _quiet(_progress: TransferProgress) -> None:
    return None


def _pool(pool: str | None) -> str | None:
    return None if pool is None else validate_volume_name(pool, "pool")


def _shown(pool: str | None) -> str:
    return repr(pool) if pool is not None else "the default pool"


def _deadline(conn: Connection, timeout: float) -> Deadline:
    validate_timeout(timeout)
    return Deadline(timeout, conn.clock)


def pools(conn: Connection, timeout: float) -> list[StoragePool]:
    """See :meth:`polyvisor.Connection.pools`."""
    conn.capabilities.require(Feature.STORAGE, host=conn.host)
    deadline = _deadline(conn, timeout)
    return read(conn, lambda b: b.pools(), deadline)


def volumes(conn: Connection, pool: str | None, timeout: float) -> list[Volume]:
    """See :meth:`polyvisor.Connection.volumes`."""
    conn.capabilities.require(Feature.STORAGE, host=conn.host)
    deadline = _deadline(conn, timeout)
    name = _pool(pool)
    return read(conn, lambda b: b.volumes(name), deadline)


def _refuse_taken(conn: Connection, pool: str | None, name: str, deadline: Deadline) -> None:
    if any(volume.name == name for volume in read(conn, lambda b: b.volumes(pool), deadline)):
        raise AlreadyExistsError(
            f"{_shown(pool)} already has a volume named {name!r}; delete it first or pick another name", host=conn.host
        )


def upload_image(
    conn: Connection,
    local_path: str | os.PathLike[str],
    pool: str | None,
    name: str | None,
    progress: Progress | None,
    timeout: float,
) -> Volume:
    """See :meth:`polyvisor.Connection.upload_image`."""
    conn.capabilities.require(Feature.IMAGE_UPLOAD, host=conn.host)
    deadline = _deadline(conn, timeout)
    image = LocalImage.open(local_path)
    target = validate_volume_name(image.path.name if name is None else name)
    pool_name = _pool(pool)
    _refuse_taken(conn, pool_name, target, deadline)
    sink = progress or _quiet
    return change(
        conn,
        lambda b: b.upload_image(image, pool_name, target, sink, deadline),
        f"uploading {target!r}",
        deadline=deadline,
    )


def download_image(
    conn: Connection,
    name: str,
    local_path: str | os.PathLike[str],
    pool: str | None,
    overwrite: bool,
    progress: Progress | None,
    timeout: float,
) -> Path:
    """See :meth:`polyvisor.Connection.download_image`."""
    conn.capabilities.require(Feature.IMAGE_DOWNLOAD, host=conn.host)
    deadline = _deadline(conn, timeout)
    source, pool_name = validate_volume_name(name), _pool(pool)
    destination = Path(local_path)
    if destination.is_dir():
        destination = destination / source
    if not destination.parent.is_dir():
        raise ValidationError(f"{str(destination.parent)!r} is not a directory", field="local_path")
    if destination.exists() and not overwrite:
        raise AlreadyExistsError(f"{str(destination)!r} exists; pass overwrite=True (--overwrite) to replace it")
    temporary = destination.with_name(partial_name(destination.name)[:255])
    sink = progress or _quiet
    try:
        with temporary.open("xb"):
            pass  # made here, new, so that nothing else is overwritten; the backend writes into it
        read(conn, lambda b: b.download_image(pool_name, source, str(temporary), sink, deadline), deadline)
        temporary.replace(destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


def create_pool(conn: Connection, name: str, path: str | None, timeout: float) -> StoragePool:
    """See :meth:`polyvisor.Connection.create_pool`."""
    conn.capabilities.require(Feature.POOL_WRITE, host=conn.host)
    deadline = _deadline(conn, timeout)
    pool = validate_volume_name(name, "name")
    if path is not None and (not isinstance(path, str) or not path or "\x00" in path):
        raise ValidationError(f"must be a path string, got {path!r}", field="path")
    if any(existing.name == pool for existing in read(conn, lambda b: b.pools(), deadline)):
        raise AlreadyExistsError(f"a pool named {pool!r} already exists", host=conn.host)
    return change(conn, lambda b: b.create_pool(pool, path, deadline), f"creating pool {pool!r}", deadline=deadline)


def delete_pool(conn: Connection, name: str, timeout: float) -> None:
    """See :meth:`polyvisor.Connection.delete_pool`."""
    conn.capabilities.require(Feature.POOL_WRITE, host=conn.host)
    deadline = _deadline(conn, timeout)
    pool = validate_volume_name(name, "name")
    change(conn, lambda b: b.delete_pool(pool, deadline), f"deleting pool {pool!r}", deadline=deadline)


def _format(value: VolumeFormat | str) -> VolumeFormat:
    try:
        fmt = VolumeFormat(value)
    except ValueError:
        raise ValidationError(f"{value!r} is not one of: qcow2, raw, vhdx, vhd", field="format") from None
    if fmt in (VolumeFormat.ISO, VolumeFormat.OTHER):
        raise ValidationError(f"an empty volume cannot be {fmt.value}; give qcow2, raw, vhdx or vhd", field="format")
    return fmt


def create_volume(
    conn: Connection, name: str, size_mib: int, pool: str | None, fmt: VolumeFormat | str, timeout: float
) -> Volume:
    """See :meth:`polyvisor.Connection.create_volume`."""
    conn.capabilities.require(Feature.VOLUME_WRITE, host=conn.host)
    deadline = _deadline(conn, timeout)
    volume, pool_name = validate_volume_name(name), _pool(pool)
    size = validate_int(size_mib, "size_mib", maximum=_MAX_MIB) * MIB
    chosen = _format(fmt)
    _refuse_taken(conn, pool_name, volume, deadline)
    return change(
        conn,
        lambda b: b.create_volume(pool_name, volume, size, chosen, deadline),
        f"creating {volume!r}",
        deadline=deadline,
    )


def resize_volume(conn: Connection, name: str, size_mib: int, pool: str | None, timeout: float) -> Volume:
    """See :meth:`polyvisor.Connection.resize_volume`."""
    conn.capabilities.require(Feature.VOLUME_RESIZE, host=conn.host)
    deadline = _deadline(conn, timeout)
    volume, pool_name = validate_volume_name(name), _pool(pool)
    size = validate_int(size_mib, "size_mib", maximum=_MAX_MIB) * MIB
    current = next((v for v in read(conn, lambda b: b.volumes(pool_name), deadline) if v.name == volume), None)
    if current is None:
        raise NotFoundError(f"{_shown(pool_name)} has no volume named {volume!r}; list them first", host=conn.host)
    if size < current.capacity:
        raise ValidationError(
            f"{volume!r} is {-(-current.capacity // MIB)} MiB and volumes never shrink; ask for at least that",
            field="size_mib",
        )
    if size == current.capacity:
        return current
    return change(
        conn, lambda b: b.resize_volume(pool_name, volume, size, deadline), f"resizing {volume!r}", deadline=deadline
    )


def delete_volume(conn: Connection, name: str, pool: str | None, timeout: float) -> None:
    """See :meth:`polyvisor.Connection.delete_volume`."""
    conn.capabilities.require(Feature.VOLUME_WRITE, host=conn.host)
    deadline = _deadline(conn, timeout)
    pool_name = _pool(pool)
    # An unfinished upload's temporary name is refused as a new name, but may be deleted.
    volume = name if isinstance(name, str) and is_partial(name) else validate_volume_name(name)
    change(conn, lambda b: b.delete_volume(pool_name, volume, deadline), f"deleting {volume!r}", deadline=deadline)
