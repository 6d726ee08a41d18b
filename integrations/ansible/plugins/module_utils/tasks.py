# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""What every module of the collection does alike: failures with ``error_type``, hosts named as the task names
them, the warning for hypervisors that keep nothing between tasks."""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import polyvisor
except ImportError as error:  # reported by run_module() with an install hint
    IMPORT_ERROR: str | None = str(error)
else:
    IMPORT_ERROR = None


class Module(AnsibleModule):  # type: ignore[misc]  # Ansible ships no type hints
    """AnsibleModule whose every failure carries ``error_type``: those of the arguments (an unknown option, a
    bad choice, ...), reported by AnsibleModule itself, are ``ValidationError``."""

    def fail_json(self, msg: str, **kwargs: Any) -> NoReturn:
        kwargs.setdefault("error_type", "ValidationError")
        super().fail_json(msg=msg, **kwargs)
        raise AssertionError("unreachable: fail_json exits")  # pragma: no cover


class TaskFailed(Exception):
    """A failure after the task acted: the message, its ``error_type``, and what the task reports with it."""

    def __init__(self, msg: str, error_type: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.error_type = error_type
        self.result = result


def run_module(module: Module, run: Callable[[Module], dict[str, Any]], connection: str | None = None) -> NoReturn:
    """Run the task and report: its result, or its failure with ``error_type`` and a message naming the host as
    the task names it (``connection``)."""
    if IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("polyvisor"), exception=IMPORT_ERROR, error_type="ImportError")
    try:
        result = run(module)
    except TaskFailed as failed:
        module.fail_json(msg=failed.msg, error_type=failed.error_type, **failed.result)
    except polyvisor.PolyvisorError as error:
        # polyvisor's messages name the host and VM but never a secret.
        module.fail_json(msg=named(error, connection), error_type=type(error).__name__, changed=False)
    except Exception as error:  # a bug, here or in a backend: still a failure with its class named
        module.fail_json(
            msg=f"{type(error).__name__}: {error}",
            error_type=type(error).__name__,
            exception=traceback.format_exc(),
            changed=False,
        )
    module.exit_json(**result)
    raise AssertionError("unreachable: exit_json exits")  # pragma: no cover


def named(error: polyvisor.PolyvisorError, host: str | None, vm: str | None = None) -> str:
    """The error's message, naming the host as the task does (``connection: hv1``) rather than by address, and
    the VM (when given) by its name rather than its UUID."""
    renamed = copy.copy(error)
    if host and error.host is not None and error.host != host:
        renamed.host = host
    if vm and error.vm is not None and error.vm != vm:
        renamed.vm = vm
    return str(renamed)


def error_type(errors: Iterable[BaseException]) -> str:
    """The ``error_type`` of a failure made of several errors: their class when they share one, else
    ``FleetError``."""
    kinds = {type(error).__name__ for error in errors}
    return kinds.pop() if len(kinds) == 1 else "FleetError"


def connect_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments for ``polyvisor.connect()`` that the task sets (none it leaves out)."""
    kwargs: dict[str, Any] = {}
    for key in ("username", "password", "ca_path"):
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("validate_certs") is False:
        kwargs["verify"] = False
    return kwargs


def ephemeral_warning(uri: str) -> str:
    """What a task on a hypervisor that forgets its VMs with its connections (``test:///default``) is told."""
    return (
        f"{uri} keeps its VMs only while a connection to it is open (libvirt's test driver, polyvisor's "
        "memory://), and this task's connection closes when the task ends: what the task did is gone, and the next "
        "task starts again from a fresh hypervisor (it reports changed every time, and its VMs and labels never "
        "reach another task). Use a hypervisor that keeps its VMs, such as qemu:///system, qemu:///session or a "
        "Hyper-V host."
    )
