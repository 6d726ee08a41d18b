"""What a fleet decides without asking any host, shared by the thread-pool and asyncio fleets.

:class:`FleetPlan` holds the hosts, groups and timeouts and turns a call's arguments into the hosts to ask, a
:class:`~polyvisor.Selection`, per-VM work and deadlines; :class:`Lookup` turns a ``find`` listing into the VM or
the error saying why not; :func:`candidates` turns per-host answers into placement candidates;
:func:`import_backends` imports the hosts' backends before a fan-out. Nothing here talks to a host or holds a thread
or an event loop: :class:`~polyvisor.Fleet` and :class:`~polyvisor.aio.AsyncFleet` differ
only in how they run the work (threads or tasks).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polyvisor.config as _config
from polyvisor.errors import NotFoundError, PolyvisorError, TimeoutError, ValidationError
from polyvisor.fleet.placement import Candidate, Placement, choose_host
from polyvisor.fleet.results import FleetResult, FleetVM, HostResult
from polyvisor.fleet.selection import Selection
from polyvisor.model import PowerState, VMSpec
from polyvisor.plugins import Plugins
from polyvisor.uri import URI
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT

__all__ = [
    "ACTIONS",
    "FleetFacts",
    "FleetPlan",
    "Lookup",
    "Placing",
    "VMJob",
    "VMWork",
    "abandoned",
    "as_polyvisor_error",
    "check_seconds",
    "config_hosts",
    "import_backends",
    "matching",
    "names",
    "verb_timeout",
]

log = logging.getLogger("polyvisor.fleet")

VMList = list[FleetVM]  # spelt once here: inside FleetPlan, ``list`` may be shadowed by callers' methods

ACTIONS = frozenset(
    {"start", "stop", "shutdown", "reset", "reboot", "pause", "resume", "save", "discard_saved_state", "delete"}
)
"""The VM verbs :meth:`Fleet.act` runs."""


def import_backends(plugins: Plugins, uris: Iterable[str], imported: set[str]) -> None:
    """Import the backend of every URI's driver not in ``imported`` (and add it), on the calling thread.

    Both fleets call this before they fan out: first imports racing on several threads (or the asyncio fleet's
    connection threads) can deadlock on Python's module locks. A URI that does not parse is left for its job to
    report.
    """
    for text in uris:
        try:
            uri = URI.parse(text)
        except PolyvisorError:
            continue
        if uri.driver not in imported:
            imported.add(uri.driver)
            plugins.import_backend(uri)


def check_seconds(value: object, field: str) -> None:
    """Raise :class:`~polyvisor.errors.ValidationError` unless ``value`` is a number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"must be a number of seconds > 0, got {value!r}", field=field)


def names(values: Iterable[str], what: str) -> builtins.list[str]:
    """Return ``values`` as a list, refusing one string (whose characters would pass for names)."""
    if isinstance(values, str):
        raise ValidationError(f"give a list of {what}, not one string", field=what)
    return builtins.list(values)


def looks_like_uuid(text: str) -> bool:
    """Return whether ``text`` is spelt like a UUID (which then matches in any case)."""
    return len(text) == 36 and text.count("-") == 4


def as_polyvisor_error(error: BaseException, host: str) -> PolyvisorError:
    """Return ``error`` as this host's :class:`~polyvisor.errors.PolyvisorError` (wrapped, if it is not one)."""
    if isinstance(error, PolyvisorError):
        return error
    wrapped = PolyvisorError(f"{type(error).__name__}: {error}", host=host)
    wrapped.__cause__ = error
    return wrapped


def abandoned(host: str, vm: str | None, seconds: float) -> TimeoutError:
    """Return the error of a host (or VM) left behind at its timeout."""
    return TimeoutError(
        f"no answer within {seconds:g}s; the host was left to finish on its own and the others went on without it",
        host=host,
        vm=vm,
    )


