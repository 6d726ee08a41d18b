"""Labels persist in the hypervisor, verbatim, and a second connection sees them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polyvisor import VM, Connection, Feature, ValidationError
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]


@pytest.fixture(autouse=True)
def _labels_declared(polyvisor_connection: Connection) -> None:
    """Skip before a VM is made (with labels, which the core refuses without the feature)."""
    require(polyvisor_connection, Feature.LABELS)


HOSTILE = {
    "quotes": 'it\'s "quoted"',
    "markup": "<label key='x'>&amp;</label>]]>",
    "shell": "$(rm -rf /); `reboot`; echo $HOME | tee",
    "lines": "first\nsecond\r\nthird\ttabbed",
    "unicode": "héllo wörld ✓ 日本語 🚀",
    "long": "x" * 10240,
    "empty": "",
    "spaces": "  padded  ",
}


def test_labels_round_trip_through_a_second_connection(
    polyvisor_vm_factory: VMFactory, polyvisor_second_connection: Connection
) -> None:
    vm = polyvisor_vm_factory("lb")
    require(vm, Feature.LABELS)
    assert vm.set_labels(HOSTILE) == HOSTILE
    assert dict(vm.labels()) == HOSTILE
    other = polyvisor_second_connection.vm(vm.uuid)
    assert dict(other.labels()) == HOSTILE
    listed = {info.uuid: info for info in polyvisor_second_connection.list(details=True)}[vm.uuid]
    assert dict(listed.labels) == HOSTILE


def test_labels_at_create_and_update(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("lbc", labels={"team": "infra", "tier": "gold"})
    require(vm, Feature.LABELS)
    assert dict(vm.labels()) == {"team": "infra", "tier": "gold"}
    result = vm.update_labels({"tier": "silver", "owner": "ana"}, remove=["team"])
    assert dict(result) == {"owner": "ana", "tier": "silver"}
    assert dict(vm.labels()) == {"owner": "ana", "tier": "silver"}
    assert dict(vm.set_labels({})) == {}


def test_labels_survive_lifecycle(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("lbl", labels={"keep": "me"})
    require(vm, Feature.LABELS)
    vm.start()
    assert dict(vm.labels()) == {"keep": "me"}
    vm.stop()
    assert dict(vm.labels()) == {"keep": "me"}


@pytest.mark.parametrize(
    "labels",
    [
        {"": "empty key"},
        {"has space": "v"},
        {"-leading": "v"},
        {"k" * 64: "too long key"},
        {"ok": "nul\x00char"},
        {"ok": "bell\x07"},
        {"ok": "x" * 16385},
        {"ok": 5},
    ],
    ids=["empty-key", "space", "leading-dash", "long-key", "nul", "control", "long-value", "not-str"],
)
def test_invalid_labels_are_rejected_before_any_change(
    polyvisor_vm_factory: VMFactory, labels: dict[str, object]
) -> None:
    vm = polyvisor_vm_factory("lbv", labels={"keep": "me"})
    require(vm, Feature.LABELS)
    with pytest.raises(ValidationError):
        vm.set_labels(labels)  # type: ignore[arg-type]
    assert dict(vm.labels()) == {"keep": "me"}


def test_concurrent_updates_lose_nothing(
    polyvisor_vm_factory: VMFactory, polyvisor_second_connection: Connection
) -> None:
    """24 threads over two connections, 10 rounds each, each thread its own key: every last value lands."""
    import threading

    vm = polyvisor_vm_factory("lbx")
    require(vm, Feature.LABELS)
    handles = [vm, polyvisor_second_connection.vm(vm.uuid)]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        handle = handles[index % 2]
        try:
            for round_ in range(10):
                handle.update_labels({f"k{index:02d}": f"round-{round_}"})
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = dict(vm.labels())
    lost = sorted(f"k{i:02d}" for i in range(24) if final.get(f"k{i:02d}") != "round-9")
    assert lost == [], f"lost updates: {lost}"
