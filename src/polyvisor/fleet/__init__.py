"""Many hosts at once: pooled connections, bounded fan-out, per-host results, selections and placement.

:class:`~polyvisor.Fleet` runs each call on every host in a bounded thread pool; one host that is dead or
hanging costs the others nothing beyond its own timeout. The result types, :class:`~polyvisor.Selection` and
:func:`choose_host` hold no threads, so an asyncio fleet shares them.
"""

from __future__ import annotations

from polyvisor.errors import FleetError, PlacementError
from polyvisor.fleet._fleet import Fleet
from polyvisor.fleet.placement import Candidate, Placement, choose_host, free_memory_mib
from polyvisor.fleet.planning import ACTIONS
from polyvisor.fleet.results import FleetResult, FleetVM, HostResult
from polyvisor.fleet.selection import Selection

__all__ = [
    "ACTIONS",
    "Candidate",
    "Fleet",
    "FleetError",
    "FleetResult",
    "FleetVM",
    "HostResult",
    "Placement",
    "PlacementError",
    "Selection",
    "choose_host",
    "free_memory_mib",
]
