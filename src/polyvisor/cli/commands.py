"""Commands acting on VMs: inventory, create, lifecycle verbs, ensure/wait, labels, snapshots and delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

import click

from polyvisor.cli import provisioncmds
from polyvisor.cli.fleetcmds import fleet_act, fleet_list
from polyvisor.cli.provisioncmds import ready_options
from polyvisor.cli.records import (
    action_record,
    address_record,
    capabilities_record,
    ready_record,
    snapshot_record,
    snapshot_records,
    vm_record,
)
from polyvisor.cli.render import key_values, table, tree
from polyvisor.cli.session import Session
from polyvisor.cli.specfile import FORMATS, parse_spec, provision_spec
from polyvisor.errors import ValidationError
from polyvisor.guest import ADDRESS_TIMEOUT
from polyvisor.model import CloneMode, PowerState, ShutdownMode, VMInfo, VMStatus
from polyvisor.provisioning.readiness import SSH_PORT
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT
from polyvisor.verbs.readiness import READY_TIMEOUT
from polyvisor.vm import VM

__all__ = ["COMMANDS"]

_ENSURE_STATES = ("running", "stopped", "paused", "saved")

pass_session = click.make_pass_decorator(Session)


def _timeout_option(default: float) -> Callable[[Any], Any]:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help=f"How long to wait for the target state (default: the global --timeout, else {default:g}).",
    )


def _report(session: Session, action: str, vm: VM, status: VMStatus | None) -> None:
    """Print what a verb left behind: the status observed from the hypervisor."""
    record = action_record(action, vm.seen_name, vm.uuid, status)
    session.emit(record, lambda: f"{vm.seen_name}: {status if status is not None else 'deleted'}")


def _memory(mib: int) -> str:
    return f"{mib / 1024:g} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


def _labels_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in labels.items()) or "-"


def _parse_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        pairs[key] = value
    return pairs


def _label_option(command: Any) -> Any:
    return click.option(
        "--label",
        "select_labels",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_parse_pairs,
        help="With -c GROUP: act on every VM of the group with these labels (VM, if given, narrows by name).",
    )(command)


def _single(session: Session, vm: str | None, select_labels: dict[str, str]) -> str | None:
    """Return the VM for today's one-host behaviour, or None when the command runs over a group."""
    if session.group is not None:
        return None
    if select_labels:
        raise click.UsageError("--label selects VMs across a group: name one with -c GROUP (or -c all)")
    if vm is None:
        raise click.UsageError("missing argument 'VM'")
    return vm


# -- inventory -------------------------------------------------------------------------------------------------------
@click.command("list")
@pass_session
@click.pass_context
def list_vms(ctx: click.Context, session: Session) -> None:
    """List every VM on the host (or, with -c GROUP, on every host of the group) with its state."""
    if session.group is not None:
        ctx.exit(fleet_list(session))
    infos = sorted(session.connection.list(details=True), key=lambda info: (info.name, info.uuid))
    records = [vm_record(info) for info in infos]

    def human() -> str:
        if not infos:
            return f"no VMs on {session.connection.host}"
        rows = [
            (i.name, i.state.value, i.cpus, _memory(i.memory_mib), _labels_text(dict(i.labels)), i.uuid) for i in infos
        ]
        return table(("NAME", "STATE", "CPUS", "MEMORY", "LABELS", "UUID"), rows, right=(2, 3))

    session.emit({"vms": records}, human)


def _fact(value: object) -> object:
    """A backend fact as one cell: collections become comma-separated lists."""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(item) for item in value) or None
    return value


def _show_text(info: VMInfo, features: list[str]) -> str:
    pairs: list[tuple[str, object]] = [
        ("name", info.name),
        ("uuid", info.uuid),
        ("state", str(info.status)),
        ("cpus", info.cpus),
        ("memory", _memory(info.memory_mib)),
        ("saved state", info.has_saved_state),
        ("description", info.description or None),
        ("labels", _labels_text(dict(info.labels))),
    ]
    pairs.extend((str(key), _fact(value)) for key, value in sorted(info.extra.items()))
    pairs.append(("capabilities", ", ".join(features) or None))
    return key_values(pairs)


@click.command("show")
@click.argument("vm")
@pass_session
def show(session: Session, vm: str) -> None:
    """Show everything the hypervisor says about VM (a name or UUID)."""
    handle = session.vm(vm)
    info = handle.info()
    features = capabilities_record(handle.capabilities())
    session.emit({**vm_record(info), "capabilities": features}, lambda: _show_text(info, features))


