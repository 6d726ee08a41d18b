"""The storage and network calls through a wire that stops moving: each one timed against its timeout + 1 s.

:func:`stalled_host_calls` makes each call a connection declares (``pools()``, ``volumes()``, ``networks()``, pool,
volume and network writes, uploads and downloads) while a :class:`~polyvisor.testing.wire.FaultyProxy` in front of
the host holds every byte (:data:`STALL`), and records how long it took and what it raised. An upload or a
download starts on a healthy wire and the proxy stalls it after its first chunk, so the bound is proven mid-way
through a transfer. After each call the proxy heals and the same connection must answer again before the next
call; whatever a write the caller gave up on left behind is removed. The caller judges the :class:`Timed` rows
(:func:`violations`) and what the transfers left (:attr:`StallRun.leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polyvisor.connection import Connection
from polyvisor.errors import AlreadyExistsError, NotFoundError, PolyvisorError, TimeoutError
from polyvisor.model import Feature, NetworkMode
from polyvisor.storage import TransferProgress, VolumeFormat
from polyvisor.testing.waiting import eventually
from polyvisor.testing.wire import FaultyProxy, WireFaults

__all__ = ["GRACE", "STALL", "StallRun", "Timed", "stalled_host_calls", "violations"]

STALL = WireFaults(stall=1.0, stall_seconds=(60.0, 60.0))
"""Every chunk either way waits a minute: the wire has stopped (healed long before)."""
GRACE = 1.0
"""What the contract allows past a call's timeout."""
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Timed:
    """One call made on the stalled wire: how long it took, and what it raised (None: it returned)."""

    call: str
    timeout: float
    seconds: float
    error: BaseException | None


@dataclass
class StallRun:
    """What :func:`stalled_host_calls` saw."""

    timed: list[Timed] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    """Names found under a transfer's final name (or a local file's) after it was cut off: there must be none."""


def violations(run: StallRun) -> list[str]:
    """The calls that broke the bound or did not raise a polyvisor TimeoutError."""
    out = []
    for row in run.timed:
        if row.seconds > row.timeout + GRACE:
            out.append(f"{row.call}(timeout={row.timeout:g}) took {row.seconds:.2f}s")
        if not isinstance(row.error, TimeoutError):
            out.append(f"{row.call} raised {row.error!r}, not a polyvisor TimeoutError")
    return out


class _Session:
    def __init__(self, conn: Connection, proxy: FaultyProxy, timeout: float, clock: Callable[[], float]) -> None:
        self.conn, self.proxy, self.timeout, self.clock = conn, proxy, timeout, clock
        self.run = StallRun()

    def stalled(self, name: str, call: Callable[[], object], *, stall_first: bool = True) -> None:
        if stall_first:
            self.proxy.break_(STALL)
        started = self.clock()
        error: BaseException | None = None
        try:
            call()
        except PolyvisorError as failed:
            error = failed
        self.run.timed.append(Timed(name, self.timeout, self.clock() - started, error))
        self.proxy.heal()
        self.healthy()

    def healthy(self) -> None:
        def answers() -> bool:
            try:
                self.conn.host_info(timeout=10)
            except PolyvisorError:
                return False
            return True

        eventually(answers, timeout=40, interval=0.2, what="the connection to answer again after the stall")

    def stall_once(self) -> Callable[[TransferProgress], None]:
        """A progress callback that stalls the wire once the first chunk went through (and never again)."""
        struck: list[bool] = []

        def after_first_chunk(report: TransferProgress) -> None:
            if report.sent > 0 and not struck:
                struck.append(True)
                self.proxy.break_(STALL)

        return after_first_chunk


