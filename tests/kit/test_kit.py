"""The conformance kit, as a plugin author meets it: each case runs the kit in a fresh pytest process.

What it demands is only what the contract says: a backend with the required methods alone passes it whole, every
case it cannot run skipping with the capability it lacks; what it documents it enforces (``delete(storage=True)``
removes the volumes it made); and a target left dirty by an earlier run is reported before any test runs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import polyvisor
from polyvisor.cli import cli
from polyvisor.testing.fixtures import kit_vms, leftovers_message

ROOT = Path(__file__).resolve().parents[2]
KIT_TESTS = Path(__file__).resolve().parent
MINIMAL_SRC = KIT_TESTS / "minimal-backend" / "src"
STUBBORN_SKIP = "this target has no guest that ignores shutdown (--polyvisor-stubborn-spec)"


@dataclass
class KitRun:
    returncode: int
    output: str
    outcomes: dict[str, tuple[str, str]]  # test name (with parameters) -> (outcome, message)

    def named(self, prefix: str) -> dict[str, tuple[str, str]]:
        return {name: outcome for name, outcome in self.outcomes.items() if name.startswith(prefix)}


def run_kit(tmp_path: Path, uri: str, *args: str) -> KitRun:
    """Run the kit on ``uri`` in a fresh interpreter, with the backends of ``kit_backends`` registered."""
    report = tmp_path / f"kit-{uuid.uuid4().hex[:8]}.xml"
    path = os.pathsep.join(filter(None, [str(KIT_TESTS), str(MINIMAL_SRC), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("POLYVISOR_DISABLE_PLUGINS", None)
    command = [sys.executable, "-m", "pytest", "-p", "polyvisor.testing", "-p", "kit_backends", "-q"]
    command += ["-p", "no:cacheprovider", f"--junitxml={report}", "--polyvisor-uri", uri, *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    outcomes: dict[str, tuple[str, str]] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            result = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
            outcome = "passed" if result is None else result.tag
            message = "" if result is None else result.get("message", "")
            outcomes[case.get("name", "")] = (outcome, message)
    return KitRun(done.returncode, done.stdout + done.stderr, outcomes)


def test_a_backend_with_only_the_required_methods_passes_the_whole_kit(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"minimal:///kit-{uuid.uuid4().hex[:8]}")
    assert kit.returncode == 0, kit.output
    assert kit.outcomes, kit.output
    failed = {name: result for name, result in kit.outcomes.items() if result[0] in ("failure", "error")}
    assert failed == {}, kit.output
    # Each skip names the capability the backend does not declare (or the guest the target cannot make).
    reasons = {message for outcome, message in kit.outcomes.values() if outcome == "skipped"}
    unexplained = {r for r in reasons if not r.startswith("capability not declared: ") and r != STUBBORN_SKIP}
    assert unexplained == set(), kit.output
    # The error case finds a verb the contract refuses without pause: delete() of a running VM.
    assert kit.outcomes["test_errors_carry_context_and_pickle"] == ("passed", "")
    passed = [name for name, (outcome, _) in kit.outcomes.items() if outcome == "passed"]
    assert len(passed) >= 40, kit.output


def test_skips_name_the_missing_capability_before_a_missing_option(tmp_path: Path) -> None:
    # No --polyvisor-base-image, no --polyvisor-address-spec: the backend's missing features are still the reason.
    kit = run_kit(tmp_path, f"minimal:///kit-{uuid.uuid4().hex[:8]}", "-k", "clone or base or address or storage")
    assert kit.returncode == 0, kit.output
    assert kit.named("test_two_clones_of_one_base_and_deleting_one_keeps_the_rest") == {
        "test_two_clones_of_one_base_and_deleting_one_keeps_the_rest[linked]": (
            "skipped",
            "capability not declared: disk-clone-linked",
        ),
        "test_two_clones_of_one_base_and_deleting_one_keeps_the_rest[copy]": (
            "skipped",
            "capability not declared: disk-clone-copy",
        ),
    }
    assert kit.named("test_a_missing_base_is_not_found_and_nothing_is_created") == {
        "test_a_missing_base_is_not_found_and_nothing_is_created[linked]": (
            "skipped",
            "capability not declared: disk-clone-linked",
        ),
        "test_a_missing_base_is_not_found_and_nothing_is_created[copy]": (
            "skipped",
            "capability not declared: disk-clone-copy",
        ),
    }
    assert kit.outcomes["test_wait_for_address_returns_a_usable_address"] == (
        "skipped",
        "capability not declared: guest-addresses",
    )
    assert kit.outcomes["test_delete_with_storage_removes_the_volumes_it_made"] == (
        "skipped",
        "capability not declared: delete-storage",
    )


DELETE_STORAGE_CASE = "test_delete_with_storage_removes_the_volumes_it_made"


def test_the_delete_storage_case_passes_where_the_volumes_go(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"memory:///kit-{uuid.uuid4().hex[:8]}", "-k", DELETE_STORAGE_CASE)
    assert kit.returncode == 0, kit.output
    assert kit.outcomes == {DELETE_STORAGE_CASE: ("passed", "")}, kit.output


def test_the_delete_storage_case_fails_on_a_backend_that_keeps_the_volumes(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"leaky:///kit-{uuid.uuid4().hex[:8]}", "-k", DELETE_STORAGE_CASE)
    assert kit.returncode == pytest.ExitCode.TESTS_FAILED, kit.output
    outcome, message = kit.outcomes[DELETE_STORAGE_CASE]
    assert outcome == "failure", kit.output
    assert "delete(storage=True) left the volumes it made for pvconf-dst-" in message, message
    assert "/memory/pvconf-dst-" in message, message


def test_a_vm_left_by_an_earlier_run_stops_the_session_before_any_test(tmp_path: Path) -> None:
    uri = f"memory:///kit-{uuid.uuid4().hex[:8]}"
    left = f"pvconf-crashed-{uuid.uuid4().hex[:8]}"
    kit = run_kit(tmp_path, uri, "--kit-test-leftover", left)
    assert kit.returncode == pytest.ExitCode.USAGE_ERROR, kit.output
    assert f"{uri} already has 1 VM(s) named like the conformance kit's (pvconf-...)" in kit.output, kit.output
    assert f"left by an earlier run that did not finish (or by one still running): {left}." in kit.output
    assert f"polyvisor -c {uri} delete --force --storage --yes NAME" in kit.output, kit.output
    ran = {name: result for name, result in kit.outcomes.items() if result[0] != "skipped"}
    assert ran == {}, kit.output
    assert "the conformance suite left VMs behind" not in kit.output


def test_the_command_the_kit_gives_for_leftovers_deletes_them(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POLYVISOR_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("POLYVISOR_URI", raising=False)
    uri = f"memory:///kit-{uuid.uuid4().hex[:8]}"
    with polyvisor.connect(uri) as conn:
        names = [f"pvconf-crashed-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        conn.create({"name": names[0]})
        conn.create({"name": names[1]}).start()  # a crash can leave one running
        message = leftovers_message(conn, kit_vms(conn), request.config)
        assert ", ".join(names) in message or ", ".join(reversed(names)) in message, message
        command = shlex.split(message.split("Delete each one, with its disks: ", 1)[1])
        assert command[0] == "polyvisor"
        for name in names:
            argv = [name if word == "NAME" else word for word in command[1:]]
            result = CliRunner().invoke(cli, argv, catch_exceptions=False)
            assert result.exit_code == 0, result.output
        assert kit_vms(conn) == []


LIFECYCLE_CASES = {
    "test_create_makes_a_stopped_vm",
    "test_start_runs_it",
    "test_pause_and_resume",
    "test_save_and_restore",
    "test_snapshot_and_revert",
    "test_shutdown_stops_the_guest",
    "test_delete_removes_it",
}


def test_an_area_runs_alone_and_the_lifecycle_group_passes_on_memory(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"memory:///kit-{uuid.uuid4().hex[:8]}", "--polyvisor-area", "lifecycle")
    assert kit.returncode == 0, kit.output
    assert kit.outcomes == dict.fromkeys(LIFECYCLE_CASES, ("passed", "")), kit.output
    assert "lifecycle group: one VM through create, start, pause, save, snapshot, shutdown and delete: 7 passed" in (
        kit.output
    )


def test_the_lifecycle_group_skips_only_on_what_the_minimal_backend_does_not_declare(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"minimal:///kit-{uuid.uuid4().hex[:8]}", "--polyvisor-area", "lifecycle")
    assert kit.returncode == 0, kit.output
    assert set(kit.outcomes) == LIFECYCLE_CASES, kit.output
    skipped = {name: message for name, (outcome, message) in kit.outcomes.items() if outcome == "skipped"}
    assert skipped == {
        "test_pause_and_resume": "capability not declared: pause",
        "test_save_and_restore": "capability not declared: save",
        "test_snapshot_and_revert": "capability not declared: snapshots",
    }, kit.output


def test_an_unknown_area_is_a_usage_error_naming_the_areas(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"memory:///kit-{uuid.uuid4().hex[:8]}", "--polyvisor-area", "lifecycles")
    assert kit.returncode == pytest.ExitCode.USAGE_ERROR, kit.output
    assert "--polyvisor-area lifecycles: not an area of the suite (identity, transitions," in kit.output


def test_a_run_with_a_name_prefix_of_its_own_ignores_other_runs_vms(tmp_path: Path) -> None:
    uri = f"memory:///kit-{uuid.uuid4().hex[:8]}"
    # A VM of another run (the default prefix) is no leftover of a run with its own prefix, and is left alone.
    other = f"pvconf-running-{uuid.uuid4().hex[:8]}"
    args = ("--polyvisor-area", "lifecycle", "--polyvisor-name-prefix", "pvtest-kit-a-", "--kit-test-leftover", other)
    kit = run_kit(tmp_path, uri, *args)
    assert kit.returncode == 0, kit.output
    assert kit.outcomes == dict.fromkeys(LIFECYCLE_CASES, ("passed", "")), kit.output
    # The same VM under the run's own prefix is a leftover.
    mine = f"pvtest-kit-a-crashed-{uuid.uuid4().hex[:8]}"
    kit = run_kit(tmp_path, uri, "--polyvisor-name-prefix", "pvtest-kit-a-", "--kit-test-leftover", mine)
    assert kit.returncode == pytest.ExitCode.USAGE_ERROR, kit.output
    assert "named like the conformance kit's (pvtest-kit-a-...)" in kit.output, kit.output


def test_a_name_prefix_that_is_no_vm_name_start_is_a_usage_error(tmp_path: Path) -> None:
    kit = run_kit(tmp_path, f"memory:///kit-{uuid.uuid4().hex[:8]}", "--polyvisor-name-prefix", "Bad prefix")
    assert kit.returncode == pytest.ExitCode.USAGE_ERROR, kit.output
    assert "--polyvisor-name-prefix 'Bad prefix': give lower-case letters" in kit.output, kit.output


def test_every_module_of_the_suite_is_an_area_the_summary_names() -> None:
    # An unnamed module would run under --polyvisor-area whatever area was asked for, and be missing from the summary.
    from polyvisor.testing import suite
    from polyvisor.testing.plugin import AREAS

    modules = {path.stem for path in Path(suite.__file__).parent.glob("test_*.py")}
    assert modules - set(AREAS) == set(), "name these in polyvisor.testing.plugin.AREAS"
