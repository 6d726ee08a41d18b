"""Label writes are conditional on the Notes they were computed from, so a write the network delivers late (after
its caller gave up and a newer write landed) changes nothing."""

from __future__ import annotations

import polyvisor
from polyvisor import VMSpec
from polyvisor_hyperv.backend import HyperVBackend
from polyvisor_hyperv.client import then, vm_step
from polyvisor_hyperv.commands import SWITCH
from polyvisor_hyperv.notes import join_notes


def test_a_write_made_from_stale_notes_changes_nothing(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create(VMSpec(name=vm_name))
    try:
        vm.set_labels({"k": "old"})
        stale = join_notes("", {"k": "old"})
        assert dict(vm.update_labels({"k": "new"})) == {"k": "new"}
        backend = conn.backend
        assert isinstance(backend, HyperVBackend)
        # The late write's request, as set_labels sends it: computed from the Notes before the newer write.
        backend._client.run(
            [
                vm_step(vm.uuid),
                then("Where-Object", Property="Notes", CEQ=SWITCH, Value=stale),
                then("Set-VM", Notes=join_notes("", {"k": "late"})),
            ],
            doing="a late label write",
            vm=vm.uuid,
        )
        assert dict(vm.labels()) == {"k": "new"}, "a write made from stale Notes must not land"
    finally:
        vm.delete()


def test_where_object_ceq_is_case_sensitive(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create(VMSpec(name=vm_name))
    try:
        vm.set_labels({"k": "v"})
        backend = conn.backend
        assert isinstance(backend, HyperVBackend)
        notes = join_notes("", {"k": "v"})

        def matches(value: str, operator: str) -> int:
            rows = backend._client.run(
                [vm_step(vm.uuid), then("Where-Object", Property="Notes", Value=value, **{operator: SWITCH})],
                doing="filtering",
                vm=vm.uuid,
                select=("Id",),
            )
            return len(rows)

        assert matches(notes, "CEQ") == 1
        assert matches(notes.upper(), "CEQ") == 0
        assert matches(notes.upper(), "EQ") == 1
    finally:
        vm.delete()
