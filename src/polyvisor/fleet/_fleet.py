"""The thread-pool :class:`Fleet`: many hosts, pooled connections, bounded fan-out, per-host results."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import polyvisor
from polyvisor import config as _config
from polyvisor.connection import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT, Connection
from polyvisor.errors import ConnectionLostError, NotFoundError, PolyvisorError, ValidationError
from polyvisor.fleet._fanout import Job, run_jobs
from polyvisor.fleet._pool import ConnectionPool
from polyvisor.fleet.placement import Candidate, Placement, choose_host, free_memory_mib
from polyvisor.fleet.results import FleetResult, FleetVM, HostResult
from polyvisor.fleet.selection import Selection
from polyvisor.model import PowerState, VMSpec, VMStatus
from polyvisor.plugins import Plugins
from polyvisor.uri import URI

__all__ = ["ACTIONS", "Fleet"]

log = logging.getLogger("polyvisor.fleet")

T = TypeVar("T")
VMList = list[FleetVM]  # spelt once here: inside Fleet, ``list`` is the method

ACTIONS = frozenset(
    {"start", "stop", "shutdown", "reset", "reboot", "pause", "resume", "save", "discard_saved_state", "delete"}
)
"""The VM verbs :meth:`Fleet.act` runs."""

CLOSE_TIMEOUT = 5.0


def _target(host: str, value: str | _config.NamedConnection) -> _config.NamedConnection:
    if not isinstance(host, str) or not host or "/" in host or host != host.strip():
        raise ValidationError(f"{host!r} is not a usable host name (no '/', no surrounding blanks)", field="hosts")
    if isinstance(value, _config.NamedConnection):
        return value
    if not isinstance(value, str) or not value:
        raise ValidationError(f"host {host!r}: give a URI or a NamedConnection", field="hosts")
    if ":" not in value:  # a connection named in the config file
        _, named = _config.load_config()
        if value not in named:
            raise NotFoundError(f"host {host!r}: {value!r} is neither a URI nor a connection of the config file")
        return named[value]
    return _config.NamedConnection(name=host, uri=value)


class Fleet:
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
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValidationError(f"must be an integer >= 1, got {max_concurrency!r}", field="max_concurrency")
        _check_seconds(timeout, "timeout")
        self._targets = {host: _target(host, value) for host, value in hosts.items()}
        self._uris = {host: URI.parse(target.uri).render() for host, target in self._targets.items()}
        self._groups = {name: tuple(members) for name, members in (groups or {}).items()}
        for name, members in self._groups.items():
            unknown = [member for member in members if member not in self._targets]
            if unknown:
                raise ValidationError(
                    f"group {name!r} names hosts the fleet lacks: {', '.join(unknown)}", field="groups"
                )
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self._plugins = plugins
        self._pool = ConnectionPool(list(self._targets), self._open)

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
        config = _config.read_config(path)
        if config.is_group(group):
            names = config.group(group)
        elif group in config.connections:
            names = [group]
        else:
            known = ", ".join(sorted({_config.ALL_GROUP, *config.groups, *config.connections}))
            raise NotFoundError(f"no group or connection named {group!r} in {path or _config.config_path()} ({known})")
        groups = {name: config.group(name) for name in config.groups}
        groups = {name: [m for m in members if m in names] for name, members in groups.items()}
        return cls(
            {name: config.connections[name] for name in names},
            max_concurrency=max_concurrency,
            timeout=timeout,
            plugins=plugins,
            groups=groups,
        )

    def __repr__(self) -> str:
        return f"<polyvisor.Fleet {len(self._targets)} hosts: {', '.join(self._targets)}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close every pooled connection, waiting at most ``timeout`` seconds (a hung host is left behind)."""
        self._pool.close(timeout)

    # -- hosts -------------------------------------------------------------------------------------------------
    @property
    def hosts(self) -> tuple[str, ...]:
        """The host names, in order."""
        return tuple(self._targets)

    @property
    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Named groups of this fleet's hosts (from the config file)."""
        return dict(self._groups)

    def uri(self, host: str) -> str:
        """The host's URI, password masked."""
        return self._uris[self._known(host)]

    def labels(self, host: str) -> Mapping[str, str]:
        """The host's own labels (its config entry's ``labels``)."""
        return self._targets[self._known(host)].labels

    def host_timeout(self, host: str) -> float:
        """Seconds a call waits for the host: its own ``timeout``, else the fleet's."""
        return self._targets[self._known(host)].timeout or self.timeout

    def _known(self, host: str) -> str:
        if host not in self._targets:
            raise NotFoundError(f"the fleet has no host {host!r} (hosts: {', '.join(self._targets) or 'none'})")
        return host

    def _open(self, host: str) -> Connection:
        target = self._targets[host]
        return polyvisor.connect(URI.parse(target.uri), plugins=self._plugins, **target.credentials())

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

        return Job(host, self._uris[host], seconds, work, vm, on_abandon=lambda: pool.drop(host))

    def _run(self, hosts: Iterable[str], fn: Callable[[str, Connection], T], timeout: float | None) -> FleetResult[T]:
        jobs = [self._job(self._known(host), fn, timeout) for host in hosts]
        return FleetResult(run_jobs(jobs, self.max_concurrency))

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
        if timeout is not None:
            _check_seconds(timeout, "timeout")
        return self._run(self._targets if hosts is None else _names(hosts, "hosts"), fn, timeout)

    # -- inventory -----------------------------------------------------------------------------------------------
    def list(
        self, details: bool = False, *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> FleetResult[VMList]:
        """Return each host's VMs as :class:`FleetVM` values (with CPUs, memory and labels when ``details``)."""
        opener = self._pooled

        def listing(host: str, conn: Connection) -> VMList:
            return [FleetVM(host, info, opener) for info in conn.list(details=details)]

        return self._on(hosts, listing, timeout)

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
        if not isinstance(ref, str) or not ref:
            raise ValidationError("give a VM name, UUID or host/name", field="vm")
        host, slash, name = ref.rpartition("/")
        hosts = [self._known(host)] if slash else list(self._targets)
        wanted = name.lower() if _looks_like_uuid(name) else name
        listing = self.list(hosts=hosts, timeout=timeout)
        found = [vm for vms in listing.values.values() for vm in vms if vm.name == wanted or vm.uuid.lower() == wanted]
        if len(found) == 1:
            return found[0]
        if found:
            keys = ", ".join(vm.key for vm in found)
            raise ValidationError(
                f"{name!r} names a VM on several hosts ({keys}); say which with host/name", field="vm"
            )
        searched = [key for key in listing if key not in listing.errors]
        message = f"no VM named {name!r} on {', '.join(searched) or 'any host'}"
        if listing.errors:
            failed = "; ".join(f"{key}: {' '.join(str(err).split())}" for key, err in listing.errors.items())
            message += f"; these hosts could not be searched: {failed}"
        raise NotFoundError(message, vm=name)

    # -- selections and verbs ------------------------------------------------------------------------------------
    def select(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        hosts: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        states: Iterable[PowerState | str] | None = None,
    ) -> Selection:
        """Return a :class:`Selection` of this fleet's VMs; ``hosts`` and ``groups`` together mean either."""
        chosen: set[str] | None = None
        if hosts is not None:
            chosen = {self._known(host) for host in _names(hosts, "hosts")}
        if groups is not None:
            chosen = chosen or set()
            for group in _names(groups, "groups"):
                if group == _config.ALL_GROUP:
                    chosen.update(self._targets)
                elif group in self._groups:
                    chosen.update(self._groups[group])
                else:
                    known = ", ".join(sorted({_config.ALL_GROUP, *self._groups}))
                    raise NotFoundError(f"the fleet has no group {group!r} (groups: {known})")
        return Selection(
            labels=labels or {},
            hosts=frozenset(chosen) if chosen is not None else None,
            names=frozenset(_names(names, "names")) if names is not None else None,
            states=frozenset(PowerState(state) for state in states) if states is not None else None,
        )

    def matching(self, selection: Selection, *, timeout: float | None = None) -> FleetResult[VMList]:
        """Return the selected VMs of each host the selection covers."""
        hosts = [host for host in self._targets if selection.covers(host)]
        listing = self.list(selection.needs_details, hosts=hosts, timeout=timeout)
        return listing.map_values(lambda vms: [vm for vm in vms if selection.matches(vm.host, vm.info)])

    def act(self, selection: Selection | Iterable[FleetVM], verb: str, **kwargs: Any) -> FleetResult[VMStatus | None]:
        """Run a VM verb (``start``, ``shutdown``, ``stop``, ...) on every selected VM at once.

        Results are keyed ``host/name``; a host whose listing failed appears under its own name with that error.
        ``kwargs`` go to the verb (``timeout=``, ``mode=``, ``storage=``, ...).
        """
        if verb not in ACTIONS:
            raise ValidationError(f"{verb!r} is not a verb; use one of {', '.join(sorted(ACTIONS))}", field="verb")
        default = SHUTDOWN_TIMEOUT if verb == "shutdown" else DEFAULT_TIMEOUT
        return self._each(selection, lambda vm: getattr(vm, verb)(**kwargs), kwargs.get("timeout", default))

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

    def _each(
        self, selection: Selection | Iterable[FleetVM], verb: Callable[[Any], T], verb_timeout: float
    ) -> FleetResult[T]:
        _check_seconds(verb_timeout, "timeout")
        failed: list[HostResult[T]] = []
        if isinstance(selection, Selection):
            found = self.matching(selection)
            failed = [HostResult(r.host, r.uri, None, r.error, r.elapsed) for r in found.results() if r.error]
            targets = [vm for vms in found.values.values() for vm in vms]
        else:
            targets = list(selection)
        jobs = []
        for vm in targets:
            handle = vm

            def work(_: str, conn: Connection, handle: FleetVM = handle) -> T:
                return verb(conn.vm(handle.info))

            # The verb keeps its own deadline; the host's bound covers reaching it first.
            bound = verb_timeout + 1.0 + self.host_timeout(vm.host)
            jobs.append(self._job(self._known(vm.host), work, bound, vm=vm.name))
        return FleetResult([*failed, *run_jobs(jobs, self.max_concurrency)])

    # -- placement -----------------------------------------------------------------------------------------------
    def candidates(
        self, *, hosts: Iterable[str] | None = None, timeout: float | None = None
    ) -> builtins.list[Candidate]:
        """Return what placement needs of each host: labels, CPUs and free memory, or the host's error."""

        def facts(conn: Connection) -> tuple[int, int | None]:
            info = conn.host_info()
            vms = None if info.free_memory_mib is not None else conn.list(details=True)
            return info.cpus, free_memory_mib(info, vms)

        result = self._on(hosts, lambda _, conn: facts(conn), timeout)
        out = []
        for host, outcome in result.items():
            if outcome.error is not None:
                out.append(Candidate(host, self.labels(host), error=outcome.error))
            else:
                cpus, free = outcome.unwrap()
                out.append(Candidate(host, self.labels(host), free, cpus))
        return out

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
        if not isinstance(spec, VMSpec):
            spec = VMSpec.from_dict(spec)
        placement = placement or Placement()
        hosts = [self._known(host) for host in placement.hosts] if placement.hosts is not None else None
        chosen = choose_host(
            self.candidates(hosts=hosts), memory_mib=spec.memory_mib, cpus=spec.cpus, placement=placement
        )
        if isinstance(chosen, PolyvisorError):
            raise chosen
        log.info("placing VM %r on %s", spec.name, chosen)
        bound = timeout + 1.0 + self.host_timeout(chosen)
        created = self._run([chosen], lambda _, conn: conn.create(spec, timeout=timeout).info(), bound)
        return FleetVM(chosen, created[chosen].unwrap(), self._pooled)


def _check_seconds(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"must be a number of seconds > 0, got {value!r}", field=field)


def _names(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise ValidationError(f"give a list of {what}, not one string", field=what)
    return list(values)


def _looks_like_uuid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4
