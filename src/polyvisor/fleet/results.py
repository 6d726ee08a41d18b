"""The values a fleet call returns: one :class:`HostResult` per host (or VM), gathered in a :class:`FleetResult`.

They hold no threads and no connections, so the thread-pool :class:`~polyvisor.fleet.Fleet` and an asyncio one
can share them.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView
from dataclasses import dataclass, field
from typing import Generic, TypeVar, overload

from polyvisor.connection import Connection
from polyvisor.errors import FleetError, PolyvisorError, ValidationError
from polyvisor.model import PowerState, VMInfo
from polyvisor.vm import VM

__all__ = ["FleetResult", "FleetVM", "HostResult"]

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class HostResult(Generic[T]):
    """What one host (or one VM on it, when ``vm`` is set) returned: a value, or the error it raised."""

    host: str
    uri: str
    """The host's URI, password masked."""
    value: T | None = None
    error: PolyvisorError | None = None
    elapsed: float = 0.0
    """Seconds the host's work took (up to its timeout, for a host that did not answer)."""
    vm: str | None = None
    """The VM's name, for results of calls acting on VMs."""

    @property
    def ok(self) -> bool:
        """Return whether the host answered without an error."""
        return self.error is None

    @property
    def key(self) -> str:
        """``host``, or ``host/vm`` for a result about one VM: the key in a :class:`FleetResult`."""
        return self.host if self.vm is None else f"{self.host}/{self.vm}"

    def unwrap(self) -> T:
        """Return the value, or raise the host's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # T may itself admit None


class FleetResult(Generic[T]):
    """Per-host (or per-VM) results of one fleet call, keyed by :attr:`HostResult.key`, in the fleet's order.

    It reads like a mapping of key to :class:`HostResult` (``result["kvm1"]``, ``in``, ``len``, ``keys()``,
    ``items()``, ``get()``, iteration), except that :attr:`values` is the answered values, not a method.
    A failed host never hides the others' results: check :attr:`partial`, or call :meth:`raise_for_errors`.
    """

    __slots__ = ("_results",)

    def __init__(self, results: Iterable[HostResult[T]] = ()) -> None:
        self._results: dict[str, HostResult[T]] = {result.key: result for result in results}

    def __getitem__(self, key: str) -> HostResult[T]:
        return self._results[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __contains__(self, key: object) -> bool:
        return key in self._results

    def keys(self) -> KeysView[str]:
        """The hosts (or ``host/vm`` keys), in order."""
        return self._results.keys()

    def items(self) -> ItemsView[str, HostResult[T]]:
        """(key, :class:`HostResult`) pairs, in order."""
        return self._results.items()

    @overload
    def get(self, key: str) -> HostResult[T] | None: ...
    @overload
    def get(self, key: str, default: HostResult[T]) -> HostResult[T]: ...
    def get(self, key: str, default: HostResult[T] | None = None) -> HostResult[T] | None:
        """Return the result under ``key``, or ``default``."""
        return self._results.get(key, default)

    def results(self) -> list[HostResult[T]]:
        """Every :class:`HostResult`, in order."""
        return list(self._results.values())

    def __repr__(self) -> str:
        failed = sorted(self.errors)
        return f"<FleetResult {len(self) - len(failed)} ok, {len(failed)} failed{': ' if failed else ''}" + (
            ", ".join(failed) + ">"
        )

    @property
    def ok(self) -> bool:
        """Return whether every host answered without an error."""
        return all(result.ok for result in self._results.values())

    @property
    def partial(self) -> bool:
        """Return whether some host failed, so the values cover only part of the fleet."""
        return not self.ok

    @property
    def errors(self) -> dict[str, PolyvisorError]:
        """The error of each host that failed."""
        return {key: result.error for key, result in self._results.items() if result.error is not None}

    @property
    def values(self) -> dict[str, T]:
        """The value of each host that answered."""
        return {key: result.value for key, result in self._results.items() if result.error is None}  # type: ignore[misc]

    def raise_for_errors(self) -> FleetResult[T]:
        """Return self when every host answered, else raise :class:`~polyvisor.errors.FleetError` listing them."""
        errors = self.errors
        if errors:
            lines = "; ".join(f"{key}: {_one_line(error)}" for key, error in errors.items())
            raise FleetError(f"{len(errors)} of {len(self)} failed: {lines}", errors=errors)
        return self

    def map_values(self, fn: Callable[[T], U]) -> FleetResult[U]:
        """Return a result whose answered values went through ``fn``; errors stay as they are."""
        return FleetResult(
            HostResult(r.host, r.uri, None if r.error else fn(r.value), r.error, r.elapsed, r.vm)  # type: ignore[arg-type]
            for r in self._results.values()
        )


def _one_line(error: PolyvisorError) -> str:
    return " ".join(str(error).split())


@dataclass(frozen=True, slots=True)
class FleetVM:
    """One VM of a fleet listing: the host it lives on and what that host said about it (a plain value).

    :meth:`vm` turns it into a handle on the fleet's pooled connection to that host.
    """

    host: str
    info: VMInfo
    _opener: Callable[[str], Connection] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The VM's name."""
        return self.info.name

    @property
    def uuid(self) -> str:
        """The VM's UUID."""
        return self.info.uuid

    @property
    def state(self) -> PowerState:
        """The VM's power state when it was listed."""
        return self.info.state

    @property
    def key(self) -> str:
        """``host/name``, the key of this VM in per-VM results and what :meth:`Fleet.find` accepts."""
        return f"{self.host}/{self.info.name}"

    def vm(self) -> VM:
        """Return a handle on this VM through the fleet's pooled connection to its host (opened if need be)."""
        if self._opener is None:
            raise ValidationError(
                f"{self.key} was not listed through a thread-based Fleet, so it has no connection to hand out; "
                "open one with polyvisor.connect() and call conn.vm(uuid)",
                field="vm",
            )
        return VM(self._opener(self.host), self.info.uuid, self.info.name)
