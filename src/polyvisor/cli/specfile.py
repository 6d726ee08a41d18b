"""Reading a VM spec from a TOML or JSON file, with errors that name the file and the field; the provisioning
options of ``create`` (``--image``, ``--ssh-key``, ...) laid over it."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Sequence
from typing import Any

from polyvisor.errors import ValidationError
from polyvisor.model import DiskSpec, NicKind, NicSpec, PortForward, VMSpec
from polyvisor.provisioning import CloudInit

__all__ = ["FORMATS", "parse_spec", "provision_spec", "ssh_public_keys"]

FORMATS = ("auto", "toml", "json")


def _detect(text: str, source: str) -> str:
    lowered = source.lower()
    if lowered.endswith(".json"):
        return "json"
    if lowered.endswith(".toml"):
        return "toml"
    # stdin or an unusual extension: a JSON document is an object, and TOML cannot start with '{'.
    return "json" if text.lstrip().startswith("{") else "toml"


def _load(text: str, source: str, fmt: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValidationError(f"{source} is not valid TOML: {error}") from None


def parse_spec(text: str, source: str, fmt: str = "auto") -> VMSpec:
    """Return the validated spec in ``text`` (read from ``source``, a path or ``-``)."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")
    if fmt == "auto":
        fmt = _detect(text, source)
    data = _load(text, source, fmt)
    try:
        return VMSpec.from_dict(data)
    except ValidationError as error:
        raise ValidationError(f"{error.message} (in {source}; fix this field)", field=error.field) from None


def ssh_public_keys(text: str, source: str) -> list[str]:
    """The public keys in an ``authorized_keys``-style file: one per line, blank lines and ``#`` comments skipped."""
    if "PRIVATE KEY" in text:
        raise ValidationError(f"{source} holds a private key; give the public one ({source}.pub)", field="--ssh-key")
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ValidationError(f"{source} holds no SSH public key", field="--ssh-key")
    return keys


def provision_spec(
    spec: VMSpec,
    *,
    image: str | None = None,
    clone: str | None = None,
    disk_size: int | None = None,
    pool: str | None = None,
    ssh_keys: Sequence[tuple[str, str]] = (),
    user_data: str | None = None,
    network_config: str | None = None,
    hostname: str | None = None,
    forwards: Sequence[str] = (),
) -> VMSpec:
    """Return ``spec`` with ``create``'s provisioning options applied.

    ``image`` becomes a cloned first disk (``clone``, default linked, grown to ``disk_size``, in ``pool``); SSH
    keys (from ``(file name, text)`` pairs), user-data, network-config and the host name go into the spec's
    ``cloud_init`` (made if absent, these fields replaced if present). ``forwards`` (``HOSTPORT:GUESTPORT``) join
    the spec's first user-mode NIC, or a new user-mode NIC put first (a cloud image configures its first NIC by
    DHCP).
    """
    if image is None and (clone is not None or disk_size is not None or pool is not None):
        raise ValidationError("--clone, --disk-size and --pool go with --image", field="--image")
    changes: dict[str, Any] = {}
    if image is not None:
        try:
            disk = DiskSpec(image=image, clone=clone or "linked", size_mib=disk_size, pool=pool)  # type: ignore[arg-type]
        except ValidationError as error:
            option = {"disk.size_mib": "--disk-size", "disk.clone": "--clone", "disk.pool": "--pool"}.get(
                error.field or "", "--image"
            )
            raise ValidationError(error.message, field=option) from None
        changes["disks"] = (disk, *spec.disks)
    keys = [key for source, text in ssh_keys for key in ssh_public_keys(text, source)]
    seed: dict[str, Any] = {}
    if keys:
        seed["ssh_authorized_keys"] = tuple(keys)
    if user_data is not None:
        seed["user_data"] = user_data
    if network_config is not None:
        seed["network_config"] = network_config
    if hostname is not None:
        seed["local_hostname"] = hostname
    if seed:
        base = spec.cloud_init or CloudInit(instance_id=spec.name)
        try:
            changes["cloud_init"] = dataclasses.replace(base, **seed)
        except ValidationError as error:
            option = {
                "ssh_authorized_keys": "--ssh-key",
                "user_data": "--user-data",
                "network_config": "--network-config",
                "local_hostname": "--hostname",
            }.get((error.field or "").split("[", 1)[0], "cloud_init")
            raise ValidationError(error.message, field=option) from None
    if forwards:
        changes["nics"] = _with_forwards(spec.nics, forwards)
    return dataclasses.replace(spec, **changes) if changes else spec


def _with_forwards(nics: tuple[NicSpec, ...], texts: Sequence[str]) -> tuple[NicSpec, ...]:
    try:
        added = tuple(PortForward.parse(text) for text in texts)
        index = next((i for i, nic in enumerate(nics) if nic.kind is NicKind.USER), None)
        if index is None:
            return (NicSpec(kind=NicKind.USER, forwards=added), *nics)
        nic = nics[index]
        return (*nics[:index], dataclasses.replace(nic, forwards=nic.forwards + added), *nics[index + 1 :])
    except ValidationError as error:
        raise ValidationError(error.message, field="--forward") from None