def stalled_host_calls(
    conn: Connection,
    proxy: FaultyProxy,
    work: Path,
    *,
    pool: str | None = None,
    timeout: float = 2.0,
    clock: Callable[[], float] | None = None,
) -> StallRun:
    """Make each storage and network call ``conn`` declares through ``proxy`` stalled; see the module."""
    session = _Session(conn, proxy, timeout, clock or time.monotonic)
    caps = conn.capabilities
    tag = uuid.uuid4().hex[:8]
    hyperv = caps.backend == "Hyper-V"
    fmt = VolumeFormat.VHDX if hyperv else VolumeFormat.QCOW2
    session.healthy()
    if caps.supports(Feature.STORAGE):
        session.stalled("pools", lambda: conn.pools(timeout=timeout))
        session.stalled("volumes", lambda: conn.volumes(pool, timeout=timeout))
    if caps.supports(Feature.NETWORKS):
        session.stalled("networks", lambda: conn.networks(timeout=timeout))
    if caps.supports(Feature.POOL_WRITE):
        folder = f"pvtest-stall-{tag}"
        session.stalled("create_pool", lambda: conn.create_pool(folder, timeout=timeout))
        _settle(lambda: conn.create_pool(folder, timeout=30))
        session.stalled("delete_pool", lambda: conn.delete_pool(folder, timeout=timeout))
        _settle(lambda: conn.delete_pool(folder, timeout=30))
    if caps.supports(Feature.VOLUME_WRITE):
        volume = f"pvtest-stall-{tag}.{fmt.value}"
        session.stalled("create_volume", lambda: conn.create_volume(volume, 16, pool=pool, format=fmt, timeout=timeout))
        _settle(lambda: conn.create_volume(volume, 16, pool=pool, format=fmt, timeout=30))
        if caps.supports(Feature.VOLUME_RESIZE):
            session.stalled("resize_volume", lambda: conn.resize_volume(volume, 32, pool=pool, timeout=timeout))
        session.stalled("delete_volume", lambda: conn.delete_volume(volume, pool=pool, timeout=timeout))
        _settle(lambda: conn.delete_volume(volume, pool=pool, timeout=30))
    if caps.supports(Feature.IMAGE_UPLOAD):
        _transfers(session, work, pool, tag, download=caps.supports(Feature.IMAGE_DOWNLOAD))
    if caps.supports(Feature.NETWORK_WRITE) and caps.supports(Feature.NETWORK_ISOLATED):
        network = f"pvtest-stall-{tag}"
        session.stalled("create_network", lambda: conn.create_network(network, NetworkMode.ISOLATED, timeout=timeout))
        _settle(lambda: conn.create_network(network, NetworkMode.ISOLATED, timeout=30))
        session.stalled("delete_network", lambda: conn.delete_network(network, timeout=timeout))
        _settle(lambda: conn.delete_network(network, timeout=30))
    return session.run


def _settle(again: Callable[[], object]) -> None:
    """Make sure a write the caller gave up on took effect: make it again; that it already did is fine.

    The abandoned write may still be under way (it was sent; the heal delivers it), so "already there" and "not
    there" both mean it settled; anything else is tried again for a while.
    """

    def done() -> bool:
        try:
            again()
        except (AlreadyExistsError, NotFoundError):
            return True
        except PolyvisorError:
            return False
        return True

    eventually(done, timeout=30, interval=0.2, what="a write cut off by the stall to settle")


def _transfers(session: _Session, work: Path, pool: str | None, tag: str, *, download: bool) -> None:
    conn, timeout = session.conn, session.timeout
    local = work / f"pvtest-stall-{tag}.img"
    local.write_bytes(os.urandom(4 * MIB))
    name = local.name
    session.stalled(
        "upload_image",
        lambda: conn.upload_image(local, pool=pool, progress=session.stall_once(), timeout=timeout),
        stall_first=False,
    )

    def settled() -> bool:
        # An abandoned libvirt upload removes its temporary volume once libvirt returns to it (after the heal).
        names = [v.name for v in conn.volumes(pool, timeout=10)]
        if name in names:
            session.run.leftovers.append(f"upload left {name!r} under its final name")
            return True
        return not any(n.endswith(name) for n in names)

    # A temporary volume the host kept (its removal was stalled too) is marked partial; it is removed below.
    with contextlib.suppress(AssertionError):
        eventually(settled, timeout=5, interval=0.2, what="the cut-off upload's temporary volume to go")
    for volume in conn.volumes(pool, timeout=10):
        if volume.name.endswith(name):
            conn.delete_volume(volume.name, pool=pool, timeout=30)
    if not download:
        return
    conn.upload_image(local, pool=pool, timeout=60)
    target = work / f"back-{tag}.img"
    session.stalled(
        "download_image",
        lambda: conn.download_image(name, target, pool=pool, progress=session.stall_once(), timeout=timeout),
        stall_first=False,
    )
    left = sorted(p.name for p in work.iterdir() if p.name != local.name)
    if left:
        session.run.leftovers.append(f"download left {left} in {work}")
    conn.delete_volume(name, pool=pool, timeout=30)
