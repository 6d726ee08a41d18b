"""Fleet fan-out: ``polyvisor.Fleet`` against a sequential loop and against Ansible, measured in the same run.

Part 1, listing: ``--hosts`` hosts (default 20): ``--hyperv`` loopback Hyper-V hosts, each a
``polyvisor-hyperv-host`` process whose cmdlets take ``--latency-ms`` (the network and Windows' own time; half of
them over PSRP/HTTPS, half over the WinRM shell/HTTP), one ``qemu:///system`` (the real libvirtd, over its RPC) and
private libvirt test hypervisors (``test:///<node.xml>``) for the rest, each with ``--vms`` VMs. Measures, warm,
median of ``--repeat``: ``fleet.list()`` (every host at once) against a loop calling ``conn.list()`` on the same
pooled connections one host after another. Then the memory each pooled connection holds, per kind of host. Then
one exporter scrape of that fleet (``GET /metrics`` of ``polyvisor exporter``'s server): its time against
``fleet.stats()`` and a ``conn.stats()`` loop, and the slowest host's share of it (``--skip-scrape`` leaves it out).

Part 2, ``ensure(running)``: ``--ensure-vms`` VMs per Hyper-V host (default 10 x 10 = 100), created stopped and
set back to stopped before every round. ``fleet.ensure(fleet.select(labels=...), "running")`` in a fresh fleet
(connections opened in the timing, as a script would) and in a warm one, against ``ansible-playbook`` running the
collection's ``polyvisor.hypervisors.vm`` module with ``state: running``, one inventory host per VM, ``--forks``
forks, the local connection and this Python as the interpreter, and against one task of the collection's
``polyvisor.hypervisors.vms`` module selecting the same VMs by label (one process, through ``Fleet``; target: within
1.5x of the fresh fleet). ``ansible.builtin.ping`` over the same inventory and forks gives Ansible's own floor (a
process and a module per task, no polyvisor). ``--skip-per-vm-ansible`` leaves out the per-VM run.

    .venv/bin/python bench/bench_fleet.py [--hyperv 10] [--hosts 20] [--vms 3] [--latency-ms 100] [--repeat 5]
                                          [--ensure-vms 10] [--rounds 2] [--forks 20]
                                          [--skip-listing] [--skip-per-vm-ansible]

Every host process, temporary directory and VM it made is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

import polyvisor
from polyvisor.config import NamedConnection
from polyvisor.metrics.exporter import Exporter, FleetCollector
from polyvisor_hyperv_loopback.launch import HostDidNotStop, spawn_host
from polyvisor_hyperv_loopback.launch import HostProcess as LaunchedHost

ROOT = Path(__file__).resolve().parent.parent
COLLECTION_DIR = ROOT / "integrations" / "ansible"
HV_USER = "Administrator"
PASSWORD_ENV = "PVBENCH_FLEET_HV_PASSWORD"
KVM_URI = "qemu:///system"
LABEL = {"pvbench": "fleet-ensure"}
HOST_START_TIMEOUT = 120.0  # seconds for every host process to be serving, on a busy 2-core machine


# -- the hosts -----------------------------------------------------------------------------------------------------
@dataclass
class HostProcess:
    """One ``polyvisor-hyperv-host`` process: a Hyper-V host of its own, its VMs kept while it runs."""

    launched: LaunchedHost
    http_port: int = 0
    https_port: int = 0
    ca_path: str = ""

    def entry(self, name: str, *, psrp: bool) -> NamedConnection:
        """The fleet entry: PSRP over HTTPS (certificate checked against the host's CA), or the WinRM shell."""
        credentials: dict[str, Any] = {"username": HV_USER, "password_env": PASSWORD_ENV}
        if psrp:
            uri = f"hyperv://127.0.0.1:{self.https_port}/?transport=psrp"
            return NamedConnection(name, uri, options={"ca_path": self.ca_path}, **credentials)
        uri = f"hyperv://127.0.0.1:{self.http_port}/?transport=winrm&scheme=http&auth=ntlm"
        return NamedConnection(name, uri, **credentials)


@dataclass
class Lab:
    """Everything the bench starts or makes, removed by :meth:`close`."""

    tmp: Path
    processes: list[HostProcess] = field(default_factory=list)
    kvm_vms: list[str] = field(default_factory=list)

    def start_hosts(self, count: int, latency_ms: float) -> list[HostProcess]:
        """Start ``count`` host processes at once; return them once every one serves."""
        started = []
        for index in range(count):
            state = self.tmp / f"hvhost-{index}"
            state.mkdir()
            launched = spawn_host(
                [
                    *("--http-port", "0", "--https-port", "0", "--state-dir", str(state)),
                    *("--username", HV_USER, "--password-env", PASSWORD_ENV),
                    *("--cmdlet-latency-ms", str(latency_ms)),
                ],
                ready_file=state / "ready.json",
            )
            host = HostProcess(launched)
            self.processes.append(host)
            started.append(host)
        deadline = time.monotonic() + HOST_START_TIMEOUT
        for host in started:
            host.launched.wait_ready(timeout=max(0.0, deadline - time.monotonic()))
            endpoints = host.launched.endpoints
            host.http_port = endpoints["http"]["port"]
            host.https_port = endpoints["https"]["port"]
            host.ca_path = endpoints["https"]["ca_path"]
        return started

    def close(self) -> None:
        if self.kvm_vms:
            with contextlib.suppress(polyvisor.PolyvisorError), polyvisor.connect(KVM_URI) as conn:
                for name in self.kvm_vms:
                    if conn.exists(name):
                        conn.vm(name).delete()
        for host in self.processes:
            host.launched.terminate()
        for host in self.processes:
            with contextlib.suppress(HostDidNotStop):  # killed: nothing is left to clean
                host.launched.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    """A temporary directory and the password of the hosts; everything made in it goes at the end, signals too."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    os.environ[PASSWORD_ENV] = "Bench-" + secrets.token_urlsafe(12)
    made = Lab(Path(tempfile.mkdtemp(prefix="pvbench-fleet-")))
    try:
        yield made
    finally:
        made.close()
        os.environ.pop(PASSWORD_ENV, None)
        signal.signal(signal.SIGTERM, previous)


def node_xml(vms: int, tag: str) -> str:
    """A private libvirt test hypervisor of 4 CPUs and 4 GiB with ``vms`` small domains."""
    domains = "".join(
        f"<domain type='test'><name>pvbench-{tag}-{index}</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory>65536</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
        for index in range(vms)
    )
    return (
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active>"
        f"<mhz>2000</mhz><model>x86_64</model></cpu><memory>4194304</memory>{domains}</node>"
    )


# -- part 1: listing ---------------------------------------------------------------------------------------------
def rss_kib() -> int:
    """This process's resident set, KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def listing_bench(lab: Lab, hv: list[HostProcess], args: argparse.Namespace) -> None:
    hosts: dict[str, NamedConnection] = {}
    kinds: dict[str, list[str]] = {}
    for index, host in enumerate(hv):
        psrp = index % 2 == 0
        name = f"hv{index:02d}"
        hosts[name] = host.entry(name, psrp=psrp)
        kinds.setdefault("Hyper-V, PSRP/HTTPS" if psrp else "Hyper-V, WinRM shell/HTTP", []).append(name)
    with polyvisor.connect(KVM_URI) as conn:
        for index in range(args.vms):
            name = f"pvbench-fleet-{uuid.uuid4().hex[:8]}-{index}"
            lab.kvm_vms.append(name)
            conn.create({"name": name, "cpus": 1, "memory_mib": 64})
    hosts["kvm"] = NamedConnection("kvm", KVM_URI)
    kinds["libvirt qemu:///system"] = ["kvm"]
    for index in range(args.hosts - len(hosts)):
        node = lab.tmp / f"node-{index}.xml"
        node.write_text(node_xml(args.vms, f"t{index}"), encoding="utf-8")
        hosts[f"test{index:02d}"] = NamedConnection(f"test{index:02d}", f"test://{node}")
        kinds.setdefault("libvirt test:///node.xml", []).append(f"test{index:02d}")

    def create_vms(conn: polyvisor.Connection) -> None:
        for index in range(args.vms):
            conn.create({"name": f"pvbench-list-{index}", "memory_mib": 512})

    # Warm-up in a throwaway fleet, one host of each kind: imports, the first TLS context, the backends' caches.
    # Its Hyper-V connections also create each Hyper-V host's VMs (they outlive the connection, not the process).
    with polyvisor.Fleet({name: hosts[name] for name in [names[0] for names in kinds.values()]}) as warm:
        warm.list().raise_for_errors()
    with polyvisor.Fleet({name: hosts[name] for name in hosts if name.startswith("hv")}) as setup:
        setup.map(create_vms).raise_for_errors()

    fleet = polyvisor.Fleet(hosts)
    try:
        # Memory: open each kind's connections (a listing opens them), in a fleet whose pool is cold.
        memory: dict[str, tuple[float, float]] = {}
        tracemalloc.start()
        for kind, names in kinds.items():
            gc.collect()
            traced, rss = tracemalloc.get_traced_memory()[0], rss_kib()
            fleet.list(hosts=names).raise_for_errors()
            gc.collect()
            memory[kind] = (
                (tracemalloc.get_traced_memory()[0] - traced) / 1024 / len(names),
                (rss_kib() - rss) / len(names),
            )
        tracemalloc.stop()

        conns = {name: fleet.connection(name) for name in hosts}
        per_host: dict[str, list[float]] = {name: [] for name in hosts}

        def sequential() -> int:
            count = 0
            for name, conn in conns.items():
                began = time.perf_counter()
                count += len(conn.list())
                per_host[name].append(time.perf_counter() - began)
            return count

        fan_out: dict[str, list[float]] = {name: [] for name in hosts}

        def concurrent() -> int:
            result = fleet.list().raise_for_errors()
            for name, outcome in result.items():
                fan_out[name].append(outcome.elapsed)
            return sum(len(vms) for vms in result.values.values())

        seq_times, conc_times = [], []
        count = sequential() + concurrent()  # first calls, untimed
        for values in (*per_host.values(), *fan_out.values()):
            values.clear()
        for _ in range(args.repeat):  # interleaved, so a neighbour's load spike hits both alike
            began = time.perf_counter()
            count = concurrent()
            conc_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            sequential()
            seq_times.append(time.perf_counter() - began)
        if not args.skip_scrape:
            scrape_bench(fleet, conns, args)
    finally:
        fleet.close()

    seq, conc = statistics.median(seq_times), statistics.median(conc_times)
    print()
    print(
        f"fleet listing: {len(hosts)} hosts, {count} VMs, Hyper-V cmdlets taking {args.latency_ms:g} ms, "
        f"warm, median of {args.repeat}"
    )
    print(f"{'':38} {'ms':>8} {'ms per host':>12} {'ratio':>7}")
    print(f"{'polyvisor fleet.list() (concurrent)':38} {conc * 1000:8.1f} {conc * 1000 / len(hosts):12.1f} {1:6.2f}x")
    print(f"{'conn.list() loop (sequential)':38} {seq * 1000:8.1f} {seq * 1000 / len(hosts):12.1f} {seq / conc:6.2f}x")
    print()
    print(
        f"{'per kind of host':28} {'hosts':>5} {'loop ms/host':>13} {'in fleet.list()':>16} "
        f"{'Python KiB/conn':>16} {'RSS KiB/conn':>13}"
    )
    for kind, names in kinds.items():
        loop_ms = statistics.median(statistics.median(per_host[name]) for name in names) * 1000
        fleet_ms = statistics.median(statistics.median(fan_out[name]) for name in names) * 1000
        traced_kib, rss_delta = memory[kind]
        print(f"{kind:28} {len(names):5d} {loop_ms:13.1f} {fleet_ms:16.1f} {traced_kib:16.0f} {rss_delta:13.0f}")
    print(
        "(Python KiB/conn: tracemalloc, Python objects a pooled connection keeps after it opened and listed, "
        "exact and attributable;\n RSS KiB/conn: the resident-set growth, which adds C libraries' memory "
        "(libvirt, OpenSSL) and thread stacks, but moves in allocator-sized steps)"
    )


# -- part 1b: one exporter scrape of the same fleet --------------------------------------------------------------
def scrape_bench(fleet: polyvisor.Fleet, conns: dict[str, polyvisor.Connection], args: argparse.Namespace) -> None:
    """Time one ``/metrics`` scrape of the whole fleet (HTTP, sampling, rendering) and the slowest host's share.

    Peers in the same run, on the same pooled connections: ``fleet.stats()`` (the sample without HTTP or rendering)
    and a loop calling ``conn.stats()`` one host after another.
    """
    scrapes: list[tuple[float, dict[str, float]]] = []
    bare: list[float] = []
    loop: list[float] = []
    with Exporter(FleetCollector(fleet), "127.0.0.1", 0).start() as exporter:

        def scrape() -> tuple[float, dict[str, float]]:
            began = time.perf_counter()
            with urllib.request.urlopen(exporter.url, timeout=120) as reply:
                text = reply.read().decode()
            elapsed = time.perf_counter() - began
            per_host: dict[str, float] = {}
            failed: list[str] = []
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "polyvisor_scrape_duration_seconds":
                        per_host[sample.labels["host"]] = sample.value
                    elif sample.name == "polyvisor_scrape_success" and sample.value != 1:
                        failed.append(sample.labels["host"])
            if failed or set(per_host) != set(conns):
                raise SystemExit(f"the scrape lost hosts: failed {sorted(failed)}, got {sorted(per_host)}")
            return elapsed, per_host

        def sample_loop() -> None:
            for conn in conns.values():
                conn.stats()

        scrape()  # first scrape, untimed: the stats paths' first calls (metering enabled, capabilities read)
        for _ in range(args.repeat):  # interleaved, as above
            scrapes.append(scrape())
            began = time.perf_counter()
            fleet.stats().raise_for_errors()
            bare.append(time.perf_counter() - began)
            began = time.perf_counter()
            sample_loop()
            loop.append(time.perf_counter() - began)
    scrape_s = statistics.median(elapsed for elapsed, _ in scrapes)
    bare_s, loop_s = statistics.median(bare), statistics.median(loop)
    slowest = {name: statistics.median(hosts[name] for _, hosts in scrapes) for name in conns}
    worst = max(slowest, key=slowest.__getitem__)
    print()
    print(f"exporter scrape: {len(conns)} hosts, warm, median of {args.repeat}")
    print(f"{'':38} {'ms':>8} {'ratio':>7}")
    print(f"{'GET /metrics (sample, render, HTTP)':38} {scrape_s * 1000:8.1f} {1:6.2f}x")
    print(f"{'fleet.stats() (the sample alone)':38} {bare_s * 1000:8.1f} {bare_s / scrape_s:6.2f}x")
    print(f"{'conn.stats() loop (sequential)':38} {loop_s * 1000:8.1f} {loop_s / scrape_s:6.2f}x")
    print(
        f"slowest host {worst}: {slowest[worst] * 1000:.1f} ms, {slowest[worst] / scrape_s:.0%} of the scrape "
        f"(the rest is the fan-out's overhead, rendering and HTTP)"
    )


# -- part 2: ensure(running) against Ansible ---------------------------------------------------------------------
def ansible_program(name: str) -> str:
    """An ansible-core program, next to this Python first."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: ansible-core is not installed (scripts/bootstrap installs it)")
    return found


@dataclass
class AnsibleRun:
    home: Path
    env: dict[str, str]

    def run(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ansible_program(name), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            check=False,
            timeout=600,
        )

    def playbook(
        self, playbook: Path, inventory: Path, forks: int, *extra: str
    ) -> tuple[float, dict[str, dict[str, int]]]:
        """Run a playbook; return its wall time and the PLAY RECAP counters per inventory host."""
        began = time.perf_counter()
        done = self.run("ansible-playbook", "-i", str(inventory), "--forks", str(forks), *extra, str(playbook))
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"ansible-playbook failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        recap: dict[str, dict[str, int]] = {}
        for line in done.stdout.split("PLAY RECAP", 1)[-1].splitlines():
            host, colon, rest = line.partition(" : ")
            if colon:
                counters = (item.split("=") for item in rest.split())
                recap[host.strip()] = {key: int(value) for key, value in counters}
        return elapsed, recap


def install_collection(home: Path) -> AnsibleRun:
    """Build the collection with ansible-galaxy and install the tarball in a private collections path."""
    home.mkdir()
    config = home / "ansible.cfg"
    config.write_text("[defaults]\nhost_key_checking = False\n", encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(home / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TMP": str(home / "remote-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "PYTHONWARNINGS": "",
    }
    ansible = AnsibleRun(home, env)
    built = ansible.run("ansible-galaxy", "collection", "build", str(COLLECTION_DIR), "--output-path", str(home))
    tarballs = list(home.glob("polyvisor-hypervisors-*.tar.gz"))
    if built.returncode != 0 or len(tarballs) != 1:
        raise RuntimeError(f"ansible-galaxy collection build failed:\n{built.stdout}\n{built.stderr}")
    installed = ansible.run(
        "ansible-galaxy", "collection", "install", str(tarballs[0]), "-p", str(home / "collections"), "--force"
    )
    if installed.returncode != 0:
        raise RuntimeError(f"ansible-galaxy collection install failed:\n{installed.stdout}\n{installed.stderr}")
    return ansible


PLAYBOOK = """\
# Every VM of the inventory runs: one inventory host per VM, the module run on the controller (local connection).
- name: The bench VMs run
  hosts: bench_vms
  gather_facts: false
  tasks:
    - name: The VM runs
      polyvisor.hypervisors.vm:
        uri: "{{ hv_uri }}"
        password: "{{ lookup('ansible.builtin.env', 'PASSWORD_ENV') }}"
        ca_path: "{{ hv_ca_path | default(omit) }}"
        name: "{{ inventory_hostname }}"
        state: running
""".replace("PASSWORD_ENV", PASSWORD_ENV)

SELECTION = """\
# The same VMs in one task: the collection's polyvisor.hypervisors.vms module selects them by label across the
# fleet and brings them to running through polyvisor.Fleet, in one module process.
- name: The bench VMs run, one task for the selection
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Every VM of the selection runs
      polyvisor.hypervisors.vms:
        connections: "{{ fleet }}"
        select:
          labels: LABEL
        state: running
""".replace("LABEL", json.dumps(LABEL))

PING = """\
# Ansible's floor: the same hosts, forks and connection, a module that does nothing.
- name: Ansible alone
  hosts: bench_vms
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def inventory(hosts: dict[str, NamedConnection], names: dict[str, list[str]]) -> dict[str, Any]:
    """One inventory host per VM, in a group per Hyper-V host carrying its URI (and CA) as group vars."""
    groups: dict[str, Any] = {}
    for host, entry in hosts.items():
        variables = {"hv_uri": entry.uri.replace("hyperv://", f"hyperv://{HV_USER}@", 1)}
        if "ca_path" in entry.options:
            variables["hv_ca_path"] = str(entry.options["ca_path"])
        groups[f"hv_{host}"] = {"hosts": dict.fromkeys(names[host]), "vars": variables}
    return {
        "bench_vms": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": groups,
        }
    }


