"""Waiting until a guest is ready as steps: which sources to ask, each round's check, the pause between rounds.

An address is not readiness: a guest gets one long before cloud-init has run its last module. The wait asks
readiness sources instead, and is over once **every** source it asks says the guest is ready. The backend's
sources (:attr:`polyvisor.backend.Backend.ready_sources`) come first; the core adds ``ssh``, a TCP connection to the
guest's SSH port (an explicit ``ssh_host``/``ssh_port``, or the first usable address the address sources report)
that must answer with an SSH identification line.

Without ``sources``, the wait asks the backend's sources that can answer for this VM (a VM without a guest agent
channel drops ``cloud-init``), plus ``ssh`` when the caller gave ``ssh_host``; if none is left, ``ssh`` alone.
A source named in ``sources`` that can never answer for this VM is refused at once with
:class:`~polyvisor.errors.UnsupportedError`, rather than waited on to the timeout.

No hypervisor sends an event when a guest is ready, so the wait polls, the pause doubling up to a cap. On timeout
the error says what each source answered last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.errors import InvalidStateError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.model import AddressAnswer, Capabilities, Feature, PowerState, Readiness, ReadyAnswer, VMStatus
from polyvisor.provisioning.addresses import AddressFamily, explain, pick_address
from polyvisor.provisioning.readiness import SSH_PORT, SSH_SOURCE, explain_ready, ssh_answer, validate_port
from polyvisor.verbs.addresses import address_sources
from polyvisor.verbs.ops import Handle, Knock, KnockReply, Probe, Query, Read, Sleep, Steps

__all__ = ["KNOCK_TIMEOUT", "READY_TIMEOUT", "ReadyPlan", "ready_sources", "wait_until_ready"]

log = logging.getLogger("polyvisor")

READY_TIMEOUT = 300.0
"""Seconds :meth:`polyvisor.VM.wait_until_ready` waits unless told otherwise (a cloud guest under emulation
takes one to two minutes)."""
KNOCK_TIMEOUT = 5.0
"""The longest one knock on the SSH port may take (connecting and reading the identification line)."""
_FIRST_POLL = 0.25
_MAX_POLL = 1.0  # a guest that is ready is seen within a second, as a hand-written loop would


def ready_sources(vm: Handle) -> tuple[str, ...]:
    """Every readiness source this VM's backend offers, ``ssh`` last."""
    return (*vm.connection.backend.ready_sources, SSH_SOURCE)


class ReadyPlan:
    """The sources one wait asks, where ``ssh`` knocks, and the pause between rounds (no I/O)."""

    def __init__(
        self,
        vm: Handle,
        timeout: float,
        deadline: Deadline,
        chosen: tuple[str, ...],
        explicit: bool,
        ssh: tuple[str | None, int],
    ) -> None:
        self._vm = vm
        self.timeout = timeout
        self.deadline = deadline
        self.chosen = chosen
        """The sources asked each round, in order."""
        self.explicit = explicit
        """Whether the caller named the sources (then one that cannot answer is an error, not dropped)."""
        self.ssh_host, self.ssh_port = ssh
        self._delay = _FIRST_POLL

    @property
    def backend_sources(self) -> tuple[str, ...]:
        """The chosen sources the backend answers (all but ``ssh``)."""
        return tuple(source for source in self.chosen if source != SSH_SOURCE)

    def settle(self, answers: list[ReadyAnswer], caps: Capabilities) -> list[ReadyAnswer]:
        """Drop the default sources that cannot answer for this VM (or refuse a named one); return the rest."""
        unavailable = [answer for answer in answers if answer.unavailable]
        if not unavailable:
            return answers
        if self.explicit:
            first = unavailable[0]
            others = [source for source in ready_sources(self._vm) if source != first.source]
            raise UnsupportedError(
                f"readiness source {first.source!r} cannot answer for this VM: {first.detail}; ask another source "
                f"(sources={others!r})",
                feature=Feature.READINESS,
                host=self._vm.connection.host,
                vm=self._vm.seen_name,
            )
        for answer in unavailable:
            log.debug("readiness of %r: not asking %s (%s)", self._vm.seen_name, answer.source, answer.detail)
        dropped = {answer.source for answer in unavailable}
        self.chosen = tuple(source for source in self.chosen if source not in dropped)
        if not self.chosen:
            if self.ssh_host is None and not caps.supports(Feature.GUEST_ADDRESSES):
                raise UnsupportedError(
                    f"no readiness source can answer for this VM ({explain_ready(unavailable)}), and the backend "
                    "reports no guest address to knock at: pass ssh_host (and ssh_port) to wait for its SSH server",
                    feature=Feature.READINESS,
                    host=self._vm.connection.host,
                    vm=self._vm.seen_name,
                )
            self.chosen = (SSH_SOURCE,)
        return [answer for answer in answers if answer.source in self.chosen]

    def pause(self, answers: Sequence[ReadyAnswer]) -> float:
        """Return the seconds to sleep before the next round; raise TimeoutError, saying what each source
        ``answers``, once time is up."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise TimeoutError(
                f"timed out after {self.timeout:g}s waiting for {self._vm.seen_name!r} to be ready; asked "
                f"{', '.join(self.chosen)}: {explain_ready(answers)}. The VM was left as it is",
                host=self._vm.connection.host,
                vm=self._vm.seen_name,
            )
        pause = min(self._delay, remaining)
        self._delay = min(self._delay * 2, _MAX_POLL)
        return pause


def _choose(
    vm: Handle, sources: Sequence[str] | None, ssh_host: str | None, caps: Capabilities
) -> tuple[tuple[str, ...], bool]:
    """The sources to ask, and whether the caller named them; raise ValidationError or UnsupportedError."""
    offered = ready_sources(vm)
    own = vm.connection.backend.ready_sources if caps.supports(Feature.READINESS) else ()
    if sources is None:
        chosen = (*own, SSH_SOURCE) if ssh_host is not None else tuple(own)
        if not chosen:
            if not caps.supports(Feature.GUEST_ADDRESSES):
                caps.require(Feature.READINESS, host=vm.connection.host, vm=vm.seen_name)
            chosen = (SSH_SOURCE,)
        return chosen, False
    if isinstance(sources, str):
        sources = (sources,)
    unknown = [source for source in sources if source not in offered]
    if unknown or not sources:
        raise ValidationError(
            f"unknown readiness source(s) {unknown}; this backend offers {list(offered)}", field="sources"
        )
    if any(source != SSH_SOURCE for source in sources):
        caps.require(Feature.READINESS, host=vm.connection.host, vm=vm.seen_name)
    if SSH_SOURCE in sources and ssh_host is None:
        caps.require(Feature.GUEST_ADDRESSES, host=vm.connection.host, vm=vm.seen_name)
    return tuple(dict.fromkeys(sources)), True


def _validate(ssh_host: str | None, ssh_port: int) -> None:
    validate_port(ssh_port)
    if ssh_host is not None and (not isinstance(ssh_host, str) or not ssh_host or ssh_host != ssh_host.strip()):
        raise ValidationError(
            f"ssh_host must be a host name or address such as '127.0.0.1', got {ssh_host!r}", field="ssh_host"
        )


def _ask(uuid: str, asked: tuple[str, ...], deadline: Deadline) -> Query:
    """The request for the backend's answers from ``asked``."""
    return Query(lambda b: b.ready_answers(uuid, asked, deadline))


