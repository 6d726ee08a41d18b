"""The VM commands over a config group (``-c GROUP``, ``-c all``): one line or record per host or VM.

Each table gains a HOST column and each JSON record a ``host`` key. Hosts (or VMs) that failed are summed up on
stderr, one line each, and the command exits with :data:`~polyvisor.cli.exitcodes.PARTIAL`.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import click

from polyvisor.cli.exitcodes import OK, PARTIAL
from polyvisor.cli.records import action_record, event_record, vm_record
from polyvisor.cli.render import table
from polyvisor.cli.session import Session
from polyvisor.errors import PolyvisorError
from polyvisor.events import EventStream
from polyvisor.fleet import FleetResult, FleetVM, HostResult
from polyvisor.model import Event, VMStatus

__all__ = ["fleet_act", "fleet_list", "fleet_watch", "report"]


def _memory(mib: int) -> str:
    return f"{mib / 1024:g} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


def _error_records(result: FleetResult[Any]) -> list[dict[str, str]]:
    return [
        {"host": key, "type": type(error).__name__, "message": " ".join(str(error).split())}
        for key, error in result.errors.items()
    ]


def report(session: Session, result: FleetResult[Any]) -> int:
    """Write each failed host's (or VM's) error to stderr, one line each; return the exit code."""
    for record in _error_records(result):
        if session.options.json:
            click.echo(session.redact(json.dumps({"error": record}, ensure_ascii=False)), err=True)
        else:
            click.echo(session.redact(f"error: {record['host']}: {record['message']}"), err=True)
    if result.errors:
        failed = len(result.errors)
        if not session.options.json:
            click.echo(f"{failed} of {len(result)} failed; the others' results are above", err=True)
        return PARTIAL
    return OK


def fleet_list(session: Session) -> int:
    """``list`` over a group: every host's VMs, a HOST column first."""
    result = session.fleet.list(details=True)
    vms = sorted(
        (vm for listing in result.values.values() for vm in listing), key=lambda vm: (vm.host, vm.name, vm.uuid)
    )
    records = [{"host": vm.host, **vm_record(vm.info)} for vm in vms]

    def human() -> str:
        if not vms:
            return "no VMs on the hosts that answered"
        rows = [
            (
                vm.host,
                vm.name,
                vm.state.value,
                vm.info.cpus,
                _memory(vm.info.memory_mib),
                ", ".join(f"{k}={v}" for k, v in vm.info.labels.items()) or "-",
                vm.uuid,
            )
            for vm in vms
        ]
        return table(("HOST", "NAME", "STATE", "CPUS", "MEMORY", "LABELS", "UUID"), rows, right=(3, 4))

    session.emit({"vms": records, "errors": _error_records(result)}, human)
    return report(session, result)


def _targets(
    session: Session, vm: str | None, labels: Mapping[str, str]
) -> tuple[list[FleetVM], list[HostResult[Any]]]:
    """The VMs to act on, and the hosts whose listing failed."""
    if not labels:
        assert vm is not None
        return [session.fleet.find(vm)], []
    selection = session.fleet.select(labels=labels, names=[vm] if vm else None)
    found = session.fleet.matching(selection)
    failed: list[HostResult[Any]] = [r for r in found.results() if not r.ok]
    return [vm for vms in found.values.values() for vm in vms], failed


def fleet_act(
    session: Session, action: str, vm: str | None, labels: Mapping[str, str], call: str, **kwargs: Any
) -> int:
    """Run a verb (``call``: a VM method or ``ensure``) on the VM found in the group, or on every labelled VM."""
    targets, failed = _targets(session, vm, labels)
    fleet = session.fleet
    acted: FleetResult[Any]
    if call == "ensure":
        state = kwargs.pop("state")
        acted = fleet.ensure(targets, state, **kwargs)
    else:
        acted = fleet.act(targets, call, **kwargs)
    result: FleetResult[Any] = FleetResult([*failed, *acted.results()])
    uuids = {target.key: target.uuid for target in targets}
    answered: dict[str, VMStatus | None] = result.values
    records = []
    for key, status in answered.items():
        outcome = result[key]
        records.append({"host": outcome.host, **action_record(action, outcome.vm or "", uuids[key], status)})

    def human() -> str:
        if not records and not result.errors:
            return "no VM matched"
        return "\n".join(f"{key}: {status if status is not None else 'deleted'}" for key, status in answered.items())

    session.emit({"results": records, "errors": _error_records(result)}, human)
    return report(session, result)


def fleet_watch(session: Session, count: int | None) -> int:
    """``watch`` over a group: every host's events merged, each tagged with its host."""
    fleet = session.fleet
    opened: FleetResult[EventStream] = fleet.map(lambda conn: conn.watch())
    code = report(session, opened)
    events: queue.Queue[tuple[str, Event | PolyvisorError]] = queue.Queue()
    stop = threading.Event()

    def pump(host: str, stream: EventStream) -> None:
        try:
            while not stop.is_set():
                event = stream.get(timeout=0.5)
                if event is not None:
                    events.put((host, event))
        except PolyvisorError as error:
            events.put((host, error))

    streams = opened.values
    for host, stream in streams.items():
        threading.Thread(target=pump, args=(host, stream), name=f"polyvisor-watch-{host}", daemon=True).start()
    if not session.options.json:
        click.echo(f"watching {', '.join(streams) or 'no host'}; Ctrl-C to stop", err=True)
    seen = 0
    try:
        while (count is None or seen < count) and streams:
            try:
                host, item = events.get(timeout=0.5)  # a bounded wait keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if isinstance(item, PolyvisorError):
                click.echo(session.redact(f"error: {host}: {' '.join(str(item).split())}"), err=True)
                code = PARTIAL
                continue
            seen += 1
            record = {"host": host, **event_record(item, datetime.now(UTC))}
            if session.options.json:
                click.echo(session.redact(json.dumps(record, ensure_ascii=False)))
            else:
                state = record["state"] or "-"
                line = f"{record['time'][11:19]}  {host}  {item.kind.value:<9}  {item.name}  {state}  {item.detail}"
                click.echo(session.redact(line))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch normally ends
    finally:
        stop.set()
        for stream in streams.values():
            stream.close()
    return code
