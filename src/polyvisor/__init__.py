"""polyvisor: one set of VM semantics for every hypervisor.

>>> import polyvisor
>>> with polyvisor.connect("test:///default") as conn:
...     [info.name for info in conn.list()]
['test']
"""

from __future__ import annotations

from polyvisor.backend import Backend, Credentials, Secret
from polyvisor.connect import connect, schemes
from polyvisor.connection import VM, Connection, EventStream
from polyvisor.errors import (
    AlreadyExistsError,
    AuthenticationError,
    BackendError,
    ConnectionError,
    ConnectionLostError,
    FleetError,
    InvalidStateError,
    NotFoundError,
    PlacementError,
    PolyvisorError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.fleet import Fleet, FleetResult, FleetVM, HostResult, Placement, Selection
from polyvisor.model import (
    Architecture,
    BootDevice,
    Capabilities,
    DetailsNotLoaded,
    DiskBus,
    DiskFormat,
    DiskSpec,
    Event,
    EventKind,
    Feature,
    Firmware,
    GuestAddress,
    HostInfo,
    KernelBoot,
    NetworkInfo,
    NicSpec,
    PowerState,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VMDetails,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.plugins import Plugins
from polyvisor.uri import URI

__all__ = [
    "URI",
    "VM",
    "AlreadyExistsError",
    "Architecture",
    "AuthenticationError",
    "Backend",
    "BackendError",
    "BootDevice",
    "Capabilities",
    "Connection",
    "ConnectionError",
    "ConnectionLostError",
    "Credentials",
    "DetailsNotLoaded",
    "DiskBus",
    "DiskFormat",
    "DiskSpec",
    "Event",
    "EventKind",
    "EventStream",
    "Feature",
    "Firmware",
    "Fleet",
    "FleetError",
    "FleetResult",
    "FleetVM",
    "GuestAddress",
    "HostInfo",
    "HostResult",
    "InvalidStateError",
    "KernelBoot",
    "NetworkInfo",
    "NicSpec",
    "NotFoundError",
    "Placement",
    "PlacementError",
    "Plugins",
    "PolyvisorError",
    "PowerState",
    "Secret",
    "Selection",
    "ShutdownMode",
    "Snapshot",
    "SnapshotTree",
    "TimeoutError",
    "UnsupportedError",
    "VMDetails",
    "VMInfo",
    "VMSpec",
    "VMStatus",
    "ValidationError",
    "connect",
    "schemes",
]

__version__ = "0.1.0"
