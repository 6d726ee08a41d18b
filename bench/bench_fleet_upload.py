#!/usr/bin/env python3
"""One image to many hosts: ``Fleet.upload_image`` against uploading to one host after another, in the same run.

    .venv/bin/python bench/bench_fleet_upload.py [--hosts 10] [--size-mib 8] [--latency-ms 20] [--repeat 3]

The hosts are ``--hosts`` loopback Hyper-V hosts, each a ``polyvisor-hyperv-host`` process whose cmdlets take
``--latency-ms`` (the network and Windows' own time per request; half of them over PSRP/HTTPS, half over the WinRM
shell/HTTP). The image is ``--size-mib`` of random data: a Hyper-V upload is one request per 64 KiB chunk, then a
hash check and a rename. Measured on warm pooled connections, median of ``--repeat``: ``fleet.upload_image()``
(every host at once) against a loop calling ``conn.upload_image()`` on the same connections one host after
another. Every volume uploaded is named ``pvbench-fleet-upload-*`` and removed; every host process and temporary
directory goes at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time

from bench_fleet import HostProcess, lab  # the same host processes as the fleet bench

import polyvisor

MIB = 1024 * 1024
PREFIX = "pvbench-fleet-upload-"


def remove(fleet: polyvisor.Fleet, names: set[str]) -> None:
    def clean(conn: polyvisor.Connection) -> None:
        for volume in conn.volumes(timeout=30):
            if volume.name in names or any(volume.name.endswith(name) for name in names):
                conn.delete_volume(volume.name, timeout=30)

    fleet.map(clean, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--size-mib", type=float, default=8.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with lab() as made:
        processes: list[HostProcess] = made.start_hosts(args.hosts, args.latency_ms)
        hosts = {f"hv{i:02d}": host.entry(f"hv{i:02d}", psrp=i % 2 == 0) for i, host in enumerate(processes)}
        image = made.tmp / "image.img"
        image.write_bytes(os.urandom(int(args.size_mib * MIB)))
        with polyvisor.Fleet(hosts, timeout=120, max_concurrency=args.hosts) as fleet:
            opened = fleet.map(lambda conn: conn.host_info(), timeout=120)
            assert opened.ok, opened.errors
            times: dict[str, list[float]] = {"fleet": [], "one after another": []}
            names: set[str] = set()
            try:
                for run in range(args.repeat):
                    order = list(times) if run % 2 == 0 else list(reversed(times))
                    for way in order:
                        name = f"{PREFIX}{secrets.token_hex(3)}.img"
                        names.add(name)
                        started = time.perf_counter()
                        if way == "fleet":
                            result = fleet.upload_image(image, name=name, timeout=600)
                            assert result.ok, result.errors
                        else:
                            for host in hosts:
                                fleet.connection(host).upload_image(image, name=name, timeout=600)
                        times[way].append(time.perf_counter() - started)
                    remove(fleet, names)
            finally:
                remove(fleet, names)
    median = {way: statistics.median(values) for way, values in times.items()}
    print(
        f"{args.hosts} hosts, a {args.size_mib:g} MiB image, cmdlet latency {args.latency_ms:g} ms, "
        f"median of {args.repeat}:"
    )
    for way, seconds in median.items():
        print(f"  {way:<18} {seconds:8.2f} s   {args.size_mib * args.hosts / seconds:7.2f} MiB/s in all")
    print(f"  fleet / one after another: {median['fleet'] / median['one after another']:.2f}x the time")


if __name__ == "__main__":
    main()
