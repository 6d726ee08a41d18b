"""Hyper-V queries, verbs and threads: polyvisor's warm connections against plain pywinrm, in the same run.

Everything talks to the loopback Hyper-V host (the real WS-Management protocols over HTTP with NTLM message
encryption), which counts the HTTP requests it serves. Peers: pywinrm's ``Session.run_ps``, the usual way scripts
call PowerShell remotely (a new shell and a new powershell.exe per call), and a pywinrm ``Protocol`` that keeps one
shell open. Prints, for one status query and for one warm verb (pause, then resume: state check, act, confirm),
milliseconds and HTTP requests per call and each one's ratio to polyvisor over PSRP. Then, on a host whose Hyper-V
cmdlets take ``--latency-ms`` (100 ms: real ones take tens to hundreds), the wall time of ``--threads`` threads
making ``--per-thread`` status calls each on one shared connection against one thread making all of them.

    .venv/bin/python bench/bench_hyperv.py [--calls 50] [--threads 24] [--per-thread 10] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import base64
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import winrm

import polyvisor
from polyvisor_hyperv_loopback import LoopbackHost

USER = "Administrator"


def measure(host: Any, fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """Return (median ms per call, HTTP requests per call)."""
    fn()  # warm up: authentication, shell or runspace pool
    before = host.requests_served
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, (host.requests_served - before) / calls


def wall_time(threads: int, per_thread: int, fn: Callable[[], object]) -> float:
    """Seconds for ``threads`` threads to make ``per_thread`` calls each."""
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(lambda: [fn() for _ in range(per_thread)]) for _ in range(threads)]:
            future.result()
    return time.perf_counter() - began


def concurrency(threads: int, per_thread: int, latency_ms: float) -> dict[str, tuple[float, float]]:
    """Return, per transport, (seconds for one thread making every call, seconds for the threads sharing them)."""
    password = secrets.token_urlsafe(12)
    out: dict[str, tuple[float, float]] = {}
    with LoopbackHost(
        USER, password, https=False, state_dir=tempfile.mkdtemp(), cmdlet_latency=latency_ms / 1000
    ) as host:
        base = f"hyperv://{USER}@127.0.0.1:{host.port}/?scheme=http&auth=ntlm"
        for transport in ("psrp", "winrm"):
            conn = polyvisor.connect(f"{base}&transport={transport}", password=password)
            vm = conn.create({"name": f"bench-threads-{transport}"})
            wall_time(threads, 1, vm.status)  # warm up: the sessions the threads need
            serial = wall_time(1, threads * per_thread, vm.status)
            parallel = wall_time(threads, per_thread, vm.status)
            out[transport] = (serial, parallel)
            vm.delete()
            conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, default=24)
    parser.add_argument("--per-thread", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=100)
    args = parser.parse_args()
    password = secrets.token_urlsafe(12)
    with LoopbackHost(USER, password, https=False, state_dir=tempfile.mkdtemp()) as host:
        base = f"hyperv://{USER}@127.0.0.1:{host.port}/?scheme=http&auth=ntlm"
        psrp = polyvisor.connect(base + "&transport=psrp", password=password)
        shell = polyvisor.connect(base + "&transport=winrm", password=password)
        vm = psrp.create({"name": "bench-vm"})
        endpoint = f"http://127.0.0.1:{host.port}/wsman"
        session = winrm.Session(endpoint, auth=(USER, password), transport="ntlm", message_encryption="always")
        # The VM id is a GUID we created: a fixed, validated value, so this script text is safe to build here.
        script = f"Get-VM -Id '{vm.uuid}' | Select-Object Name, State | ConvertTo-Json -Compress"

        protocol = winrm.Protocol(
            endpoint, transport="ntlm", username=USER, password=password, message_encryption="always"
        )
        shell_id = protocol.open_shell()
        encoded = base64.b64encode(script.encode("utf-16-le")).decode()

        def kept_shell() -> None:
            command = protocol.run_command(shell_id, "powershell.exe", ["-NoProfile", "-EncodedCommand", encoded])
            protocol.get_command_output(shell_id, command)
            protocol.cleanup_command(shell_id, command)

        over_psrp, over_shell = psrp.vm(vm.uuid), shell.vm(vm.uuid)
        peers: list[tuple[str, Callable[[], object]]] = [
            ("polyvisor vm.status(), PSRP", over_psrp.status),
            ("polyvisor vm.status(), WinRM shell", over_shell.status),
            ("pywinrm Session.run_ps (shell per call)", lambda: session.run_ps(script)),
            ("pywinrm Protocol, one shell kept open", kept_shell),
        ]
        results = {name: measure(host, fn, args.calls) for name, fn in peers}

        # One warm verb: polyvisor checks the state, acts, and confirms the target state. The pywinrm peer runs the
        # cmdlet and reads the state back in one script (no state check first). The VM id is a GUID we created.
        def toggle(pause: Callable[[], object], resume: Callable[[], object]) -> Callable[[], object]:
            paused = [False]

            def verb() -> None:
                (resume if paused[0] else pause)()
                paused[0] = not paused[0]

            return verb

        def run_ps_verb(cmdlet: str) -> Callable[[], object]:
            return lambda: session.run_ps(f"Get-VM -Id '{vm.uuid}' | {cmdlet}; (Get-VM -Id '{vm.uuid}').State")

        psrp.vm(vm.uuid).start()
        verbs: list[tuple[str, Callable[[], object]]] = [
            ("polyvisor pause/resume, PSRP", toggle(over_psrp.pause, over_psrp.resume)),
            ("polyvisor pause/resume, WinRM shell", toggle(over_shell.pause, over_shell.resume)),
            ("pywinrm run_ps Suspend-VM/Resume-VM", toggle(run_ps_verb("Suspend-VM"), run_ps_verb("Resume-VM"))),
        ]
        calls = args.calls - args.calls % 2  # an even number: the VM ends running
        verb_results = {name: measure(host, fn, calls) for name, fn in verbs}
        psrp.vm(vm.uuid).ensure("stopped", force=True)
        protocol.close_shell(shell_id)
        vm.delete()
        psrp.close()
        shell.close()
    _table(
        f"one VM status query, median of {args.calls} calls on a warm connection (loopback host, HTTP + NTLM)", results
    )
    _table(f"one warm verb (pause or resume), median of {calls} calls", verb_results)
    threads = concurrency(args.threads, args.per_thread, args.latency_ms)
    total = args.threads * args.per_thread
    print()
    print(f"{total} status calls on one connection, Hyper-V cmdlets taking {args.latency_ms:g} ms on the host")
    print(
        f"{'transport':12} {f'1 thread x {total} (s)':>20} {f'{args.threads} x {args.per_thread} (s)':>16} "
        f"{'speed-up':>9}"
    )
    for transport, (serial, parallel) in threads.items():
        print(f"{transport:12} {serial:20.2f} {parallel:16.2f} {serial / parallel:8.1f}x")


def _table(title: str, results: dict[str, tuple[float, float]]) -> None:
    base_ms, base_requests = next(iter(results.values()))
    print()
    print(title)
    print(f"{'implementation':42} {'ms':>7} {'requests':>9} {'time ratio':>11} {'request ratio':>14}")
    for name, (ms, requests) in results.items():
        print(f"{name:42} {ms:7.1f} {requests:9.1f} {ms / base_ms:10.2f}x {requests / base_requests:13.2f}x")


if __name__ == "__main__":
    main()