# -- create ----------------------------------------------------------------------------------------------------------
@click.command("create")
@click.argument("spec_file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Spec file format; auto goes by the extension, then by the content.",
)
@click.option(
    "--image",
    metavar="PATH",
    help="Base image (a path on the hypervisor host) to clone into the VM's first disk; the base is never written.",
)
@click.option(
    "--clone",
    type=click.Choice([mode.value for mode in CloneMode]),
    default=None,
    help="With --image: a linked clone (a thin overlay, the default) or a full copy.",
)
@click.option("--disk-size", type=click.IntRange(min=1), metavar="MIB", help="With --image: grow the clone to MIB.")
@click.option(
    "--pool",
    metavar="NAME",
    help="With --image: the storage pool that holds the clone (default: the backend's own choice).",
)
@click.option(
    "--ssh-key",
    "ssh_keys",
    type=click.File("r", encoding="utf-8"),
    multiple=True,
    metavar="FILE",
    help="Authorize the SSH public keys in FILE (a .pub file; repeatable) through cloud-init.",
)
@click.option(
    "--user-data",
    type=click.File("rb"),
    metavar="FILE",
    help="cloud-init user-data (UTF-8) to hand the guest, byte for byte.",
)
@click.option(
    "--network-config",
    type=click.File("rb"),
    metavar="FILE",
    help="cloud-init network-config (UTF-8 YAML, version 1 or 2) to hand the guest, byte for byte.",
)
@click.option("--hostname", help="The guest's host name (cloud-init local-hostname).")
@click.option(
    "--forward",
    "forwards",
    multiple=True,
    metavar="HOSTPORT:GUESTPORT",
    help="Forward a port of the host's 127.0.0.1 to the guest through a user-mode NIC (no bridge needed; "
    "repeatable; also ADDRESS:HOSTPORT:GUESTPORT and .../udp).",
)
@click.option("--start", is_flag=True, help="Start the VM once it is created.")
@click.option("--wait-address", is_flag=True, help="Start the VM and wait until it has a usable IPv4 address.")
@click.option(
    "--wait-ready",
    is_flag=True,
    help="Start the VM and wait until it finished initializing (see 'wait-ready'), bounded by --timeout "
    "(default 300 for this wait).",
)
@ready_options
@click.option(
    "--address-timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long --wait-address waits (default {ADDRESS_TIMEOUT:g}).",
)
@_timeout_option(DEFAULT_TIMEOUT)
@pass_session
def create(
    session: Session,
    spec_file: IO[str],
    fmt: str,
    image: str | None,
    clone: str | None,
    disk_size: int | None,
    pool: str | None,
    ssh_keys: tuple[IO[str], ...],
    user_data: IO[bytes] | None,
    network_config: IO[bytes] | None,
    hostname: str | None,
    forwards: tuple[str, ...],
    start: bool,
    wait_address: bool,
    wait_ready: bool,
    ready_sources: tuple[str, ...],
    ssh_host: str | None,
    ssh_port: int,
    address_timeout: float | None,
    timeout: float | None,
) -> None:
    """Create a stopped VM from SPEC_FILE (TOML or JSON; '-' reads stdin).

    The file's keys are those of polyvisor.VMSpec: name, cpus, memory_mib, firmware, disks, nics, labels, ...
    --image, --ssh-key, --user-data, --network-config and --hostname add a cloned first disk and a cloud-init seed
    to it; --forward a user-mode NIC with port forwards.
    """
    source = spec_file.name if isinstance(spec_file.name, str) else "-"
    spec = parse_spec(spec_file.read(), "stdin" if source == "-" else source, fmt)
    spec = provision_spec(
        spec,
        image=image,
        clone=clone,
        disk_size=disk_size,
        pool=pool,
        ssh_keys=[(_file_name(f), f.read()) for f in ssh_keys],
        user_data=_utf8(user_data, "--user-data"),
        network_config=_utf8(network_config, "--network-config"),
        hostname=hostname,
        forwards=forwards,
    )
    if address_timeout is not None and not wait_address:
        raise click.UsageError("--address-timeout goes with --wait-address")
    if (ready_sources or ssh_host is not None or ssh_port != SSH_PORT) and not wait_ready:
        raise click.UsageError("--ready-source, --ssh-host and --ssh-port go with --wait-ready")
    handle = session.connection.create(spec)
    status = handle.status()
    address = None
    ready = None
    if start or wait_address or wait_ready:
        with session.spinner(f"starting {handle.seen_name}"):
            status = handle.start(timeout=session.timeout(timeout, DEFAULT_TIMEOUT))
    if wait_address:
        with session.spinner(f"waiting for an address of {handle.seen_name}"):
            address = handle.wait_for_address(timeout=ADDRESS_TIMEOUT if address_timeout is None else address_timeout)
    if wait_ready:
        ready = provisioncmds.wait_ready(
            session, handle, session.timeout(timeout, READY_TIMEOUT), (ready_sources, ssh_host, ssh_port)
        )
    record = action_record("create", handle.seen_name, handle.uuid, status)
    if address is not None:
        record["address"] = address_record(address)
    if ready is not None:
        record["ready"] = ready_record(ready)

    def human() -> str:
        text = f"{handle.seen_name}: {status}"
        if address is not None:
            text += f"\n{handle.seen_name}: address {address.address} ({address.source}, {address.interface})"
        if ready is not None:
            text += "".join(f"\n{handle.seen_name}: ready: {a.source}: {a.detail}" for a in ready.answers)
        return text

    session.emit(record, human)
    if ready is not None:
        provisioncmds.report_ready(ready)


