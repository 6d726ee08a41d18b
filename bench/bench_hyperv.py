"""One Hyper-V query, repeated: polyvisor's warm connections against plain pywinrm, in the same run.

Everything talks to the loopback Hyper-V host (the real WS-Management protocols over HTTP with NTLM message
encryption), which counts the HTTP requests it serves. Peers: pywinrm's ``Session.run_ps``, the usual way scripts
call PowerShell remotely (a new shell and a new powershell.exe per call), and a pywinrm ``Protocol`` that keeps one
shell open. Prints milliseconds and HTTP requests per query, and each one's ratio to polyvisor over PSRP.

    .venv/bin/python bench/bench_hyperv.py [--calls 50]
"""

from __future__ import annotations

import argparse
import base64
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
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
        protocol.close_shell(shell_id)
        vm.delete()
        psrp.close()
        shell.close()
    base_ms, base_requests = results["polyvisor vm.status(), PSRP"]
    print(f"one VM status query, median of {args.calls} calls on a warm connection (loopback host, HTTP + NTLM)")
    print(f"{'implementation':42} {'ms':>7} {'requests':>9} {'time ratio':>11} {'request ratio':>14}")
    for name, (ms, requests) in results.items():
        print(f"{name:42} {ms:7.1f} {requests:9.1f} {ms / base_ms:10.2f}x {requests / base_requests:13.2f}x")


if __name__ == "__main__":
    main()
