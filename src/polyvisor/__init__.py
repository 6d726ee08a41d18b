"""polyvisor: one set of VM semantics for every hypervisor.

>>> import polyvisor
>>> with polyvisor.connect("test:///default") as conn:
...     [info.name for info in conn.list()]
['test']
"""

from __future__ import annotations

from typing import Any

from polyvisor import config as _config
from polyvisor.backend import Backend, Credentials, Secret
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
from polyvisor.plugins import default_plugins as _default_plugins
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


def connect(uri: str | URI | None = None, *, plugins: Plugins | None = None, **credentials: Any) -> Connection:
    """Open a connection to a hypervisor.

    ``uri`` is a URI (``test:///default``, ``qemu:///system``, ``hyperv://admin@hv01/``), a connection name from
    the config file, or None for ``$POLYVISOR_URI`` or the config's default (with none of them, a ValidationError
    says how to name a hypervisor). Keyword arguments (``username``, ``password``, ``ca_path``, ...) go to the
    backend; secrets are never shown.
    """
    extra: dict[str, Any] = {}
    if isinstance(uri, URI):
        parsed = uri
    else:
        text, extra = _config.resolve(uri)
        parsed = URI.parse(text)
    options = {**extra, **credentials}
    creds = Credentials.from_kwargs(parsed, options)
    factory = (plugins or _default_plugins()).factory_for(parsed)
    backend = factory(parsed, creds)
    try:
        return Connection(backend, parsed)
    except BaseException:
        backend.close()  # a backend that failed to describe itself must not leak its connection
        raise


def schemes(*, plugins: Plugins | None = None) -> list[str]:
    """Return the URI drivers installed backends handle (imports no hypervisor binding)."""
    return (plugins or _default_plugins()).schemes()
