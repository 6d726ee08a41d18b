"""Per-VM locks that serialize label read-modify-write cycles across threads and processes of one machine."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["label_lock", "lock_dir"]

_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def lock_dir() -> Path:
    """The directory of lock files (``$POLYVISOR_LOCK_DIR``, else one per user under the temp directory)."""
    configured = os.environ.get("POLYVISOR_LOCK_DIR")
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / f"polyvisor-locks-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextmanager
def label_lock(uuid: str) -> Iterator[None]:
    """Hold the lock of one VM (UUIDs are unique across hosts, so any URI spelling shares it)."""
    with _guard:
        thread_lock = _thread_locks.setdefault(uuid, threading.Lock())
    with thread_lock:
        name = hashlib.sha256(uuid.encode()).hexdigest()[:32]
        fd = os.open(lock_dir() / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock
