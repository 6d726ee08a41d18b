"""Waiting for a guest's address as steps: which sources to ask, each round's check, the pause between rounds.

No hypervisor sends an event when a guest gets an address, so the wait polls: a round asks the sources in order,
and the pause between rounds doubles up to a cap. On timeout the error says what each source answered last.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.errors import InvalidStateError, TimeoutError, ValidationError
from polyvisor.model import AddressAnswer, Feature, GuestAddress, PowerState, VMStatus
from polyvisor.provisioning.addresses import AddressFamily, explain, parse_family, pick_address
from polyvisor.verbs.deadlines import READ_GRACE
from polyvisor.verbs.engine import require
from polyvisor.verbs.ops import Handle, Query, Read, Sleep, Steps

__all__ = ["ADDRESS_SOURCES", "ADDRESS_TIMEOUT", "AddressWait", "address_sources", "wait_for_address"]

ADDRESS_SOURCES = ("agent", "lease", "arp", "kvp")
"""Every address source a backend may offer (each backend's ``address_sources`` says which it has)."""
ADDRESS_TIMEOUT = 120.0
"""Seconds :meth:`polyvisor.VM.wait_for_address` waits unless told otherwise."""
_ADDRESS_FIRST_POLL = 0.25
_ADDRESS_MAX_POLL = 2.0


def address_sources(vm: Handle, sources: Sequence[str] | None) -> tuple[str, ...]:
    """Return the sources to ask, in order: ``sources``, or the backend's; raise ValidationError for others."""
    offered = vm.connection.backend.address_sources or ADDRESS_SOURCES
    if sources is None:
        return tuple(offered)
    if isinstance(sources, str):
        sources = (sources,)
    unknown = [source for source in sources if source not in offered]
    if unknown or not sources:
        raise ValidationError(
            f"unknown address source(s) {unknown}; this backend offers {list(offered)}",
            field="sources",
        )
    return tuple(sources)


class AddressWait:
    """The rounds of one wait_for_address: what it asks for, and how long to sleep between rounds (no I/O)."""

    def __init__(
        self, vm: Handle, timeout: float, deadline: Deadline, wanted: AddressFamily, chosen: tuple[str, ...]
    ) -> None:
        self._vm = vm
        self.timeout = timeout
        self.deadline = deadline
        self.wanted = wanted
        """The address family waited for."""
        self.chosen = chosen
        """The sources asked each round, in order."""
        self._delay = _ADDRESS_FIRST_POLL

    def pause(self, answers: list[AddressAnswer]) -> float:
        """Return the seconds to sleep before the next round, the delay doubling up to a cap; raise
        :class:`~polyvisor.errors.TimeoutError`, saying what each source ``answers``, once time is up."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise TimeoutError(
                f"timed out after {self.timeout:g}s waiting for a usable {self.wanted.value} address; asked "
                f"{', '.join(self.chosen)}: {explain(answers, self.wanted)}",
                host=self._vm.connection.host,
                vm=self._vm.seen_name,
            )
        pause = min(self._delay, remaining)
        self._delay = min(self._delay * 2, _ADDRESS_MAX_POLL)
        return pause

    def check(self, answers: list[AddressAnswer]) -> None:
        """Raise :class:`~polyvisor.errors.TimeoutError`, saying what each source ``answers``, once time is up.

        After the pause that ends at the deadline no round starts: it would end past the deadline, and the answers
        of the round before say why no address came."""
        if self.deadline.expired:
            self.pause(answers)


def wait_for_address(
    vm: Handle, timeout: float, family: AddressFamily | str | None, sources: Sequence[str] | None
) -> Steps[GuestAddress]:
    """Return the first usable address the sources report; raise InvalidStateError once the VM is not running."""
    validate_timeout(timeout)
    wanted = parse_family(family)
    chosen = address_sources(vm, sources)
    deadline = Deadline(timeout, vm.connection.clock)
    yield from require(vm, Feature.GUEST_ADDRESSES, deadline)
    wait = AddressWait(vm, timeout, deadline, wanted, chosen)
    uuid = vm.uuid
    while True:
        status: VMStatus = yield Read(deadline.extended(READ_GRACE))
        if status.state is not PowerState.RUNNING:
            raise InvalidStateError(
                f"{vm.seen_name!r} is {status.state.value}, so it will not get an address; start it first",
                state=status.state,
                accepted=(PowerState.RUNNING,),
                host=vm.connection.host,
                vm=vm.seen_name,
            )
        answers: list[AddressAnswer] = yield Query(
            lambda b: b.address_answers(uuid, chosen), deadline.extended(READ_GRACE)
        )
        found = pick_address(answers, wanted)
        if found is not None:
            return found
        yield Sleep(wait.pause(answers))
        wait.check(answers)
