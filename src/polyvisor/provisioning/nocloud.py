"""cloud-init NoCloud seeds: a validated :class:`CloudInit` value and the ISO9660 image that carries it.

The layout follows cloud-init's NoCloud datasource: a filesystem labelled ``cidata`` whose root holds ``user-data``
and ``meta-data`` (both required for the seed to count) and, optionally, ``network-config`` and ``vendor-data``.
The image has Joliet and Rock Ridge extensions so those names keep their dashes; the plain ISO9660 names
(``USERDATA.;1`` and so on) exist only because the format demands them.

Everything is built in memory. Values are data: they are encoded and written, never interpreted or expanded.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from polyvisor.errors import ValidationError

if TYPE_CHECKING:
    import pycdlib

__all__ = ["CloudInit", "build_seed_iso"]

VOLUME_LABEL = "cidata"
CLOUD_CONFIG_HEADER = "#cloud-config"

# (Rock Ridge / Joliet name, ISO9660 level-1 name) of each file the NoCloud datasource reads.
_FILES = {
    "user-data": "USERDATA.;1",
    "meta-data": "METADATA.;1",
    "network-config": "NETWORKC.;1",
    "vendor-data": "VENDORDA.;1",
}


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a str, not {type(value).__name__}", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"is not encodable as UTF-8 ({exc.reason})", field=name) from None
    return value


def _check_line(value: object, name: str) -> str:
    """A one-line printable string: instance ids, host names, SSH keys."""
    text = _check_text(value, name)
    if not text or text != text.strip():
        raise ValidationError("must be non-empty, without leading or trailing whitespace", field=name)
    if not text.isprintable():
        raise ValidationError("must be a single line of printable characters (no newline or control)", field=name)
    return text


def _check_json(value: object, name: str) -> Any:
    """Check that *value* is plain JSON data (str keys; str, int, float, bool, None, lists, mappings)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("must be a finite number", field=name)
        return value
    if isinstance(value, str):
        return _check_text(value, name)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"keys must be str, not {type(key).__name__} ({key!r})", field=name)
            out[_check_text(key, name)] = _check_json(item, f"{name}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_check_json(item, f"{name}[{index}]") for index, item in enumerate(value)]
    raise ValidationError(f"holds a {type(value).__name__}, which is not JSON data", field=name)


def _json_yaml(value: Any) -> str:
    # JSON is valid YAML (1.2, and for these plain values 1.1 as PyYAML reads it), so cloud-init reads this without
    # polyvisor needing a YAML library. ensure_ascii=False keeps non-ASCII as UTF-8 rather than \u escapes, which
    # PyYAML would turn into lone surrogates for characters outside the BMP; control characters are still escaped.
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def _is_cloud_config(text: str) -> bool:
    first = text.split("\n", 1)[0].rstrip("\r")
    return first.rstrip() == CLOUD_CONFIG_HEADER


@dataclass(frozen=True, kw_only=True)
class CloudInit:
    """What a guest's cloud-init receives from a NoCloud seed.

    ``instance_id`` and ``local_hostname`` become the ``instance-id`` and ``local-hostname`` of ``meta-data``;
    ``meta_data`` adds further keys (it may not repeat those two). ``user_data`` and ``vendor_data`` are written
    byte for byte (UTF-8); ``network_config`` is either written as given (a str) or dumped (a mapping, network
    config version 1 or 2). ``ssh_authorized_keys`` is a shortcut: the keys are added to ``user-data`` as cloud-config
    ``ssh_authorized_keys``, which needs ``user_data`` to be absent or a ``#cloud-config`` document that does not
    set that key itself.

    :raises ~polyvisor.errors.ValidationError: naming the field, for anything cloud-init could not read as meant.
    """

    instance_id: str
    local_hostname: str | None = None
    user_data: str | None = None
    meta_data: Mapping[str, Any] | None = None
    network_config: str | Mapping[str, Any] | None = None
    vendor_data: str | None = None
    ssh_authorized_keys: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_line(self.instance_id, "instance_id")
        if self.local_hostname is not None:
            _check_line(self.local_hostname, "local_hostname")
        if self.user_data is not None:
            _check_text(self.user_data, "user_data")
        if self.vendor_data is not None:
            _check_text(self.vendor_data, "vendor_data")
        if self.meta_data is not None:
            if not isinstance(self.meta_data, Mapping):
                raise ValidationError(f"must be a mapping, not {type(self.meta_data).__name__}", field="meta_data")
            checked = _check_json(self.meta_data, "meta_data")
            for reserved in ("instance-id", "local-hostname"):
                if reserved in checked:
                    raise ValidationError(
                        f"may not set {reserved!r}; use the {reserved.replace('-', '_')} field", field="meta_data"
                    )
            object.__setattr__(self, "meta_data", MappingProxyType(checked))
        if self.network_config is not None:
            if isinstance(self.network_config, str):
                _check_text(self.network_config, "network_config")
            elif isinstance(self.network_config, Mapping):
                object.__setattr__(
                    self, "network_config", MappingProxyType(_check_json(self.network_config, "network_config"))
                )
            else:
                raise ValidationError(
                    f"must be a str or a mapping, not {type(self.network_config).__name__}", field="network_config"
                )
        keys: object = self.ssh_authorized_keys  # a list is accepted and copied; a bare str is a common slip
        if not isinstance(keys, tuple | list):
            raise ValidationError(f"must be a tuple of str, not {type(keys).__name__}", field="ssh_authorized_keys")
        for index, key in enumerate(keys):
            _check_line(key, f"ssh_authorized_keys[{index}]")
        object.__setattr__(self, "ssh_authorized_keys", tuple(keys))
        if keys and self.user_data is not None:
            if not _is_cloud_config(self.user_data):
                raise ValidationError(
                    "can only be added to user_data that is absent or a #cloud-config document",
                    field="ssh_authorized_keys",
                )
            if any(line.startswith("ssh_authorized_keys:") for line in self.user_data.splitlines()):
                raise ValidationError(
                    "user_data already sets ssh_authorized_keys; put the keys in one place", field="ssh_authorized_keys"
                )

    def files(self) -> dict[str, bytes]:
        """The seed's files by their NoCloud name (``user-data``, ``meta-data``, and the optional ones)."""
        meta: dict[str, Any] = {"instance-id": self.instance_id}
        if self.local_hostname is not None:
            meta["local-hostname"] = self.local_hostname
        meta.update(self.meta_data or {})
        out = {"user-data": self._user_data().encode("utf-8"), "meta-data": _json_yaml(meta).encode("utf-8")}
        if isinstance(self.network_config, str):
            out["network-config"] = self.network_config.encode("utf-8")
        elif self.network_config is not None:
            out["network-config"] = _json_yaml(dict(self.network_config)).encode("utf-8")
        if self.vendor_data is not None:
            out["vendor-data"] = self.vendor_data.encode("utf-8")
        return out

    def _user_data(self) -> str:
        if not self.ssh_authorized_keys:
            # cloud-init needs the file to exist; empty user-data means "nothing to do".
            return self.user_data if self.user_data is not None else ""
        # A flow sequence of JSON strings is valid YAML, appended as one more top-level key of the document.
        entry = f"ssh_authorized_keys: {json.dumps(list(self.ssh_authorized_keys), ensure_ascii=False)}\n"
        if self.user_data is None:
            return f"{CLOUD_CONFIG_HEADER}\n{entry}"
        base = self.user_data if self.user_data.endswith("\n") else self.user_data + "\n"
        return base + entry


def build_seed_iso(cloud_init: CloudInit) -> bytes:
    """The bytes of a NoCloud seed ISO (label ``cidata``, ISO9660 with Joliet and Rock Ridge) for *cloud_init*.

    The image is built in memory; write it wherever the backend wants it and attach it as a CD-ROM. Two builds of
    the same value carry the same files but not the same bytes: pycdlib stamps the current time into the volume
    descriptors and directory records and offers no way to fix it.
    """
    import pycdlib  # imported here so that importing polyvisor does not need it

    if not isinstance(cloud_init, CloudInit):
        raise ValidationError(f"must be a CloudInit, not {type(cloud_init).__name__}", field="cloud_init")
    iso: pycdlib.PyCdlib = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09")
    try:
        for name, content in cloud_init.files().items():
            iso.add_fp(
                io.BytesIO(content),
                len(content),
                iso_path="/" + _FILES[name],
                rr_name=name,
                joliet_path="/" + name,
            )
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()
