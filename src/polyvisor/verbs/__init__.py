"""The verb engine: the contract's rules for a VM's verbs, shared by the sync and the asyncio face."""

from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT

__all__ = ["DEFAULT_TIMEOUT", "SHUTDOWN_TIMEOUT"]
