"""Which VMs of a fleet a call acts on: a :class:`Selection`, a plain value tested with :meth:`Selection.matches`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from polyvisor.errors import ValidationError
from polyvisor.model import PowerState, VMInfo, validate_labels

__all__ = ["Selection"]


@dataclass(frozen=True, slots=True)
class Selection:
    """VMs chosen by labels, hosts, names (or UUIDs) and power states; every criterion given must hold.

    ``hosts`` None means every host of the fleet, ``names`` None any name, ``states`` None any state. Labels
    need listings with details (``needs_details``).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    hosts: frozenset[str] | None = None
    names: frozenset[str] | None = None
    states: frozenset[PowerState] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(validate_labels(self.labels, "selection.labels"))))
        for name in ("hosts", "names"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _strings(value, f"selection.{name}"))
        if self.states is not None:
            object.__setattr__(self, "states", frozenset(_state(state) for state in _iterable(self.states, "states")))

    @property
    def needs_details(self) -> bool:
        """Return whether matching reads labels, which bare listings of some backends do not carry."""
        return bool(self.labels)

    def covers(self, host: str) -> bool:
        """Return whether VMs on ``host`` can match at all (the host is one of ``hosts``, or any is)."""
        return self.hosts is None or host in self.hosts

    def matches(self, host: str, info: VMInfo) -> bool:
        """Return whether the VM ``info`` on ``host`` is selected; labels need ``info`` read with details."""
        if not self.covers(host):
            return False
        if self.names is not None and not (
            info.name in self.names or info.uuid.lower() in self.names or f"{host}/{info.name}" in self.names
        ):
            return False
        if self.states is not None and info.state not in self.states:
            return False
        if self.labels:
            labels = info.labels  # DetailsNotLoaded tells the caller to list with details
            return all(labels.get(key) == value for key, value in self.labels.items())
        return True

    def describe(self) -> str:
        """Return the criteria in words, for messages."""
        parts = []
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in self.labels.items()))
        if self.hosts is not None:
            parts.append("hosts " + ", ".join(sorted(self.hosts)))
        if self.names is not None:
            parts.append("names " + ", ".join(sorted(self.names)))
        if self.states is not None:
            parts.append("states " + ", ".join(sorted(state.value for state in self.states)))
        return "; ".join(parts) or "every VM"


def _iterable(value: object, what: str) -> Iterable[object]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(f"give a list of {what}, not {type(value).__name__}", field=f"selection.{what}")
    return value


def _strings(value: object, field_name: str) -> frozenset[str]:
    items: list[str] = []
    for item in _iterable(value, field_name.rpartition(".")[2]):
        if not isinstance(item, str) or not item:
            raise ValidationError("every entry must be a non-empty string", field=field_name)
        # A UUID matches whatever case the hypervisor spells it in.
        items.append(item.lower() if _looks_like_uuid(item) else item)
    return frozenset(items)


def _looks_like_uuid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


def _state(value: object) -> PowerState:
    try:
        return PowerState(str(value))
    except ValueError:
        choices = ", ".join(state.value for state in PowerState)
        raise ValidationError(
            f"{value!r} is not a power state; use one of {choices}", field="selection.states"
        ) from None
