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


def test_generation_1_cdrom_uses_the_dvd_drive_new_vm_made(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # New-VM gives a Generation 1 VM an empty DVD drive at IDE 1:0 (NEON Commands/NewVM.cs).
    iso = _host(loopback_http).add_file(f"C:\\ISO\\{vm_name}.iso")
    vm = conn.create({"name": vm_name, "firmware": "bios", "cdrom": iso})
    try:
        drives = _host(loopback_http).get_vm(uuid.UUID(vm.uuid)).config.dvd_drives
        assert [(d.controller_type, d.controller_number, d.controller_location, d.path) for d in drives] == [
            ("IDE", 1, 0, iso)
        ]
    finally:
        vm.delete()
