"""The thread-pool :class:`Fleet`: many hosts, pooled connections, bounded fan-out, per-host results."""

from __future__ import annotations

import builtins
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import polyvisor.config as _config
from polyvisor.connect import connect
from polyvisor.connection import Connection
from polyvisor.errors import ConnectionLostError
from polyvisor.fleet._fanout import Job, run_jobs
from polyvisor.fleet._pool import ConnectionPool
from polyvisor.fleet.placement import Candidate, Placement, free_memory_mib
from polyvisor.fleet.planning import (
    ACTIONS,
    FleetFacts,
    FleetPlan,
    VMWork,
    check_seconds,
    config_hosts,
    import_backends,
    matching,
    verb_timeout,
)
from polyvisor.fleet.results import FleetResult, FleetVM, HostResult
from polyvisor.fleet.selection import Selection
from polyvisor.metrics.counters import VMStats
from polyvisor.model import PowerState, VMSpec, VMStatus
from polyvisor.plugins import Plugins, default_plugins
from polyvisor.storage import LocalImage, TransferProgress, Volume
from polyvisor.storage_calls import TRANSFER_TIMEOUT
from polyvisor.uri import URI
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT
from polyvisor.vm import VM

__all__ = ["ACTIONS", "Fleet"]


T = TypeVar("T")
VMList = list[FleetVM]  # spelt once here: inside Fleet, ``list`` is the method

CLOSE_TIMEOUT = 5.0


def _failed(result: HostResult[Connection]) -> HostResult[Volume]:
    """A host whose connection did not open, as the result of a call returning volumes."""
    return HostResult(result.host, result.uri, None, result.error, result.elapsed, result.vm)


