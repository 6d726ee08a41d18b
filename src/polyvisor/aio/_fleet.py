"""The asyncio fleet: :class:`polyvisor.Fleet`'s calls as coroutines, on tasks instead of threads.

Each host's work is a task: at most ``max_concurrency`` run at once (a semaphore), each bounded by the host's
timeout (``asyncio.timeout``). A host that does not answer in time gets a :class:`~polyvisor.errors.TimeoutError`
result and its connection is dropped; the blocking call it was stuck in is abandoned in that connection's own
threads, so it holds nothing the other hosts need. Results, selections and placement are the thread-pool fleet's
own values (:mod:`polyvisor.fleet`).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import polyvisor.config as _config
from polyvisor.aio._connection import DEFAULT_WORKERS, AsyncConnection, connect
from polyvisor.aio._vm import AsyncVM
from polyvisor.errors import ConnectionLostError, PolyvisorError
from polyvisor.fleet import (
    Candidate,
    FleetResult,
    FleetVM,
    HostResult,
    Placement,
    Selection,
    free_memory_mib,
)
from polyvisor.fleet.planning import (
    FleetFacts,
    FleetPlan,
    VMWork,
    abandoned,
    as_polyvisor_error,
    check_seconds,
    config_hosts,
    import_backends,
    matching,
    verb_timeout,
)
from polyvisor.metrics.counters import VMStats
from polyvisor.model import PowerState, VMSpec, VMStatus
from polyvisor.plugins import Plugins, default_plugins
from polyvisor.storage import LocalImage, TransferProgress, Volume
from polyvisor.storage_calls import TRANSFER_TIMEOUT
from polyvisor.uri import URI
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT

__all__ = ["AsyncFleet"]

log = logging.getLogger("polyvisor.fleet")

_T = TypeVar("_T")
VMList = list[FleetVM]  # spelt once here: inside AsyncFleet, ``list`` is the method
HostWork = Callable[[str, AsyncConnection], Awaitable[_T]]


class AsyncFleet(FleetFacts):
    """Many hypervisor hosts behind one object, for asyncio: each call runs on every host at once.

    The arguments are :class:`polyvisor.Fleet`'s, plus ``workers``: the threads of each host's connection. Use as
    an async context manager, or await :meth:`close`. VMs come back as :class:`~polyvisor.FleetVM` values;
    :meth:`vm` turns one into an :class:`~polyvisor.aio.AsyncVM`.
    """

    def __init__(
        self,
        hosts: Mapping[str, str | _config.NamedConnection],
        *,
        max_concurrency: int = 16,
        timeout: float = 30.0,
        plugins: Plugins | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        # FleetPlan checks and keeps the hosts, groups and timeouts, as for the thread-pool fleet.
        super().__init__(FleetPlan(hosts, max_concurrency=max_concurrency, timeout=timeout, groups=groups))
        self._plugins = plugins
        self._workers = workers
        self._connections: dict[str, AsyncConnection] = {}
        self._retired: list[AsyncConnection] = []  # dropped after a lost link, perhaps still watched through
        self._opening: dict[str, asyncio.Task[AsyncConnection]] = {}
        self._imported: set[str] = set()  # the URI drivers whose backends are imported
        self._closed = False

    @classmethod
    def from_config(
        cls,
        group: str = _config.ALL_GROUP,
        *,
        path: Path | None = None,
        max_concurrency: int = 16,
        timeout: float = 30.0,
        plugins: Plugins | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Self:
        """Return the fleet of a config group's connections (``all``: every connection); or of one connection."""
        connections, groups = config_hosts(group, path)
        return cls(
            connections,
            max_concurrency=max_concurrency,
            timeout=timeout,
            plugins=plugins,
            groups=groups,
            workers=workers,
        )

    def __repr__(self) -> str:
        return f"<polyvisor.aio.AsyncFleet {len(self.hosts)} hosts: {', '.join(self.hosts)}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self, timeout: float = 5.0) -> None:
        """Close every pooled connection, waiting at most ``timeout`` seconds (a hung host is left behind)."""
        self._closed = True
        for opening in self._opening.values():
            opening.cancel()  # a connection that opens after all is closed by whoever opened it
        connections = list(self._connections.values()) + [conn for conn in self._retired if not conn.closed]
        self._connections.clear()
        self._retired = []
        if connections:
            closing = [asyncio.ensure_future(conn.close()) for conn in connections]
            _done, late = await asyncio.wait(closing, timeout=timeout)
            for task in late:
                task.add_done_callback(_ignore_outcome)

    # -- hosts (hosts, groups, uri, labels, host_timeout and select: FleetFacts) ---------------------------------
    async def connection(self, host: str) -> AsyncConnection:
        """Return the host's pooled connection, opening it within the host's timeout."""
        result = await self._run([(host, None, lambda _host, conn: _same(conn), None)])
        return result[0].unwrap()

    async def vm(self, listed: FleetVM) -> AsyncVM:
        """Return a handle on a listed VM through the fleet's pooled connection to its host."""
        conn = await self.connection(listed.host)
        return await conn.vm(listed.info)

    async def _pooled(self, host: str) -> AsyncConnection:
        if self._closed:
            raise PolyvisorError("the fleet is closed; make a new one", host=host)
        conn = self._connections.get(host)
        if conn is not None and not conn.closed:
            return conn
        opening = self._opening.get(host)
        if opening is None:
            # One open per host at a time, shared by every caller: a host that never answers holds one thread.
            opening = asyncio.ensure_future(self._open(host))
            opening.add_done_callback(_ignore_outcome)  # its callers (if any are left) get the outcome
            self._opening[host] = opening
        return await asyncio.shield(opening)

    async def _open(self, host: str) -> AsyncConnection:
        target = self._plan.targets[host]
        try:
            conn = await connect(
                URI.parse(target.uri), plugins=self._plugins, workers=self._workers, **target.credentials()
            )
        finally:
            self._opening.pop(host, None)
        if self._closed:
            conn._abandon()
            raise PolyvisorError("the fleet was closed while the connection opened", host=host)
        self._connections[host] = conn
        return conn

    def _drop(self, host: str, *, hung: bool = True) -> None:
        """Stop reusing the host's connection; the next call opens a fresh one.

        One that hung is abandoned; one whose link dropped is retired: it closes once the event streams a caller
        opened on it are closed (they reconnect by themselves), or with the fleet.
        """
        conn = self._connections.pop(host, None)
        if conn is None:
            return
        if hung:
            conn._abandon()
        else:
            self._retired = [old for old in self._retired if not old.closed] + [conn]
            conn.retire()

    # -- fan-out -----------------------------------------------------------------------------------------------
    async def _run(self, jobs: Iterable[tuple[str, str | None, HostWork[_T], float | None]]) -> list[HostResult[_T]]:
        """Run each ``(host, vm, work, timeout)`` job as a task, a semaphore bounding how many run at once."""
        known = [(self._plan.known(host), vm, work, timeout) for host, vm, work, timeout in jobs]
        # On the loop's thread, once per driver: first imports racing on the connections' threads can deadlock.
        import_backends(self._plugins or default_plugins(), (self.uri(job[0]) for job in known), self._imported)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(host: str, vm: str | None, work: HostWork[_T], timeout: float | None) -> HostResult[_T]:
            seconds = timeout if timeout is not None else self.host_timeout(host)
            uri = self.uri(host)
            async with limit:
                started = time.monotonic()
                bound = asyncio.timeout(seconds)
                try:
                    async with bound:
                        value = await work(host, await self._pooled(host))
                except builtins.TimeoutError as error:
                    if not bound.expired():
                        return HostResult(host, uri, None, as_polyvisor_error(error, host), _since(started), vm)
                    log.info("%s timed out after %g s", host, seconds)
                    self._drop(host)  # its threads may be stuck: the next call starts afresh
                    return HostResult(host, uri, None, abandoned(host, vm, seconds), _since(started), vm)
                except ConnectionLostError as error:
                    self._drop(host, hung=False)  # reopened on the next call
                    return HostResult(host, uri, None, error, _since(started), vm)
                except Exception as error:  # every failure becomes this host's result; the others carry on
                    return HostResult(host, uri, None, as_polyvisor_error(error, host), _since(started), vm)
                return HostResult(host, uri, value, None, _since(started), vm)

        tasks = [one(host, vm, work, timeout) for host, vm, work, timeout in known]
        return list(await asyncio.gather(*tasks))

    async def _on(self, hosts: Iterable[str] | None, work: HostWork[_T], timeout: float | None) -> FleetResult[_T]:
        chosen = self._plan.chosen(hosts, timeout)
        return FleetResult(await self._run([(host, None, work, timeout) for host in chosen]))

    async def map(
        self,
        fn: Callable[[AsyncConnection], Awaitable[_T]],
        *,
        hosts: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> FleetResult[_T]:
        """Await ``fn(connection)`` on every host (or those in ``hosts``) at once; return each host's outcome.

        ``timeout`` (seconds) overrides every host's own bound for this call.
        """
        return await self._on(hosts, lambda _host, conn: fn(conn), timeout)

    # -- inventory -----------------------------------------------------------------------------------------------
    async def list(
        self, details: bool = False, *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> FleetResult[VMList]:
        """Return each host's VMs as :class:`~polyvisor.FleetVM` values."""

        async def listing(host: str, conn: AsyncConnection) -> VMList:
            return [FleetVM(host, info) for info in await conn.list(details=details)]

        return await self._on(hosts, listing, timeout)

    async def stats(
        self, *, hosts: Iterable[str] | None = None, timeout: float | None = None, at_most: float | None = None
    ) -> FleetResult[builtins.list[VMStats]]:
        """Sample every VM's counters on every host at once (see :meth:`polyvisor.Fleet.stats`)."""
        chosen = self._plan.chosen(hosts, timeout)
        if at_most is not None:
            check_seconds(at_most, "at_most")

        async def sampling(host: str, conn: AsyncConnection) -> builtins.list[VMStats]:
            return await conn.stats(timeout=self._plan.bounded(host, timeout, at_most))

        jobs = [(host, None, sampling, self._plan.bounded(host, timeout, at_most)) for host in chosen]
        return FleetResult(await self._run(jobs))

    async def vms(self, details: bool = False, *, timeout: float | None = None) -> VMList:
        """Return the VMs of every host that answered, in host order (check :meth:`list` for who did not)."""
        listing = await self.list(details, timeout=timeout)
        return [vm for vms in listing.values.values() for vm in vms]

    async def find(self, ref: str, *, timeout: float | None = None) -> FleetVM:
        """Return the VM with this name or UUID on whichever host has it; ``host/name`` asks one host only.

        Raise :class:`~polyvisor.errors.NotFoundError` naming the hosts searched (and those that failed), or
        :class:`~polyvisor.errors.ValidationError` when the name exists on several hosts.
        """
        lookup = self._plan.lookup(ref)
        return lookup.resolve(await self.list(hosts=lookup.hosts, timeout=timeout))

    # -- selections and verbs ------------------------------------------------------------------------------------
    async def matching(self, selection: Selection, *, timeout: float | None = None) -> FleetResult[VMList]:
        """Return the selected VMs of each host the selection covers."""
        listing = await self.list(selection.needs_details, hosts=self._plan.covered(selection), timeout=timeout)
        return matching(selection, listing)

    async def act(
        self, selection: Selection | Iterable[FleetVM], verb: str, **kwargs: Any
    ) -> FleetResult[VMStatus | None]:
        """Run a VM verb (``start``, ``shutdown``, ``stop``, ...) on every selected VM at once.

        Results are keyed ``host/name``; a host whose listing failed appears under its own name with that error.
        ``kwargs`` go to the verb (``timeout=``, ``mode=``, ``storage=``, ...).
        """
        seconds = verb_timeout(verb, kwargs)

        async def run(vm: AsyncVM) -> VMStatus | None:
            outcome: VMStatus | None = await getattr(vm, verb)(**kwargs)
            return outcome

        return await self._each(selection, run, seconds)

    async def ensure(
        self,
        selection: Selection | Iterable[FleetVM],
        state: PowerState | str,
        *,
        force: bool = False,
        timeout: float = SHUTDOWN_TIMEOUT,
    ) -> FleetResult[VMStatus]:
        """Bring every selected VM to ``state`` (see :meth:`polyvisor.VM.ensure`), all at once; per-VM results."""
        return await self._each(selection, lambda vm: vm.ensure(state, force=force, timeout=timeout), timeout)

    async def map_vms(
        self,
        selection: Selection | Iterable[FleetVM],
        fn: Callable[[AsyncVM], Awaitable[_T]],
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> FleetResult[_T]:
        """Await ``fn(vm)`` on every selected VM at once (an :class:`AsyncVM` on the host's pooled connection).

        Results are keyed ``host/name``, as for :meth:`act`. ``timeout`` is the seconds ``fn`` may take on one VM
        (give each verb it awaits its share); a VM whose work takes longer is reported as timed out.
        """
        return await self._each(selection, fn, timeout)

    async def _each(
        self,
        selection: Selection | Iterable[FleetVM],
        verb: Callable[[AsyncVM], Awaitable[_T]],
        verb_timeout: float,
    ) -> FleetResult[_T]:
        check_seconds(verb_timeout, "timeout")
        if isinstance(selection, Selection):
            work = VMWork.found(await self.matching(selection))
        else:
            work = VMWork.listed(selection)
        jobs: builtins.list[tuple[str, str | None, HostWork[_T], float | None]] = []
        for job in work.jobs(self._plan, verb_timeout):

            async def run(_host: str, conn: AsyncConnection, listed: FleetVM = job.vm) -> _T:
                return await verb(await conn.vm(listed.info))

            jobs.append((job.host, job.vm.name, run, job.timeout))
        return FleetResult([*work.failed, *await self._run(jobs)])

    # -- images --------------------------------------------------------------------------------------------------
    async def upload_image(
        self,
        local_path: str | os.PathLike[str],
        *,
        pool: str | None = None,
        name: str | None = None,
        hosts: Iterable[str] | None = None,
        progress: Callable[[str, TransferProgress], None] | None = None,
        timeout: float = TRANSFER_TIMEOUT,
    ) -> FleetResult[Volume]:
        """Upload one local image to every host at once (see :meth:`polyvisor.Fleet.upload_image`); ``progress``
        is called on the event loop."""
        image = LocalImage.open(local_path)
        check_seconds(timeout, "timeout")
        chosen = self._plan.chosen(hosts, None)

        async def upload(host: str, conn: AsyncConnection) -> Volume:
            sink = None if progress is None else functools.partial(progress, host)
            return await conn.upload_image(image.path, pool=pool, name=name, progress=sink, timeout=timeout)

        # Connections first, each within its host's timeout; then the uploads, each within ``timeout``.
        opened = await self._on(chosen, _opened, None)
        jobs = [(host, None, upload, timeout) for host in chosen if opened[host].ok]
        uploaded = {result.host: result for result in await self._run(jobs)}
        failed: list[HostResult[Volume]] = [
            HostResult(r.host, r.uri, None, r.error, r.elapsed) for r in opened.results()
        ]
        return FleetResult([uploaded.get(r.host) or r for r in failed])

    # -- placement -----------------------------------------------------------------------------------------------
    async def candidates(
        self, *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> builtins.list[Candidate]:
        """Return what placement needs of each host: labels, CPUs and free memory, or the host's error."""

        async def facts(_host: str, conn: AsyncConnection) -> tuple[int, int | None]:
            info = await conn.host_info()
            vms = None if info.free_memory_mib is not None else await conn.list(details=True)
            return info.cpus, free_memory_mib(info, vms)

        return self._plan.candidates(await self._on(hosts, facts, timeout))

    async def create(
        self,
        spec: VMSpec | Mapping[str, Any],
        *,
        placement: Placement | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> FleetVM:
        """Create the VM on the fitting host with the most free memory.

        Raise :class:`~polyvisor.errors.PlacementError`, saying host by host why, when none fits.
        """
        placing = self._plan.placing(spec, placement)
        spec = placing.spec
        chosen = placing.choose(await self.candidates(hosts=placing.hosts))

        async def create(_host: str, conn: AsyncConnection) -> FleetVM:
            vm = await conn.create(spec, timeout=timeout)
            return FleetVM(chosen, await vm.info())

        bound = self._plan.vm_timeout(chosen, timeout)
        (created,) = await self._run([(chosen, None, create, bound)])
        return created.unwrap()


async def _opened(_host: str, conn: AsyncConnection) -> None:
    """Nothing but the host's connection, opened."""


async def _same(conn: AsyncConnection) -> AsyncConnection:
    return conn


def _since(started: float) -> float:
    return time.monotonic() - started


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it: a late goodbye changes nothing