def selection_vars(hosts: dict[str, NamedConnection]) -> dict[str, Any]:
    """The fleet as the vms module's ``connections`` (the password read from the environment, never written)."""
    fleet = []
    for host, entry in hosts.items():
        fleet.append(
            {
                "name": host,
                "uri": entry.uri,
                "username": entry.username,
                "password_env": entry.password_env,
                "options": dict(entry.options),
            }
        )
    return {"fleet": fleet}


def each_host(fn: Callable[[str], object], hosts: Iterable[str]) -> None:
    """Call ``fn(host)`` for every host at once (set-up and clean-up, never timed)."""
    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(fn, host) for host in hosts]:
            future.result()


def ensure_bench(lab: Lab, hv: list[HostProcess], args: argparse.Namespace) -> None:
    hosts = {f"hv{index:02d}": host.entry(f"hv{index:02d}", psrp=index % 2 == 0) for index, host in enumerate(hv)}
    names = {host: [f"pvbench-{host}-vm{index:02d}" for index in range(args.ensure_vms)] for host in hosts}
    total = len(hosts) * args.ensure_vms
    ansible = install_collection(lab.tmp / "ansible")
    inventory_file = lab.tmp / "ansible" / "inventory.json"
    inventory_file.write_text(json.dumps(inventory(hosts, names)), encoding="utf-8")
    playbook, ping = lab.tmp / "ansible" / "running.yml", lab.tmp / "ansible" / "ping.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    ping.write_text(PING, encoding="utf-8")
    selection_playbook = lab.tmp / "ansible" / "selection.yml"
    selection_playbook.write_text(SELECTION, encoding="utf-8")
    selection_file = lab.tmp / "ansible" / "selection.json"
    selection_file.write_text(json.dumps(selection_vars(hosts)), encoding="utf-8")
    localhost = lab.tmp / "ansible" / "localhost.ini"
    localhost.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )

    # The control fleet creates the VMs and resets them, outside every timing: every VM at once, to keep the run short.
    control = polyvisor.Fleet(hosts, max_concurrency=len(hosts) * args.ensure_vms)
    warm = polyvisor.Fleet(hosts)
    try:

        def create(host: str) -> None:
            conn = control.connection(host)
            for name in names[host]:
                conn.create({"name": name, "memory_mib": 512, "labels": LABEL})

        each_host(create, hosts)  # creation is not measured
        selection = control.select(labels=LABEL)

        def reset() -> None:
            control.ensure(selection, "stopped", force=True).raise_for_errors()
            check("stopped")

        def check(state: str) -> None:
            found = control.matching(selection).raise_for_errors()
            states = [vm.info.state.value for vms in found.values.values() for vm in vms]
            if len(states) != total or set(states) != {state}:
                raise RuntimeError(f"expected {total} VMs {state}, found {sorted(states)}")

        def fleet_ensure(fleet: polyvisor.Fleet) -> None:
            result = fleet.ensure(fleet.select(labels=LABEL), "running").raise_for_errors()
            if len(result) != total:
                raise RuntimeError(f"fleet.ensure() acted on {len(result)} VMs, not {total}")

        def cold() -> float:  # what a script does: open the fleet, act, close it (each module run closes too)
            began = time.perf_counter()
            with polyvisor.Fleet(hosts) as fresh:
                fleet_ensure(fresh)
            return time.perf_counter() - began

        def warmed() -> float:
            began = time.perf_counter()
            fleet_ensure(warm)
            return time.perf_counter() - began

        def playbook_run() -> float:
            elapsed, recap = ansible.playbook(playbook, inventory_file, args.forks)
            changed = sum(counters.get("changed", 0) for counters in recap.values())
            failed = sum(counters.get("failed", 0) + counters.get("unreachable", 0) for counters in recap.values())
            if len(recap) != total or changed != total or failed:
                raise RuntimeError(f"ansible-playbook: {len(recap)} hosts, {changed} changed, {failed} failed")
            return elapsed

        def selection_run() -> float:
            elapsed, recap = ansible.playbook(selection_playbook, localhost, 1, "-e", f"@{selection_file}")
            counters = recap.get("localhost", {})
            if counters.get("changed") != 1 or counters.get("failed", 0):
                raise RuntimeError(f"ansible-playbook with the vms module: {recap}")
            return elapsed

        warm.list().raise_for_errors()  # the warm fleet's connections open here
        ping_time, ping_recap = ansible.playbook(ping, inventory_file, args.forks)
        if len(ping_recap) != total:
            raise RuntimeError(f"ansible ping reached {len(ping_recap)} hosts, not {total}")
        times: dict[str, list[float]] = {"cold": [], "warm": [], "selection": [], "ansible": []}
        peers = [("cold", cold), ("warm", warmed), ("selection", selection_run), ("ansible", playbook_run)]
        if args.skip_per_vm_ansible:
            peers.pop()
            times.pop("ansible")
        for _ in range(args.rounds):
            for key, fn in peers:
                reset()
                times[key].append(fn())
                check("running")
        reset()

        def delete(host: str) -> None:
            conn = control.connection(host)
            for name in names[host]:
                conn.vm(name).delete()

        each_host(delete, hosts)
    finally:
        warm.close()
        control.close()

    medians = {key: statistics.median(values) for key, values in times.items()}
    cold_s, warm_s, selection_s = medians["cold"], medians["warm"], medians["selection"]
    print()
    print(
        f"ensure(running): {total} stopped VMs on {len(hosts)} Hyper-V hosts ({args.ensure_vms} each), cmdlets "
        f"taking {args.latency_ms:g} ms, median of {args.rounds} rounds; the fleet at its default max_concurrency "
        "(16), the vms module at its default (16)"
        + ("" if args.skip_per_vm_ansible else ", the vm module with one inventory host per VM")
    )
    print(f"{'':62} {'s':>7} {'s per VM':>9} {'ratio':>7}")
    rows: list[tuple[str, float]] = [
        ("polyvisor fleet.ensure(), fresh fleet (opened, closed)", cold_s),
        ("polyvisor fleet.ensure(), warm fleet", warm_s),
        ("ansible-playbook, polyvisor.hypervisors.vms, one task", selection_s),
    ]
    if "ansible" in medians:
        rows.append((f"ansible-playbook, polyvisor.hypervisors.vm, forks={args.forks}", medians["ansible"]))
    rows.append((f"ansible-playbook, ansible.builtin.ping, forks={args.forks} (floor)", ping_time))
    for name, seconds in rows:
        print(f"{name:62} {seconds:7.2f} {seconds / total:9.3f} {seconds / cold_s:6.2f}x")
    print(
        f"(the vms module: {selection_s / cold_s:.2f}x fleet.ensure(), target 1.5x; it adds ansible-playbook's start "
        f"and one module process to the fleet's {cold_s:.1f} s)"
    )
    if "ansible" in medians:
        print(
            f"(attribution: Ansible's own process-per-task overhead, the ping floor, is {ping_time:.1f} s; the "
            f"vm module's polyvisor work in {total} separate processes\n adds {medians['ansible'] - ping_time:.1f} s; "
            f"the fleet does the same work over {len(hosts)} pooled connections in {cold_s:.1f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hyperv", type=int, default=10, help="loopback Hyper-V host processes")
    parser.add_argument("--hosts", type=int, default=20, help="hosts in the listing fleet (the rest are libvirt)")
    parser.add_argument("--vms", type=int, default=3, help="VMs per host in the listing fleet")
    parser.add_argument("--latency-ms", type=float, default=100, help="how long each Hyper-V cmdlet takes")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ensure-vms", type=int, default=10, help="VMs per Hyper-V host for ensure(running)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of ensure(running), each peer once a round")
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--skip-listing", action="store_true")
    parser.add_argument("--skip-scrape", action="store_true", help="leave out the exporter scrape of the fleet")
    parser.add_argument("--skip-ensure", action="store_true")
    parser.add_argument(
        "--skip-per-vm-ansible", action="store_true", help="leave out the vm module run (one inventory host per VM)"
    )
    args = parser.parse_args()
    if args.hosts < args.hyperv + 1:
        parser.error("--hosts must leave room for qemu:///system besides the Hyper-V hosts")
    began = time.perf_counter()
    with lab() as made:
        hv = made.start_hosts(args.hyperv, args.latency_ms)
        print(f"{args.hyperv} loopback Hyper-V hosts serving after {time.perf_counter() - began:.1f} s")
        if not args.skip_listing:
            listing_bench(made, hv, args)
        if not args.skip_ensure:
            ensure_bench(made, hv, args)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