class Fleet(FleetFacts):
    """Many hypervisor hosts behind one object: each call runs on every host at once and reports host by host.

    ``hosts`` maps a name to a URI, a connection name of the config file, or a
    :class:`~polyvisor.config.NamedConnection`. At most ``max_concurrency`` hosts work at once, and each gets
    ``timeout`` seconds (its config entry's ``timeout`` if set): a host that does not answer in time is reported
    as timed out and never delays the others further. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        hosts: Mapping[str, str | _config.NamedConnection],
        *,
        max_concurrency: int = 16,
        timeout: float = 30.0,
        plugins: Plugins | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(FleetPlan(hosts, max_concurrency=max_concurrency, timeout=timeout, groups=groups))
        self._plugins = plugins
        self._pool = ConnectionPool(list(self._plan.hosts), self._open)
        self._imported: set[str] = set()  # the URI drivers whose backends are imported

    @classmethod
    def from_config(
        cls,
        group: str = _config.ALL_GROUP,
        *,
        path: Path | None = None,
        max_concurrency: int = 16,
        timeout: float = 30.0,
        plugins: Plugins | None = None,
    ) -> Self:
        """Return the fleet of a config group's connections (``all``: every connection); or of one connection."""
        connections, groups = config_hosts(group, path)
        return cls(connections, max_concurrency=max_concurrency, timeout=timeout, plugins=plugins, groups=groups)

    def __repr__(self) -> str:
        return f"<polyvisor.Fleet {len(self.hosts)} hosts: {', '.join(self.hosts)}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close every pooled connection, waiting at most ``timeout`` seconds (a hung host is left behind)."""
        self._pool.close(timeout)

    # -- hosts (hosts, groups, uri, labels, host_timeout and select: FleetFacts) -------------------------------
    def _open(self, host: str) -> Connection:
        target = self._plan.targets[host]
        return connect(URI.parse(target.uri), plugins=self._plugins, **target.credentials())

    def connection(self, host: str) -> Connection:
        """Return the host's pooled connection, opening it within the host's timeout."""
        return self._run([host], lambda _, conn: conn, None)[host].unwrap()

    # -- fan-out -----------------------------------------------------------------------------------------------
    def _job(
        self, host: str, fn: Callable[[str, Connection], T], timeout: float | None, vm: str | None = None
    ) -> Job[T]:
        pool = self._pool
        seconds = timeout if timeout is not None else self.host_timeout(host)

        def work(deadline: float) -> T:
            conn = pool.get(host, deadline)
            try:
                return fn(host, conn)
            except ConnectionLostError:
                pool.drop(host, conn)  # reopened on the next call
                raise

        return Job(host, self.uri(host), seconds, work, vm, on_abandon=lambda: pool.drop(host))

    def _run(self, hosts: Iterable[str], fn: Callable[[str, Connection], T], timeout: float | None) -> FleetResult[T]:
        jobs = [self._job(self._plan.known(host), fn, timeout) for host in hosts]
        return FleetResult(self._fan_out(jobs))

    def _fan_out(self, jobs: builtins.list[Job[T]]) -> builtins.list[HostResult[T]]:
        # Import the hosts' backends here first: first imports racing on the fan-out threads can deadlock.
        import_backends(self._plugins or default_plugins(), (job.uri for job in jobs), self._imported)
        return run_jobs(jobs, self.max_concurrency)

    def map(
        self, fn: Callable[[Connection], T], *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> FleetResult[T]:
        """Call ``fn(connection)`` on every host (or those in ``hosts``) at once; return each host's outcome.

        ``timeout`` (seconds) overrides every host's own bound for this call.
        """
        return self._on(hosts, lambda _, conn: fn(conn), timeout)

    def _on(
        self, hosts: Iterable[str] | None, fn: Callable[[str, Connection], T], timeout: float | None
    ) -> FleetResult[T]:
        return self._run(self._plan.chosen(hosts, timeout), fn, timeout)

    # -- inventory -----------------------------------------------------------------------------------------------
    def list(
        self, details: bool = False, *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> FleetResult[VMList]:
        """Return each host's VMs as :class:`FleetVM` values (with CPUs, memory and labels when ``details``)."""
        opener = self._pooled

        def listing(host: str, conn: Connection) -> VMList:
            return [FleetVM(host, info, opener) for info in conn.list(details=details)]

        return self._on(hosts, listing, timeout)

    def stats(
        self, *, hosts: Iterable[str] | None = None, timeout: float | None = None, at_most: float | None = None
    ) -> FleetResult[builtins.list[VMStats]]:
        """Sample every VM's counters on every host at once (see :meth:`polyvisor.Connection.stats`), each host
        bounded by its timeout (or ``timeout``) and never by more than ``at_most`` seconds (a scrape's budget); a
        host that does not support stats reports UnsupportedError."""
        chosen = self._plan.chosen(hosts, timeout)
        if at_most is not None:
            check_seconds(at_most, "at_most")

        def sampling(host: str, conn: Connection) -> builtins.list[VMStats]:
            return conn.stats(timeout=self._plan.bounded(host, timeout, at_most))

        jobs = [
            self._job(self._plan.known(host), sampling, self._plan.bounded(host, timeout, at_most)) for host in chosen
        ]
        return FleetResult(self._fan_out(jobs))

    def _pooled(self, host: str) -> Connection:
        return self.connection(host)

    def vms(self, details: bool = False, *, timeout: float | None = None) -> VMList:
        """Return the VMs of every host that answered, in host order (check :meth:`list` for who did not)."""
        return [vm for listing in self.list(details, timeout=timeout).values.values() for vm in listing]

    def find(self, ref: str, *, timeout: float | None = None) -> FleetVM:
        """Return the VM with this name or UUID on whichever host has it; ``host/name`` asks one host only.

        Raise :class:`~polyvisor.errors.NotFoundError` naming the hosts searched (and those that failed), or
        :class:`~polyvisor.errors.ValidationError` when the name exists on several hosts.
        """
        lookup = self._plan.lookup(ref)
        return lookup.resolve(self.list(hosts=lookup.hosts, timeout=timeout))

    # -- selections and verbs ------------------------------------------------------------------------------------
    def matching(self, selection: Selection, *, timeout: float | None = None) -> FleetResult[VMList]:
        """Return the selected VMs of each host the selection covers."""
        listing = self.list(selection.needs_details, hosts=self._plan.covered(selection), timeout=timeout)
        return matching(selection, listing)

    def act(self, selection: Selection | Iterable[FleetVM], verb: str, **kwargs: Any) -> FleetResult[VMStatus | None]:
        """Run a VM verb (``start``, ``shutdown``, ``stop``, ...) on every selected VM at once.

        Results are keyed ``host/name``; a host whose listing failed appears under its own name with that error.
        ``kwargs`` go to the verb (``timeout=``, ``mode=``, ``storage=``, ...).
        """
        seconds = verb_timeout(verb, kwargs)
        return self._each(selection, lambda vm: getattr(vm, verb)(**kwargs), seconds)

    def ensure(
        self,
        selection: Selection | Iterable[FleetVM],
        state: PowerState | str,
        *,
        force: bool = False,
        timeout: float = SHUTDOWN_TIMEOUT,
    ) -> FleetResult[VMStatus]:
        """Bring every selected VM to ``state`` (see :meth:`polyvisor.VM.ensure`), all at once; per-VM results."""
        return self._each(selection, lambda vm: vm.ensure(state, force=force, timeout=timeout), timeout)

    def map_vms(
        self, selection: Selection | Iterable[FleetVM], fn: Callable[[VM], T], *, timeout: float = DEFAULT_TIMEOUT
    ) -> FleetResult[T]:
        """Call ``fn(vm)`` on every selected VM at once (a :class:`~polyvisor.VM` on the host's pooled connection).

        Results are keyed ``host/name``, as for :meth:`act`. ``timeout`` is the seconds ``fn`` may take on one VM
        (give each verb it calls its share); a VM whose work takes longer is reported as timed out and left to
        finish on its own.
        """
        return self._each(selection, fn, timeout)

    def _each(
        self, selection: Selection | Iterable[FleetVM], verb: Callable[[Any], T], verb_timeout: float
    ) -> FleetResult[T]:
        check_seconds(verb_timeout, "timeout")
        work = VMWork.found(self.matching(selection)) if isinstance(selection, Selection) else VMWork.listed(selection)
        jobs = []
        for job in work.jobs(self._plan, verb_timeout):

            def run(_: str, conn: Connection, listed: FleetVM = job.vm) -> T:
                return verb(conn.vm(listed.info))

            jobs.append(self._job(job.host, run, job.timeout, vm=job.vm.name))
        return FleetResult([*work.failed, *self._fan_out(jobs)])

    # -- images --------------------------------------------------------------------------------------------------
    def upload_image(
        self,
        local_path: str | os.PathLike[str],
        *,
        pool: str | None = None,
        name: str | None = None,
        hosts: Iterable[str] | None = None,
        progress: Callable[[str, TransferProgress], None] | None = None,
        timeout: float = TRANSFER_TIMEOUT,
    ) -> FleetResult[Volume]:
        """Upload one local image to every host (or those in ``hosts``) at once; return each host's new volume.

        At most ``max_concurrency`` uploads run at once. The file is checked once, before any host is asked. Each
        host's upload gets ``timeout`` seconds (see :meth:`polyvisor.Connection.upload_image`) once its connection
        is open (within the host's own timeout); a host that fails or times out leaves nothing under the name there
        and never holds up the others. ``progress(host, report)`` is called from the uploading threads.
        """
        image = LocalImage.open(local_path)
        check_seconds(timeout, "timeout")
        chosen = self._plan.chosen(hosts, None)

        def upload(host: str, conn: Connection) -> Volume:
            sink = None if progress is None else functools.partial(progress, host)
            return conn.upload_image(image.path, pool=pool, name=name, progress=sink, timeout=timeout)

        # Connections first, each within its host's timeout (a hanging host is not given the upload's hour); then
        # the uploads to the hosts that answered, each within ``timeout``.
        opened = self._run(chosen, lambda _, conn: conn, None)
        jobs = [self._job(host, upload, timeout) for host in chosen if opened[host].ok]
        uploaded = {result.host: result for result in self._fan_out(jobs)}
        return FleetResult([uploaded.get(r.host) or _failed(r) for r in opened.results()])

    # -- placement -----------------------------------------------------------------------------------------------
    def candidates(
        self, *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> builtins.list[Candidate]:
        """Return what placement needs of each host: labels, CPUs and free memory, or the host's error."""

        def facts(conn: Connection) -> tuple[int, int | None]:
            info = conn.host_info()
            vms = None if info.free_memory_mib is not None else conn.list(details=True)
            return info.cpus, free_memory_mib(info, vms)

        return self._plan.candidates(self._on(hosts, lambda _, conn: facts(conn), timeout))

    def create(
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
        chosen = placing.choose(self.candidates(hosts=placing.hosts))
        bound = self._plan.vm_timeout(chosen, timeout)
        created = self._run([chosen], lambda _, conn: conn.create(spec, timeout=timeout).info(), bound)
        return FleetVM(chosen, created[chosen].unwrap(), self._pooled)
