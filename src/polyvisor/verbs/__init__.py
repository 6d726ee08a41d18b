"""The verb engine: the contract's rules for a VM's verbs, shared by the sync and the asyncio face (no I/O).

Its rooms: :mod:`~polyvisor.verbs.deadlines` (the default timeouts), :mod:`~polyvisor.verbs.ops` (the I/O
requests a face carries out), :mod:`~polyvisor.verbs.waiting` (the policy of a wait and the polling loop),
:mod:`~polyvisor.verbs.ensure` (the plans of ``ensure``), :mod:`~polyvisor.verbs.engine` (the lifecycle verbs as
steps) and :mod:`~polyvisor.verbs.addresses` (waiting for a guest's address). :func:`polyvisor.blocking.run` runs
the steps for :class:`polyvisor.VM`; :class:`polyvisor.aio.AsyncVM` runs them on the event loop.
"""

from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT

__all__ = ["DEFAULT_TIMEOUT", "SHUTDOWN_TIMEOUT"]
