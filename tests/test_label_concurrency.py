"""Concurrent label updates lose nothing: threads, connections and processes all go through the core's lock.

Each writer updates only its own keys, round after round; at the end every key must hold its last round's value.
A lost update (two read-modify-write cycles interleaving) leaves some key at an older value, or missing.

The process test needs a hypervisor shared across processes, which ``memory://`` is not, so it builds one here: a
backend that keeps its VMs in a JSON file and deliberately reads, waits, then writes. The same scenario run
around the core (calling ``backend.set_labels`` directly) must lose writes, which shows the test can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid as uuid_module
from collections.abc import Mapping
from pathlib import Path

import pytest

import polyvisor
from polyvisor import Connection, Plugins
from polyvisor.backend import Backend, Credentials, Deadline
from polyvisor.errors import BackendError, NotFoundError
from polyvisor.model import HostInfo, PowerState, ShutdownMode, VMDetails, VMInfo, VMSpec, VMStatus
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI

HERE = Path(__file__).parent
THREADS = 24
ROUNDS = 10


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lock files of this test only (the core reads $POLYVISOR_LOCK_DIR at every update)."""
    path = tmp_path / "locks"
    monkeypatch.setenv("POLYVISOR_LOCK_DIR", str(path))
    return path


class SlowWriter(MemoryBackend):
    """``memory://`` whose label write lands a little after it is asked for, widening any race window."""

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        time.sleep(0.0005)
        super().set_labels(uuid, labels)


def _hammer(handles: list[polyvisor.VM]) -> None:
    """THREADS threads, thread i updating key ``k<i>`` through ``handles[i % len(handles)]`` ROUNDS times."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        vm = handles[index % len(handles)]
        try:
            start.wait(10)
            for round_ in range(ROUNDS):
                vm.update_labels({f"k{index}": f"r{round_}"})
        except BaseException as error:  # reported below, with the thread's index
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)


def _expected_threads() -> dict[str, str]:
    return {f"k{i}": f"r{ROUNDS - 1}" for i in range(THREADS)}


def _slow_connection(host_name: str) -> Connection:
    uri = URI.parse(f"memory:///{host_name}")
    return Connection(SlowWriter(uri, Credentials()), uri)


def test_threads_on_one_connection_lose_no_update(host_name: str) -> None:
    with _slow_connection(host_name) as conn:
        vm = conn.create({"name": "shared", "labels": {"keep": "me"}})
        _hammer([vm])
        assert dict(vm.labels()) == {"keep": "me", **_expected_threads()}


def test_threads_on_several_connections_lose_no_update(host_name: str) -> None:
    conns = [_slow_connection(host_name) for _ in range(6)]
    try:
        vm = conns[0].create({"name": "shared", "labels": {"keep": "me"}})
        handles = [conn.vm(vm.uuid) for conn in conns]
        _hammer(handles)
        for handle in handles:
            assert dict(handle.labels()) == {"keep": "me", **_expected_threads()}
    finally:
        for conn in conns:
            conn.close()


# -- across processes --------------------------------------------------------------------------------------------

WINDOW = 0.02
"""Seconds the file backend waits between reading the store and writing it back."""


class FileBackend(Backend):
    """VMs in one JSON file shared by every process; label writes read, wait, then write the whole file."""

    name = "json file"

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        self.uri = uri
        self.path = Path(uri.path)

    def close(self) -> None:
        pass

    def _load(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, object]] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _store(self, data: dict[str, dict[str, object]]) -> None:
        scratch = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        scratch.write_text(json.dumps(data), encoding="utf-8")
        scratch.replace(self.path)  # readers see the old file or the new one, never half of one

    def _info(self, uuid: str, record: Mapping[str, object]) -> VMInfo:
        labels = record["labels"]
        assert isinstance(labels, dict)
        details = VMDetails(1, 512, dict(labels))
        return VMInfo(uuid, str(record["name"]), VMStatus(PowerState.STOPPED, "off"), False, details)

    def host_info(self) -> HostInfo:
        return HostInfo("file", "json", "1", 1, 1024, "x86_64")

    def list_vms(self) -> list[VMInfo]:
        return [self._info(uuid, record) for uuid, record in self._load().items()]

    def lookup(self, ref: str) -> VMInfo:
        for info in self.list_vms():
            if ref in (info.uuid, info.name):
                return info
        raise NotFoundError(f"no VM {ref!r}")

    def info(self, uuid: str) -> VMInfo:
        return self.lookup(uuid)

    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        data = self._load()
        uuid = str(uuid_module.uuid4())
        data[uuid] = {"name": spec.name, "labels": dict(spec.labels)}
        self._store(data)
        return self._info(uuid, data[uuid])

    def start(self, uuid: str, deadline: Deadline) -> None:
        raise BackendError("this store only keeps labels")

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        raise BackendError("this store only keeps labels")

    def stop(self, uuid: str, deadline: Deadline) -> None:
        raise BackendError("this store only keeps labels")

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        data = self._load()
        del data[uuid]
        self._store(data)

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        data = self._load()
        time.sleep(WINDOW)  # the deliberate read-modify-write window
        data[uuid]["labels"] = dict(labels)
        self._store(data)


PROCESSES = 4
KEYS_PER_PROCESS = 2
PROCESS_ROUNDS = 4


def _file_connection(store: Path) -> Connection:
    uri = URI.parse(f"jsonfile://{store}")
    return Connection(FileBackend(uri, Credentials()), uri)


def worker(store: str, uuid: str, index: int, through_core: bool) -> None:
    """One process's writer: announce readiness, wait for "go" on stdin, then update its own keys."""
    with _file_connection(Path(store)) as conn:
        vm = conn.vm(uuid)
        backend = conn.backend
        print("ready", flush=True)
        assert sys.stdin.readline().strip() == "go"
        for round_ in range(PROCESS_ROUNDS):
            for key in range(KEYS_PER_PROCESS):
                change = {f"p{index}-{key}": f"r{round_}"}
                if through_core:
                    vm.update_labels(change)
                else:  # the same read-modify-write, without the core and its lock
                    backend.set_labels(uuid, {**vm.labels(), **change})


