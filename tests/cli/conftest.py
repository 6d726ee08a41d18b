"""Fixtures: a fake host, isolated plugins and a ``run`` helper invoking the CLI in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from polyvisor.cli import cli
from polyvisor.plugins import Plugins

from .fakebackend import URI_TEXT, FakeHypervisor

Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No user config and no URI from the environment leak into a test; returns the config file path."""
    config = tmp_path / "config.toml"
    monkeypatch.setenv("POLYVISOR_CONFIG", str(config))
    monkeypatch.delenv("POLYVISOR_URI", raising=False)
    monkeypatch.delenv("POLYVISOR_DISABLE_PLUGINS", raising=False)
    return config


@pytest.fixture
def hv() -> FakeHypervisor:
    """A fake host with one running VM, 'web'."""
    return FakeHypervisor()


@pytest.fixture
def plugins(hv: FakeHypervisor) -> Plugins:
    """Plugins that know only the fake host."""
    return hv.plugins()


@pytest.fixture
def run(plugins: Plugins) -> Run:
    """Run ``polyvisor -c fake:///lab ARGS...`` in-process; pass ``connect=None`` to leave -c out."""

    def invoke(*args: str, connect: str | None = URI_TEXT, input: str | None = None, **kwargs: Any) -> Result:
        argv = (["-c", connect] if connect else []) + list(args)
        return CliRunner().invoke(cli, argv, obj=plugins, input=input, catch_exceptions=False, **kwargs)

    return invoke


def as_json(result: Result) -> Any:
    """Parse a result's stdout as JSON, failing with the output when it is not."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    return json.loads(result.stdout)
