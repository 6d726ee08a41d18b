"""Label updates from several processes on libvirtd: the core's per-VM lock loses none of them.

Four processes, each with its own connection to qemu:///system, update their own keys on one domain at the same
time. libvirt stores the label block as one metadata element, so without the lock each process's read-modify-write
would overwrite the others'; the test also shows that baseline, so it can fail.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from .support import URI

if TYPE_CHECKING:
    from polyvisor import Connection

    from .pvguest import Guests
    from .support import GuestImage

PROCESSES = 4
KEYS_PER_PROCESS = 3
ROUNDS = 10


_WORKER = """
import sys
import polyvisor

uri, uuid, worker, mode, rounds, keys = sys.argv[1:7]
with polyvisor.connect(uri) as conn:
    vm = conn.vm(uuid)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says go once every worker is connected: now they overlap
    for round_ in range(int(rounds)):
        changes = {f"p{worker}-k{key}": f"r{round_}" for key in range(int(keys))}
        if mode == "core":
            vm.update_labels(changes)
        else:  # the same read-modify-write, without the core's lock
            conn.backend.set_labels(uuid, {**vm.labels(), **changes})
"""


def _run_workers(uuid: str, through_core: bool) -> None:
    mode = "core" if through_core else "bypass"
    args = [URI, uuid, "", mode, str(ROUNDS), str(KEYS_PER_PROCESS)]
    workers = []
    for index in range(PROCESSES):
        args[2] = str(index)
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    for process in workers:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", "a worker could not connect"
    for process in workers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in workers:
        process.stdin.close()  # type: ignore[union-attr]  # set above
        code = process.wait(120)
        process.stdout.close()  # type: ignore[union-attr]
        assert code == 0, f"a worker failed (exit code {code})"


def _lost(labels: dict[str, str]) -> list[str]:
    wanted = {f"p{w}-k{k}" for w in range(PROCESSES) for k in range(KEYS_PER_PROCESS)}
    return sorted(key for key in wanted if labels.get(key) != f"r{ROUNDS - 1}")


def _defined(guests: Guests, image: GuestImage, tag: str) -> str:
    vm = guests.create(image, tag)
    return vm.uuid


def test_processes_updating_labels_lose_none(pv_conn: Connection, guests: Guests, x86_image: GuestImage) -> None:
    uuid = _defined(guests, x86_image, "lbl")
    _run_workers(uuid, through_core=True)
    assert _lost(dict(pv_conn.vm(uuid).labels())) == []


def test_the_same_processes_bypassing_the_lock_lose_updates(
    pv_conn: Connection, guests: Guests, x86_image: GuestImage
) -> None:
    """The control: libvirt itself offers no compare-and-set, so unlocked writers overwrite each other."""
    uuid = _defined(guests, x86_image, "lbr")
    for _attempt in range(3):  # the race needs overlap; three tries make a false pass vanishingly rare
        pv_conn.vm(uuid).set_labels({})
        _run_workers(uuid, through_core=False)
        if _lost(dict(pv_conn.vm(uuid).labels())):
            return
    raise AssertionError("unlocked read-modify-write never lost an update: this test cannot tell the lock works")