def _file_name(stream: IO[str] | IO[bytes]) -> str:
    name = getattr(stream, "name", "-")
    return name if isinstance(name, str) else "-"


def _utf8(stream: IO[bytes] | None, option: str) -> str | None:
    """A file's text, decoded but otherwise as it is (CRLF stays CRLF)."""
    if stream is None:
        return None
    data = stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError(
            f"{_file_name(stream)} is not UTF-8 text (byte {error.start}: {data[error.start : error.start + 1]!r}); "
            "cloud-init reads UTF-8, so convert it first (iconv -t UTF-8)",
            field=option,
        ) from None


# -- lifecycle verbs -------------------------------------------------------------------------------------------------
_VERBS: tuple[tuple[str, str, str, str], ...] = (
    # (command, VM method, doing, help)
    ("start", "start", "starting", "Power on VM, or restore its saved memory; wait until it runs."),
    ("stop", "stop", "powering off", "Power VM off at once, like pulling the plug (refused on a saved VM)."),
    ("reset", "reset", "resetting", "Hard-reset a running VM."),
    ("reboot", "reboot", "rebooting", "Ask a running VM's guest to reboot."),
    ("pause", "pause", "pausing", "Freeze a running VM in host memory."),
    ("resume", "resume", "resuming", "Unfreeze a paused VM."),
    ("save", "save", "saving", "Save VM's memory to disk and stop it; 'start' restores it."),
    (
        "discard-saved-state",
        "discard_saved_state",
        "discarding the saved state of",
        "Throw away a saved VM's memory, leaving it stopped.",
    ),
)


def _verb_command(name: str, method: str, doing: str, summary: str) -> click.Command:
    @click.command(name, help=summary + " Already in the target state: does nothing.")
    @click.argument("vm", required=False)
    @_label_option
    @_timeout_option(DEFAULT_TIMEOUT)
    @pass_session
    @click.pass_context
    def command(
        ctx: click.Context, session: Session, vm: str | None, select_labels: dict[str, str], timeout: float | None
    ) -> None:
        seconds = session.timeout(timeout, DEFAULT_TIMEOUT)
        ref = _single(session, vm, select_labels)
        if ref is None:
            ctx.exit(fleet_act(session, name, vm, select_labels, method, timeout=seconds))
        handle = session.vm(ref)
        with session.spinner(f"{doing} {handle.seen_name}"):
            status = getattr(handle, method)(timeout=seconds)
        _report(session, name, handle, status)

    return command


@click.command("shutdown")
@click.argument("vm", required=False)
@_label_option
@click.option(
    "--mode",
    type=click.Choice([mode.value for mode in ShutdownMode]),
    default=ShutdownMode.DEFAULT.value,
    show_default=True,
    help="How to ask the guest: ACPI power button, guest agent, or the backend's choice.",
)
@_timeout_option(SHUTDOWN_TIMEOUT)
@pass_session
@click.pass_context
def shutdown(
    ctx: click.Context,
    session: Session,
    vm: str | None,
    select_labels: dict[str, str],
    mode: str,
    timeout: float | None,
) -> None:
    """Ask VM's guest to shut down and wait until it is stopped.

    On timeout the VM is left running (exit code 5); use 'stop' to power it off.
    """
    seconds = session.timeout(timeout, SHUTDOWN_TIMEOUT)
    ref = _single(session, vm, select_labels)
    if ref is None:
        ctx.exit(fleet_act(session, "shutdown", vm, select_labels, "shutdown", mode=mode, timeout=seconds))
    handle = session.vm(ref)
    with session.spinner(f"shutting down {handle.seen_name}"):
        status = handle.shutdown(mode=mode, timeout=seconds)
    _report(session, "shutdown", handle, status)


