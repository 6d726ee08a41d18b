"""Planning ``ensure``: which verb leads from a VM's state towards the state asked for (no I/O).

The docs print their table of plans from :func:`next_step`, so what they show is what the core does.
"""

from __future__ import annotations

from polyvisor.backend import validate_timeout
from polyvisor.errors import InvalidStateError, PolyvisorError, ValidationError
from polyvisor.model import PowerState

__all__ = ["ENSURE_STEPS", "ENSURE_TARGETS", "ensure_target", "next_step", "no_way", "power_state", "unreached"]

ENSURE_TARGETS = (PowerState.RUNNING, PowerState.STOPPED, PowerState.PAUSED, PowerState.SAVED)
"""The states ``ensure`` can bring a VM to."""
ENSURE_STEPS = 8
"""The most verbs one ``ensure`` runs: every plan reaches its target in at most a few steps."""


def power_state(value: PowerState | str) -> PowerState:
    """Return ``value`` as a PowerState; raise ValidationError naming the choices."""
    try:
        return PowerState(value)
    except ValueError:
        choices = ", ".join(state.value for state in PowerState)
        raise ValidationError(f"{value!r} is not a power state; use one of {choices}", field="state") from None


def ensure_target(state: PowerState | str, timeout: float) -> PowerState:
    """Return the state ``ensure`` was asked for, once it and the timeout are known to be valid."""
    validate_timeout(timeout)
    target = power_state(state)
    if target not in ENSURE_TARGETS:
        raise ValidationError(
            f"cannot ensure {target.value!r}; choose one of {', '.join(s.value for s in ENSURE_TARGETS)}",
            field="state",
        )
    return target


def next_step(current: PowerState, target: PowerState, force: bool) -> str | None:
    """Return the next verb on the way from ``current`` to ``target``, or None when there is none."""
    p = PowerState
    if target is p.RUNNING:
        return {p.STOPPED: "start", p.SAVED: "start", p.PAUSED: "resume"}.get(current) or (
            "stop" if force and current in (p.CRASHED, p.SUSPENDED, p.UNKNOWN) else None
        )
    if target is p.STOPPED:
        if current is p.RUNNING:
            return "stop" if force else "shutdown"
        if current is p.PAUSED:
            return "stop" if force else "resume"
        if current is p.SAVED:
            return "discard_saved_state" if force else "start"
        if current in (p.CRASHED, p.SUSPENDED, p.UNKNOWN):
            return "stop" if force else None
        return None
    if target is p.PAUSED:
        return {p.RUNNING: "pause", p.STOPPED: "start", p.SAVED: "start"}.get(current)
    if target is p.SAVED:
        return {p.RUNNING: "save", p.PAUSED: "save", p.STOPPED: "start"}.get(current)
    return None


def no_way(current: PowerState, target: PowerState, force: bool, *, host: str, vm: str) -> InvalidStateError:
    """The error of an ``ensure`` that has no verb from ``current`` to ``target``."""
    return InvalidStateError(
        f"cannot bring a {current.value} VM to {target.value}"
        + (
            "; pass force=True to allow powering off or discarding saved state"
            if not force and next_step(current, target, True) is not None
            else ""
        ),
        state=current,
        accepted=(),
        host=host,
        vm=vm,
    )


def unreached(target: PowerState, *, host: str, vm: str) -> PolyvisorError:
    """The error of an ``ensure`` that ran out of steps."""
    return PolyvisorError(f"could not reach {target.value}", host=host, vm=vm)
