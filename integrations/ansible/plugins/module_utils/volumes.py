# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Volumes as the ``volume`` and ``image`` modules report and diff them."""

from __future__ import annotations

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # the modules' run_module() reports it, with an install hint
    import polyvisor

MIB = 1024 * 1024


def find_volume(conn: polyvisor.Connection, name: str, pool: str | None) -> polyvisor.Volume | None:
    """The volume of that name in the pool (the host's default pool without one), or None."""
    return next((volume for volume in conn.volumes(pool) if volume.name == name and not volume.partial), None)


def volume_facts(volume: polyvisor.Volume | None) -> dict[str, Any] | None:
    """What the task reports about a volume."""
    if volume is None:
        return None
    return {
        "name": volume.name,
        "pool": volume.pool,
        "path": volume.path,
        "format": volume.format.value,
        "capacity": volume.capacity,
        "allocation": volume.allocation,
        "size_mib": -(-volume.capacity // MIB),
    }


def shown(facts: dict[str, Any] | None, *extra: str) -> dict[str, Any]:
    """The part of a volume's facts that diff mode shows and ``changed`` compares (and the ``extra`` keys)."""
    if facts is None:
        return {"state": "absent"}
    return {"state": "present", **{key: facts.get(key) for key in ("name", "format", "size_mib", *extra)}}
