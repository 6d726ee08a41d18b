"""A cold process's first fan-out imports nothing on its fan-out threads.

First imports racing on several threads can deadlock (``_DeadlockError: deadlock detected by
_ModuleLock('requests.exceptions')``, about one ``polyvisor -c GROUP list`` in a hundred): the fleet imports each
backend, and the client libraries the backend loads lazily, on the calling thread before it fans out. Each run is a
fresh interpreter, so nothing is imported yet when the fan-out starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .conftest import MixedFleet

pytestmark = pytest.mark.loopback

RUNS = 16
AT_ONCE = 4

# Run in a fresh interpreter: record every module first imported on a thread other than the main one, list the
# fleet's VMs at once, and print the imports and each host's outcome as JSON.
COLD_FAN_OUT = r"""
import json, sys, threading

late = []

def audit(event, args):
    if event == "import" and threading.current_thread() is not threading.main_thread() and args[0] not in sys.modules:
        late.append([threading.current_thread().name, args[0]])

sys.addaudithook(audit)

import polyvisor
from polyvisor.config import NamedConnection

hosts = {name: NamedConnection(name, **entry) for name, entry in json.loads(sys.argv[1]).items()}
if sys.argv[2] == "asyncio":
    import asyncio
    import polyvisor.aio

    async def listing():
        async with polyvisor.aio.AsyncFleet(hosts, timeout=30) as fleet:
            return await fleet.list()

    listed = asyncio.run(listing())
else:
    with polyvisor.Fleet(hosts, timeout=30) as fleet:
        listed = fleet.list()
outcome = {host: type(error).__name__ + ": " + str(error) for host, error in listed.errors.items()}
print(json.dumps({"late_imports": late, "errors": outcome}))
"""


def _cold_run(hosts: str, face: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", COLD_FAN_OUT, hosts, face], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _codec(module: str) -> bool:
    # A text codec (encodings.utf_16_le, ...) imports nothing but the already loaded codecs module: it can hold
    # no import lock while waiting for another, so it takes no part in an import deadlock.
    return module.startswith("encodings.")


@pytest.mark.parametrize("face", ["threads", "asyncio"])
def test_cold_processes_import_every_backend_before_fanning_out(mixed: MixedFleet, face: str) -> None:
    entries = {
        name: {
            "uri": entry.uri,
            "username": entry.username,
            "password_env": entry.password_env,
            "options": dict(entry.options),
        }
        for name, entry in mixed.hosts.items()
        if name in ("hv-psrp", "hv-winrm", "t1", "t3", "dead")  # both Hyper-V transports, libvirt, a dead host
    }
    hosts = json.dumps(entries)
    with ThreadPoolExecutor(AT_ONCE) as pool:
        runs = list(pool.map(_cold_run, [hosts] * RUNS, [face] * RUNS))
    for run in runs:
        assert set(run["errors"]) == {"dead"}, run["errors"]
        assert run["errors"]["dead"].startswith("ConnectionError: "), run["errors"]
        late = [f"{module} (on {thread})" for thread, module in run["late_imports"] if not _codec(module)]
        assert not late, f"{len(late)} modules first imported on fan-out threads: {', '.join(late[:12])}, ..."
