"""The loopback host's virtual file system: Windows paths, case-insensitive, holding VHD and ISO entries."""

from __future__ import annotations

import hashlib
import ntpath
import threading
import uuid
from dataclasses import dataclass, field

from polyvisor_hyperv_loopback.powershell.errors import HostError

__all__ = ["FileEntry", "VirtualFileSystem", "normalize_path"]


def normalize_path(path: str, base: str = "C:\\") -> str:
    """Return an absolute Windows path: backslashes, no '..', relative paths under ``base``."""
    text = path.replace("/", "\\")
    if not ntpath.isabs(text) or not ntpath.splitdrive(text)[0]:
        text = ntpath.join(base, text.lstrip("\\"))
    return ntpath.normpath(text)


def _key(path: str) -> str:
    return normalize_path(path).casefold()


@dataclass
class FileEntry:
    """One file: a virtual hard disk (``vhd_type`` set), an ISO image or a plain file."""

    path: str
    size: int
    file_size: int
    vhd_type: str | None = None  # Fixed | Dynamic | Differencing
    vhd_format: str | None = None  # VHD | VHDX
    parent_path: str | None = None
    block_size: int = 0
    logical_sector_size: int = 512
    physical_sector_size: int = 4096
    disk_identifier: uuid.UUID = field(default_factory=uuid.uuid4)
    checkpoint_of: uuid.UUID | None = None  # the VM whose checkpoints made this differencing disk (.avhdx)
    data: bytearray = field(default_factory=bytearray)
    """The bytes written to the file (Set-Content/Add-Content -Encoding Byte); for a VHD, what its guest wrote."""

    def content(self) -> bytes:
        """The file's bytes as a hash sees them: a VHD's header (identity, size, parent) and then its data."""
        if self.vhd_type is None:
            return bytes(self.data)
        header = f"vhd:{self.vhd_format}:{self.disk_identifier}:{self.size}:{self.parent_path or ''}\n"
        return header.encode("utf-8") + bytes(self.data)

    def sha256(self) -> str:
        """Get-FileHash's default: SHA256 in upper-case hex."""
        return hashlib.sha256(self.content()).hexdigest().upper()


class VirtualFileSystem:
    """A thread-safe map of Windows paths to files; directories are implied by the files under them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, FileEntry] = {}

    def get(self, path: str) -> FileEntry | None:
        """Return the entry at ``path`` or None."""
        with self._lock:
            return self._files.get(_key(path))

    def exists(self, path: str) -> bool:
        """Return whether a file or a directory holding files exists at ``path``."""
        key = _key(path)
        with self._lock:
            if key in self._files:
                return True
            prefix = key.rstrip("\\") + "\\"
            return any(name.startswith(prefix) for name in self._files)

    def create(self, entry: FileEntry) -> FileEntry:
        """Add ``entry``; a file already at that path is the Win32 'file exists' error."""
        entry.path = normalize_path(entry.path)
        key = entry.path.casefold()
        with self._lock:
            if key in self._files:
                raise HostError(
                    f"Failed to create the virtual hard disk.\nThe system failed to create "
                    f"'{entry.path}': The file exists. (0x80070050).",
                    error_id="OperationFailed",
                    category="ResourceExists",
                    target_name=entry.path,
                )
            self._files[key] = entry
        return entry

    def remove(self, path: str) -> FileEntry:
        """Remove and return the file at ``path``; raise HostError when there is none."""
        with self._lock:
            entry = self._files.pop(_key(path), None)
        if entry is None:
            raise HostError(
                f"Cannot find path '{normalize_path(path)}' because it does not exist.",
                error_id="PathNotFound",
                category="ObjectNotFound",
                target_name=normalize_path(path),
                exception_type="System.Management.Automation.ItemNotFoundException",
            )
        return entry

    def paths(self) -> list[str]:
        """Return every file path, sorted case-insensitively."""
        with self._lock:
            return sorted((entry.path for entry in self._files.values()), key=str.casefold)
