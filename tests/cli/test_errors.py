"""Exit codes: one per class of the error tree, each error on one line of stderr (JSON with --json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyvisor import errors
from polyvisor.cli import exitcodes
from polyvisor.model import Feature, PowerState
from polyvisor.testing.faults import password_digest

from .conftest import Lab, Run


def test_documented_numbers() -> None:
    assert (exitcodes.OK, exitcodes.ERROR, exitcodes.USAGE, exitcodes.NOT_FOUND, exitcodes.INVALID_STATE) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert (
        exitcodes.TIMEOUT,
        exitcodes.CONNECTION,
        exitcodes.AUTHENTICATION,
        exitcodes.UNSUPPORTED,
        exitcodes.ALREADY_EXISTS,
    ) == (5, 6, 7, 8, 9)
    assert exitcodes.PARTIAL == 10
    assert [code for code, _ in exitcodes.EXIT_CODES] == list(range(11))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.PolyvisorError("x"), 1),
        (errors.BackendError("x", code=3), 1),
        (errors.ValidationError("x", field="f"), 2),
        (errors.NotFoundError("x"), 3),
        (errors.InvalidStateError("x", state=PowerState.RUNNING), 4),
        (errors.TimeoutError("x"), 5),
        (errors.ConnectionError("x"), 6),
        (errors.AuthenticationError("x"), 7),
        (errors.UnsupportedError("x", feature=Feature.PAUSE), 8),
        (errors.AlreadyExistsError("x"), 9),
    ],
)
def test_exit_code_for_each_class(error: errors.PolyvisorError, code: int) -> None:
    assert exitcodes.exit_code_for(error) == code


def _spec(tmp_path: Path, name: str) -> str:
    path = tmp_path / "spec.toml"
    path.write_text(f'name = "{name}"\n')
    return str(path)


@pytest.mark.parametrize(
    ("setup", "argv", "code", "kind", "text"),
    [
        (None, ["list"], 0, None, None),
        ("backend_error", ["list"], 1, "BackendError", "list_vms failed"),
        (None, ["--bogus"], 2, None, "No such option"),
        (None, ["-c", "1bad://x", "list"], 2, "ValidationError", "uri:"),
        (None, ["show", "nope"], 3, "NotFoundError", "no VM named or with UUID 'nope'"),
        (None, ["-c", "nosuchdriver:///", "list"], 3, "NotFoundError", "no installed backend handles 'nosuchdriver'"),
        (None, ["-c", "lab", "list"], 3, "NotFoundError", "neither a URI nor a connection named"),
        (None, ["discard-saved-state", "web"], 4, "InvalidStateError", "a VM that is running (accepts: saved)"),
        (None, ["wait", "web", "saved", "--timeout", "0"], 5, "TimeoutError", "timed out"),
        ("unreachable", ["list"], 6, "ConnectionError", "cannot reach"),
        ("password", ["list"], 7, "AuthenticationError", "refused the credentials"),
        ("no_pause", ["pause", "web"], 8, "UnsupportedError", "does not support 'pause'"),
        (None, ["create", "SPEC:web"], 9, "AlreadyExistsError", "a VM named 'web' already exists"),
    ],
)
def test_each_error_class_has_its_exit_code(
    run: Run,
    lab: Lab,
    tmp_path: Path,
    setup: str | None,
    argv: list[str],
    code: int,
    kind: str | None,
    text: str | None,
) -> None:
    if setup == "backend_error":
        lab.faults.update({"fail": "list_vms", "fail-message": "internal failure"})
    elif setup == "unreachable":
        lab.faults["unreachable"] = "true"
    elif setup == "password":
        lab.faults["password-sha256"] = password_digest("right")
    elif setup == "no_pause":
        lab.faults["without"] = Feature.PAUSE.value
    argv = [_spec(tmp_path, arg[5:]) if arg.startswith("SPEC:") else arg for arg in argv]
    connect = None if argv[0] == "-c" else lab.uri()

    result = run(*argv, connect=connect)
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.stderr == ""
        return
    assert text is not None
    assert text in result.stderr
    if kind is None:  # click's own usage errors keep click's format
        return
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ")

    machine = run("--json", *argv, connect=connect)
    assert machine.exit_code == code
    assert machine.stdout == ""
    (line,) = machine.stderr.splitlines()
    record = json.loads(line)
    assert list(record) == ["error"]
    assert record["error"]["type"] == kind
    assert record["error"]["exit_code"] == code
    assert text in record["error"]["message"]


def test_multi_line_backend_messages_become_one_line(run: Run, lab: Lab) -> None:
    lab.faults.update({"fail": "list_vms", "fail-message": "first line\n  second line\r\nthird"})
    result = run("list")
    assert result.exit_code == 1
    assert result.stderr == "error: list_vms failed: first line second line third\n"


def test_declined_confirmation_is_a_generic_failure(run: Run, lab: Lab) -> None:
    lab.add("old")
    result = run("delete", "old", input="")
    assert result.exit_code == 1
    assert "pass --yes" in result.stderr


def test_errors_carry_a_command_line_hint(run: Run, lab: Lab) -> None:
    lab.faults["without"] = Feature.PAUSE.value
    result = run("pause", "web")
    assert result.stderr.rstrip().endswith("(hint: 'polyvisor host' lists what this backend supports)")
    timed_out = run("wait", "web", "stopped", "--timeout", "0")
    assert "(hint: wait longer with --timeout SECONDS" in timed_out.stderr
