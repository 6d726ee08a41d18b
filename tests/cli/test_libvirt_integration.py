"""Integration: the installed CLI against libvirt's ``test:///default`` through the real entry points.

Every ``test:///default`` open is a fresh private hypervisor, so each invocation starts from libvirt's built-in
running domain "test"; a test that needs several steps on one VM uses ``demo`` or ``create --start``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from polyvisor.cli import cli
from polyvisor.plugins import reset_default_plugins

if importlib.util.find_spec("polyvisor_libvirt") is None or importlib.util.find_spec("libvirt") is None:
    if os.environ.get("CI") == "true":
        pytest.fail("polyvisor-libvirt is not installed: pip install -e plugins/polyvisor-libvirt", pytrace=False)
    pytest.skip("polyvisor-libvirt is not installed", allow_module_level=True)


@pytest.fixture(autouse=True)
def fresh_plugins() -> None:
    # The CLI uses the process-wide plugins; reload them so a test that disabled plugins cannot leak in.
    reset_default_plugins()


def polyvisor(*args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", "test:///default", *args], catch_exceptions=False)


def ok_json(*args: str) -> Any:
    result = polyvisor("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_shows_the_builtin_domain() -> None:
    (vm,) = ok_json("list")["vms"]
    assert (vm["name"], vm["state"]) == ("test", "running")
    table = polyvisor("list").stdout.splitlines()
    assert table[1].split()[:2] == ["test", "running"]


def test_show_and_host_and_schemes() -> None:
    shown = ok_json("show", "test")
    assert shown["name"] == "test"
    assert "pause" in shown["capabilities"]
    host = ok_json("host")
    assert host["uri"] == "test:///default"
    assert any(net["name"] == "default" for net in host["networks"])
    drivers = [backend["driver"] for backend in ok_json("schemes")["backends"]]
    assert "test" in drivers
    assert "qemu" in drivers


@pytest.mark.parametrize(
    ("args", "state"),
    [
        (["pause", "test"], "paused"),
        (["stop", "test"], "stopped"),
        (["save", "test"], "saved"),
        (["reset", "test"], "running"),
        (["reboot", "test"], "running"),
        (["shutdown", "test"], "stopped"),
        (["start", "test"], "running"),
        (["ensure", "test", "saved"], "saved"),
        (["ensure", "test", "stopped", "--force"], "stopped"),
        (["wait", "test", "running"], "running"),
        (["snapshot", "revert", "test", "nope"], None),
    ],
)
def test_verbs_on_the_builtin_domain(args: list[str], state: str | None) -> None:
    result = polyvisor("--json", *args)
    if state is None:
        assert result.exit_code == 3
        return
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == state


def test_labels_snapshot_and_delete_in_one_invocation_each() -> None:
    assert ok_json("labels", "test", "--set", "env=ci")["labels"] == {"env": "ci"}
    snap = ok_json("snapshot", "create", "test", "s1", "--memory")["snapshot"]
    assert (snap["name"], snap["has_memory"]) == ("s1", True)
    assert ok_json("delete", "test", "--force", "--yes")["state"] is None


def test_create_and_start(tmp_path: Path) -> None:
    spec = tmp_path / "vm.toml"
    spec.write_text('name = "made"\nmemory_mib = 256\nlabels = { by = "cli" }\n')
    data = ok_json("create", str(spec), "--start")
    assert (data["vm"], data["state"]) == ("made", "running")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["show", "nope"], 3),
        (["discard-saved-state", "test"], 4),
        (["wait", "test", "stopped", "--timeout", "0"], 5),
        (["shutdown", "test", "--mode", "acpi"], 8),
        (["create", "-"], 9),
    ],
)
def test_exit_codes_from_the_real_backend(args: list[str], code: int) -> None:
    result = CliRunner().invoke(cli, ["-c", "test:///default", *args], input='{"name": "test"}')
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ")


def test_unreachable_daemon_is_a_connection_error() -> None:
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    result = CliRunner().invoke(cli, ["-c", "qemu+tcp://127.0.0.1:1/system", "list"])
    assert result.exit_code == 6, result.output


def test_demo_walks_every_step_with_observed_states() -> None:
    data = ok_json("demo", "--disk-mib", "16")
    assert [(s["step"], s["result"], s["state"]) for s in data["steps"]] == [
        ("create", "ok", "stopped"),
        ("start", "ok", "running"),
        ("pause", "ok", "paused"),
        ("resume", "ok", "running"),
        ("snapshot", "ok", "running"),
        ("save", "ok", "saved"),
        ("restore", "ok", "running"),
        ("shutdown", "ok", "stopped"),
        ("delete", "ok", "gone"),
    ]
    assert data["steps"][-1]["note"] == "deleted with its storage"
    human = polyvisor("demo")
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith("polyvisor demo on test:///default")
    assert " 9. delete    ok       gone" in human.stdout


def test_create_puts_the_clone_in_the_pool_it_is_given(tmp_path: Path) -> None:
    spec = tmp_path / "p1.toml"
    spec.write_text('name = "p1"\nmemory_mib = 64\n')
    # test:///default has one pool, "default-pool"; the pool named is the one the backend looks for.
    result = polyvisor("create", str(spec), "--image", "/default-pool/base.img", "--pool", "nosuch")
    assert result.exit_code == 3, result.output
    assert "finding storage pool 'nosuch'" in result.stderr