def _vm_and_state(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str | None, str]:
    if len(values) not in (1, 2):
        raise click.BadParameter("give VM STATE (or STATE alone with --label)", ctx=ctx, param=param)
    state = values[-1]
    if state not in _ENSURE_STATES:
        raise click.BadParameter(f"{state!r} is not one of {', '.join(_ENSURE_STATES)}", ctx=ctx, param=param)
    return (values[0] if len(values) == 2 else None), state


@click.command("ensure")
@click.argument("target", nargs=-1, required=True, metavar="[VM] STATE", callback=_vm_and_state)
@_label_option
@click.option("--force", is_flag=True, help="Allow lossy shortcuts: power off, discard saved memory.")
@_timeout_option(SHUTDOWN_TIMEOUT)
@pass_session
@click.pass_context
def ensure(
    ctx: click.Context,
    session: Session,
    target: tuple[str | None, str],
    select_labels: dict[str, str],
    force: bool,
    timeout: float | None,
) -> None:
    """Bring VM to STATE (running, stopped, paused, saved) with whatever verbs it takes; do nothing if it is
    there already. With -c GROUP and --label, every labelled VM of the group."""
    vm, state = target
    seconds = session.timeout(timeout, SHUTDOWN_TIMEOUT)
    ref = _single(session, vm, select_labels)
    if ref is None:
        ctx.exit(fleet_act(session, "ensure", vm, select_labels, "ensure", state=state, force=force, timeout=seconds))
    handle = session.vm(ref)
    with session.spinner(f"bringing {handle.seen_name} to {state}") as spinner:
        status = handle.ensure(state, force=force, timeout=seconds, progress=spinner.update)
    _report(session, "ensure", handle, status)


@click.command("wait")
@click.argument("vm")
@click.argument("state", type=click.Choice([state.value for state in PowerState]))
@_timeout_option(DEFAULT_TIMEOUT)
@pass_session
def wait(session: Session, vm: str, state: str, timeout: float | None) -> None:
    """Wait until VM is in STATE, without acting on it (exit code 5 on timeout)."""
    handle = session.vm(vm)
    with session.spinner(f"waiting for {handle.seen_name} to become {state}") as spinner:
        status = handle.wait_for(state, timeout=session.timeout(timeout, DEFAULT_TIMEOUT), progress=spinner.update)
    _report(session, "wait", handle, status)


# -- labels ----------------------------------------------------------------------------------------------------------
@click.command("labels")
@click.argument("vm")
@click.option("--set", "to_set", multiple=True, metavar="KEY=VALUE", callback=_parse_pairs, help="Add or change.")
@click.option("--remove", multiple=True, metavar="KEY", help="Remove a label (repeatable).")
@pass_session
def labels(session: Session, vm: str, to_set: dict[str, str], remove: tuple[str, ...]) -> None:
    """Show VM's labels, or change them with --set and --remove (both repeatable)."""
    handle = session.vm(vm)
    current = handle.update_labels(to_set, remove=remove) if to_set or remove else handle.labels()
    result = dict(current)

    def human() -> str:
        if not result:
            return f"{handle.seen_name}: no labels"
        return table(("KEY", "VALUE"), sorted(result.items()))

    session.emit({"vm": handle.seen_name, "uuid": handle.uuid, "labels": result}, human)


