"""Commands for a VM's screen: how to connect to it (``graphics``), and a screenshot into a PNG file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from polyvisor.cli.render import key_values
from polyvisor.cli.session import Session
from polyvisor.png import decode
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT

__all__ = ["COMMANDS"]

pass_session = click.make_pass_decorator(Session)


def _timeout_option() -> Callable[[Any], Any]:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help=f"How long the call may take (default: the global --timeout, else {DEFAULT_TIMEOUT:g}).",
    )


@click.command("graphics")
@click.argument("vm")
@_timeout_option()
@pass_session
def graphics(session: Session, vm: str, timeout: float | None) -> None:
    """Say how to connect to the screen of VM (running or paused): protocol, host, port, and the SSH tunnel to run
    first when the display listens on a remote host's loopback."""
    handle = session.vm(vm)
    info = handle.graphics(timeout=session.timeout(timeout, DEFAULT_TIMEOUT))

    def human() -> str:
        rows: list[tuple[str, object]] = [
            ("protocol", info.protocol),
            ("connect to", f"{info.host}:{info.port}"),
            ("listens on", f"{info.listen}:{info.host_port}"),
        ]
        if info.uri:
            rows.append(("uri", info.uri))
        if info.tls_port is not None:
            rows.append(("tls port", info.tls_port))
        needed = info.password_required
        rows.append(("password", "unknown" if needed is None else "required" if needed else "none"))
        if info.tunnel:
            rows.append(("tunnel first", " ".join(info.tunnel)))
        if info.viewer:
            rows.append(("viewer", " ".join(info.viewer)))
        if info.detail:
            rows.append(("note", info.detail))
        return key_values(rows)

    session.emit({"vm": handle.seen_name, "uuid": handle.uuid, **info.as_dict()}, human)


@click.command("screenshot")
@click.argument("vm")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@_timeout_option()
@pass_session
def screenshot(session: Session, vm: str, file: Path, timeout: float | None) -> None:
    """Write the screen of VM (running or paused) into FILE as a PNG; FILE appears only complete."""
    handle = session.vm(vm)
    data = handle.screenshot(timeout=session.timeout(timeout, DEFAULT_TIMEOUT))
    image = decode(data)
    directory = file.parent if str(file.parent) else Path()
    handle_fd, temporary = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(handle_fd, "wb") as out:
            out.write(data)
        Path(temporary).replace(file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    record = {
        "vm": handle.seen_name,
        "uuid": handle.uuid,
        "file": str(file),
        "bytes": len(data),
        "width": image.width,
        "height": image.height,
    }
    session.emit(record, lambda: f"{handle.seen_name}: {image.width}x{image.height} screenshot in {file}")


COMMANDS = (graphics, screenshot)
