"""A VM's screen: how to reach it, and a screenshot (the part of :class:`polyvisor.VM` that looks at the display).

Both calls are steps of the verb engine (:mod:`polyvisor.verbs.display`), so :class:`polyvisor.aio.AsyncVM` has them
too. See "A VM's screen" in the docs.
"""

from __future__ import annotations

from polyvisor import blocking
from polyvisor.handle import VMHandle
from polyvisor.model import GraphicsInfo
from polyvisor.verbs import display
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT

__all__ = ["ScreenOps"]


class ScreenOps(VMHandle):
    """The screen of one VM."""

    def graphics(self, *, timeout: float = DEFAULT_TIMEOUT) -> GraphicsInfo:
        """Say how to reach the running VM's screen from this machine: protocol, host and port, whether a password
        is needed, and for a display on a remote host's loopback the SSH tunnel to run first.

        A VM that is neither running nor paused has no screen: :class:`~polyvisor.errors.InvalidStateError`. A VM
        without a graphical console (capability ``graphics``, narrowed per VM) raises
        :class:`~polyvisor.errors.UnsupportedError`.
        """
        return blocking.run(self, display.graphics(self, timeout))

    def screenshot(self, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Return the running (or paused) VM's screen as PNG bytes (:func:`polyvisor.png.decode` reads them).

        A VM without a display adapter (capability ``screenshot``, narrowed per VM) raises
        :class:`~polyvisor.errors.UnsupportedError`.
        """
        return blocking.run(self, display.screenshot(self, timeout))