def verb_timeout(verb: str, kwargs: Mapping[str, Any]) -> float:
    """Return the seconds :meth:`Fleet.act` gives ``verb`` (its ``timeout=``, else the verb's default)."""
    if verb not in ACTIONS:
        raise ValidationError(f"{verb!r} is not a verb; use one of {', '.join(sorted(ACTIONS))}", field="verb")
    default = SHUTDOWN_TIMEOUT if verb == "shutdown" else DEFAULT_TIMEOUT
    timeout: float = kwargs.get("timeout", default)
    return timeout


def config_hosts(
    group: str, path: Path | None
) -> tuple[dict[str, _config.NamedConnection], dict[str, builtins.list[str]]]:
    """Return the connections of a config group (``all``: every connection), or of one connection, and the
    config's groups narrowed to them."""
    config = _config.read_config(path)
    if config.is_group(group):
        members = config.group(group)
    elif group in config.connections:
        members = [group]
    else:
        known = ", ".join(sorted({_config.ALL_GROUP, *config.groups, *config.connections}))
        raise NotFoundError(f"no group or connection named {group!r} in {path or _config.config_path()} ({known})")
    groups = {name: config.group(name) for name in config.groups}
    groups = {name: [m for m in listed if m in members] for name, listed in groups.items()}
    return {name: config.connections[name] for name in members}, groups


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


@dataclass(frozen=True, slots=True)
class Lookup:
    """One ``find``: the name (or UUID) asked for and the hosts to list; :meth:`resolve` reads their listing."""

    name: str
    hosts: tuple[str, ...]

    @property
    def wanted(self) -> str:
        """The name, or the UUID in lower case (hypervisors spell it either way)."""
        return self.name.lower() if looks_like_uuid(self.name) else self.name

    def resolve(self, listing: FleetResult[VMList]) -> FleetVM:
        """Return the one listed VM of that name or UUID.

        Raise :class:`~polyvisor.errors.NotFoundError` naming the hosts searched (and those that failed), or
        :class:`~polyvisor.errors.ValidationError` when the name exists on several hosts.
        """
        wanted = self.wanted
        found = [vm for vms in listing.values.values() for vm in vms if wanted in (vm.name, vm.uuid.lower())]
        if len(found) == 1:
            return found[0]
        if found:
            keys = ", ".join(vm.key for vm in found)
            raise ValidationError(
                f"{self.name!r} names a VM on several hosts ({keys}); say which with host/name", field="vm"
            )
        searched = [key for key in listing if key not in listing.errors]
        message = f"no VM named {self.name!r} on {', '.join(searched) or 'any host'}"
        if listing.errors:
            failed = "; ".join(f"{key}: {' '.join(str(err).split())}" for key, err in listing.errors.items())
            message += f"; these hosts could not be searched: {failed}"
        raise NotFoundError(message, vm=self.name)


@dataclass(frozen=True, slots=True)
class Placing:
    """One ``create``: the VM, its placement, and the hosts whose candidates to gather (None: every host)."""

    spec: VMSpec
    placement: Placement
    hosts: builtins.list[str] | None

    def choose(self, candidates: Iterable[Candidate]) -> str:
        """Return the host the VM goes on; raise :class:`~polyvisor.errors.PlacementError` when none fits."""
        chosen = choose_host(candidates, memory_mib=self.spec.memory_mib, cpus=self.spec.cpus, placement=self.placement)
        if isinstance(chosen, PolyvisorError):
            raise chosen
        log.info("placing VM %r on %s", self.spec.name, chosen)
        return chosen


@dataclass(frozen=True, slots=True)
class VMJob:
    """One VM's part of a call on selected VMs: on ``host`` (the fleet's), within ``timeout`` seconds."""

    host: str
    vm: FleetVM
    timeout: float


