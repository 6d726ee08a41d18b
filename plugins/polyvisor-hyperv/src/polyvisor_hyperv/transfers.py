"""Images from the client into a pool: the file written in chunks, hash-checked on the host, then renamed.

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
"""

from __future__ import annotations

import hashlib
import ntpath

from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, ValidationError
from polyvisor.storage import LocalImage, Progress, TransferProgress, Volume, partial_name
from polyvisor_hyperv.client import HyperVClient, as_text
from polyvisor_hyperv.commands import Step
from polyvisor_hyperv.images import SEED_CHUNK
from polyvisor_hyperv.pools import Pools

__all__ = ["Transfers"]


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