def _run_workers(store: Path, uuid: str, lock_dir: Path, *, through_core: bool) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_label_concurrency as t; "
        "t.worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == 'core')"
    )
    env = {**os.environ, "POLYVISOR_LOCK_DIR": str(lock_dir)}
    mode = "core" if through_core else "direct"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(HERE), str(store), uuid, str(i), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(PROCESSES)
    ]
    try:
        for proc in procs:  # all are connected before any writes
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _lost(store: Path, uuid: str) -> list[str]:
    with _file_connection(store) as conn:
        labels = dict(conn.vm(uuid).labels())
    expected = {f"p{i}-{key}": f"r{PROCESS_ROUNDS - 1}" for i in range(PROCESSES) for key in range(KEYS_PER_PROCESS)}
    return sorted(key for key, value in expected.items() if labels.get(key) != value)


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "store.json"
    with _file_connection(path) as conn:
        vm = conn.create({"name": "shared"})
    return path, vm.uuid


def test_processes_updating_through_the_core_lose_no_update(store: tuple[Path, str], lock_dir: Path) -> None:
    path, uuid = store
    _run_workers(path, uuid, lock_dir, through_core=True)
    assert _lost(path, uuid) == []


def test_the_same_processes_bypassing_the_core_lose_updates(store: tuple[Path, str], lock_dir: Path) -> None:
    """The control: without the core's lock the file backend's window loses writes, so the test above can fail."""
    path, uuid = store
    _run_workers(path, uuid, lock_dir, through_core=False)
    assert _lost(path, uuid) != []


def test_the_file_backend_is_reachable_through_plugins(store: tuple[Path, str]) -> None:
    path, uuid = store
    plugins = Plugins(load_entry_points=False)
    plugins.registry.add("jsonfile", FileBackend)
    with polyvisor.connect(f"jsonfile://{path}", plugins=plugins) as conn:
        assert [info.uuid for info in conn.list()] == [uuid]
        assert dict(conn.vm(uuid).update_labels({"a": "1"})) == {"a": "1"}
