"""A fleet of three in-memory hosts and libvirt's test hypervisor: list, find, ensure by label, place a new VM.

Run it as it is: ``python docs/examples/fleet.py``. Swap the URIs for ``qemu:///system`` and
``hyperv://admin@hv01/`` (with credentials from the config file: ``Fleet.from_config("lab")``) and nothing else
changes.
"""

import uuid

import polyvisor
from polyvisor import Fleet, Placement, PlacementError
from polyvisor.config import NamedConnection

run = uuid.uuid4().hex[:8]  # memory:// hosts live as long as the process; a unique name keeps runs apart
hosts = {
    "mem-a": NamedConnection("mem-a", f"memory:///docs-a-{run}", labels={"site": "berlin"}),
    "mem-b": NamedConnection("mem-b", f"memory:///docs-b-{run}", labels={"site": "paris"}, timeout=5),
    "kvm": "test:///default",
}

with Fleet(hosts, max_concurrency=8, timeout=10) as fleet:
    # Two web VMs, one per memory host.
    for host in ("mem-a", "mem-b"):
        fleet.connection(host).create({"name": f"web-{host}", "memory_mib": 1024, "labels": {"role": "web"}})

    # Every host at once; a host that fails or hangs is reported, never raised.
    listing = fleet.list()
    for host, result in listing.items():
        names = sorted(vm.name for vm in result.value or [])
        print(f"{host:6} {'ok' if result.ok else 'failed'} {names}")
    print("partial:", listing.partial)

    # Find a VM wherever it lives; "host/name" when a name is on several hosts.
    web = fleet.find("web-mem-b")
    print("found:", web.key, web.state.value)

    # Desired state on a label selection, all VMs at once; results keyed host/name.
    started = fleet.ensure(fleet.select(labels={"role": "web"}), "running", timeout=30)
    for key, status in sorted(started.values.items()):
        print("ensure:", key, status.state.value)
    started.raise_for_errors()

    # Placement: the fitting host with the most free memory, or an error saying why each host was passed over.
    placed = fleet.create({"name": "db", "memory_mib": 2048}, placement=Placement(labels={"site": "paris"}))
    print("placed:", placed.key)
    try:
        fleet.create({"name": "huge", "memory_mib": 1024 * 1024})
    except PlacementError as error:
        for host, reason in error.reasons.items():
            print(f"refused: {host}: {reason}")

    # Tidy up: power off and delete what this example made, on whichever host it is.
    fleet.ensure(fleet.select(hosts=["mem-a", "mem-b"]), "stopped", force=True).raise_for_errors()
    removed = fleet.act(fleet.select(hosts=["mem-a", "mem-b"]), "delete")
    print("deleted:", sorted(removed.values))

print("polyvisor", polyvisor.__version__)
