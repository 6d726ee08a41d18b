# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""A fleet and a selection of its VMs, shared by the modules that work across many hosts (``vms``, ``vm_info``):
the task's hosts (a config file or ``connections``), its ``select``, and the VMs it matches, found before
anything is done."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import TaskFailed, error_type, named
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.vm_state import clean_labels

with contextlib.suppress(ImportError):  # the modules' run_module() reports it, with an install hint
    import polyvisor
    from polyvisor.config import NamedConnection

LISTED_STATES = ["running", "stopped", "paused", "saved", "crashed", "suspended", "starting", "stopping", "unknown"]
SELECT_KEYS = ("labels", "hosts", "groups", "names", "states")

FLEET_OPTIONS: dict[str, Any] = {
    "config": {"type": "path"},
    "connections": {
        "type": "list",
        "elements": "dict",
        "options": {
            "name": {"type": "str", "required": True},
            "uri": {"type": "str", "required": True},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "password_env": {"type": "str", "no_log": False},
            "options": {"type": "dict"},
        },
    },
    "host_timeout": {"type": "float", "default": 30.0},
    "max_concurrency": {"type": "int", "default": 16},
}
"""The argument spec of the ``polyvisor.hypervisors.fleet`` doc fragment."""


def select_option(*, required: bool) -> dict[str, Any]:
    """The ``select`` option's argument spec."""
    return {
        "type": "dict",
        "required": required,
        "options": {
            "labels": {"type": "dict"},
            "hosts": {"type": "list", "elements": "str"},
            "groups": {"type": "list", "elements": "str"},
            "names": {"type": "list", "elements": "str"},
            "states": {"type": "list", "elements": "str", "choices": LISTED_STATES},
        },
    }


def inline_hosts(entries: Sequence[Mapping[str, Any]]) -> dict[str, NamedConnection]:
    """The fleet of the task's ``connections``; a password goes through this process's environment, so that no
    value polyvisor keeps (and might show) holds it."""
    hosts: dict[str, NamedConnection] = {}
    for entry in entries:
        name = entry["name"]
        if name in hosts:
            raise polyvisor.ValidationError(f"{name!r} is given twice", field="connections")
        password_env = entry["password_env"]
        if entry["password"] is not None:
            if password_env is not None:
                raise polyvisor.ValidationError(
                    f"{name!r} has both password and password_env; keep one", field="connections"
                )
            password_env = f"PVANSIBLE_PASSWORD_{secrets.token_hex(8).upper()}"
            os.environ[password_env] = entry["password"]  # this process runs one task: nothing else reads it
        hosts[name] = NamedConnection(
            name=name,
            uri=entry["uri"],
            username=entry["username"],
            password_env=password_env,
            options=dict(entry["options"] or {}),
        )
    return hosts


def open_fleet(params: Mapping[str, Any]) -> polyvisor.Fleet:
    """The fleet the task works on: its ``connections``, or every connection of the config file."""
    workers, timeout = params["max_concurrency"], params["host_timeout"]
    if params["connections"]:
        return polyvisor.Fleet(inline_hosts(params["connections"]), max_concurrency=workers, timeout=timeout)
    if params["config"]:
        os.environ["POLYVISOR_CONFIG"] = params["config"]  # this process runs one task: nothing else reads it
    return polyvisor.Fleet.from_config(max_concurrency=workers, timeout=timeout)


def selection(fleet: polyvisor.Fleet, select: Mapping[str, Any] | None, *, every: bool = False) -> polyvisor.Selection:
    """The task's ``select`` as a fleet selection; an empty one (every VM of the fleet) is refused unless
    ``every`` (a module that only reads)."""
    if select is None or not any(select[key] is not None for key in SELECT_KEYS):
        if every:
            return fleet.select()
        raise polyvisor.ValidationError(
            "selects every VM of the fleet; give labels, hosts, groups, names or states (groups: [all] for every VM)",
            field="select",
        )
    labels = clean_labels(select["labels"], "select.labels") if select["labels"] is not None else None
    return fleet.select(
        labels=labels, hosts=select["hosts"], groups=select["groups"], names=select["names"], states=select["states"]
    )


def find(fleet: polyvisor.Fleet, chosen: polyvisor.Selection, names: Sequence[str] | None) -> list[polyvisor.FleetVM]:
    """List the hosts the selection covers and return the VMs it selects; raise if a host could not be listed
    or a name matched nothing (then the task does nothing)."""
    covered = [host for host in fleet.hosts if chosen.covers(host)]
    listing = fleet.list(True, hosts=covered)
    if listing.errors:
        failed = "; ".join(f"{host}: {named(error, host)}" for host, error in listing.errors.items())
        raise TaskFailed(
            f"{len(listing.errors)} of {len(covered)} hosts could not be listed, so nothing was done: {failed}",
            error_type(listing.errors.values()),
            changed=False,
            vms=[],
        )
    found = [vm for vms in listing.values.values() for vm in vms if chosen.matches(vm.host, vm.info)]
    missing = [
        name
        for name in names or ()
        if not any(name in (vm.name, vm.key) or name.lower() == vm.uuid.lower() for vm in found)
    ]
    if missing:
        raise polyvisor.NotFoundError(
            f"select.names: {', '.join(missing)} matched no VM ({chosen.describe()}; hosts searched: "
            f"{', '.join(covered) or 'none'}); nothing was done"
        )
    return found


def by_key(key: str, error: polyvisor.PolyvisorError) -> str:
    """The error of the VM ``host/name``, naming its host and VM so."""
    host, _sep, name = key.partition("/")
    return named(error, host, name or None)
