"""Images between the client and a pool: uploads written in chunks, hash-checked, renamed; downloads read in chunks.

Each chunk of at most :data:`~polyvisor_hyperv.images.SEED_CHUNK` bytes is the ``byte[]`` *parameter* of
``Set-Content``/``Add-Content -Encoding Byte`` (as the cloud-init seed is sent: PSRP carries it as a typed byte array,
the WinRM shell as base64 its fixed runner decodes), so no byte of the image is ever PowerShell source, and one chunk
fits one message of Windows' default MaxEnvelopeSize on either transport. The file is written under a temporary name
(:func:`polyvisor.storage.partial_name`) in the pool's directory; ``Get-FileHash`` then proves it holds exactly what
was sent (SHA-256, computed here while sending), and ``Rename-Item`` gives it its final name, in place. On any
failure, the deadline included (each request is bounded by it), the temporary file is removed; a killed client leaves
only the temporary name, which listings mark ``partial``.

The Windows file system has no holes this path can write, so a sparse image's holes travel as zeros (``sent``
counts them); a VHDX keeps unwritten blocks out of the file itself.

A download runs the fixed script ``scripts/read-file.ps1`` once per :data:`DOWNLOAD_CHUNK` bytes: a .NET FileStream
on the host reads the range (Windows PowerShell 5.1 has no cmdlet that reads one), and it comes back as base64, or
as a mark that the range is all zero bytes. Such a range becomes a hole of the local file (a seek, and a final
truncate), so holes cost neither wire bytes nor local blocks where the file system is sparse. The SHA-256 of what was
received (holes as zeros) must equal ``Get-FileHash`` on the host afterwards, and the file's length must not change
while it is read; otherwise the download fails and the caller removes its temporary file, so nothing is left under
the final name (:func:`polyvisor.storage_calls.download_image`). Every request is bounded by the call's deadline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ntpath

from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, ValidationError
from polyvisor.storage import TRANSFER_CHUNK, LocalImage, Progress, TransferProgress, Volume, partial_name
from polyvisor_hyperv.client import HyperVClient, as_text
from polyvisor_hyperv.commands import Script, Step
from polyvisor_hyperv.images import SEED_CHUNK
from polyvisor_hyperv.pools import Pools
from polyvisor_hyperv.transport import Row

__all__ = ["DOWNLOAD_CHUNK", "Transfers"]

DOWNLOAD_CHUNK = TRANSFER_CHUNK
"""Bytes one read of a download asks for (1 MiB): its reply is 1.4 million base64 characters, under the 2,097,152
that Windows PowerShell's JSON serializer has been known to stop at (the WinRM shell's reply is ConvertTo-Json)."""


class Transfers:
    """Uploads into the host's disk paths and image folders, over one client."""

    def __init__(self, client: HyperVClient, pools: Pools) -> None:
        self._client = client
        self._pools = pools

    def upload_image(
        self, image: LocalImage, pool: str | None, name: str, progress: Progress, deadline: Deadline
    ) -> Volume:
        pool_name, directory = self._pools.directory(pool, deadline)
        self._pools.volumes(pool_name, deadline)  # a pool that is not there is NotFoundError before any byte moves
        temporary = ntpath.join(directory, partial_name(name))
        doing = f"uploading {name!r} into pool {pool_name!r}"
        try:
            digest = self._send(image, temporary, doing, progress, deadline)
            rows = self._client.run(
                [Step("Get-FileHash", {"LiteralPath": temporary, "Algorithm": "SHA256"})],
                doing=f"{doing}: verifying it (Get-FileHash)",
                select=("Hash",),
                deadline=deadline,
            )
            got = as_text(rows[0].get("Hash")).upper() if rows else ""
            if got != digest:
                raise BackendError(
                    f"{doing}: the file arrived damaged (SHA256 {got or 'unknown'} on the host, {digest} sent); "
                    "nothing was kept",
                    host=self._client.host,
                )
            self._client.run(
                [Step("Rename-Item", {"LiteralPath": temporary, "NewName": name})],
                doing=f"{doing}: giving it its name (Rename-Item)",
                deadline=deadline,
            )
        except BaseException:
            self._pools.remove_quietly(temporary)
            raise
        return self._pools.volume(pool_name, name, deadline)

    def _send(self, image: LocalImage, path: str, doing: str, progress: Progress, deadline: Deadline) -> str:
        """Write the local file to ``path`` chunk by chunk; return the SHA-256 (upper-case hex) of what was sent."""
        digest = hashlib.sha256()
        done = 0
        with image.path.open("rb") as source:
            while True:
                deadline.check(doing, host=self._client.host)
                chunk = source.read(SEED_CHUNK)
                if not chunk and done:
                    break
                command = "Set-Content" if done == 0 else "Add-Content"
                self._client.run(
                    [Step(command, {"LiteralPath": path, "Value": chunk, "Encoding": "Byte"})],
                    doing=f"{doing} (bytes {done} to {done + len(chunk)} of {image.size})",
                    deadline=deadline,
                )
                digest.update(chunk)
                done += len(chunk)
                if done > image.size:
                    raise ValidationError(f"{str(image.path)!r} grew while it was uploaded", field="local_path")
                progress(TransferProgress(done, image.size, done))
                if not chunk:
                    break
        if done != image.size:
            raise ValidationError(f"{str(image.path)!r} shrank while it was uploaded", field="local_path")
        return digest.hexdigest().upper()

    def download_image(
        self, pool: str | None, name: str, destination: str, progress: Progress, deadline: Deadline
    ) -> int:
        volume = self._pools.volume(pool, name, deadline)  # NotFoundError before anything is read
        doing = f"downloading {name!r} from pool {volume.pool!r}"
        digest = hashlib.sha256()
        done = sent = 0
        total: int | None = None
        with open(destination, "wb") as out:
            while total is None or done < total:
                deadline.check(doing, host=self._client.host)
                row = self._read(volume.path, done, doing, deadline)
                length, read = int(row.get("Length") or 0), int(row.get("Read") or 0)
                if total is None:
                    total = length
                elif length != total:
                    raise BackendError(
                        f"{doing}: the file changed size while it was read ({total} then {length} bytes); nothing "
                        "was kept",
                        host=self._client.host,
                    )
                if read <= 0:
                    break  # the file ended early; the hash below says it is not what the host has
                if row.get("Zero"):
                    zeros = bytes(read)
                    digest.update(zeros)
                    out.seek(done + read)  # a hole: nothing written
                else:
                    data = _decoded(row.get("Data"), read, doing, self._client.host)
                    digest.update(data)
                    out.write(data)
                    sent += read
                done += read
                progress(TransferProgress(done, total, sent))
            out.truncate(done)
        self._verify(volume.path, digest.hexdigest().upper(), doing, deadline)
        if total == 0:
            progress(TransferProgress(0, 0, 0))
        return done

    def _read(self, path: str, offset: int, doing: str, deadline: Deadline) -> Row:
        rows = self._client.run(
            [Script("read-file", {"LiteralPath": path, "Offset": offset, "Count": DOWNLOAD_CHUNK})],
            doing=f"{doing} (bytes from {offset})",
            deadline=deadline,
        )
        if not rows:
            raise BackendError(f"{doing}: the host sent no bytes from offset {offset}", host=self._client.host)
        return rows[0]

    def _verify(self, path: str, digest: str, doing: str, deadline: Deadline) -> None:
        rows = self._client.run(
            [Step("Get-FileHash", {"LiteralPath": path, "Algorithm": "SHA256"})],
            doing=f"{doing}: verifying it (Get-FileHash)",
            select=("Hash",),
            deadline=deadline,
        )
        got = as_text(rows[0].get("Hash")).upper() if rows else ""
        if got != digest:
            raise BackendError(
                f"{doing}: what arrived is not the file on the host (SHA256 {got or 'unknown'} there, {digest} "
                "received; it may have changed meanwhile); nothing was kept",
                host=self._client.host,
            )


def _decoded(data: object, length: int, doing: str, host: str) -> bytes:
    try:
        decoded = base64.b64decode(str(data or ""), validate=True)
    except (binascii.Error, ValueError):
        raise BackendError(f"{doing}: the host sent bytes that are not base64", host=host) from None
    if len(decoded) != length:
        raise BackendError(f"{doing}: the host said {length} bytes and sent {len(decoded)}", host=host)
    return decoded
