"""Named connections from the config file, passwords from environment variables, and no credential in any output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from polyvisor.testing.faults import password_digest

from .conftest import Lab, Run

PASSWORD = "Tr0ub4dor&3-secret"


@pytest.fixture
def guarded(lab: Lab) -> Lab:
    """The test's host, now asking for a password."""
    lab.faults["password-sha256"] = password_digest(PASSWORD)
    return lab


def _write(config: Path, text: str) -> None:
    config.write_text(text, encoding="utf-8")


def test_named_connection_with_password_from_env(
    run: Run, guarded: Lab, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(isolated_env, f'[connections.lab]\nuri = "{guarded.uri("admin")}"\npassword_env = "LAB_PASSWORD"\n')
    monkeypatch.setenv("LAB_PASSWORD", PASSWORD)
    result = run("list", connect="lab")
    assert result.exit_code == 0, result.output
    assert "web" in result.stdout


def test_the_config_default_is_used_without_connect(
    run: Run, guarded: Lab, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        isolated_env,
        f'default = "lab"\n[connections.lab]\nuri = "{guarded.uri("admin")}"\npassword_env = "LAB_PASSWORD"\n',
    )
    monkeypatch.setenv("LAB_PASSWORD", PASSWORD)
    result = run("--json", "host", connect=None)
    assert result.exit_code == 0, result.output
    assert f'"uri": "{guarded.uri("admin")}"' in result.stdout


def test_polyvisor_uri_names_the_connection(run: Run, guarded: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYVISOR_URI", guarded.uri("admin"))
    monkeypatch.setenv("MY_PW", PASSWORD)
    result = run("--password-env", "MY_PW", "list", connect=None)
    assert result.exit_code == 0, result.output


def test_unset_password_variable_is_a_usage_error(run: Run, guarded: Lab, isolated_env: Path) -> None:
    _write(isolated_env, f'[connections.lab]\nuri = "{guarded.uri("admin")}"\npassword_env = "UNSET_PW_VAR"\n')
    result = run("list", connect="lab")
    assert result.exit_code == 2
    assert "$UNSET_PW_VAR, which is not set" in result.stderr
    flag = run("--password-env", "UNSET_PW_VAR", "list")
    assert flag.exit_code == 2
    assert "$UNSET_PW_VAR is not set" in flag.stderr


def test_plain_text_password_in_config_is_refused(run: Run, guarded: Lab, isolated_env: Path) -> None:
    _write(isolated_env, f'[connections.lab]\nuri = "{guarded.uri("admin")}"\npassword = "{PASSWORD}"\n')
    result = run("list", connect="lab")
    assert result.exit_code == 2
    assert "plain text" in result.stderr
    assert "password_env" in result.stderr
    assert PASSWORD not in result.output


def test_unknown_connection_name_lists_the_known_ones(run: Run, isolated_env: Path) -> None:
    _write(isolated_env, '[connections.lab]\nuri = "memory:///lab"\n[connections.prod]\nuri = "memory:///prod"\n')
    result = run("list", connect="staging")
    assert result.exit_code == 3
    assert "(named: lab, prod)" in result.stderr


def test_wrong_password_is_an_authentication_error(run: Run, guarded: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PW", "wrong-" + PASSWORD)
    result = run("--password-env", "MY_PW", "list", connect=guarded.uri("admin"))
    assert result.exit_code == 7
    assert "refused the credentials of 'admin'" in result.stderr


def test_there_is_no_password_option(run: Run) -> None:
    result = run("--password", PASSWORD, "list")
    assert result.exit_code == 2
    assert PASSWORD not in result.output


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["--json", "list"],
        ["show", "web"],
        ["--json", "host"],
        ["host"],
        ["--json", "pause", "web"],
        ["-vv", "list"],
        ["-vv", "--json", "show", "nope"],
        ["demo", "--name", "secretive"],
    ],
)
def test_no_credential_in_any_output(run: Run, guarded: Lab, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    # The careless backend logs the raw URI and the password; the CLI must mask both.
    guarded.faults["leak-secrets"] = "true"
    monkeypatch.setenv("MY_PW", PASSWORD)
    in_uri = run(*argv, connect=guarded.uri("admin", PASSWORD))
    from_env = run("--password-env", "MY_PW", *argv, connect=guarded.uri("admin"))
    for result in (in_uri, from_env):
        assert result.exit_code in (0, 3), result.output
        assert PASSWORD not in result.output
    if argv[0] == "-vv":
        masked = guarded.uri("admin", "***")
        assert f"connecting to {masked}" in in_uri.stderr
        assert f"opening {masked} with ***" in in_uri.stderr


def test_a_leaked_password_in_an_error_is_masked(run: Run, guarded: Lab) -> None:
    guarded.faults.update({"leak-secrets": "true", "password-sha256": password_digest("other")})
    for args in (["list"], ["--json", "list"]):
        result = run(*args, connect=guarded.uri("admin", PASSWORD))
        assert result.exit_code == 7
        assert "(password '***')" in result.stderr
        assert PASSWORD not in result.output


def test_verbose_logging_is_removed_after_the_command(run: Run) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    assert run("-v", "list").exit_code == 0
    assert (list(root.handlers), root.level) == before
