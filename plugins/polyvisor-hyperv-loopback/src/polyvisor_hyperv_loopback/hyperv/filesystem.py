"""The loopback host's virtual file system: Windows paths, case-insensitive, holding VHD and ISO entries.

Directories are those made (New-Item -ItemType Directory, and the host's VM and disk paths) and those implied by the
files under them. Names compare case-insensitively and keep the case they were given (NTFS).
"""

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
    from_bytes: bool = False
    """A VHD whose facts were read from ``data`` (a VHDX written byte by byte: :mod:`.vhdx`), not modelled."""

    def content(self) -> bytes:
        """The file's bytes as a hash sees them: a VHD's header (identity, size, parent) and then its data; a disk
        read from its bytes is those bytes."""
        if self.vhd_type is None or self.from_bytes:
            return bytes(self.data)
        header = f"vhd:{self.vhd_format}:{self.disk_identifier}:{self.size}:{self.parent_path or ''}\n"
        return header.encode("utf-8") + bytes(self.data)

    def sha256(self) -> str:
        """Get-FileHash's default: SHA256 in upper-case hex."""
        return hashlib.sha256(self.content()).hexdigest().upper()

    def read(self, offset: int, count: int) -> tuple[bytes, int]:
        """Up to ``count`` of the bytes :meth:`content` holds, from ``offset``, and their length (a FileStream's
        Length: for a virtual hard disk, the modelled header and data, not the modelled file size)."""
        if self.vhd_type is None:
            return bytes(self.data[offset : offset + count]), len(self.data)
        content = self.content()
        return content[offset : offset + count], len(content)


class VirtualFileSystem:
    """A thread-safe map of Windows paths to files; directories are implied by the files under them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, FileEntry] = {}
        self._dirs: dict[str, str] = {}  # casefolded path -> path as made

    def is_directory(self, path: str) -> bool:
        """Return whether path is a directory: one made, or one holding files."""
        key = _key(path)
        with self._lock:
            return self._is_dir(key)

    def _is_dir(self, key: str) -> bool:
        prefix = key.rstrip("\\") + "\\"
        return key in self._dirs or any(name.startswith(prefix) for name in (*self._files, *self._dirs))

    def make_directory(self, path: str) -> str:
        """Make a directory (and its parents); return its path. A file there is the Win32 'file exists' error."""
        full = normalize_path(path)
        with self._lock:
            if full.casefold() in self._files:
                raise HostError(
                    f"An item with the specified name {full} already exists.",
                    error_id="DirectoryExist",
                    category="ResourceExists",
                    target_name=full,
                    exception_type="System.IO.IOException",
                )
            walk = full
            while ntpath.splitdrive(walk)[1] not in ("", "\\"):
                self._dirs.setdefault(walk.casefold(), walk)
                walk = ntpath.dirname(walk)
        return full

    def remove_directory(self, path: str) -> None:
        """Remove an empty directory; one holding anything is refused, as Remove-Item without -Recurse is."""
        full = normalize_path(path)
        key = full.casefold()
        with self._lock:
            if not self._is_dir(key):
                raise _missing(full)
            prefix = key.rstrip("\\") + "\\"
            if any(name.startswith(prefix) for name in (*self._files, *self._dirs)):
                raise HostError(
                    f"The item at {full} has children and the Recurse parameter was not specified.",
                    error_id="DirectoryNotEmpty",
                    category="WriteError",
                    target_name=full,
                    exception_type="System.IO.IOException",
                )
            self._dirs.pop(key, None)

    def children(self, path: str) -> tuple[list[str], list[FileEntry]]:
        """The directories (paths) and files directly in path, sorted case-insensitively."""
        full = normalize_path(path)
        parts = [part.casefold() for part in full.rstrip("\\").split("\\")]
        depth = len(parts)
        with self._lock:
            if not self._is_dir(full.casefold()):
                raise _missing(full)
            files: list[FileEntry] = []
            dirs: dict[str, str] = {}
            shown = [(p, False) for p in self._dirs.values()] + [(e.path, True) for e in self._files.values()]
            for item, is_file in shown:
                names = item.split("\\")
                if len(names) <= depth or [n.casefold() for n in names[:depth]] != parts:
                    continue
                if is_file and len(names) == depth + 1:
                    files.append(self._files[item.casefold()])
                else:
                    child = "\\".join(names[: depth + 1])
                    dirs.setdefault(child.casefold(), child)
        return sorted(dirs.values(), key=str.casefold), sorted(files, key=lambda e: e.path.casefold())

    def rename(self, path: str, new_name: str) -> FileEntry:
        """Rename-Item of a file within its directory: a taken name is refused, nothing is replaced."""
        full = normalize_path(path)
        target = ntpath.join(ntpath.dirname(full), new_name)
        with self._lock:
            entry = self._files.get(full.casefold())
            if entry is None:
                raise _missing(full)
            if target.casefold() in self._files or target.casefold() in self._dirs:
                raise HostError(
                    "Cannot create a file when that file already exists.",
                    error_id="RenameItemIOError",
                    category="WriteError",
                    target_name=full,
                    exception_type="System.IO.IOException",
                )
            del self._files[full.casefold()]
            entry.path = target
            self._files[target.casefold()] = entry
        return entry

    def read(self, path: str, offset: int, count: int) -> tuple[bytes, int]:
        """A byte range of the file at ``path`` and its length; FileNotFoundError (IsADirectoryError) when the path
        is no file (is a directory)."""
        key = _key(path)
        with self._lock:
            entry = self._files.get(key)
            if entry is None:
                if self._is_dir(key):
                    raise IsADirectoryError(path)
                raise FileNotFoundError(path)
            return entry.read(offset, count)

    def get(self, path: str) -> FileEntry | None:
        """Return the entry at ``path`` or None."""
        with self._lock:
            return self._files.get(_key(path))

    def exists(self, path: str) -> bool:
        """Return whether a file or a directory exists at ``path``."""
        key = _key(path)
        with self._lock:
            return key in self._files or self._is_dir(key)

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
            raise _missing(normalize_path(path))
        return entry

    def entries(self) -> list[FileEntry]:
        """Return every file."""
        with self._lock:
            return list(self._files.values())

    def paths(self) -> list[str]:
        """Return every file path, sorted case-insensitively."""
        with self._lock:
            return sorted((entry.path for entry in self._files.values()), key=str.casefold)


def _missing(path: str) -> HostError:
    return HostError(
        f"Cannot find path '{path}' because it does not exist.",
        error_id="PathNotFound",
        category="ObjectNotFound",
        target_name=path,
        exception_type="System.Management.Automation.ItemNotFoundException",
    )
