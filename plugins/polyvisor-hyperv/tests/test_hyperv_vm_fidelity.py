"""The backend against behaviours the loopback host models as Windows does (issue 8: checkpoints, drives, NICs,
delete), over both transports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import PolyvisorError, UnsupportedError

pytestmark = pytest.mark.hyperv

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def _host(loopback: Any) -> Any:
    return loopback.engine.host


def test_checkpoint_of_a_paused_vm_is_paused_and_reverts_paused(conn: polyvisor.Connection, vm_name: str) -> None:
    # A checkpoint's State is only Off or Saved on Windows (NEON VMSnapshot.cs), so the backend records the rest.
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}], "labels": {"team": "a"}})
    try:
        vm.start()
        vm.snapshot("running", memory=True)
        vm.pause()
        vm.snapshot("paused", memory=True)
        tree = vm.snapshots()
        assert tree["running"].state is PowerState.RUNNING
        assert tree["paused"].state is PowerState.PAUSED
        assert tree["running"].has_memory
        assert tree["paused"].has_memory
        assert vm.labels() == {"team": "a"}  # the record is no label
        assert vm.revert("running").state is PowerState.RUNNING  # from a paused VM
        assert vm.revert("paused").state is PowerState.PAUSED  # from a running VM: not left running
        assert vm.labels() == {"team": "a"}
        assert vm.revert("running").state is PowerState.RUNNING
        assert vm.revert("running").state is PowerState.RUNNING  # from a running VM: Windows restarts it
        vm.stop()
        assert vm.revert("paused").state is PowerState.PAUSED  # from a stopped VM
    finally:
        vm.stop()
        vm.delete(storage=True)
