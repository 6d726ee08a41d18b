"""The entry points: :func:`connect` opens a connection, :func:`schemes` lists the URI drivers on offer.

The package root re-exports both (``polyvisor.connect``); the fleets and the asyncio face import them from here,
so nothing the root imports runs back up to the root.
"""

from __future__ import annotations

from typing import Any

from polyvisor import config as _config
from polyvisor.backend import Credentials
from polyvisor.connection import Connection
from polyvisor.plugins import Plugins, default_plugins
from polyvisor.uri import URI

__all__ = ["connect", "schemes"]


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
    factory = (plugins or default_plugins()).factory_for(parsed)
    backend = factory(parsed, creds)
    try:
        return Connection(backend, parsed)
    except BaseException:
        backend.close()  # a backend that failed to describe itself must not leak its connection
        raise


def schemes(*, plugins: Plugins | None = None) -> list[str]:
    """Return the URI drivers installed backends handle (imports no hypervisor binding)."""
    return (plugins or default_plugins()).schemes()
