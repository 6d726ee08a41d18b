"""Per-VM locks that serialize label read-modify-write cycles across threads and processes of one machine."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from polyvisor.backend import Deadline
from polyvisor.errors import TimeoutError

__all__ = ["label_lock", "lock_dir"]

# flock has no timeout and nothing to wait on: a lock another process holds is polled, this often.
_FLOCK_POLL = 0.01
_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def lock_dir() -> Path:
    """The directory of lock files (``$POLYVISOR_LOCK_DIR``, else one per user under the temp directory)."""
    configured = os.environ.get("POLYVISOR_LOCK_DIR")
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / f"polyvisor-locks-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextmanager
def label_lock(uuid: str, deadline: Deadline | None = None) -> Iterator[None]:
    """Hold the lock of one VM (UUIDs are unique across hosts, so any URI spelling shares it).

    Waiting for it ends at ``deadline`` with :class:`~polyvisor.errors.TimeoutError` (nothing was changed).
    """
    deadline = deadline or Deadline.never()
    with _guard:
        thread_lock = _thread_locks.setdefault(uuid, threading.Lock())
    remaining = deadline.remaining()
    if not thread_lock.acquire(timeout=-1 if remaining == float("inf") else remaining):
        raise _busy(deadline, uuid)
    try:
        name = hashlib.sha256(uuid.encode()).hexdigest()[:32]
        fd = os.open(lock_dir() / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline.expired:
                        raise _busy(deadline, uuid) from None
                    time.sleep(min(_FLOCK_POLL, deadline.remaining()))
            yield
        finally:
            os.close(fd)  # closing releases the flock
    finally:
        thread_lock.release()


def _busy(deadline: Deadline, uuid: str) -> TimeoutError:
    return TimeoutError(
        f"timed out after {deadline.timeout:g}s waiting for another label update of this VM (in this process or "
        "another on this machine) to finish; nothing was changed",
        vm=uuid,
    )
