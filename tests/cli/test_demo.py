"""``polyvisor demo`` against a ``memory://`` host: every step, the observed states, skipped features and cleanup."""

from __future__ import annotations

from polyvisor.model import Feature
from polyvisor.testing.memory import MemoryBackend

from .conftest import Lab, Run, as_json

ALL_STEPS = [
    ("create", "stopped"),
    ("start", "running"),
    ("pause", "paused"),
    ("resume", "running"),
    ("snapshot", "running"),
    ("save", "saved"),
    ("restore", "running"),
    ("shutdown", "stopped"),
    ("delete", "gone"),
]


def test_demo_walks_one_vm_through_its_life(run: Run, lab: Lab) -> None:
    result = run("demo")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"polyvisor demo on memory:///{lab.name} (memory)"
    declared = MemoryBackend.static_features()
    assert lines[1] == "capabilities: " + ", ".join(sorted(feature.value for feature in Feature if feature in declared))
    assert lines[2].split() == ["STEP", "RESULT", "STATE", "WHAT", "HAPPENED"]
    steps = [line.split()[1:4] for line in lines[3:]]
    assert steps == [[step, "ok", state] for step, state in ALL_STEPS]
    assert "started from the saved memory" in lines[9]
    assert "polyvisor-demo" not in lab.names()


def test_demo_json(run: Run) -> None:
    data = as_json(run("--json", "demo", "--name", "json-demo"))
    assert list(data) == ["uri", "backend", "vm", "uuid", "capabilities", "steps"]
    assert data["vm"] == "json-demo"
    assert "snapshots" in data["capabilities"]
    assert [(s["step"], s["result"], s["state"]) for s in data["steps"]] == [(a, "ok", b) for a, b in ALL_STEPS]
    assert list(data["steps"][0]) == ["step", "feature", "result", "state", "raw_state", "note", "seconds"]
    assert data["steps"][4]["note"] == "snapshot 'demo-snapshot' (with memory)"


def test_demo_skips_what_the_backend_does_not_declare(run: Run, lab: Lab) -> None:
    lab.faults["features"] = Feature.CREATE.value
    data = as_json(run("--json", "demo"))
    results = {s["step"]: (s["result"], s["state"]) for s in data["steps"]}
    for skipped in ("pause", "resume", "snapshot", "save", "restore"):
        assert results[skipped] == ("skipped", None)
    assert results["shutdown"] == ("ok", "stopped")
    assert results["delete"] == ("ok", "gone")
    text = run("demo").stdout
    assert "skipped  -         skipped: the backend does not declare 'pause'" in text


def test_demo_needs_create(run: Run, lab: Lab) -> None:
    lab.faults["without"] = Feature.CREATE.value
    result = run("demo")
    assert result.exit_code == 8
    assert "does not support 'create'" in result.stderr


def test_demo_powers_off_a_guest_that_ignores_shutdown(run: Run, lab: Lab) -> None:
    lab.faults["guest"] = "ignore-shutdown"
    data = as_json(run("--json", "demo", "--shutdown-timeout", "0.05"))
    shutdown = next(s for s in data["steps"] if s["step"] == "shutdown")
    assert shutdown["state"] == "stopped"
    assert shutdown["note"] == "no guest answered within 0.05s, so it was powered off"


def test_demo_removes_its_vm_when_a_step_fails(run: Run, lab: Lab) -> None:
    lab.faults.update({"fail": "save", "fail-message": "disk full"})
    result = run("demo")
    assert result.exit_code == 1
    assert result.stderr == "error: save failed: disk full\n"
    assert " 5. snapshot" in result.stdout
    assert "save" not in result.stdout.split("snapshot", 2)[-1]
    assert "polyvisor-demo" not in lab.names()


def test_demo_refuses_a_taken_name(run: Run, lab: Lab) -> None:
    result = run("demo", "--name", "web")
    assert result.exit_code == 9
    assert "web" in lab.names()
