# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""The ``vm`` module's sizes and waits: CPUs, memory and disk sizes of an existing VM brought to the task's, and a
wait for the guest's address or readiness once the VM runs.

A size change happens while the VM is running or stopped (reconfigure's and resize's rule), so :func:`plan` picks
when: before the power change when the VM is running or stopped now (live, or cold), after it when the task stops
the VM (cold) or starts a saved or paused one (live). Everything that can be refused is refused before the task
acts: a feature the host lacks (a running VM's CPUs on Hyper-V), a disk that is not there, a disk that would shrink.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

with contextlib.suppress(ImportError):  # the modules' run_module() reports it, with an install hint
    import polyvisor

SIZE_KEYS = ("cpus", "memory_mib", "disks")

SIZE_OPTIONS: dict[str, Any] = {
    "cpus": {"type": "int"},
    "memory_mib": {"type": "int"},
    "disks": {
        "type": "list",
        "elements": "dict",
        "options": {"target": {"type": "str", "required": True}, "size_mib": {"type": "int", "required": True}},
    },
    "wait_for": {"type": "str", "choices": ["address", "ready"]},
    "wait_timeout": {"type": "float", "default": 300.0},
    "ready_sources": {"type": "list", "elements": "str"},
}
"""The argument spec of the sizes and waits (documented in the vm module)."""


def managed(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The sizes the task sets (the keys diff mode shows)."""
    return tuple(key for key in SIZE_KEYS if params[key] is not None)


def wanted_disks(params: Mapping[str, Any]) -> dict[str, int]:
    """The task's disks as ``{target: size_mib}``; a target given twice is refused."""
    out: dict[str, int] = {}
    for entry in params["disks"] or ():
        if entry["target"] in out:
            raise polyvisor.ValidationError(f"{entry['target']!r} is given twice", field="disks")
        out[entry["target"]] = entry["size_mib"]
    return out


def read_sizes(vm: polyvisor.VM, info: polyvisor.VMInfo, params: Mapping[str, Any]) -> dict[str, Any]:
    """The VM's sizes the task compares: CPUs and memory, and its disks' sizes when the task sets them."""
    sizes: dict[str, Any] = {"cpus": info.cpus, "memory_mib": info.memory_mib}
    if params["disks"] is not None:
        vm.connection.capabilities.require(polyvisor.Feature.DISK_RESIZE, host=vm.connection.host, vm=info.name)
        sizes["disks"] = {disk.target: disk.size_mib for disk in vm.disks()}
    return sizes


def changes(params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """What differs between the VM's sizes and the task's: ``cpus``, ``memory_mib``, ``disks`` (grown ones only);
    a disk that is not there or would shrink is refused."""
    out: dict[str, Any] = {}
    for key in ("cpus", "memory_mib"):
        if params[key] is not None and params[key] != before[key]:
            out[key] = params[key]
    grow = {}
    for target, size in wanted_disks(params).items():
        have = before.get("disks", {})
        if target not in have:
            raise polyvisor.NotFoundError(
                f"disks: VM {before['name']!r} has no disk {target!r}; its disks are "
                f"{', '.join(f'{t} ({s} MiB)' for t, s in have.items()) or 'none'}",
                vm=before["name"],
            )
        if size < have[target]:
            raise polyvisor.ValidationError(
                f"disk {target} of VM {before['name']!r} is {have[target]} MiB, and disks only grow: give "
                f"{have[target]} MiB or more (the guest's file systems would not survive a shrink)",
                field=f"disks[{target!r}].size_mib",
            )
        if size > have[target]:
            grow[target] = size
    if grow:
        out["disks"] = grow
    return out


def plan(
    caps: polyvisor.Capabilities,
    host: str,
    params: Mapping[str, Any],
    before: Mapping[str, Any],
    wanted: dict[str, Any],
) -> str | None:
    """When the size changes happen - ``"before"`` or ``"after"`` the power change, None without any - after
    refusing what the host cannot do then."""
    if not wanted:
        return None
    name, now, target = before["name"], before["state"], params["state"]
    if target == "stopped":
        phase, during = "after", "stopped"
    elif now in ("running", "stopped"):
        phase, during = "before", now
    elif target == "running":
        phase, during = "after", "running"
    else:
        raise polyvisor.ValidationError(
            f"VM {name!r} is {now}, and its CPUs, memory and disks change only while it runs or is stopped: add "
            "state: running or state: stopped",
            field="state",
        )
    if "cpus" in wanted or "memory_mib" in wanted:
        caps.require(polyvisor.Feature.RECONFIGURE, host=host, vm=name)
    if during == "running":
        for key, feature in (
            ("cpus", polyvisor.Feature.RECONFIGURE_LIVE_CPUS),
            ("memory_mib", polyvisor.Feature.RECONFIGURE_LIVE_MEMORY),
        ):
            if key in wanted and not caps.supports(feature):
                raise polyvisor.UnsupportedError(
                    f"this host cannot change the {key} of a running VM, and {name!r} will be running: stop it "
                    "first (state: stopped), then start it again",
                    feature=feature,
                    host=host,
                    vm=name,
                )
    if "disks" in wanted:
        caps.require(polyvisor.Feature.DISK_RESIZE, host=host, vm=name)
    return phase


def apply(vm: polyvisor.VM, wanted: Mapping[str, Any], timeout: float) -> None:
    """Make the size changes."""
    if "cpus" in wanted or "memory_mib" in wanted:
        vm.reconfigure(cpus=wanted.get("cpus"), memory_mib=wanted.get("memory_mib"), timeout=timeout)
    for target, size in wanted.get("disks", {}).items():
        vm.resize_disk(target, size, timeout=timeout)


def check_wait(params: Mapping[str, Any], before: Mapping[str, Any] | None) -> None:
    """Refuse a wait for a guest that will not run."""
    if params["wait_for"] is None:
        return
    state = params["state"] if params["state"] != "present" else (before or {"state": "stopped"})["state"]
    if state != "running":
        raise polyvisor.ValidationError(
            f"waits for the {params['wait_for']} of a running guest, but the VM will be {state}: add state: running",
            field="wait_for",
        )


def wait(vm: polyvisor.VM, params: Mapping[str, Any]) -> dict[str, Any]:
    """Wait for what the task asks; return what the result says of it."""
    timeout = params["wait_timeout"]
    if params["wait_for"] == "address":
        found = vm.wait_for_address(timeout=timeout)
        return {
            "address": {
                "address": found.address,
                "interface": found.interface,
                "mac": found.mac,
                "prefix": found.prefix,
                "source": found.source,
            }
        }
    ready = vm.wait_until_ready(timeout=timeout, sources=params["ready_sources"])
    return {
        "readiness": {
            "sources": list(ready.sources),
            "errors": list(ready.errors),
            "detail": str(ready),
            "waited": round(ready.waited, 3),
        }
    }
