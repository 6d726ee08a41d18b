"""polyvisor: one set of VM semantics for every hypervisor.

>>> import polyvisor
>>> with polyvisor.connect("test:///default") as conn:
...     [info.name for info in conn.list()]
['test']
"""

from __future__ import annotations

from polyvisor.backend import Backend, Clock, ConsoleChannel, Credentials, Secret
from polyvisor.config import NamedConnection
from polyvisor.connect import connect, schemes
from polyvisor.connection import Connection
from polyvisor.console import Console
from polyvisor.errors import (
    AlreadyExistsError,
    AuthenticationError,
    BackendError,
    ConnectionError,
    ConnectionLostError,
    FleetError,
    InUseError,
    InvalidStateError,
    NotFoundError,
    PlacementError,
    PolyvisorError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.events import EventStream
from polyvisor.fleet import Candidate, Fleet, FleetResult, FleetVM, HostResult, Placement, Selection
from polyvisor.guestexec import ExecResult, GuestCredentials
from polyvisor.metrics import DiskCounters, MemoryCounters, NicCounters, VMStats
from polyvisor.model import (
    AddressAnswer,
    Architecture,
    BootDevice,
    Capabilities,
    CloneMode,
    CloudInit,
    DetailsNotLoaded,
    DiskBus,
    DiskFormat,
    DiskSpec,
    DynamicMemory,
    Event,
    EventKind,
    Feature,
    Firmware,
    GraphicsInfo,
    GraphicsProtocol,
    GraphicsSpec,
    GuestAddress,
    GuestArchitecture,
    HostInfo,
    KernelBoot,
    NetworkInfo,
    NetworkMode,
    NicKind,
    NicSpec,
    PortForward,
    PowerState,
    Readiness,
    ReadyAnswer,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VideoModel,
    VMDetails,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.networks import AddressPlan, NetworkSpec
from polyvisor.plugins import Plugins
from polyvisor.provisioning.addresses import AddressFamily
from polyvisor.storage import LocalImage, StoragePool, TransferProgress, Volume, VolumeFormat
from polyvisor.uri import URI
from polyvisor.vm import VM

__all__ = [
    "URI",
    "VM",
    "AddressAnswer",
    "AddressFamily",
    "AddressPlan",
    "AlreadyExistsError",
    "Architecture",
    "AuthenticationError",
    "Backend",
    "BackendError",
    "BootDevice",
    "Candidate",
    "Capabilities",
    "Clock",
    "CloneMode",
    "CloudInit",
    "Connection",
    "ConnectionError",
    "ConnectionLostError",
    "Console",
    "ConsoleChannel",
    "Credentials",
    "DetailsNotLoaded",
    "DiskBus",
    "DiskCounters",
    "DiskFormat",
    "DiskSpec",
    "DynamicMemory",
    "Event",
    "EventKind",
    "EventStream",
    "ExecResult",
    "Feature",
    "Firmware",
    "Fleet",
    "FleetError",
    "FleetResult",
    "FleetVM",
    "GraphicsInfo",
    "GraphicsProtocol",
    "GraphicsSpec",
    "GuestAddress",
    "GuestArchitecture",
    "GuestCredentials",
    "HostInfo",
    "HostResult",
    "InUseError",
    "InvalidStateError",
    "KernelBoot",
    "LocalImage",
    "MemoryCounters",
    "NamedConnection",
    "NetworkInfo",
    "NetworkMode",
    "NetworkSpec",
    "NicCounters",
    "NicKind",
    "NicSpec",
    "NotFoundError",
    "Placement",
    "PlacementError",
    "Plugins",
    "PolyvisorError",
    "PortForward",
    "PowerState",
    "Readiness",
    "ReadyAnswer",
    "Secret",
    "Selection",
    "ShutdownMode",
    "Snapshot",
    "SnapshotTree",
    "StoragePool",
    "TimeoutError",
    "TransferProgress",
    "UnsupportedError",
    "VMDetails",
    "VMInfo",
    "VMSpec",
    "VMStats",
    "VMStatus",
    "ValidationError",
    "VideoModel",
    "Volume",
    "VolumeFormat",
    "connect",
    "schemes",
]

__version__ = "0.1.0"
