"""Commands for a provisioned guest: its addresses, its CPUs and memory, and the size of its disks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from polyvisor import VM
from polyvisor.cli.exitcodes import ERROR
from polyvisor.cli.records import address_record, ready_record, status_record
from polyvisor.cli.render import table
from polyvisor.cli.session import Session
from polyvisor.guest import ADDRESS_TIMEOUT
from polyvisor.model import GuestAddress, Readiness
from polyvisor.provisioning.addresses import AddressFamily, parse_family, usable
from polyvisor.provisioning.readiness import SSH_PORT
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT
from polyvisor.verbs.readiness import READY_TIMEOUT

__all__ = ["COMMANDS", "ReadyArgs", "ready_options", "report_ready", "wait_ready"]

pass_session = click.make_pass_decorator(Session)


def _memory(mib: int) -> str:
    return f"{mib / 1024:g} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


@click.command("address")
@click.argument("vm")
@click.option("--wait", is_flag=True, help="Wait until the guest has a usable address, and print that one.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long --wait waits (default: the global --timeout, else {ADDRESS_TIMEOUT:g}).",
)
@click.option(
    "--family",
    type=click.Choice([family.value for family in AddressFamily]),
    default=None,
    help="Only addresses of this family (--wait: default ipv4; listing: default any).",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="SOURCE",
    help="Ask this address source (repeatable, in order); default: every source the backend has.",
)
@pass_session
def address(
    session: Session, vm: str, wait: bool, timeout: float | None, family: str | None, sources: tuple[str, ...]
) -> None:
    """Show VM's guest addresses, or with --wait wait for a usable one (exit code 5 on timeout).

    A usable address is neither loopback, link-local, unspecified nor multicast. On timeout the error says what
    each source answered ("agent: agent not connected").
    """
    handle = session.vm(vm)
    chosen = sources or None
    if timeout is not None and not wait:
        raise click.UsageError("--timeout goes with --wait")
    if wait:
        with session.spinner(f"waiting for an address of {handle.seen_name}"):
            found = handle.wait_for_address(
                timeout=session.timeout(timeout, ADDRESS_TIMEOUT),
                family=family or AddressFamily.IPV4,
                sources=chosen,
            )
        record = {"vm": handle.seen_name, "uuid": handle.uuid, "address": address_record(found)}
        session.emit(record, lambda: found.address)
        return
    wanted = parse_family(family)
    listed = [a for a in handle.addresses(chosen) if _of(a, wanted)]
    records = [{**address_record(a), "usable": usable(a)} for a in listed]

    def human() -> str:
        if not listed:
            return f"{handle.seen_name}: no addresses"
        rows = [
            (a.interface, a.address, a.prefix, a.mac or "-", a.source, "yes" if usable(a) else "no") for a in listed
        ]
        return table(("INTERFACE", "ADDRESS", "PREFIX", "MAC", "SOURCE", "USABLE"), rows)

    session.emit({"vm": handle.seen_name, "uuid": handle.uuid, "addresses": records}, human)


def _of(found: GuestAddress, family: AddressFamily) -> bool:
    """Whether an address (usable or not) is of ``family``."""
    if family is AddressFamily.ANY:
        return True
    return (":" in found.address) == (family is AddressFamily.IPV6)


@click.command("reconfigure")
@click.argument("vm")
@click.option("--cpus", type=click.IntRange(min=1), metavar="N", help="The number of virtual CPUs.")
@click.option("--memory", "memory_mib", type=click.IntRange(min=1), metavar="MIB", help="Memory in MiB.")
@click.option(
    "--live/--cold",
    default=None,
    help="Change the running VM, or the stored definition of a stopped one (default: whichever its state allows).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long the change may take (default: the global --timeout, else {DEFAULT_TIMEOUT:g}).",
)
@pass_session
def reconfigure(
    session: Session, vm: str, cpus: int | None, memory_mib: int | None, live: bool | None, timeout: float | None
) -> None:
    """Change VM's CPU count and/or memory: stopped, in its definition; running, live where the backend can.

    A running VM changes within the maximum it started with (dynamic memory's range); --cold on a running VM is
    refused (exit code 4): stop it first.
    """
    if cpus is None and memory_mib is None:
        raise click.UsageError("give --cpus, --memory or both")
    handle = session.vm(vm)
    with session.spinner(f"reconfiguring {handle.seen_name}"):
        info = handle.reconfigure(
            cpus=cpus, memory_mib=memory_mib, live=live, timeout=session.timeout(timeout, DEFAULT_TIMEOUT)
        )
    record = {
        "action": "reconfigure",
        "vm": info.name,
        "uuid": info.uuid,
        **status_record(info.status),
        "cpus": info.cpus,
        "memory_mib": info.memory_mib,
    }
    session.emit(record, lambda: f"{info.name}: {info.cpus} CPUs, {_memory(info.memory_mib)} ({info.state.value})")


@click.command("resize-disk")
@click.argument("vm")
@click.argument("target")
@click.argument("size_mib", type=click.IntRange(min=1), metavar="SIZE_MIB")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long the resize may take (default: the global --timeout, else {DEFAULT_TIMEOUT:g}).",
)
@pass_session
def resize_disk(session: Session, vm: str, target: str, size_mib: int, timeout: float | None) -> None:
    """Grow VM's disk TARGET (vda, scsi0:1, ...) to SIZE_MIB; disks never shrink (exit code 2).

    The guest grows its partitions and file systems itself (cloud-init's growpart does on boot).
    """
    handle = session.vm(vm)
    with session.spinner(f"resizing {target} of {handle.seen_name}"):
        handle.resize_disk(target, size_mib, timeout=session.timeout(timeout, DEFAULT_TIMEOUT))
    record = {
        "action": "resize-disk",
        "vm": handle.seen_name,
        "uuid": handle.uuid,
        "target": target,
        "size_mib": size_mib,
    }
    session.emit(record, lambda: f"{handle.seen_name}: disk {target} is now {_memory(size_mib)}")


ReadyArgs = tuple[tuple[str, ...], str | None, int]
"""The readiness options as given: the sources, ``--ssh-host`` and ``--ssh-port``."""


def ready_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options of a readiness wait: ``--ready-source``, ``--ssh-host``, ``--ssh-port``."""
    for option in reversed(
        (
            click.option(
                "--ready-source",
                "ready_sources",
                multiple=True,
                metavar="SOURCE",
                help="Ask this readiness source (repeatable; every one must say ready): cloud-init (libvirt), "
                "heartbeat (Hyper-V), ssh; default: the backend's that can answer, plus ssh with --ssh-host.",
            ),
            click.option(
                "--ssh-host",
                metavar="HOST",
                help="Where the ssh source knocks (e.g. 127.0.0.1 for a forwarded port); default: the guest's address.",
            ),
            click.option(
                "--ssh-port",
                type=click.IntRange(1, 65535),
                default=SSH_PORT,
                show_default=True,
                help="The port the ssh source knocks at.",
            ),
        )
    ):
        command = option(command)
    return command


def wait_ready(session: Session, handle: VM, timeout: float, args: ReadyArgs) -> Readiness:
    """Run the readiness wait of a command, with a spinner."""
    sources, ssh_host, ssh_port = args
    with session.spinner(f"waiting until {handle.seen_name} is ready"):
        return handle.wait_until_ready(timeout=timeout, sources=sources or None, ssh_host=ssh_host, ssh_port=ssh_port)


def report_ready(ready: Readiness) -> None:
    """Exit with code 1 if the guest reported errors while initializing (they were printed with the result)."""
    if ready.errors:
        click.echo("the guest finished initializing with errors:", err=True)
        for error in ready.errors:
            click.echo(f"  {error}", err=True)
        raise click.exceptions.Exit(ERROR)


def _ready_text(name: str, ready: Readiness) -> str:
    return "\n".join(f"{name}: ready: {answer.source}: {answer.detail}" for answer in ready.answers)


@click.command("wait-ready")
@click.argument("vm")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long to wait (default: the global --timeout, else {READY_TIMEOUT:g}).",
)
@ready_options
@pass_session
def wait_ready_command(
    session: Session,
    vm: str,
    timeout: float | None,
    ready_sources: tuple[str, ...],
    ssh_host: str | None,
    ssh_port: int,
) -> None:
    """Wait until VM finished initializing, as every readiness source asked says: cloud-init done (read through
    the guest agent), the guest's heartbeat (Hyper-V), its SSH port answering. Exit code 5 on timeout, saying
    what each source answered; 1 if the guest reported errors while initializing."""
    handle = session.vm(vm)
    ready = wait_ready(session, handle, session.timeout(timeout, READY_TIMEOUT), (ready_sources, ssh_host, ssh_port))
    record = {"vm": handle.seen_name, "uuid": handle.uuid, "ready": ready_record(ready)}
    session.emit(record, lambda: _ready_text(handle.seen_name, ready))
    report_ready(ready)


COMMANDS: tuple[click.Command, ...] = (address, wait_ready_command, reconfigure, resize_disk)
"""The provisioning commands, in the order ``--help`` lists them."""
