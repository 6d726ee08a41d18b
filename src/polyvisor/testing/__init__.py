"""The conformance kit: the contract's tests, runnable against any backend URI.

Opt in with ``pytest -p polyvisor.testing --polyvisor-uri test:///default``. Tests skip only when the backend does
not declare the capability they need; the summary lists what was covered. Backend authors can override the
``polyvisor_spec`` fixture (in a ``conftest.py``) to give VMs what their hypervisor needs to boot.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyvisor.testing.fixtures import (
        polyvisor_adapter,
        polyvisor_address_overrides,
        polyvisor_base_image,
        polyvisor_connect_options,
        polyvisor_connection,
        polyvisor_second_connection,
        polyvisor_seed_reader,
        polyvisor_spec,
        polyvisor_stubborn_overrides,
        polyvisor_subnet,
        polyvisor_uri,
        polyvisor_vm_factory,
        polyvisor_volume_paths,
    )
    from polyvisor.testing.waiting import eventually

# pytest loads the kit's hooks and fixtures from these when it loads this package as a plugin (``-p``). Nothing
# here imports pytest itself: the ``memory://`` backend lives in this package, and a program that only connects to
# it should not pay for pytest's import (about a quarter of a second).
pytest_plugins = ["polyvisor.testing.plugin", "polyvisor.testing.fixtures"]

__all__ = [
    "eventually",
    "polyvisor_adapter",
    "polyvisor_address_overrides",
    "polyvisor_base_image",
    "polyvisor_connect_options",
    "polyvisor_connection",
    "polyvisor_second_connection",
    "polyvisor_seed_reader",
    "polyvisor_spec",
    "polyvisor_stubborn_overrides",
    "polyvisor_subnet",
    "polyvisor_uri",
    "polyvisor_vm_factory",
    "polyvisor_volume_paths",
]

_HOMES = {"eventually": "polyvisor.testing.waiting"} | dict.fromkeys(__all__[1:], "polyvisor.testing.fixtures")


def __getattr__(name: str) -> Any:
    """Import a name of the kit on first use (see ``pytest_plugins``)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
