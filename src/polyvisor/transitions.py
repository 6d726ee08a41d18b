"""The verb table of the contract: which states each verb accepts and where it leads.

The core enforces it for every backend, the conformance kit tests every row of it, and the docs print it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from polyvisor.model import Feature, PowerState

__all__ = ["ALL_STATES", "SETTLED_STATES", "VERBS", "Verb"]

P = PowerState

SETTLED_STATES = frozenset({P.RUNNING, P.STOPPED, P.PAUSED, P.SAVED, P.SUSPENDED, P.CRASHED, P.UNKNOWN})
ALL_STATES = frozenset(PowerState)


@dataclass(frozen=True, slots=True)
class Verb:
    """One lifecycle verb: the states it accepts, its target and the feature it needs."""

    name: str
    accepts: frozenset[PowerState]
    target: PowerState | None
    """Where the verb leads; when the VM is already there the verb returns without acting."""
    feature: Feature | None = None
    waits_out_transitions: bool = True
    """Whether a VM in a transitional state is first waited on until it settles."""

    def allows(self, state: PowerState) -> bool:
        """Return whether the verb may act from ``state``."""
        return state in self.accepts


_VERBS = [
    Verb("start", frozenset({P.STOPPED, P.SAVED}), P.RUNNING),
    Verb("shutdown", frozenset({P.RUNNING}), P.STOPPED),
    Verb(
        "stop",
        frozenset({P.RUNNING, P.PAUSED, P.SUSPENDED, P.CRASHED, P.UNKNOWN} | (ALL_STATES - SETTLED_STATES)),
        P.STOPPED,
        waits_out_transitions=False,
    ),
    Verb("reset", frozenset({P.RUNNING}), None, Feature.RESET),
    Verb("reboot", frozenset({P.RUNNING}), None, Feature.REBOOT),
    Verb("pause", frozenset({P.RUNNING}), P.PAUSED, Feature.PAUSE),
    Verb("resume", frozenset({P.PAUSED}), P.RUNNING, Feature.PAUSE),
    Verb("save", frozenset({P.RUNNING, P.PAUSED}), P.SAVED, Feature.SAVE),
    Verb("discard_saved_state", frozenset({P.SAVED}), P.STOPPED, Feature.SAVE),
    Verb("delete", frozenset({P.STOPPED}), None),
]

VERBS = MappingProxyType({verb.name: verb for verb in _VERBS})
"""Every lifecycle verb by name."""