@dataclass(frozen=True, slots=True)
class VMWork:
    """A call on selected VMs: the hosts whose listing failed, and the VMs to act on."""

    failed: tuple[HostResult[Any], ...]
    """One result per host whose listing failed, under the host's own name, with that error."""
    targets: tuple[FleetVM, ...]

    @classmethod
    def found(cls, found: FleetResult[VMList]) -> VMWork:
        """The work on the selected VMs ``found`` host by host (see :meth:`FleetPlan.covered`)."""
        failed: tuple[HostResult[Any], ...] = tuple(
            HostResult(r.host, r.uri, None, r.error, r.elapsed) for r in found.results() if r.error
        )
        return cls(failed, tuple(vm for vms in found.values.values() for vm in vms))

    @classmethod
    def listed(cls, vms: Iterable[FleetVM]) -> VMWork:
        """The work on VMs the caller listed."""
        return cls((), tuple(vms))

    def jobs(self, plan: FleetPlan, verb_timeout: float) -> builtins.list[VMJob]:
        """Return a job per VM, keyed ``host/name``, each bounded by :meth:`FleetPlan.vm_timeout`."""
        return [VMJob(plan.known(vm.host), vm, plan.vm_timeout(vm.host, verb_timeout)) for vm in self.targets]


class FleetPlan:
    """A fleet's hosts, groups and timeouts, checked; and every decision a call makes before it asks a host.

    The arguments are :class:`~polyvisor.Fleet`'s (less ``plugins``).
    """

    def __init__(
        self,
        hosts: Mapping[str, str | _config.NamedConnection],
        *,
        max_concurrency: int = 16,
        timeout: float = 30.0,
        groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValidationError(f"must be an integer >= 1, got {max_concurrency!r}", field="max_concurrency")
        check_seconds(timeout, "timeout")
        self.targets = {host: _target(host, value) for host, value in hosts.items()}
        """Each host's connection settings, in order."""
        self._uris = {host: URI.parse(target.uri).render() for host, target in self.targets.items()}
        self._groups = {name: tuple(members) for name, members in (groups or {}).items()}
        for name, members in self._groups.items():
            unknown = [member for member in members if member not in self.targets]
            if unknown:
                raise ValidationError(
                    f"group {name!r} names hosts the fleet lacks: {', '.join(unknown)}", field="groups"
                )
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)

    # -- hosts -------------------------------------------------------------------------------------------------
    @property
    def hosts(self) -> tuple[str, ...]:
        """The host names, in order."""
        return tuple(self.targets)

    @property
    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Named groups of the hosts."""
        return dict(self._groups)

    def known(self, host: str) -> str:
        """Return ``host``, or raise :class:`~polyvisor.errors.NotFoundError` when the fleet lacks it."""
        if host not in self.targets:
            raise NotFoundError(f"the fleet has no host {host!r} (hosts: {', '.join(self.targets) or 'none'})")
        return host

    def uri(self, host: str) -> str:
        """The host's URI, password masked."""
        return self._uris[self.known(host)]

    def labels(self, host: str) -> Mapping[str, str]:
        """The host's own labels (its config entry's ``labels``)."""
        return self.targets[self.known(host)].labels

    def host_timeout(self, host: str) -> float:
        """Seconds a call waits for the host: its own ``timeout``, else the fleet's."""
        return self.targets[self.known(host)].timeout or self.timeout

    def bounded(self, host: str, timeout: float | None, at_most: float | None) -> float:
        """Seconds a call may take on ``host``: ``timeout`` (else the host's own), but never more than ``at_most``."""
        seconds = timeout if timeout is not None else self.host_timeout(host)
        return seconds if at_most is None else min(seconds, at_most)

    def vm_timeout(self, host: str, verb_timeout: float) -> float:
        """Seconds a call on one VM of ``host`` may take: the verb keeps its own deadline; the host's bound covers
        reaching it first."""
        return verb_timeout + 1.0 + self.host_timeout(host)

    # -- what a call asks --------------------------------------------------------------------------------------
    def chosen(self, hosts: Iterable[str] | None, timeout: float | None) -> builtins.list[str]:
        """Return the hosts a call asks (all, or ``hosts``), checking its ``timeout`` override."""
        if timeout is not None:
            check_seconds(timeout, "timeout")
        return builtins.list(self.targets) if hosts is None else names(hosts, "hosts")

    def lookup(self, ref: str) -> Lookup:
        """Return the :class:`Lookup` of a ``find``: a VM name or UUID, or ``host/name`` for one host only."""
        if not isinstance(ref, str) or not ref:
            raise ValidationError("give a VM name, UUID or host/name", field="vm")
        host, slash, name = ref.rpartition("/")
        return Lookup(name, (self.known(host),) if slash else self.hosts)

    def group(self, name: str) -> tuple[str, ...]:
        """Return the hosts of a group (``all``: every host); raise :class:`~polyvisor.errors.NotFoundError` for
        a group the fleet lacks."""
        if name == _config.ALL_GROUP:
            return self.hosts
        if name in self._groups:
            return self._groups[name]
        known = ", ".join(sorted({_config.ALL_GROUP, *self._groups}))
        raise NotFoundError(f"the fleet has no group {name!r} (groups: {known})")

    def covered(self, selection: Selection) -> builtins.list[str]:
        """Return the hosts, in order, whose VMs ``selection`` can match."""
        return [host for host in self.targets if selection.covers(host)]

    def candidates(self, answers: FleetResult[tuple[int, int | None]]) -> builtins.list[Candidate]:
        """Return each host's placement :class:`Candidate` from its ``(cpus, free MiB)`` answer, or its error."""
        out = []
        for host, outcome in answers.items():
            if outcome.error is not None:
                out.append(Candidate(host, self.labels(host), error=outcome.error))
            else:
                cpus, free = outcome.unwrap()
                out.append(Candidate(host, self.labels(host), free, cpus))
        return out

    def placing(self, spec: VMSpec | Mapping[str, Any], placement: Placement | None) -> Placing:
        """Return the :class:`Placing` of a ``create``: the spec, its placement, and the hosts it may use."""
        spec = spec if isinstance(spec, VMSpec) else VMSpec.from_dict(spec)
        placement = placement or Placement()
        hosts = [self.known(host) for host in placement.hosts] if placement.hosts is not None else None
        return Placing(spec, placement, hosts)