def _knock(vm: Handle, plan: ReadyPlan) -> Steps[ReadyAnswer]:
    """The ``ssh`` source's answer this round: find where to knock, knock, judge the reply."""
    host = plan.ssh_host
    if host is None:
        uuid, asked = vm.uuid, address_sources(vm, None)
        found: list[AddressAnswer] = yield Query(lambda b: b.address_answers(uuid, asked))
        address = pick_address(found, AddressFamily.IPV4) or pick_address(found, AddressFamily.ANY)
        if address is None:
            return ReadyAnswer(
                SSH_SOURCE, False, f"no usable guest address to knock at yet ({explain(found, AddressFamily.ANY)})"
            )
        host = address.address
    seconds = max(min(plan.deadline.remaining(), KNOCK_TIMEOUT), 0.05)
    reply: KnockReply = yield Knock(host, plan.ssh_port, seconds)
    return ssh_answer(host, plan.ssh_port, reply.data, reply.error)


def wait_until_ready(
    vm: Handle,
    timeout: float,
    sources: Sequence[str] | None,
    ssh_host: str | None,
    ssh_port: int = SSH_PORT,
) -> Steps[Readiness]:
    """Return once every chosen source says the guest is ready; raise InvalidStateError once it is not running."""
    validate_timeout(timeout)
    _validate(ssh_host, ssh_port)
    caps: Capabilities = yield Probe()
    chosen, explicit = _choose(vm, sources, ssh_host, caps)
    clock = vm.connection.clock
    began = clock.monotonic()
    deadline = Deadline(timeout, clock)
    plan = ReadyPlan(vm, timeout, deadline, chosen, explicit, (ssh_host, ssh_port))
    uuid = vm.uuid
    last: dict[str, ReadyAnswer] = {}  # each source's last answer, for a timeout that cuts a call short
    while True:
        status: VMStatus = yield Read()
        if status.state is not PowerState.RUNNING:
            raise InvalidStateError(
                f"{vm.seen_name!r} is {status.state.value}, so it will not become ready; start it first",
                state=status.state,
                accepted=(PowerState.RUNNING,),
                host=vm.connection.host,
                vm=vm.seen_name,
            )
        asked = plan.backend_sources
        own: list[ReadyAnswer] = []
        if asked:
            try:
                own = yield _ask(uuid, asked, deadline)
            except TimeoutError as error:  # the deadline stopped the call: the timeout below says so, per source
                own = [
                    last.get(source) or ReadyAnswer(source, detail=f"no answer in time ({error.message})")
                    for source in asked
                ]
            own = plan.settle(own, caps)
        by_source = {answer.source: answer for answer in own}
        last.update(by_source)
        if SSH_SOURCE in plan.chosen:
            by_source[SSH_SOURCE] = yield from _knock(vm, plan)
        answers = [by_source[source] for source in plan.chosen if source in by_source]
        if answers and all(answer.ready for answer in answers):
            return Readiness(tuple(answers), clock.monotonic() - began)
        yield Sleep(plan.pause(answers))
