"""Images between the client and a pool: ``virStorageVolUpload``/``Download`` over sparse streams.

An upload goes into a new raw volume of size 0 under a temporary name (:func:`polyvisor.storage.partial_name`): an
empty file, so no byte of an earlier file survives under a hole. The local file's extents (SEEK_DATA/SEEK_HOLE)
are sent in order: data in chunks of :data:`~polyvisor.storage.TRANSFER_CHUNK` (``virStreamSend``), holes as
``virStreamSendHole`` (``VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM``): a hole costs one small message, whatever its size.
libvirt's own ``sparseSendAll`` is not used: it sends 64 KiB per message.

Once all is sent, the volume gets its final name: on a local host whose pool directory the client can write, a
rename of the file in that directory (atomic) and a pool refresh; otherwise ``createXMLFrom`` copies it on the host
(libvirt has no rename) and the temporary volume is deleted. Either way the final name exists only complete, and
the refresh probes its format (qcow2, raw, ...). On any failure, the deadline included (checked between chunks),
the stream is aborted and the temporary volume deleted; a killed client leaves only the temporary name, which
listings mark ``partial``.

A transfer runs on a worker of the connection's :class:`~.bounded.CallPool`, and the caller waits for it no longer
than the deadline: on a stalled network ``virStreamSend`` blocks until keepalive closes the connection, longer
than any deadline. A caller that stops waiting (the deadline, or an exception such as KeyboardInterrupt) tells the
worker to stop: it aborts the stream and deletes the temporary volume as soon as libvirt returns to it, and never
gives an abandoned upload its final name.

A download receives with ``VIR_STREAM_RECV_STOP_AT_HOLE``: holes become holes of the local file (a seek, then a
final truncate), never zeros sent over the wire.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import libvirt

from polyvisor.backend import Deadline
from polyvisor.errors import AlreadyExistsError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.model import Feature
from polyvisor.storage import (
    TRANSFER_CHUNK,
    LocalImage,
    Progress,
    TransferProgress,
    Volume,
    VolumeFormat,
    data_extents,
    partial_name,
)
from polyvisor_libvirt.bounded import CallPool
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.pools import Pools, volume_xml

__all__ = ["Transfers"]

_REFRESH_POLL = 0.1  # seconds between refresh attempts while other uploads keep the pool busy
_T = TypeVar("_T")


class _Stop:
    """When a transfer on a worker must stop: its deadline passed, or its caller stopped waiting for it."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.abandoned = threading.Event()

    @property
    def now(self) -> bool:
        return self.abandoned.is_set() or self.deadline.expired


