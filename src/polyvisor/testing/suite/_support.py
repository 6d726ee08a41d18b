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


GRACEFUL_SHUTDOWN = (Feature.SHUTDOWN_ACPI, Feature.SHUTDOWN_AGENT)


def lacks_graceful_shutdown(conn: Connection, vm_features: frozenset[Feature]) -> tuple[Feature, ...]:
    """The graceful shutdown modes the connection declares when the VM has none of them (its architecture carries
    neither, say), else (). A connection that declares neither mode shuts its VMs down its own way."""
    declared = tuple(feature for feature in GRACEFUL_SHUTDOWN if conn.supports(feature))
    return declared if declared and not set(declared) & vm_features else ()


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
