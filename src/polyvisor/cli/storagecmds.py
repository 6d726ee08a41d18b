"""Commands about the host's storage: ``polyvisor pool list|create|delete`` and
``polyvisor image upload|download|list|delete`` (images are a pool's volumes)."""

from __future__ import annotations

import sys
from typing import Any

import click

from polyvisor.cli.progress import TransferBar
from polyvisor.cli.render import table
from polyvisor.cli.session import Session
from polyvisor.storage import StoragePool, Volume

__all__ = ["COMMANDS"]

pass_session = click.make_pass_decorator(Session)
_MIB = 1024 * 1024


def pool_record(pool: StoragePool) -> dict[str, Any]:
    """A pool as the JSON output shows it."""
    return {
        "name": pool.name,
        "kind": pool.kind,
        "path": pool.path,
        "capacity": pool.capacity,
        "allocation": pool.allocation,
        "available": pool.available,
        "active": pool.active,
    }


def volume_record(volume: Volume) -> dict[str, Any]:
    """A volume as the JSON output shows it."""
    return {
        "name": volume.name,
        "pool": volume.pool,
        "path": volume.path,
        "format": volume.format.value,
        "capacity": volume.capacity,
        "allocation": volume.allocation,
        "partial": volume.partial,
    }


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / _MIB:.1f} MiB"


@click.group("pool")
def pool() -> None:
    """The host's storage pools (Hyper-V: its disk and VM paths and image folders)."""


@pool.command("list")
@pass_session
def pool_list(session: Session) -> None:
    """List the pools with their sizes."""
    pools = session.connection.pools()
    records = [pool_record(found) for found in pools]

    def human() -> str:
        rows = [(p.name, p.kind, p.path or "-", _mib(p.capacity), _mib(p.available), p.active) for p in pools]
        return table(("NAME", "KIND", "PATH", "CAPACITY", "AVAILABLE", "ACTIVE"), rows) if rows else "(no pools)"

    session.emit(records, human)


@pool.command("create")
@click.argument("name")
@click.option("--path", default=None, help="Where the pool's directory goes (libvirt; default: beside the others).")
@pass_session
def pool_create(session: Session, name: str, path: str | None) -> None:
    """Create a directory pool (Hyper-V: an image folder)."""
    made = session.connection.create_pool(name, path=path)
    session.emit(pool_record(made), lambda: f"created pool {made.name!r} at {made.path}")


@pool.command("delete")
@click.argument("name")
@pass_session
def pool_delete(session: Session, name: str) -> None:
    """Delete an empty pool and its directory."""
    session.connection.delete_pool(name)
    session.emit({"deleted": name}, lambda: f"deleted pool {name!r}")


@click.group("image")
def image() -> None:
    """Images on the host: uploaded from this machine, listed, downloaded, deleted."""


@image.command("upload")
@click.argument("local_path", type=click.Path(dir_okay=False))
@click.option("--pool", default=None, help="The pool to upload into (default: the host's default pool).")
@click.option("--name", default=None, help="The volume's name (default: the file's name).")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds the whole upload may take.")
@pass_session
def image_upload(session: Session, local_path: str, pool: str | None, name: str | None, timeout: float) -> None:
    """Upload a local image; only a complete upload appears under its name."""
    bar = TransferBar(sys.stderr, f"uploading {name or click.format_filename(local_path)}")
    try:
        volume = session.connection.upload_image(local_path, pool=pool, name=name, progress=bar, timeout=timeout)
    finally:
        bar.close()
    record = volume_record(volume)
    if bar.last is not None:
        record["sent"] = bar.last.sent
    session.emit(record, lambda: f"uploaded {volume.name!r} into pool {volume.pool!r}: {volume.path}")


@image.command("download")
@click.argument("name")
@click.argument("local_path", type=click.Path())
@click.option("--pool", default=None, help="The pool holding the image (default: the host's default pool).")
@click.option("--overwrite", is_flag=True, help="Replace an existing local file.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds the whole download may take.")
@pass_session
def image_download(
    session: Session, name: str, local_path: str, pool: str | None, overwrite: bool, timeout: float
) -> None:
    """Download an image into a local file (or directory); the file appears only once complete."""
    bar = TransferBar(sys.stderr, f"downloading {name}")
    try:
        path = session.connection.download_image(
            name, local_path, pool=pool, overwrite=overwrite, progress=bar, timeout=timeout
        )
    finally:
        bar.close()
    session.emit({"name": name, "path": str(path)}, lambda: f"downloaded {name!r} to {path}")


@image.command("list")
@click.option("--pool", default=None, help="The pool to list (default: the host's default pool).")
@pass_session
def image_list(session: Session, pool: str | None) -> None:
    """List a pool's images with format and sizes (an unfinished upload is marked partial)."""
    volumes = session.connection.volumes(pool)
    records = [volume_record(volume) for volume in volumes]

    def human() -> str:
        rows = [
            (v.name, v.format.value, _mib(v.capacity), _mib(v.allocation), "partial" if v.partial else "")
            for v in volumes
        ]
        return table(("NAME", "FORMAT", "CAPACITY", "ALLOCATION", ""), rows) if rows else "(no images)"

    session.emit(records, human)


@image.command("delete")
@click.argument("name")
@click.option("--pool", default=None, help="The pool holding the image (default: the host's default pool).")
@pass_session
def image_delete(session: Session, name: str, pool: str | None) -> None:
    """Delete an image; one a VM uses is refused, naming the VM."""
    session.connection.delete_volume(name, pool=pool)
    session.emit({"deleted": name}, lambda: f"deleted image {name!r}")


COMMANDS = (pool, image)
