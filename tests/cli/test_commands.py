"""Every command against a ``memory://`` host: human output, JSON shape and the state left behind."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from polyvisor.model import Feature, PowerState
from polyvisor.plugins import PluginFailure, Plugins

from .conftest import Lab, Run, as_json

VM_KEYS = [
    "name",
    "uuid",
    "state",
    "raw_state",
    "reason",
    "critical",
    "cpus",
    "memory_mib",
    "has_saved_state",
    "description",
    "labels",
    "extra",
]
ACTION_KEYS = ["action", "vm", "uuid", "state", "raw_state", "reason", "critical"]


def test_list_shows_an_aligned_table(run: Run, lab: Lab) -> None:
    lab.add("db-primary", cpus=16, memory_mib=512)
    result = run("list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "CPUS", "MEMORY", "LABELS", "UUID"]
    assert lines[1].split()[:5] == ["db-primary", "stopped", "16", "512", "MiB"]
    assert lines[2].split()[:6] == ["web", "running", "2", "2", "GiB", "tier=front"]
    # Aligned: every row's UUID column starts where the header's does.
    column = lines[0].index("UUID")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines[1:])


def test_list_json_has_stable_keys_and_string_states(run: Run) -> None:
    data = as_json(run("--json", "list"))
    assert list(data) == ["vms"]
    (vm,) = data["vms"]
    assert list(vm) == VM_KEYS
    assert vm["state"] == "running"
    assert vm["labels"] == {"tier": "front"}


def test_list_says_when_there_are_no_vms(run: Run, lab: Lab) -> None:
    lab.act("web", "stop")
    lab.act("web", "delete")
    result = run("list")
    assert result.stdout.strip() == "no VMs on localhost"


def test_show_by_name_and_by_uuid(run: Run, lab: Lab) -> None:
    web = lab.vm("web")
    uuid, macs = web.uuid, list(web.nics)
    assert len(macs) == 2
    text = run("show", "web").stdout
    assert "state:" in text
    assert "running (running)" in text
    assert "memory:         2 GiB" in text
    assert f"nics:           {macs[0]}, {macs[1]}" in text
    assert "capabilities:" in text
    assert "snapshots" in text
    data = as_json(run("--json", "show", uuid))
    assert list(data) == [*VM_KEYS, "capabilities"]
    assert data["name"] == "web"
    assert data["extra"] == {
        "disks": {},
        "disk_sizes_mib": {},
        "disk_bases": {},
        "cdroms": {},
        "nics": macs,
        "forwards": [],
    }
    assert "pause" in data["capabilities"]


@pytest.mark.parametrize("suffix", [".toml", ".json", ""])
def test_create_from_toml_and_json(run: Run, lab: Lab, tmp_path: Path, suffix: str) -> None:
    spec = tmp_path / f"vm{suffix}"
    if suffix == ".toml":
        spec.write_text('name = "new"\ncpus = 2\nmemory_mib = 1024\nlabels = { role = "db" }\n')
    else:
        spec.write_text(json.dumps({"name": "new", "cpus": 2, "memory_mib": 1024, "labels": {"role": "db"}}))
    data = as_json(run("--json", "create", str(spec)))
    assert list(data) == ACTION_KEYS
    assert data["action"] == "create"
    assert data["vm"] == "new"
    assert data["state"] == "stopped"
    machine = lab.vm("new")
    assert (machine.cpus, machine.memory_mib, machine.labels) == (2, 1024, {"role": "db"})


def test_create_from_stdin_and_start(run: Run, lab: Lab) -> None:
    result = run("create", "-", "--start", input='{"name": "piped"}')
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "piped: running (running)"
    assert lab.vm("piped").state is PowerState.RUNNING


def test_create_error_points_at_the_field(run: Run, lab: Lab, tmp_path: Path) -> None:
    spec = tmp_path / "vm.toml"
    spec.write_text('name = "x"\nmemory_mib = 1\n')
    result = run("create", str(spec))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: memory_mib: must be at least 16")
    assert str(spec) in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "x" not in lab.names()


def test_create_reports_a_parse_error_with_its_position(run: Run, tmp_path: Path) -> None:
    spec = tmp_path / "vm.json"
    spec.write_text('{"name": "x",\n "cpus": }')
    result = run("create", str(spec))
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr
    assert "line 2" in result.stderr


def test_create_refuses_unknown_fields(run: Run, tmp_path: Path) -> None:
    spec = tmp_path / "vm.toml"
    spec.write_text('name = "x"\ncpu = 2\n')
    result = run("create", str(spec))
    assert result.exit_code == 2
    assert "unknown field(s) cpu" in result.stderr


@pytest.mark.parametrize(
    ("command", "start", "end"),
    [
        ("start", PowerState.STOPPED, PowerState.RUNNING),
        ("stop", PowerState.RUNNING, PowerState.STOPPED),
        ("reset", PowerState.RUNNING, PowerState.RUNNING),
        ("reboot", PowerState.RUNNING, PowerState.RUNNING),
        ("pause", PowerState.RUNNING, PowerState.PAUSED),
        ("resume", PowerState.PAUSED, PowerState.RUNNING),
        ("save", PowerState.RUNNING, PowerState.SAVED),
        ("discard-saved-state", PowerState.SAVED, PowerState.STOPPED),
        ("shutdown", PowerState.RUNNING, PowerState.STOPPED),
    ],
)
def test_lifecycle_verbs(run: Run, lab: Lab, command: str, start: PowerState, end: PowerState) -> None:
    lab.add("vm1", start)
    data = as_json(run("--json", command, "vm1"))
    assert list(data) == ACTION_KEYS
    assert data["action"] == command
    assert data["state"] == end.value
    assert lab.vm("vm1").state is end


def test_verb_human_output_is_the_observed_state(run: Run) -> None:
    result = run("pause", "web")
    assert result.stdout == "web: paused (paused)\n"


def test_shutdown_mode_and_timeout(run: Run, lab: Lab) -> None:
    lab.faults["guest"] = "ignore-shutdown"
    result = run("shutdown", "web", "--mode", "acpi", "--timeout", "0.05")
    assert result.exit_code == 5
    assert re.match(r"error: timed out after 0\.0\d*s waiting to become stopped", result.stderr)
    assert lab.vm("web").state is PowerState.RUNNING


def test_global_timeout_applies_when_the_command_has_none(run: Run, lab: Lab) -> None:
    lab.faults["guest"] = "ignore-shutdown"
    result = run("--timeout", "0.05", "shutdown", "web")
    assert result.exit_code == 5
    assert re.match(r"error: timed out after 0\.0\d*s", result.stderr)


def test_ensure_composes_verbs(run: Run, lab: Lab) -> None:
    lab.add("vm1", PowerState.PAUSED)
    data = as_json(run("--json", "ensure", "vm1", "saved"))
    assert data["action"] == "ensure"
    assert data["state"] == "saved"
    assert run("ensure", "vm1", "stopped").exit_code == 0  # start (restores), then shutdown
    assert lab.vm("vm1").state is PowerState.STOPPED


def test_ensure_refuses_a_lossy_step_without_force(run: Run, lab: Lab) -> None:
    lab.add("vm1", PowerState.CRASHED)
    result = run("ensure", "vm1", "stopped")
    assert result.exit_code == 4
    assert "force" in result.stderr
    assert run("ensure", "vm1", "stopped", "--force").exit_code == 0
    assert lab.vm("vm1").state is PowerState.STOPPED


def test_wait_returns_once_the_state_is_observed(run: Run, lab: Lab) -> None:
    # Another party pauses the VM once the waiter listens for events.
    changer = lab.after_subscribe(lambda: lab.act("web", "pause"))
    data = as_json(run("--json", "wait", "web", "paused", "--timeout", "10"))
    changer.join()
    assert data["action"] == "wait"
    assert data["state"] == "paused"


def test_wait_times_out_with_exit_code_5(run: Run) -> None:
    result = run("wait", "web", "stopped", "--timeout", "0.05")
    assert result.exit_code == 5
    assert result.stderr.startswith("error: timed out")


def test_labels_show_set_and_remove(run: Run, lab: Lab) -> None:
    assert run("labels", "web").stdout.split() == ["KEY", "VALUE", "tier", "front"]
    data = as_json(run("--json", "labels", "web", "--set", "env=prod", "--set", "note=a=b", "--remove", "tier"))
    assert data == {"vm": "web", "uuid": lab.vm("web").uuid, "labels": {"env": "prod", "note": "a=b"}}
    assert lab.vm("web").labels == {"env": "prod", "note": "a=b"}
    run("labels", "web", "--remove", "env", "--remove", "note")
    assert run("labels", "web").stdout.strip() == "web: no labels"


def test_labels_set_needs_key_equals_value(run: Run) -> None:
    result = run("labels", "web", "--set", "novalue")
    assert result.exit_code == 2
    assert "'novalue' is not KEY=VALUE" in result.stderr


def test_labels_invalid_key_is_a_validation_error(run: Run) -> None:
    result = run("labels", "web", "--set", "bad key=1")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: labels['bad key']")


def test_delete_asks_first(run: Run, lab: Lab) -> None:
    lab.add("old")
    declined = run("delete", "old", input="n\n")
    assert declined.exit_code == 1
    assert "nothing was deleted" in declined.stderr
    assert "Delete VM 'old'" in declined.stderr
    assert declined.stdout == ""
    assert "old" in lab.names()
    data = as_json(run("--json", "delete", "old", input="y\n"))
    assert data["action"] == "delete"
    assert data["state"] is None
    assert "old" not in lab.names()


def test_delete_refuses_a_running_vm_unless_forced(run: Run, lab: Lab) -> None:
    refused = run("delete", "web", "--yes")
    assert refused.exit_code == 4
    assert "stop or shut it down first" in refused.stderr
    result = run("delete", "web", "--yes", "--force", "--storage")
    assert result.exit_code == 0, result.output
    assert result.stdout == "web: deleted\n"
    assert lab.names() == set()


def test_delete_saved_vm_needs_force(run: Run, lab: Lab) -> None:
    lab.add("sleeper", PowerState.SAVED)
    assert run("delete", "sleeper", "-y").exit_code == 4
    assert run("delete", "sleeper", "-y", "--force").exit_code == 0


def test_snapshot_create_list_revert_delete(run: Run, lab: Lab) -> None:
    created = as_json(run("--json", "snapshot", "create", "web", "base", "--memory", "--description", "first"))
    assert created["action"] == "snapshot-create"
    assert list(created["snapshot"]) == [
        "name",
        "parent",
        "depth",
        "created",
        "state",
        "has_memory",
        "description",
        "current",
    ]
    assert created["snapshot"]["has_memory"] is True
    run("snapshot", "create", "web", "child-a")
    run("stop", "web")
    run("snapshot", "create", "web", "grandchild")
    run("snapshot", "revert", "web", "base")
    run("snapshot", "create", "web", "child-b")

    tree = run("snapshot", "list", "web").stdout.splitlines()
    assert [line.split("  (")[0] for line in tree] == [
        "base",
        "├── child-a",
        "│   └── grandchild",
        "└── child-b *",
    ]
    listed = as_json(run("--json", "snapshot", "list", "web"))
    created = listed["snapshots"][0]["created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", created), created
    assert f"(running, memory, {created[:19].replace('T', ' ')})" in tree[0]

    assert listed["current"] == "child-b"
    assert [(s["name"], s["depth"], s["parent"]) for s in listed["snapshots"]] == [
        ("base", 0, None),
        ("child-a", 1, "base"),
        ("grandchild", 2, "child-a"),
        ("child-b", 1, "base"),
    ]

    reverted = as_json(run("--json", "snapshot", "revert", "web", "grandchild"))
    assert reverted["action"] == "snapshot-revert"
    assert reverted["state"] == "stopped"

    deleted = as_json(run("--json", "snapshot", "delete", "web", "child-a", "--children"))
    assert deleted == {
        "action": "snapshot-delete",
        "vm": "web",
        "uuid": lab.vm("web").uuid,
        "snapshot": "child-a",
        "children": True,
    }
    # The current snapshot (grandchild) went with child-a: its parent's parent, base, is current now.
    assert [line.split("  (")[0] for line in run("snapshot", "list", "web").stdout.splitlines()] == [
        "base *",
        "└── child-b",
    ]


def test_snapshot_list_when_there_are_none(run: Run) -> None:
    assert run("snapshot", "list", "web").stdout == "web: no snapshots\n"


def test_missing_snapshot_is_not_found(run: Run) -> None:
    result = run("snapshot", "revert", "web", "nope")
    assert result.exit_code == 3
    assert "no snapshot named 'nope'" in result.stderr


def test_host_shows_facts_capabilities_and_networks(run: Run, lab: Lab) -> None:
    text = run("host").stdout
    assert f"hostname:   {lab.name}" in text
    assert f"uri:        memory:///{lab.name}" in text
    assert "Capabilities:" in text
    assert "Networks:" in text
    assert "default  yes     memory" in text
    data = as_json(run("--json", "host"))
    assert list(data) == ["uri", "backend", "host", "capabilities", "networks", "host_devices", "why_not"]
    keys = ["hostname", "hypervisor", "hypervisor_version", "cpus", "memory_mib", "arch", "extra", "free_memory_mib"]
    assert list(data["host"]) == [*keys, "architectures"]
    assert data["host"]["extra"] == {"pid": os.getpid()}
    assert data["host"]["architectures"] == [{"arch": "x86_64", "accelerators": [], "machine": None, "lacks": {}}]
    assert "Architectures:\nARCH    ACCELERATORS  MACHINE  VMS LACK\nx86_64  -             -        -\n" in text
    assert data["networks"] == [
        {"name": "default", "active": True, "kind": "memory", "uuid": None, "mode": "nat", "subnet": None, "extra": {}}
    ]


def test_host_shows_the_devices_vms_can_be_given_and_why_features_are_missing(run: Run, lab: Lab) -> None:
    lab.add("gpu", host_devices=["pci_0000_03_00_0"])
    text = run("host").stdout
    assert "Host devices:" in text
    assert "pci_0000_03_00_0  pci   0000:03:00.0  modelled graphics card    gpu" in text
    assert "usb_1_4           usb   001:004       modelled USB flash drive  -" in text
    data = as_json(run("--json", "host"))
    by_name = {device["name"]: device for device in data["host_devices"]}
    assert by_name["pci_0000_03_00_0"]["used_by"] == "gpu"
    assert by_name["usb_1_4"]["used_by"] is None
    assert data["why_not"] == {}


def test_host_says_why_a_probe_took_a_feature_away(run: Run, lab: Lab) -> None:
    lab.faults["without"] = Feature.TPM.value
    lab.faults["why"] = "tpm=swtpm is not installed"
    text = run("host").stdout
    assert "Not supported here, and why:\n  tpm: swtpm is not installed" in text
    assert as_json(run("--json", "host"))["why_not"] == {"tpm": "swtpm is not installed"}


def test_host_without_network_support(run: Run, lab: Lab) -> None:
    lab.faults["without"] = Feature.NETWORKS.value
    assert as_json(run("--json", "host"))["networks"] is None
    assert "(this backend does not list networks)" in run("host").stdout


def test_schemes_lists_backends_and_failed_plugins(run: Run, plugins: Plugins) -> None:
    plugins.failures.append(PluginFailure("broken", "polyvisor-broken", ImportError("no module named 'nothere'")))
    data = as_json(run("--json", "schemes", connect=None))
    assert data == {
        "backends": [
            {
                "driver": "memory",
                "plugin": "memory",
                "distribution": "polyvisor",
                "description": "in-memory hypervisor (tests)",
            }
        ],
        "failures": [
            {"plugin": "broken", "distribution": "polyvisor-broken", "error": "ImportError: no module named 'nothere'"}
        ],
    }
    text = run("schemes", connect=None).stdout
    assert text.splitlines()[0].split() == ["DRIVER", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"]
    assert "broken (polyvisor-broken): ImportError: no module named 'nothere'" in text


def test_watch_streams_events_as_json_lines(run: Run, lab: Lab) -> None:
    def act() -> None:
        lab.act("web", "pause")
        lab.act("web", "resume")

    actor = lab.after_subscribe(act)
    result = run("--json", "watch", "--count", "2")
    actor.join()
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["kind"], e["vm"], e["state"]) for e in events] == [
        ("state", "web", "paused"),
        ("state", "web", "running"),
    ]
    assert list(events[0]) == ["time", "kind", "vm", "uuid", "state", "detail"]


def test_watch_human_output(run: Run, lab: Lab) -> None:
    actor = lab.after_subscribe(lambda: lab.act("web", "pause"))
    result = run("watch", "--count", "1")
    actor.join()
    assert result.stdout.split()[1:] == ["state", "web", "paused", "paused"]  # kind, VM, state, raw state
    assert "Ctrl-C to stop" in result.stderr


def test_help_documents_every_command_and_exit_code(run: Run) -> None:
    text = run("--help", connect=None).stdout
    for command in ["list", "show", "create", "start", "shutdown", "stop", "reset", "reboot", "pause", "resume"]:
        assert f"\n  {command} " in text
    for command in ["save", "discard-saved-state", "ensure", "wait", "snapshot", "labels", "delete", "host"]:
        assert f"\n  {command} " in text
    for command in ["schemes", "watch", "demo"]:
        assert f"\n  {command} " in text
    for code in range(10):
        assert f"\n    {code}  " in text
    assert "--password" not in text.replace("--password-env", "")


@pytest.mark.parametrize("args", [["list"], ["show", "web"], ["snapshot", "list", "web"], ["host"]])
def test_json_is_accepted_after_the_subcommand(run: Run, args: list[str]) -> None:
    after = run(*args, "--json")
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(run("--json", *args).stdout)


def test_label_selection_needs_a_group(run: Run) -> None:
    result = run("start", "--label", "team=infra")
    assert result.exit_code == 2
    assert "--label selects VMs across a group" in result.output
    assert "missing argument 'VM'" in run("start").output
