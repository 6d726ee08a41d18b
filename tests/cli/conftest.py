"""Fixtures: a ``memory://`` host of the test's own, isolated plugins and a ``run`` helper invoking the CLI
in-process.

The host (:class:`Lab`) lives in this process, so successive CLI invocations in one test see each other's
changes. Its misbehaviour (features it lacks, a failing primitive, a password it checks) is the
:mod:`~polyvisor.testing.faults` query of the URI the CLI is given: a test sets :attr:`Lab.faults`, and ``run``
connects with them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result

import polyvisor
from polyvisor.cli import cli
from polyvisor.model import PowerState
from polyvisor.plugins import Plugins
from polyvisor.testing import eventually
from polyvisor.testing.memory import MemoryHost, host_named
from polyvisor.testing.memory_plugin import isolated_plugins

Run = Callable[..., Result]

_STEPS = {
    PowerState.STOPPED: (),
    PowerState.RUNNING: ("start",),
    PowerState.PAUSED: ("start", "pause"),
    PowerState.SAVED: ("start", "save"),
    PowerState.CRASHED: ("start",),
}


class Lab:
    """A ``memory://`` host of one test, with one running VM, ``web`` (2 CPUs, 2 GiB, ``tier=front``, two NICs)."""

    def __init__(self, plugins: Plugins) -> None:
        self.name = f"cli-{uuid.uuid4().hex}"
        self.plugins = plugins
        self.faults: dict[str, str] = {}
        """The faults every URI of :meth:`uri` asks for (``{"without": "pause"}``)."""
        self.add("web", PowerState.RUNNING, cpus=2, memory_mib=2048, labels={"tier": "front"}, nics=[{}, {}])

    @property
    def host(self) -> MemoryHost:
        return host_named(self.name)

    def uri(self, user: str | None = None, password: str | None = None) -> str:
        """The host's URI, with :attr:`faults` and these credentials (an unmasked password if given)."""
        auth = "" if user is None else user + (f":{password}" if password else "") + "@"
        query = "&".join(f"{option}={quote(value, safe='')}" for option, value in self.faults.items())
        return f"memory://{auth}/{self.name}" + (f"?{query}" if query else "")

    def connect(self) -> polyvisor.Connection:
        """A connection of the test's own, without faults."""
        return polyvisor.connect(f"memory:///{self.name}", plugins=self.plugins)

    def add(self, name: str, state: PowerState = PowerState.STOPPED, **spec: Any) -> str:
        """Define a VM on the host and bring it to ``state``; return its UUID."""
        with self.connect() as conn:
            vm = conn.create({"name": name, **spec})
            for verb in _STEPS[state]:
                getattr(vm, verb)(timeout=5)
        if state is PowerState.CRASHED:
            self.host.crash(name)
        return vm.uuid

    def act(self, name: str, verb: str) -> None:
        """Run one verb on a VM, as another party would."""
        with self.connect() as conn:
            getattr(conn.vm(name), verb)(timeout=5)

    def vm(self, name: str) -> Any:
        """The host's record of the VM with this name (``state``, ``cpus``, ``memory_mib``, ``labels``, ...)."""
        with self.host.lock:
            return next(vm for vm in self.host.vms.values() if vm.name == name)

    def names(self) -> set[str]:
        with self.host.lock:
            return {vm.name for vm in self.host.vms.values()}

    def after_subscribe(self, action: Callable[[], None]) -> threading.Thread:
        """Run ``action`` in a thread as soon as someone next subscribes to the host's events (join it)."""
        with self.host.lock:
            before = len(self.host.sinks)

        def run() -> None:
            eventually(lambda: len(self.host.sinks) > before, timeout=10, what="a subscriber to the host's events")
            action()

        thread = threading.Thread(target=run)
        thread.start()
        return thread


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No user config and no URI from the environment leak into a test; returns the config file path."""
    config = tmp_path / "config.toml"
    monkeypatch.setenv("POLYVISOR_CONFIG", str(config))
    monkeypatch.delenv("POLYVISOR_URI", raising=False)
    monkeypatch.delenv("POLYVISOR_DISABLE_PLUGINS", raising=False)
    return config


@pytest.fixture
def plugins() -> Plugins:
    """Plugins that know only ``memory://``."""
    return isolated_plugins()


@pytest.fixture
def lab(plugins: Plugins) -> Lab:
    """A host of the test's own with one running VM, 'web'."""
    return Lab(plugins)


@pytest.fixture
def run(plugins: Plugins, lab: Lab) -> Run:
    """Run ``polyvisor -c <the lab's URI> ARGS...`` in-process; pass ``connect=None`` to leave -c out."""

    def invoke(*args: str, connect: str | None = "", input: str | None = None, **kwargs: Any) -> Result:
        if connect == "":
            connect = lab.uri()  # with the faults the test set by now
        argv = (["-c", connect] if connect else []) + list(args)
        return CliRunner().invoke(cli, argv, obj=plugins, input=input, catch_exceptions=False, **kwargs)

    return invoke


def as_json(result: Result) -> Any:
    """Parse a result's stdout as JSON, failing with the output when it is not."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    return json.loads(result.stdout)
