"""``polyvisor exporter``: serve a group's VM counters to Prometheus."""

from __future__ import annotations

import click

from polyvisor import config
from polyvisor.cli.commands import pass_session
from polyvisor.cli.session import Session
from polyvisor.errors import ValidationError
from polyvisor.fleet import Fleet
from polyvisor.metrics.exporter import Exporter, FleetCollector, parse_listen

__all__ = ["COMMANDS", "exporter"]

DEFAULT_LISTEN = "127.0.0.1:9870"


@click.command("exporter")
@click.option(
    "-c",
    "--connect",
    "group",
    metavar="GROUP",
    help="The config group (or named connection) whose VMs to serve; the same as the global -c.",
)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT", help="Where to serve.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="The most a scrape waits for any host (default: each host's own timeout, within Prometheus's scrape_timeout).",
)
@pass_session
def exporter(session: Session, group: str | None, listen: str, timeout: float | None) -> None:
    """Serve the counters of every VM of a config group to Prometheus at http://HOST:PORT/metrics, until
    interrupted; each scrape samples every host at once, each within its timeout."""
    host, port = parse_listen(listen)
    if group:
        session.connect_to(group)
    fleet = _fleet(session)
    collector = FleetCollector(fleet, timeout=timeout)
    server = Exporter(collector, host, port)
    record = {"url": server.url, "hosts": list(fleet.hosts)}
    session.emit(record, lambda: f"serving the counters of {len(fleet.hosts)} host(s) at {server.url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an exporter normally ends
    finally:
        server.close()


def _fleet(session: Session) -> Fleet:
    if session.group is not None:
        return session.fleet
    name = session.options.connect
    if not name or name not in config.read_config().connections:
        raise ValidationError(
            f"the exporter serves a config group or a named connection, and {name or 'nothing'!r} is neither; "
            "name one with -c GROUP (see 'Many hosts' in the CLI docs)",
            field="--connect",
        )
    return Fleet.from_config(name, plugins=session.plugins)


COMMANDS: tuple[click.Command, ...] = (exporter,)
"""The exporter's commands."""
