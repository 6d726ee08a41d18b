"""The conformance kit: the contract's tests, runnable against any backend URI.

Opt in with ``pytest -p polyvisor.testing --polyvisor-uri test:///default``. Tests skip only when the backend does
not declare the capability they need; the summary lists what was covered. Backend authors can override the
``polyvisor_spec`` fixture (in a ``conftest.py``) to give VMs what their hypervisor needs to boot.
"""

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
from polyvisor.testing.plugin import (
    pytest_addoption,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_terminal_summary,
)
from polyvisor.testing.waiting import eventually

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
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]
