"""Helpers shared by the suite's modules."""

from __future__ import annotations

import pytest

from polyvisor import VM, Connection, Feature, PowerState

# The settled states the suite can put a VM in, and the features each one needs.
REACHABLE: dict[PowerState, tuple[Feature, ...]] = {
    PowerState.STOPPED: (),
    PowerState.RUNNING: (),
    PowerState.PAUSED: (Feature.PAUSE,),
    PowerState.SAVED: (Feature.SAVE,),
}


def require(conn: Connection | VM, *features: Feature) -> None:
    """Skip the test unless every feature is declared; the reason names each missing one once."""
    caps = conn.capabilities if isinstance(conn, Connection) else conn.capabilities()
    missing = [feature.value for feature in dict.fromkeys(features) if not caps.supports(feature)]
    if missing:
        pytest.skip(f"capability not declared: {', '.join(missing)}")


def bring_to(vm: VM, state: PowerState) -> None:
    """Put a freshly created (stopped) VM into ``state`` with the plain verbs."""
    require(vm, *REACHABLE[state])
    if state is PowerState.STOPPED:
        assert vm.state() is PowerState.STOPPED
        return
    vm.start()
    if state is PowerState.PAUSED:
        vm.pause()
    elif state is PowerState.SAVED:
        vm.save()
    assert vm.state() is state, f"could not bring {vm.seen_name} to {state.value}"
