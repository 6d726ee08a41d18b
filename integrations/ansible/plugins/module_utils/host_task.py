# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""The task of a module that works on one hypervisor: its connection options (the
``polyvisor.hypervisors.connection`` doc fragment) and the connection they open."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import (
    Module,
    connect_kwargs,
    ephemeral_warning,
    run_module,
)

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor

CONNECTION_OPTIONS: dict[str, Any] = {
    "uri": {"type": "str"},
    "connection": {"type": "str"},
    "config": {"type": "path"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "ca_path": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 120.0},
}
"""The argument spec of the ``polyvisor.hypervisors.connection`` doc fragment."""


def host_module(options: Mapping[str, Any], **kwargs: Any) -> Module:
    """The AnsibleModule of a one-hypervisor task: its own ``options`` with the connection options, check mode on."""
    return Module(
        argument_spec={**CONNECTION_OPTIONS, **options},
        mutually_exclusive=[("uri", "connection"), *kwargs.pop("mutually_exclusive", [])],
        supports_check_mode=True,
        **kwargs,
    )


@contextlib.contextmanager
def connected(module: Module) -> Iterator[polyvisor.Connection]:
    """Open the task's hypervisor, warning when it keeps nothing between tasks (``test:///default``)."""
    params = module.params
    if params["config"]:
        os.environ["POLYVISOR_CONFIG"] = params["config"]  # this process runs one task: nothing else reads it
    with polyvisor.connect(params["uri"] or params["connection"], **connect_kwargs(params)) as conn:
        if conn.ephemeral:
            module.warn(ephemeral_warning(conn.uri.render()))
        yield conn


def run_host_module(module: Module, run: Any) -> None:
    """Run the task and report, naming the host as the task's ``connection`` does."""
    run_module(module, run, module.params["connection"])


def diffed(module: Module, before: Any, after: Any) -> dict[str, Any]:
    """The task's result: ``changed`` when ``before`` and ``after`` differ, and the diff in diff mode."""
    result: dict[str, Any] = {"changed": before != after}
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result
