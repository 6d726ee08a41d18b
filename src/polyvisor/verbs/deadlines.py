"""How long the calls wait unless told otherwise, and what a wait may take past its deadline."""

from __future__ import annotations

__all__ = ["DEFAULT_TIMEOUT", "READ_GRACE", "SHUTDOWN_TIMEOUT"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a blocking verb waits for its target state unless told otherwise."""
SHUTDOWN_TIMEOUT = 120.0
"""Seconds a graceful shutdown waits for the guest unless told otherwise."""
READ_GRACE = 0.3
"""Seconds past a call's deadline the last status read of a wait may take, so that the TimeoutError can say the
state the VM was left in (within the contract's timeout + 1 s)."""
