"""Sample every VM's counters twice and print rates (the example of docs/metrics.md, run by its test)."""

from __future__ import annotations

import polyvisor
from polyvisor.metrics import rates_by_uuid
from polyvisor.testing.memory import host_named

# memory:// guests run a known load on the host's clock; move the clock instead of waiting.
now = [1000.0]
host_named("watching").clock = lambda: now[0]

with polyvisor.connect("memory:///watching") as conn:
    vm = conn.create({"name": "web", "cpus": 2, "memory_mib": 512, "disks": [{"size_mib": 1024}]})
    vm.start()
    conn.create({"name": "spare", "cpus": 1, "memory_mib": 256})
    first = conn.stats()
    now[0] += 10.0  # ten seconds later
    second = conn.stats()
    for sample in second:
        print(f"{sample.name}: {sample.status.state.value}, {sample.why_missing('cpu_time_ns') or 'counting'}")
    for rated in rates_by_uuid(first, second).values():
        if rated.cpu_percent is None:
            continue
        print(
            f"{rated.name}: CPU {rated.cpu_percent:.1f} % of its vCPUs, {rated.host_cpu_percent:.2f} % of the host, "
            f"disk reads {rated.disk_read_bytes_per_second:.0f} B/s"
        )