# -- delete ----------------------------------------------------------------------------------------------------------
@click.command("delete")
@click.argument("vm")
@click.option("--storage", is_flag=True, help="Delete the VM's disk volumes too.")
@click.option(
    "--force", is_flag=True, help="Power off a running or paused VM first; delete a saved one with its memory."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_timeout_option(DEFAULT_TIMEOUT)
@pass_session
def delete(session: Session, vm: str, storage: bool, force: bool, yes: bool, timeout: float | None) -> None:
    """Delete VM (a stopped one, unless --force). Asks first unless --yes."""
    handle = session.vm(vm)
    if not yes:
        what = f"VM {handle.seen_name!r} ({handle.uuid}) on {session.connection.host}"
        if storage:
            what += " and its storage"
        try:
            confirmed = click.confirm(f"Delete {what}?", default=False, err=True)
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise click.ClickException("nothing was deleted; answer 'y', or pass --yes to skip the question")
    seconds = session.timeout(timeout, DEFAULT_TIMEOUT)
    with session.spinner(f"deleting {handle.seen_name}"):
        if force and handle.state() in (
            PowerState.RUNNING,
            PowerState.PAUSED,
            PowerState.SUSPENDED,
            PowerState.CRASHED,
        ):
            handle.stop(timeout=seconds)
        handle.delete(storage=storage, force=force, timeout=seconds)
    _report(session, "delete", handle, None)


# -- snapshots -------------------------------------------------------------------------------------------------------
@click.group("snapshot")
def snapshot() -> None:
    """Create, list (as a tree), revert to and delete snapshots (checkpoints on Hyper-V)."""


@snapshot.command("create")
@click.argument("vm")
@click.argument("name")
@click.option("--memory", is_flag=True, help="Keep the running state too (needs a running or paused VM).")
@click.option("--description", default="", help="Free text stored with the snapshot.")
@pass_session
def snapshot_create(session: Session, vm: str, name: str, memory: bool, description: str) -> None:
    """Take a snapshot of VM called NAME."""
    handle = session.vm(vm)
    with session.spinner(f"taking snapshot {name} of {handle.seen_name}"):
        snap = handle.snapshot(name, memory=memory, description=description)
    record = {
        "action": "snapshot-create",
        "vm": handle.seen_name,
        "uuid": handle.uuid,
        "snapshot": snapshot_record(snap),
    }
    kind = "with memory" if snap.has_memory else "disk only"
    session.emit(
        record, lambda: f"{handle.seen_name}: snapshot {snap.name!r} taken ({kind}, VM was {snap.state.value})"
    )


@snapshot.command("list")
@click.argument("vm")
@pass_session
def snapshot_list(session: Session, vm: str) -> None:
    """Show VM's snapshots as a tree; '*' marks the current one."""
    handle = session.vm(vm)
    tree_ = handle.snapshots()
    records = snapshot_records(tree_)
    current = tree_.current

    def human() -> str:
        if not records:
            return f"{handle.seen_name}: no snapshots"
        nodes = []
        for rec in records:
            created = rec["created"][:19].replace("T", " ") if rec["created"] else "-"
            memory = ", memory" if rec["has_memory"] else ""
            mark = " *" if rec["current"] else ""
            nodes.append((rec["depth"], f"{rec['name']}{mark}  ({rec['state']}{memory}, {created})"))
        return "\n".join(tree(nodes))

    record = {
        "vm": handle.seen_name,
        "uuid": handle.uuid,
        "current": current.name if current else None,
        "snapshots": records,
    }
    session.emit(record, human)


@snapshot.command("revert")
@click.argument("vm")
@click.argument("name")
@_timeout_option(DEFAULT_TIMEOUT)
@pass_session
def snapshot_revert(session: Session, vm: str, name: str, timeout: float | None) -> None:
    """Revert VM to snapshot NAME; the VM ends in the state the snapshot recorded."""
    handle = session.vm(vm)
    with session.spinner(f"reverting {handle.seen_name} to {name}"):
        status = handle.revert(name, timeout=session.timeout(timeout, DEFAULT_TIMEOUT))
    _report(session, "snapshot-revert", handle, status)


@snapshot.command("delete")
@click.argument("vm")
@click.argument("name")
@click.option("--children", is_flag=True, help="Delete its descendants too (else they move up to its parent).")
@pass_session
def snapshot_delete(session: Session, vm: str, name: str, children: bool) -> None:
    """Delete snapshot NAME of VM."""
    handle = session.vm(vm)
    handle.delete_snapshot(name, children=children)
    record = {
        "action": "snapshot-delete",
        "vm": handle.seen_name,
        "uuid": handle.uuid,
        "snapshot": name,
        "children": children,
    }
    suffix = " and its descendants" if children else ""
    session.emit(record, lambda: f"{handle.seen_name}: snapshot {name!r}{suffix} deleted")


COMMANDS: tuple[click.Command, ...] = (
    list_vms,
    show,
    create,
    *(_verb_command(*verb) for verb in _VERBS),
    shutdown,
    ensure,
    wait,
    snapshot,
    labels,
    delete,
)
"""Every VM command, in the order ``--help`` lists them."""
