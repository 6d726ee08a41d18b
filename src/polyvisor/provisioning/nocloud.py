"""cloud-init NoCloud seeds: the ISO9660 image that carries a :class:`~polyvisor.model.CloudInit` value.

The layout follows cloud-init's NoCloud datasource: a filesystem labelled ``cidata`` whose root holds ``user-data``
and ``meta-data`` (both required for the seed to count) and, optionally, ``network-config`` and ``vendor-data``.
The image has Joliet and Rock Ridge extensions so those names keep their dashes; the plain ISO9660 names
(``USERDATA.;1`` and so on) exist only because the format demands them.

Everything is built in memory. Values are data: they are encoded and written, never interpreted or expanded.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from polyvisor.errors import ValidationError
from polyvisor.model import CloudInit

if TYPE_CHECKING:
    import pycdlib

__all__ = ["CloudInit", "build_seed_iso"]

VOLUME_LABEL = "cidata"

# (Rock Ridge / Joliet name, ISO9660 level-1 name) of each file the NoCloud datasource reads.
_FILES = {
    "user-data": "USERDATA.;1",
    "meta-data": "METADATA.;1",
    "network-config": "NETWORKC.;1",
    "vendor-data": "VENDORDA.;1",
}


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
