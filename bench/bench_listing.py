"""Listing N VMs: polyvisor against its peers, measured in the same run on libvirt's test driver.

Peers: Apache libcloud's libvirt driver (``list_nodes``), a hand-written libvirt-python loop (what a script
using the raw binding typically does: one round of calls per domain), and libvirt-python's own bulk call
(``getAllDomainStats``, the floor). Prints wall time (median of several runs), peak Python memory and the ratio of
each peer to polyvisor.

    .venv/bin/python bench/bench_listing.py [--vms 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import libvirt

import polyvisor

URI = "test:///default"


def define_vms(conn: Any, count: int, *, test_driver: bool) -> list[Any]:
    """Define ``count`` small domains; on the test driver half of them also run (QEMU ones stay defined only)."""
    domains = []
    for index in range(count):
        root = ET.Element("domain", type="test" if test_driver else "qemu")
        ET.SubElement(root, "name").text = f"pvbench-{index}"
        ET.SubElement(root, "uuid").text = str(uuid.uuid4())
        ET.SubElement(root, "memory").text = "65536"
        ET.SubElement(root, "vcpu").text = "1"
        ET.SubElement(ET.SubElement(root, "os"), "type", arch="x86_64").text = "hvm"
        domain = conn.defineXML(ET.tostring(root, encoding="unicode"))
        if test_driver and index % 2:
            domain.create()
        domains.append(domain)
    return domains


def measure(fn: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """Return (median seconds, peak MiB of Python allocations, items returned)."""
    times = []
    count = 0
    for _ in range(repeat):
        began = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - began)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--uri", default=URI, help="test:///default (in-process) or qemu:///system (RPC to libvirtd)")
    args = parser.parse_args()

    uri = args.uri
    raw = libvirt.open(uri)  # the test driver shares its state between connections of one process
    domains = define_vms(raw, args.vms, test_driver=uri.startswith("test:"))
    total = len(raw.listAllDomains())

    pv = polyvisor.connect(uri)

    def polyvisor_list() -> int:
        return len([(info.name, info.uuid, info.state) for info in pv.list()])

    def polyvisor_list_details() -> int:
        # CPUs and memory need each domain's XML: read once, then served from the cache until libvirt reports a
        # change. The first run of measure() pays for it; the median shows the warm cost.
        return len([(info.name, info.uuid, info.state, info.cpus, info.memory_mib) for info in pv.list(details=True)])

    def raw_loop() -> int:
        out = []
        for domain in raw.listAllDomains():
            state, _ = domain.state()
            info = domain.info()
            out.append((domain.name(), domain.UUIDString(), state, info[1], info[3]))
        return len(out)

    def raw_bulk() -> int:
        stats = raw.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU)
        return len([(domain.name(), domain.UUIDString(), values) for domain, values in stats])

    peers: list[tuple[str, Callable[[], int]]] = [
        ("polyvisor conn.list()", polyvisor_list),
        ("polyvisor conn.list() + cpus/memory", polyvisor_list_details),
        ("libvirt-python, per-domain loop", raw_loop),
        ("libvirt-python getAllDomainStats (floor)", raw_bulk),
    ]
    try:
        from libcloud.compute.providers import get_driver
        from libcloud.compute.types import Provider

        cloud = get_driver(Provider.LIBVIRT)(uri=uri)
        peers.append(("Apache libcloud list_nodes()", lambda: len(cloud.list_nodes())))
    except ImportError:
        print("(apache-libcloud not installed: pip install apache-libcloud to include it)")

    print(f"listing {total} VMs on {uri}, median of {args.repeat} runs")
    results = {name: measure(fn, args.repeat) for name, fn in peers}
    base_time, base_mem, _ = results["polyvisor conn.list()"]
    print(f"{'implementation':40} {'ms':>9} {'peak MiB':>9} {'items':>6} {'time ratio':>11} {'memory ratio':>13}")
    for name, (seconds, mib, count) in results.items():
        ratio = seconds / base_time if base_time else float("nan")
        mem_ratio = mib / base_mem if base_mem else float("nan")
        print(f"{name:40} {seconds * 1000:9.1f} {mib:9.2f} {count:6d} {ratio:10.2f}x {mem_ratio:12.2f}x")
    for domain in domains:
        if domain.isActive():
            domain.destroy()
        domain.undefine()
    pv.close()
    raw.close()


if __name__ == "__main__":
    main()
