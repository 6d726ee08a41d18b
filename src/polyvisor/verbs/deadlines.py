"""How long the blocking calls wait unless told otherwise."""

from __future__ import annotations

__all__ = ["DEFAULT_TIMEOUT", "SHUTDOWN_TIMEOUT"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a blocking verb waits for its target state unless told otherwise."""
SHUTDOWN_TIMEOUT = 120.0
"""Seconds a graceful shutdown waits for the guest unless told otherwise."""
