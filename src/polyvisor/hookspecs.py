"""The hooks a polyvisor plugin can implement.

A plugin is a module (or object) registered under the ``polyvisor`` entry-point group::

    [project.entry-points.polyvisor]
    mybackend = "mypackage.plugin"

and implementing hooks marked with :data:`hookimpl`::

    from polyvisor.hookspecs import hookimpl

    @hookimpl
    def polyvisor_register_backends(registry):
        registry.add("mydriver", "mypackage.backend:MyBackend", description="My hypervisor")

Keep the plugin module light: register import paths (``"module:attr"``), not imported classes, so that listing the
available schemes never imports a hypervisor binding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "polyvisor_register_backends"]

PROJECT_NAME = "polyvisor"
"""The pluggy project name, which is also the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def polyvisor_register_backends(registry: BackendRegistry) -> None:
    """Register backend factories for URI drivers with ``registry.add(driver, "module:Factory")``.

    A factory is called as ``Factory(uri, credentials)`` and returns a :class:`polyvisor.backend.Backend`.
    """
