"""``polyvisor demo``: one VM walked through its whole life, each step showing the state observed afterwards.

Works on any URI whose backend can create VMs; a step whose feature the backend does not declare is skipped and
reported as such. The VM is always removed, also when a step fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from polyvisor.cli.records import capabilities_record
from polyvisor.cli.session import Session
from polyvisor.connection import Connection
from polyvisor.errors import NotFoundError, PolyvisorError, TimeoutError
from polyvisor.model import DiskSpec, Feature, PowerState, VMSpec
from polyvisor.vm import VM

__all__ = ["demo"]

log = logging.getLogger("polyvisor.cli")

SNAPSHOT_NAME = "demo-snapshot"


@dataclass(frozen=True)
class _Step:
    name: str
    feature: Feature | None
    run: Callable[[VM], str]
    """Act on the VM and return a note for the report."""


def _plan(storage: bool, shutdown_timeout: float, timeout: float) -> list[_Step]:
    def snapshot(vm: VM) -> str:
        memory = vm.capabilities().supports(Feature.SNAPSHOT_MEMORY)
        snap = vm.snapshot(SNAPSHOT_NAME, memory=memory, description="taken by polyvisor demo")
        return f"snapshot {snap.name!r} ({'with memory' if snap.has_memory else 'disk only'})"

    def shutdown(vm: VM) -> str:
        try:
            vm.shutdown(timeout=shutdown_timeout)
        except TimeoutError:
            # A VM without an operating system ignores the request; the demo must still end cleanly.
            vm.stop(timeout=timeout)
            return f"no guest answered within {shutdown_timeout:g}s, so it was powered off"
        return "guest shut down"

    def delete(vm: VM) -> str:
        vm.delete(storage=storage, timeout=timeout)
        return "deleted with its storage" if storage else "deleted"

    def verb(method: str, note: str) -> Callable[[VM], str]:
        def run(vm: VM) -> str:
            getattr(vm, method)(timeout=timeout)
            return note

        return run

    return [
        _Step("start", None, verb("start", "powered on")),
        _Step("pause", Feature.PAUSE, verb("pause", "frozen in memory")),
        _Step("resume", Feature.PAUSE, verb("resume", "running again")),
        _Step("snapshot", Feature.SNAPSHOTS, snapshot),
        _Step("save", Feature.SAVE, verb("save", "memory saved to disk")),
        _Step("restore", Feature.SAVE, verb("start", "started from the saved memory")),
        _Step("shutdown", None, shutdown),
        _Step("delete", None, delete),
    ]


DEMO_URI = "test:///default"
"""Where the demo runs unless --connect says otherwise: it needs no daemon and changes nothing real."""


def _observe(connection: Connection, vm: VM) -> tuple[str, str | None]:
    """Ask the hypervisor afresh: (state, raw state), or ("gone", None) once the VM no longer exists."""
    try:
        status = vm.status()
    except NotFoundError:
        return "gone", None
    return status.state.value, status.raw_state


def _line(index: int, step: str, result: str, state: str, note: str) -> str:
    return f"{index:>2}. {step:<9} {result:<8} {state:<9} {note}".rstrip()


def _cleanup(vm: VM, storage: bool, timeout: float) -> None:
    """Remove what a failed demo left behind, best effort."""
    try:
        state = vm.state()
        if state in (PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED, PowerState.CRASHED):
            vm.stop(timeout=timeout)
        vm.delete(storage=storage, force=True, timeout=timeout)
    except NotFoundError:
        return
    except PolyvisorError as error:
        log.warning("could not remove demo VM %r: %s; delete it with 'polyvisor delete'", vm.seen_name, error)


@click.command("demo")
@click.option("--name", default="polyvisor-demo", show_default=True, help="Name of the VM the demo creates.")
@click.option(
    "--disk-mib",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Give the VM a new disk of this size (0: no disk); it is deleted with the VM.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the guest to shut down before powering it off.",
)
@click.pass_obj
def demo(session: Session, name: str, disk_mib: int, shutdown_timeout: float) -> None:
    """Walk one new VM through its whole life, showing each state the hypervisor reports.

    The steps: create, start, pause, resume, snapshot, save, restore, shutdown and delete. Each step prints the
    state observed from the hypervisor afterwards. Steps whose capability the backend does not declare are
    skipped. Runs on test:///default (libvirt's in-process test hypervisor) unless --connect names another.
    """
    connection = session.open(default=DEMO_URI)
    caps = connection.capabilities
    features = capabilities_record(caps)
    caps.require(Feature.CREATE, host=connection.host)
    human = not session.options.json
    timeout = session.timeout(None, 60.0)
    if human:
        click.echo(session.redact(f"polyvisor demo on {connection.uri.render()} ({caps.backend or 'unknown backend'})"))
        click.echo(f"capabilities: {', '.join(features) or 'none'}")
        click.echo(f"    {'STEP':<9} {'RESULT':<8} {'STATE':<9} WHAT HAPPENED")

    storage = disk_mib > 0 and caps.supports(Feature.DELETE_STORAGE)
    spec = VMSpec(
        name=name,
        cpus=1,
        memory_mib=128,
        description="created by polyvisor demo",
        labels={"created-by": "polyvisor-demo"} if caps.supports(Feature.LABELS) else {},
        disks=(DiskSpec(size_mib=disk_mib),) if disk_mib else (),
    )
    steps: list[dict[str, Any]] = []

    def record(step: str, feature: Feature | None, result: str, vm: VM | None, note: str, began: float) -> None:
        state, raw = _observe(connection, vm) if vm is not None and result == "ok" else ("-", None)
        steps.append(
            {
                "step": step,
                "feature": feature.value if feature else None,
                "result": result,
                "state": state if result == "ok" else None,
                "raw_state": raw,
                "note": note,
                "seconds": round(time.monotonic() - began, 3),
            }
        )
        if human:
            click.echo(session.redact(_line(len(steps), step, result, state, note)))

    began = time.monotonic()
    vm = connection.create(spec)
    record("create", Feature.CREATE, "ok", vm, f"uuid {vm.uuid}", began)
    finished = False
    try:
        for step in _plan(storage, shutdown_timeout, timeout):
            began = time.monotonic()
            if step.feature is not None and not vm.capabilities().supports(step.feature):
                note = f"skipped: the backend does not declare {step.feature.value!r}"
                record(step.name, step.feature, "skipped", None, note, began)
                continue
            with session.spinner(f"{step.name} {vm.seen_name}"):
                note = step.run(vm)
            record(step.name, step.feature, "ok", vm, note, began)
        finished = True
    finally:
        if not finished:
            _cleanup(vm, storage, timeout)
    if not human:
        session.emit(
            {
                "uri": connection.uri.render(),
                "backend": caps.backend,
                "vm": vm.seen_name,
                "uuid": vm.uuid,
                "capabilities": features,
                "steps": steps,
            },
            str,
        )
