"""``polyvisor network`` against a memory:// host: networks listed as tables and JSON, made by mode, refused
before acting (exit code 2), and kept while a VM's NIC is on one (the VM named)."""

from __future__ import annotations

from polyvisor import connect

from .conftest import Lab, Run, as_json


def test_networks_are_created_listed_and_deleted(run: Run) -> None:
    made = as_json(run("network", "create", "lab-net", "--json"))
    assert (made["name"], made["mode"], made["subnet"], made["active"]) == ("lab-net", "isolated", None, True)
    nat = as_json(run("network", "create", "lab-nat", "--mode", "nat", "--subnet", "10.77.0.0/24", "--json"))
    assert (nat["mode"], nat["subnet"]) == ("nat", "10.77.0.0/24")
    external = as_json(run("network", "create", "lab-ext", "--mode", "external", "--adapter", "eth0", "--json"))
    assert external["extra"] == {"adapter": "eth0"}
    assert [n["name"] for n in as_json(run("network", "list", "--json"))] == [
        "default",
        "lab-ext",
        "lab-nat",
        "lab-net",
    ]
    lines = run("network", "list").stdout.splitlines()
    assert lines[0].split() == ["NAME", "MODE", "SUBNET", "KIND", "ACTIVE"]
    assert lines[3].split() == ["lab-nat", "nat", "10.77.0.0/24", "memory", "yes"]
    created = run("network", "create", "lab-int", "--mode", "internal", "--subnet", "10.78.0.0/24")
    assert created.stdout.strip() == "created internal network 'lab-int' on 10.78.0.0/24"
    for name in ("lab-net", "lab-nat", "lab-ext", "lab-int"):
        assert run("network", "delete", name).exit_code == 0
    assert [n["name"] for n in as_json(run("network", "list", "--json"))] == ["default"]


def test_bad_requests_are_refused_with_the_usage_code(run: Run) -> None:
    for args, said in (
        (("lab-*",), "wildcard"),
        (("lab", "--subnet", "10.77.0.0/24"), "takes no subnet"),
        (("lab", "--mode", "nat", "--subnet", "8.8.8.0/24"), "not a private range"),
        (("lab", "--mode", "internal"), "needs an address range"),
        (("lab", "--mode", "external"), "adapter"),
    ):
        refused = run("network", "create", *args)
        assert refused.exit_code == 2, args
        assert said in refused.output
    assert run("network", "create", "lab", "--mode", "bridged").exit_code == 2
    assert run("network", "delete", "nowhere").exit_code == 3
    assert [n["name"] for n in as_json(run("network", "list", "--json"))] == ["default"]


def test_a_network_a_vm_is_on_is_not_deleted_and_the_vm_is_named(run: Run, lab: Lab) -> None:
    run("network", "create", "lab-used")
    with connect(lab.uri(), plugins=lab.plugins) as conn:
        conn.create({"name": "on-it", "nics": [{"network": "lab-used"}]})
    refused = run("network", "delete", "lab-used")
    assert refused.exit_code != 0
    assert "on-it" in refused.output
    assert "lab-used" in [n["name"] for n in as_json(run("network", "list", "--json"))]
