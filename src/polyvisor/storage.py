"""The host's storage as values: pools, the volumes (disk files) in them, images moved between client and host.

A *pool* is where a host keeps disk files: a libvirt storage pool, or on Hyper-V the host's virtual hard disk
path, its virtual machine path and the image folders polyvisor makes under the former. A *volume* is one file in
a pool. Sizes are bytes. :class:`Volume` is :class:`os.PathLike`, so the value
:meth:`polyvisor.Connection.upload_image` returns is a disk spec's ``image`` as it is:
``DiskSpec(image=volume, clone="linked")``.

Names are checked here, once, for every backend (:func:`validate_volume_name`): a name is one path component
that every supported host stores verbatim, so a hostile name is refused before anything is sent, and any other
name is stored exactly as given. An upload is written under a temporary name (:data:`PARTIAL_PREFIX`) and only
renamed once complete, so an interrupted upload (a killed client, a dropped connection, a deadline) never leaves a
half image under the final name; what a killed client leaves behind is listed with ``partial=True`` and can be
deleted like any volume.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import secrets
import stat
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyvisor.errors import NotFoundError, ValidationError

__all__ = [
    "MAX_VOLUME_NAME",
    "PARTIAL_PREFIX",
    "TRANSFER_CHUNK",
    "LocalImage",
    "Progress",
    "StoragePool",
    "TransferProgress",
    "Volume",
    "VolumeFormat",
    "data_extents",
    "is_partial",
    "partial_name",
    "probe_format",
    "validate_volume_name",
]

PARTIAL_PREFIX = ".polyvisor-partial-"
"""The prefix of the temporary name an upload writes to: ``.polyvisor-partial-<8 hex>-<final name>``."""
MAX_VOLUME_NAME = 200
"""Longest volume name (the temporary name adds 28 characters, within every file system's 255)."""
TRANSFER_CHUNK = 1024 * 1024
"""Bytes per chunk of data a libvirt transfer sends or receives: never below 1 MiB (small chunks are slow), and no
more: bench/bench_upload.py measured 1 MiB chunks 2.5x faster than 4 MiB ones (a 4 MiB buffer is a fresh mmap per
read, its pages faulted in each time)."""

_PARTIAL = re.compile(re.escape(PARTIAL_PREFIX) + r"[0-9a-f]{8}-")
# Windows refuses these in file names, and '/' and '\\' are path separators on one host or the other.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?$", re.IGNORECASE)


class VolumeFormat(enum.StrEnum):
    """What a volume holds, as polyvisor names it on every backend."""

    QCOW2 = "qcow2"
    RAW = "raw"
    VHDX = "vhdx"
    VHD = "vhd"
    ISO = "iso"
    OTHER = "other"
    """A file polyvisor does not recognise as a disk image (a libvirt format it has no name for)."""


def validate_volume_name(name: object, field_name: str = "name") -> str:
    """Return ``name`` if every backend can store it verbatim as one file name, else raise ValidationError."""
    if not isinstance(name, str):
        raise ValidationError(f"must be a string, got {type(name).__name__}", field=field_name)
    if not name or not name.strip():
        raise ValidationError("must not be empty or blank", field=field_name)
    if len(name) > MAX_VOLUME_NAME:
        raise ValidationError(f"is {len(name)} characters long; the limit is {MAX_VOLUME_NAME}", field=field_name)
    bad = _FORBIDDEN.search(name)
    if bad:
        shown = repr(bad.group())
        raise ValidationError(
            f"{name!r} contains {shown}; a volume name is one file name without path separators, control "
            'characters or any of < > : " | ? * (Windows refuses them)',
            field=field_name,
        )
    if name in (".", "..") or name != name.strip() or name.endswith("."):
        raise ValidationError(
            f"{name!r} starts or ends with a space or ends with a dot, which Windows strips; choose another name",
            field=field_name,
        )
    if _RESERVED.match(name):
        raise ValidationError(f"{name!r} is a reserved device name on Windows; choose another name", field=field_name)
    if name.startswith(PARTIAL_PREFIX):
        raise ValidationError(
            f"{name!r} starts with {PARTIAL_PREFIX!r}, the prefix of unfinished uploads; choose another name",
            field=field_name,
        )
    return name


def partial_name(name: str) -> str:
    """A fresh temporary name for an upload of ``name``."""
    return f"{PARTIAL_PREFIX}{secrets.token_hex(4)}-{name}"


def is_partial(name: str) -> bool:
    """Return whether ``name`` is the temporary name of an unfinished upload."""
    return bool(_PARTIAL.match(name))


@dataclass(frozen=True, slots=True)
class StoragePool:
    """A place on the host that holds volumes (sizes in bytes; None when the host does not say)."""

    name: str
    kind: str
    """libvirt's pool type (``dir``, ``logical``, ``netfs``, ...); on Hyper-V ``virtual-hard-disks`` (the host's
    VirtualHardDiskPath), ``virtual-machines`` (its VirtualMachinePath) or ``folder`` (an image folder)."""
    path: str | None
    capacity: int | None
    allocation: int | None
    available: int | None
    active: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Volume:
    """One file in a pool; usable wherever a disk spec takes an ``image`` (it is :class:`os.PathLike`)."""

    name: str
    pool: str
    path: str
    format: VolumeFormat
    capacity: int
    """The virtual size (what a guest sees), in bytes."""
    allocation: int
    """Bytes the file occupies on the host."""
    partial: bool = False
    """An unfinished upload (named with :data:`PARTIAL_PREFIX`): delete it, or let the kit do so."""

    def __fspath__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """How far a transfer is: ``done`` of ``total`` bytes of the image covered, ``sent`` of them carried.

    Holes of a sparse image count as done but are not carried, so ``sent`` can stay well below ``done``.
    """

    done: int
    total: int
    sent: int

    @property
    def fraction(self) -> float:
        """``done / total`` (1.0 for an empty image)."""
        return self.done / self.total if self.total else 1.0


Progress = Callable[[TransferProgress], None]
"""A ``progress=`` callback of a transfer, called from the thread doing it."""


@dataclass(frozen=True, slots=True)
class LocalImage:
    """An image file on the client, checked before a transfer starts."""

    path: Path
    size: int
    format: VolumeFormat
    virtual_size: int

    @classmethod
    def open(cls, path: str | os.PathLike[str], field_name: str = "local_path") -> LocalImage:
        """Check that ``path`` is a readable regular file; read its format and virtual size from its header."""
        local = Path(path)
        try:
            with local.open("rb") as handle:
                facts = os.fstat(handle.fileno())
                if not stat.S_ISREG(facts.st_mode):
                    raise ValidationError(f"{str(local)!r} is not a regular file", field=field_name)
                head = handle.read(512)
                handle.seek(max(facts.st_size - 512, 0))
                tail = handle.read(512)
        except FileNotFoundError:
            raise NotFoundError(f"the image {str(local)!r} does not exist on this machine; check the path") from None
        except IsADirectoryError:
            raise ValidationError(f"{str(local)!r} is a directory, not an image file", field=field_name) from None
        except OSError as error:
            raise ValidationError(f"{str(local)!r} cannot be read: {error.strerror}", field=field_name) from None
        fmt, virtual = probe_format(head, tail, facts.st_size)
        return cls(local, facts.st_size, fmt, virtual)


def probe_format(head: bytes, tail: bytes, file_size: int) -> tuple[VolumeFormat, int]:
    """Return (format, virtual size) of an image from its first and last 512 bytes: qcow2, VHDX and VHD by their
    headers, an ISO 9660 image by its descriptor's place (unknown here: raw), anything else raw."""
    if head[:4] == b"QFI\xfb" and len(head) >= 32:
        return VolumeFormat.QCOW2, int(struct.unpack_from(">Q", head, 24)[0])
    if head[:8] == b"vhdxfile":
        return VolumeFormat.VHDX, file_size  # the virtual size lives in a metadata region read by the host
    footer = head if head[:8] == b"conectix" else tail if tail[:8] == b"conectix" else b""
    if len(footer) >= 56:
        return VolumeFormat.VHD, int(struct.unpack_from(">Q", footer, 48)[0])
    return VolumeFormat.RAW, file_size


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int, bool]]:
    """Yield ``(offset, length, is_data)`` covering ``size`` bytes of an open file, holes apart where the file system
    reports them (SEEK_DATA/SEEK_HOLE); without that support the whole file is one data extent."""
    offset = 0
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    while offset < size:
        if seek_data is None or seek_hole is None:
            yield offset, size - offset, True
            return
        try:
            data = os.lseek(fd, offset, seek_data)
        except OSError as error:
            # ENXIO: only a hole remains up to the end; anything else: the file system cannot tell, so all is data.
            yield offset, size - offset, error.errno != errno.ENXIO
            return
        if data > offset:
            yield offset, min(data, size) - offset, False
            offset = min(data, size)
            continue
        hole = min(os.lseek(fd, offset, seek_hole), size)
        yield offset, hole - offset, True
        offset = hole
