"""pywinrm and pypsrp clients set up for a loopback host (no proxy or CA from the environment)."""

from __future__ import annotations

from typing import Any

import winrm
from pypsrp.wsman import WSMan

from polyvisor_hyperv_loopback import LoopbackHost

USER = "vagrant"
PASSWORD = "Loopback-Pa55!"


def winrm_session(host: LoopbackHost, password: str = PASSWORD, **kwargs: Any) -> winrm.Session:
    """Return a pywinrm session that does not consult proxy/CA environment variables."""
    kwargs.setdefault("transport", "ntlm")
    kwargs.setdefault("ca_trust_path", str(host.ca_path) if host.ca_path else None)
    return winrm.Session(host.url, auth=(USER, password), proxy=None, **kwargs)


def psrp_wsman(host: LoopbackHost, password: str = PASSWORD, **kwargs: Any) -> WSMan:
    """Return a pypsrp WSMan connection to the host."""
    kwargs.setdefault("auth", "negotiate")
    if host.ca_path is not None:
        kwargs.setdefault("cert_validation", str(host.ca_path))
    return WSMan(
        host.host,
        port=host.port,
        username=USER,
        password=password,
        ssl=host.https,
        no_proxy=True,
        **kwargs,
    )