class FleetFacts:
    """What both fleets answer from their :class:`FleetPlan` alone, with no round trip (so never a coroutine)."""

    def __init__(self, plan: FleetPlan) -> None:
        self._plan = plan
        self.max_concurrency = plan.max_concurrency
        self.timeout = plan.timeout

    @property
    def hosts(self) -> tuple[str, ...]:
        """The host names, in order."""
        return self._plan.hosts

    @property
    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Named groups of this fleet's hosts (from the config file)."""
        return self._plan.groups

    def uri(self, host: str) -> str:
        """The host's URI, password masked."""
        return self._plan.uri(host)

    def labels(self, host: str) -> Mapping[str, str]:
        """The host's own labels (its config entry's ``labels``)."""
        return self._plan.labels(host)

    def host_timeout(self, host: str) -> float:
        """Seconds a call waits for the host: its own ``timeout``, else the fleet's."""
        return self._plan.host_timeout(host)

    def select(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        hosts: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        states: Iterable[PowerState | str] | None = None,
    ) -> Selection:
        """Return a :class:`~polyvisor.Selection` of this fleet's VMs; ``hosts`` and ``groups`` together mean
        either (no round trip, so not a coroutine)."""
        plan = self._plan
        chosen: set[str] | None = None
        if hosts is not None:
            chosen = {plan.known(host) for host in _names(hosts, "hosts")}
        if groups is not None:
            chosen = chosen or set()
            for group in _names(groups, "groups"):
                chosen.update(plan.group(group))
        return Selection(
            labels=labels or {},
            hosts=frozenset(chosen) if chosen is not None else None,
            names=frozenset(_names(names, "names")) if names is not None else None,
            states=frozenset(PowerState(state) for state in states) if states is not None else None,
        )


_names = names  # inside FleetFacts.select, ``names`` is the argument


def matching(selection: Selection, listing: FleetResult[VMList]) -> FleetResult[VMList]:
    """Return ``listing`` narrowed to the VMs ``selection`` matches."""
    return listing.map_values(lambda vms: [vm for vm in vms if selection.matches(vm.host, vm.info)])