class Transfers:
    """Uploads into and downloads from storage volumes, over one client."""

    def __init__(self, client: LibvirtClient, pools: Pools, calls: CallPool) -> None:
        self._client = client
        self._pools = pools
        self._calls = calls

    @property
    def host(self) -> str:
        return self._client.host

    def _timed_out(self, doing: str, deadline: Deadline, done: int, total: int) -> TimeoutError:
        return TimeoutError(
            f"timed out after {deadline.timeout:g}s {doing} ({done} of {total} bytes done); nothing was kept",
            host=self.host,
        )

    def _bounded(self, work: Callable[[_Stop], _T], doing: str, deadline: Deadline) -> _T:
        """Run ``work`` on a worker; wait for it until the deadline, then tell it to stop and raise TimeoutError."""
        stop = _Stop(deadline)
        if math.isinf(deadline.remaining()):
            return work(stop)
        task = self._calls.submit(lambda: work(stop))
        try:
            if not task.done.wait(deadline.remaining()):
                raise TimeoutError(
                    f"timed out after {deadline.timeout:g}s {doing}: libvirtd did not answer in time (the network to "
                    "it is down or slow); the transfer stops and nothing is kept under the name",
                    host=self.host,
                )
        except BaseException:
            stop.abandoned.set()
            raise
        return task.result()

    # -- upload ----------------------------------------------------------------------------------------------------
    def upload_image(
        self, image: LocalImage, pool_name: str | None, name: str, progress: Progress, deadline: Deadline
    ) -> Volume:
        doing = f"uploading {name!r}"
        return self._bounded(lambda stop: self._upload(image, pool_name, name, progress, stop), doing, deadline)

    def _upload(self, image: LocalImage, pool_name: str | None, name: str, progress: Progress, stop: _Stop) -> Volume:
        deadline = stop.deadline
        pool = self._pools.pool(pool_name)
        doing = f"uploading {name!r} into pool {pool.name()!r}"
        temporary = partial_name(name)
        with self._client.errors(doing, host=self.host):
            volume = pool.createXML(volume_xml(temporary, 0, VolumeFormat.RAW), 0)
        try:
            self._send(volume, image, doing, progress, stop)
            if stop.now:
                raise self._timed_out(doing, deadline, image.size, image.size)
            return self._rename(pool, volume, name, doing, deadline)
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                volume.delete(0)
            raise

    def _send(
        self, volume: libvirt.virStorageVol, image: LocalImage, doing: str, progress: Progress, stop: _Stop
    ) -> None:
        deadline = stop.deadline
        stream = self._client.live().newStream(0)
        try:
            with self._client.errors(doing, host=self.host):
                try:
                    volume.upload(stream, 0, image.size, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
                except libvirt.libvirtError as error:
                    if error.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                        raise UnsupportedError(
                            f"this libvirt driver cannot upload into storage volumes ({doing})",
                            feature=Feature.IMAGE_UPLOAD,
                            host=self.host,
                        ) from error
                    raise
                sent = 0
                with image.path.open("rb") as source:
                    for offset, length, is_data in data_extents(source.fileno(), image.size):
                        if stop.now:
                            raise self._timed_out(doing, deadline, offset, image.size)
                        if not is_data:
                            stream.sendHole(length, 0)
                            progress(TransferProgress(offset + length, image.size, sent))
                            continue
                        source.seek(offset)
                        end = offset + length
                        while offset < end:
                            if stop.now:
                                raise self._timed_out(doing, deadline, offset, image.size)
                            data = source.read(min(TRANSFER_CHUNK, end - offset))
                            if not data:
                                raise ValidationError(
                                    f"{str(image.path)!r} shrank while it was uploaded ({doing})", field="local_path"
                                )
                            # The bytes as read, never a copy: a partial send (rare) resends only the rest.
                            rest = data
                            while rest:
                                rest = rest[stream.send(rest) :]
                            offset += len(data)
                            sent += len(data)
                            progress(TransferProgress(offset, image.size, sent))
                stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise

    def _rename(
        self, pool: libvirt.virStoragePool, volume: libvirt.virStorageVol, name: str, doing: str, deadline: Deadline
    ) -> Volume:
        """Give the complete temporary volume its final name; return the final volume."""
        temporary = Path(volume.path())
        final = temporary.with_name(name)
        if self._client.uri.is_local and temporary.is_file() and os.access(temporary.parent, os.W_OK):
            if final.exists():
                raise AlreadyExistsError(f"{doing}: {final} appeared meanwhile; nothing was replaced", host=self.host)
            temporary.rename(final)  # same directory: atomic, and no byte copied
            self._refresh(pool, doing, deadline)
            with self._client.errors(doing, host=self.host):
                return self._pools.volume_value(pool, pool.storageVolLookupByName(name))
        self._refresh(pool, doing, deadline)  # probes the format the upload wrote (qcow2, ...)
        with self._client.errors(doing, host=self.host):
            source = pool.storageVolLookupByName(volume.name())
            facts = self._pools.volume_value(pool, source)
            copy = pool.createXMLFrom(volume_xml(name, facts.capacity, facts.format), source, 0)
            with contextlib.suppress(libvirt.libvirtError):
                source.delete(0)
            self._refresh(pool, doing, deadline)
            return self._pools.volume_value(pool, copy)

    def _refresh(self, pool: libvirt.virStoragePool, doing: str, deadline: Deadline) -> None:
        """Refresh the pool; libvirt refuses while another upload runs in it, so try again until the deadline."""
        while True:
            try:
                pool.refresh(0)
                return
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_INTERNAL_ERROR or deadline.remaining() < _REFRESH_POLL:
                    with self._client.errors(doing, host=self.host):
                        raise
            time.sleep(_REFRESH_POLL)  # libvirt offers no event for "the pool's other jobs ended"

    # -- download ----------------------------------------------------------------------------------------------------
    def download_image(
        self, pool_name: str | None, name: str, destination: str, progress: Progress, deadline: Deadline
    ) -> int:
        doing = f"downloading {name!r}"
        return self._bounded(lambda stop: self._download(pool_name, name, destination, progress, stop), doing, deadline)

    def _download(self, pool_name: str | None, name: str, destination: str, progress: Progress, stop: _Stop) -> int:
        deadline = stop.deadline
        pool = self._pools.pool(pool_name)
        volume = self._pools.volume(pool, name)
        doing = f"downloading {name!r} from pool {pool.name()!r}"
        stream = self._client.live().newStream(0)
        try:
            with self._client.errors(doing, host=self.host):
                total = int(volume.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2])  # the file's length
                volume.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
                done = sent = 0
                # The core made the file; "r+b" never makes it again after an abandoning caller removed it.
                with open(destination, "r+b") as out:
                    out.truncate(0)  # a retried download starts afresh: no byte of the last try survives a hole
                    while True:
                        if stop.now:
                            raise self._timed_out(doing, deadline, done, total)
                        got = stream.recvFlags(TRANSFER_CHUNK, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
                        if got == -3:  # a hole: skip it locally
                            done += stream.recvHole(0)
                            out.seek(done)
                        elif isinstance(got, bytes) and got:
                            out.write(got)
                            done += len(got)
                            sent += len(got)
                        elif isinstance(got, bytes):
                            break  # end of stream
                        progress(TransferProgress(done, max(total, done), sent))
                    out.truncate(done)
                stream.finish()
                progress(TransferProgress(done, done, sent))
                return done
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise
