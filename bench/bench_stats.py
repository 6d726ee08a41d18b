"""Sampling N VMs' counters: polyvisor's ``conn.stats()`` against libvirt-python's raw ``getAllDomainStats`` with
the same stats groups, measured in the same run (target: polyvisor within 1.2x of the raw call).

Domains are defined as in bench_listing.py (on the test driver half of them run; on qemu:///system they stay
defined, since N running guests do not fit this machine, so the records are those of inactive domains).

    .venv/bin/python bench/bench_stats.py [--vms 1000] [--repeat 7] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import statistics
import time

import libvirt
from bench_listing import define_vms, measure

import polyvisor
from polyvisor_libvirt.metrics import STATS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--uri", default="test:///default")
    args = parser.parse_args()
    raw = libvirt.open(args.uri)
    domains = define_vms(raw, args.vms, test_driver=args.uri.startswith("test:"))
    pv = polyvisor.connect(args.uri)
    try:
        total = len(raw.listAllDomains())
        peers = [
            ("polyvisor conn.stats()", lambda: len(pv.stats())),
            ("libvirt-python getAllDomainStats", lambda: len(raw.getAllDomainStats(STATS, 0))),
        ]
        print(f"sampling {total} VMs on {args.uri}, median of {args.repeat} runs, the two taking turns")
        # Taking turns, so a neighbour's load on this shared machine weighs on both alike.
        times: dict[str, list[float]] = {name: [] for name, _ in peers}
        for _ in range(args.repeat):
            for name, fn in peers:
                began = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - began)
        results = {}
        for name, fn in peers:
            _, mib, count = measure(fn, 1)  # peak memory and items, measured once more
            results[name] = (statistics.median(times[name]), mib, count)
        base, _, _ = results["libvirt-python getAllDomainStats"]
        print(f"{'implementation':36} {'ms':>9} {'peak MiB':>9} {'items':>6} {'vs raw':>8}")
        for name, (seconds, mib, count) in results.items():
            print(f"{name:36} {seconds * 1000:9.1f} {mib:9.2f} {count:6d} {seconds / base:7.2f}x")
    finally:
        for domain in domains:
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        pv.close()
        raw.close()


if __name__ == "__main__":
    main()
