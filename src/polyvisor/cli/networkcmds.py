"""Commands about the host's networks: ``polyvisor network list|create|delete`` (Hyper-V: its virtual switches)."""

from __future__ import annotations

import click

from polyvisor.cli.records import network_record
from polyvisor.cli.render import table
from polyvisor.cli.session import Session
from polyvisor.model import NetworkMode

__all__ = ["COMMANDS"]

pass_session = click.make_pass_decorator(Session)


@click.group("network")
def network() -> None:
    """The host's networks (libvirt) or virtual switches (Hyper-V)."""


@network.command("list")
@pass_session
def network_list(session: Session) -> None:
    """List the networks with their mode and address range."""
    networks = session.connection.networks()
    records = [network_record(found) for found in networks]

    def human() -> str:
        rows = [
            (n.name, n.mode.value if n.mode else "-", n.subnet or "-", n.kind, "yes" if n.active else "no")
            for n in networks
        ]
        return table(("NAME", "MODE", "SUBNET", "KIND", "ACTIVE"), rows) if rows else "(no networks)"

    session.emit(records, human)


@network.command("create")
@click.argument("name")
@click.option(
    "--mode",
    type=click.Choice([mode.value for mode in NetworkMode]),
    default=NetworkMode.ISOLATED.value,
    show_default=True,
    help="Who the network connects: isolated (the VMs only), internal (and the host), nat (and beyond, through "
    "the host), external (a host adapter's own network).",
)
@click.option("--subnet", default=None, help="The IPv4 range of an internal or nat network, e.g. 10.77.0.0/24.")
@click.option("--adapter", default=None, help="The host adapter an external network is bound to (Hyper-V).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds the create may take.")
@pass_session
def network_create(
    session: Session, name: str, mode: str, subnet: str | None, adapter: str | None, timeout: float
) -> None:
    """Create a network (Hyper-V: a virtual switch); a failure leaves nothing behind."""
    made = session.connection.create_network(name, mode, subnet=subnet, adapter=adapter, timeout=timeout)
    where = f" on {made.subnet}" if made.subnet else ""
    session.emit(network_record(made), lambda: f"created {mode} network {made.name!r}{where}")


@network.command("delete")
@click.argument("name")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds the delete may take.")
@pass_session
def network_delete(session: Session, name: str, timeout: float) -> None:
    """Delete a network; one a VM's NIC is on is refused, naming the VM."""
    session.connection.delete_network(name, timeout=timeout)
    session.emit({"deleted": name}, lambda: f"deleted network {name!r}")


COMMANDS = (network,)
