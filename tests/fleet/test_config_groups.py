"""Config groups, keyring references, per-host timeouts and labels; Fleet.from_config over memory:// hosts."""

from __future__ import annotations

import sys
import types
import uuid
from pathlib import Path

import pytest

from polyvisor import Fleet, Plugins
from polyvisor.config import NamedConnection, read_config
from polyvisor.errors import NotFoundError, ValidationError
from polyvisor.testing import memory_plugin

CONFIG = """
default = "a"
[connections.a]
uri = "memory:///{a}"
labels = {{ site = "x" }}
timeout = 5
[connections.b]
uri = "memory:///{b}"
[connections.c]
uri = "memory:///{c}"
[groups]
ab = ["a", "b"]
abc = ["ab", "c", "a"]
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    names = {key: f"fleet-{key}-{uuid.uuid4().hex}" for key in "abc"}
    path.write_text(CONFIG.format(**names), encoding="utf-8")
    monkeypatch.setenv("POLYVISOR_CONFIG", str(path))
    return path


@pytest.fixture
def plugins() -> Plugins:
    plugins = Plugins(load_entry_points=False)
    plugins.register(memory_plugin, name="memory")
    return plugins


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_groups_nest_and_all_is_every_connection(config: Path) -> None:
    cfg = read_config(config)
    assert cfg.group("ab") == ["a", "b"]
    assert cfg.group("abc") == ["a", "b", "c"]
    assert cfg.group("all") == ["a", "b", "c"]
    assert cfg.is_group("all")
    assert not cfg.is_group("a")
    assert cfg.connections["a"].timeout == 5
    assert dict(cfg.connections["a"].labels) == {"site": "x"}
    with pytest.raises(NotFoundError, match="no group named 'zz'"):
        cfg.group("zz")


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ('g = ["a", "nope"]', "names 'nope', which is neither a connection nor a group"),
        ('g = ["h"]\nh = ["g"]', "cycle: g -> h -> g"),
        ('a = ["a"]', "groups.a has the name of a connection"),
        ('all = ["a"]', "groups.all is implicit"),
        ('g = "a"', "must be a list of names"),
    ],
)
def test_bad_groups_are_refused_with_a_clear_message(tmp_path: Path, groups: str, message: str) -> None:
    path = _write(tmp_path / "c.toml", f'[connections.a]\nuri = "memory:///a"\n[groups]\n{groups}\n')
    with pytest.raises(ValidationError, match=message):
        read_config(path)


def test_a_keyring_reference_needs_the_keyring_package(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = NamedConnection("hv", "hyperv://admin@hv/", password_keyring="polyvisor/hv")
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring fails, as when it is not installed
    with pytest.raises(ValidationError, match=r"keyring package is not installed; install it \(pip install keyring\)"):
        entry.credentials()


def test_a_keyring_reference_reads_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("keyring")
    store = {("polyvisor", "hv"): "s3cret-from-keyring"}
    fake.get_password = lambda service, user: store.get((service, user))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    entry = NamedConnection("hv", "hyperv://admin@hv/", password_keyring="polyvisor/hv")
    assert entry.credentials()["password"] == "s3cret-from-keyring"
    assert "s3cret" not in repr(entry)
    empty = NamedConnection("hv", "hyperv://admin@hv/", password_keyring="polyvisor/other")
    with pytest.raises(ValidationError, match="holds no password for service 'polyvisor', user 'other'"):
        empty.credentials()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"password_keyring": "nouser"}, "is 'service/user'"),
        ({"password_keyring": "s/u", "password_env": "X"}, "both password_env and password_keyring"),
        ({"timeout": 0}, "timeout is a number of seconds > 0"),
        ({"labels": {"bad key": "v"}}, "keys are 1-63 characters"),
    ],
)
def test_bad_connection_entries_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NamedConnection("hv", "hyperv://hv/", **kwargs)  # type: ignore[arg-type]


def test_plain_passwords_stay_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", '[connections.a]\nuri = "memory:///a"\npassword = "x"\n')
    with pytest.raises(ValidationError, match="plain text"):
        read_config(path)


def test_from_config_opens_a_group(config: Path, plugins: Plugins) -> None:
    with Fleet.from_config("ab", plugins=plugins) as fleet:
        assert fleet.hosts == ("a", "b")
        assert fleet.host_timeout("a") == 5
        assert fleet.host_timeout("b") == fleet.timeout
        assert dict(fleet.labels("a")) == {"site": "x"}
        assert fleet.list().raise_for_errors().values == {"a": [], "b": []}
    with Fleet.from_config(plugins=plugins) as every:
        assert every.hosts == ("a", "b", "c")
        assert every.groups["ab"] == ("a", "b")
        assert every.select(groups=["ab"]).hosts == frozenset({"a", "b"})
    with Fleet.from_config("c", plugins=plugins) as single:
        assert single.hosts == ("c",)
    with pytest.raises(NotFoundError, match="no group or connection named 'zz'"):
        Fleet.from_config("zz", plugins=plugins)
