"""Commands about the host and the installation: host, schemes, stats and watch."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import click

from polyvisor.cli.fleetcmds import fleet_watch
from polyvisor.cli.records import capabilities_record, device_record, event_record, host_record, network_record
from polyvisor.cli.render import key_values, table
from polyvisor.cli.session import Session
from polyvisor.model import Feature

__all__ = ["COMMANDS"]

pass_session = click.make_pass_decorator(Session)


@click.command("host")
@pass_session
def host(session: Session) -> None:
    """Show the host's facts, the backend's capabilities (and why some are missing), the devices VMs can be given
    and the networks VMs can use."""
    conn = session.connection
    info = conn.host_info()
    features = capabilities_record(conn.capabilities)
    networks = [network_record(net) for net in conn.networks()] if conn.supports(Feature.NETWORKS) else None
    devices = [device_record(dev) for dev in conn.host_devices()] if conn.supports(Feature.HOST_DEVICES) else None
    why_not = {feature.value: reason for feature, reason in sorted(conn.capabilities.reasons.items())}
    record = {
        "uri": conn.uri.render(),
        "backend": conn.capabilities.backend,
        "host": host_record(info),
        "capabilities": features,
        "networks": networks,
        "host_devices": devices,
        "why_not": why_not,
    }

    def human() -> str:
        pairs: list[tuple[str, object]] = [
            ("uri", record["uri"]),
            ("backend", conn.capabilities.backend or None),
            ("hostname", info.hostname),
            ("hypervisor", f"{info.hypervisor} {info.hypervisor_version}".strip()),
            ("cpus", info.cpus),
            ("memory", f"{info.memory_mib} MiB"),
            ("arch", info.arch),
        ]
        pairs.extend((str(key), value) for key, value in sorted(info.extra.items()))
        rows = [(feature.value, feature.value in features) for feature in sorted(Feature, key=lambda f: f.value)]
        parts = [key_values(pairs), "", "Capabilities:", table(("FEATURE", "SUPPORTED"), rows)]
        if why_not:
            parts += ["", "Not supported here, and why:", *(f"  {name}: {why}" for name, why in why_not.items())]
        parts += ["", "Architectures:"]
        if info.architectures:
            arch_rows = [
                (
                    guest.arch,
                    ", ".join(guest.accelerators) or "-",
                    guest.machine or "-",
                    ", ".join(sorted(feature.value for feature in guest.lacks)) or "-",
                )
                for guest in info.architectures
            ]
            parts.append(table(("ARCH", "ACCELERATORS", "MACHINE", "VMS LACK"), arch_rows))
        else:
            parts.append(f"(this backend does not tell; the host's own is {info.arch})")
        parts += ["", "Host devices:"]
        if devices is None:
            parts.append("(this backend does not list host devices)")
        elif not devices:
            parts.append("(none)")
        else:
            dev_rows = [(d["name"], d["kind"], d["address"], d["description"], d["used_by"] or "-") for d in devices]
            parts.append(table(("NAME", "KIND", "ADDRESS", "DESCRIPTION", "USED BY"), dev_rows))
        parts += ["", "Networks:"]
        if networks is None:
            parts.append("(this backend does not list networks)")
        elif not networks:
            parts.append("(none)")
        else:
            net_rows = [(n["name"], n["active"], n["kind"], n["uuid"]) for n in networks]
            parts.append(table(("NAME", "ACTIVE", "KIND", "UUID"), net_rows))
        return "\n".join(parts)

    session.emit(record, human)


@click.command("stats")
@click.argument("vm", required=False)
@pass_session
def stats(session: Session, vm: str | None) -> None:
    """Show counters (CPU time, memory, disk and network I/O) of every VM, or of VM; --json keeps every field and
    says why one is missing."""
    samples = [session.vm(vm).stats()] if vm else session.connection.stats()
    record = [sample.to_dict() for sample in samples]

    def human() -> str:
        rows = [
            (
                sample.name,
                sample.status.state.value,
                sample.cpus,
                None if sample.cpu_time_ns is None else f"{sample.cpu_time_ns / 1e9:.1f}",
                None if sample.memory.current_bytes is None else sample.memory.current_bytes // (1024 * 1024),
                _total(disk.read_bytes for disk in sample.disks),
                _total(disk.write_bytes for disk in sample.disks),
                _total(nic.rx_bytes for nic in sample.nics),
                _total(nic.tx_bytes for nic in sample.nics),
            )
            for sample in samples
        ]
        heads = ("NAME", "STATE", "CPUS", "CPU S", "MEM MIB", "READ B", "WRITTEN B", "RX B", "TX B")
        return table(heads, rows)

    session.emit(record, human)


def _total(values: Iterable[int | None]) -> int | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


@click.command("schemes")
@pass_session
def schemes(session: Session) -> None:
    """List the installed backends (URI drivers) and the plugins that failed to load."""
    plugins = session.plugins
    backends = [
        {
            "driver": entry.driver,
            "plugin": entry.plugin,
            "distribution": entry.distribution,
            "description": entry.description,
        }
        for _, entry in sorted(plugins.registry.entries.items())
    ]
    failures = [
        {
            "plugin": failure.name,
            "distribution": failure.distribution,
            "error": f"{type(failure.error).__name__}: {failure.error}",
        }
        for failure in plugins.failures
    ]

    def human() -> str:
        rows = [(b["driver"], b["plugin"], b["distribution"], b["description"]) for b in backends]
        parts = [table(("DRIVER", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"), rows) if rows else "no backends installed"]
        if failures:
            parts += ["", "Plugins that failed to load:"]
            parts += [f"  {f['plugin']} ({f['distribution'] or 'no distribution'}): {f['error']}" for f in failures]
        return "\n".join(parts)

    session.emit({"backends": backends, "failures": failures}, human)


@click.command("watch")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N events.")
@pass_session
@click.pass_context
def watch(ctx: click.Context, session: Session, count: int | None) -> None:
    """Print lifecycle events as they happen, until Ctrl-C or --count events.

    With --json every event is one JSON object on its own line (JSON Lines). With -c GROUP, the events of every
    host of the group, each with its host.
    """
    if session.group is not None:
        ctx.exit(fleet_watch(session, count))
    conn = session.connection
    seen = 0
    with conn.watch() as stream:
        if not session.options.json:
            click.echo(f"watching {conn.host}; Ctrl-C to stop", err=True)
        try:
            while count is None or seen < count:
                # A bounded wait keeps Ctrl-C responsive on every platform.
                event = stream.get(timeout=0.5)
                if event is None:
                    continue
                seen += 1
                record = event_record(event, datetime.now(UTC))
                if session.options.json:
                    click.echo(session.redact(json.dumps(record, ensure_ascii=False)))
                else:
                    when = record["time"][11:19]
                    state = record["state"] or "-"
                    click.echo(session.redact(f"{when}  {event.kind.value:<9}  {event.name}  {state}  {event.detail}"))
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch normally ends


COMMANDS: tuple[click.Command, ...] = (host, schemes, stats, watch)
"""The host commands, in the order ``--help`` lists them."""
