"""The backend's screen primitives, a part of the facade kept apart so that it stays a facade: how to reach a
domain's graphics console and its screenshot (both in :mod:`.display`)."""

from __future__ import annotations

from polyvisor.backend import Backend, Deadline
from polyvisor.model import GraphicsInfo
from polyvisor_libvirt.bounded import CallPool, bounded
from polyvisor_libvirt.display import Display

__all__ = ["ScreenPrimitives"]


class ScreenPrimitives(Backend):
    """The graphics consoles and screens of the domains of one connection (a base of :class:`.LibvirtBackend`)."""

    host: str
    _calls: CallPool
    _display: Display

    @bounded("reading the graphics")
    def graphics(self, uuid: str) -> GraphicsInfo:
        """The running domain's console from its live XML, with the SSH tunnel a remote host's loopback needs."""
        return self._display.graphics(uuid)

    @bounded("taking a screenshot")
    def screenshot(self, uuid: str, deadline: Deadline) -> bytes:
        """virDomainScreenshot on a stream, as PNG (a PPM is converted)."""
        return self._display.screenshot(uuid, deadline)
