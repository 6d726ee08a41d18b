"""Checks and test sessions. ``scripts/test`` runs them all in the project's .venv (``nox --no-venv``)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = [
    "lint",
    "typecheck",
    "docs",
    "tests",
    "ansible-sanity",
    "conformance",
    "packaging",
    "bench-smoke",
]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PY = sys.executable
GUEST_DIR = Path("/var/lib/libvirt/images/polyvisor-guest")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting; no binary or oversized file in the tree."""
    session.run(PY, "scripts/check-text-only", external=True)
    session.run(PY, "-m", "ruff", "check", ".", external=True)
    session.run(PY, "-m", "ruff", "format", "--check", ".", external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core, the plugins, the Ansible collection's plugins and this file."""
    session.run(PY, "-m", "mypy", external=True)
    # Ansible loads the collection's files by path, and its modules import their shared code as
    # ansible_collections.polyvisor.hypervisors.plugins.module_utils.*: mypy checks them apart, through a tree
    # that holds the collection at that name (so plugins/inventory/polyvisor.py is not a second `polyvisor`,
    # which resolves to this checkout's src/).
    with collection_tree() as tree:
        files = sorted(str(path.relative_to(tree)) for path in (tree / COLLECTION_PATH / "plugins").rglob("*.py"))
        with session.chdir(tree):
            session.run(
                PY,
                "-m",
                "mypy",
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--explicit-package-bases",
                *files,
                env={"MYPYPATH": os.pathsep.join([str(tree), str(ROOT / "src")])},
                external=True,
            )


COLLECTION = ROOT / "integrations" / "ansible"
COLLECTION_PATH = Path("ansible_collections", "polyvisor", "hypervisors")
"""Where Ansible's tools (mypy's view of the modules' imports, ansible-test) need the collection to be."""


@contextmanager
def collection_tree() -> Iterator[Path]:
    """A temporary directory holding the collection, by a symbolic link, at ``ansible_collections/NS/NAME``."""
    with tempfile.TemporaryDirectory(prefix="polyvisor-collection-") as tmp:
        tree = Path(tmp)
        (tree / COLLECTION_PATH).parent.mkdir(parents=True)
        (tree / COLLECTION_PATH).symlink_to(COLLECTION, target_is_directory=True)
        yield tree


@nox.session(name="ansible-sanity")
def ansible_sanity(session: nox.Session) -> None:
    """ansible-test sanity over the collection, the checks collections published on Galaxy pass.

    ansible-test runs each test's tools (pylint, yamllint, validate-modules...) in venvs of its own, made once under
    ``~/.ansible/test/venv`` (about two minutes the first time, seconds after). It writes its results into the
    collection (``tests/output``), so it runs on a copy, at the ``ansible_collections/NS/NAME`` path it needs.
    """
    provide_get_pip(session)
    with tempfile.TemporaryDirectory(prefix="polyvisor-sanity-") as tmp:
        tree = Path(tmp) / COLLECTION_PATH
        shutil.copytree(COLLECTION, tree, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "output"))
        bin_dir = Path(PY).parent
        with session.chdir(tree):
            session.run(
                str(bin_dir / "ansible-test"),
                "sanity",
                "--local",
                "--python",
                f"{sys.version_info.major}.{sys.version_info.minor}",
                "--color",
                "no",
                env={"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", os.defpath)])},
                external=True,
            )


def provide_get_pip(session: nox.Session) -> None:
    """Put scripts/ansible-test-get-pip where ansible-test looks for its pip bootstrap script, unless one is there."""
    from types import SimpleNamespace

    from ansible_test._internal.python_requirements import get_venv_packages

    version = get_venv_packages(SimpleNamespace(version=f"{sys.version_info.major}.{sys.version_info.minor}"))["pip"]
    cached = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    if not cached.exists():
        session.log(f"ansible-test's pip {version} bootstrap: {cached} from scripts/ansible-test-get-pip")
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "scripts" / "ansible-test-get-pip", cached)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    out = Path(tempfile.mkdtemp(prefix="polyvisor-docs-"))
    session.run(PY, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out), external=True)


def junit(name: str) -> list[str]:
    """A JUnit report for one pytest run when ``scripts/test`` asked for them (its failure digest reads them);
    xunit1, since some tests record figures with ``record_property``, which xunit2 warns about."""
    directory = os.environ.get("POLYVISOR_REPORT_DIR")
    if not directory:
        return []
    return [f"--junitxml={Path(directory) / name}.xml", "-o", "junit_logging=system-out", "-o", "junit_family=xunit1"]


TEST_GROUPS: dict[str, tuple[str, ...]] = {
    "ansible": ("integrations/ansible/tests",),
    "libvirt": ("plugins/polyvisor-libvirt/tests",),
    "core-hyperv": ("tests", "plugins/polyvisor-hyperv/tests", "plugins/polyvisor-hyperv-loopback/tests"),
}
"""The tests session's groups, run side by side: each mostly waits (on guests booting, daemons answering,
ansible-playbook starting), so one at a time keeps the machine near one busy core. Every test names what it makes
with a prefix of its own (pvtest-xxxxxxxx-, pvansible-xxxxxxxx-), so groups never take each other's VMs for
leftovers; session fixtures (the booted cloud guests, loopback hosts, the KDC) are made once per group."""


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests of the core and both backends (real libvirtd, loopback Hyper-V host), in
    TEST_GROUPS side by side; with arguments, one pytest run of exactly those (the developer's way in)."""
    if session.posargs:
        session.run(PY, "-m", "pytest", *junit("tests"), *session.posargs, external=True)
        return
    testpaths = [path for paths in TEST_GROUPS.values() for path in paths]
    configured = load_pyproject()["tool"]["pytest"]["ini_options"]["testpaths"]
    if sorted(testpaths) != sorted(configured):
        session.error(f"TEST_GROUPS {sorted(testpaths)} must hold pyproject.toml's testpaths {sorted(configured)}")
    run_side_by_side(session, {name: [PY, "-m", "pytest", *paths] for name, paths in TEST_GROUPS.items()})


def load_pyproject() -> dict[str, Any]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def run_side_by_side(session: nox.Session, runs: dict[str, list[str]]) -> None:
    """Run each pytest command at once, every one with a JUnit report, a temporary directory and no cache of its
    own; print each run's output when all have ended (the failed ones last, so a log's tail shows them) and fail the
    session if any run failed."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    work = Path(tempfile.mkdtemp(prefix="polyvisor-tests-"))
    began = time.monotonic()

    def run(name: str) -> tuple[int, float]:
        argv = [*runs[name], *junit(f"tests-{name}"), "-p", "no:cacheprovider", f"--basetemp={work / name}"]
        with (work / f"{name}.log").open("wb") as out:
            code = subprocess.run(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        return code, time.monotonic() - began

    results: dict[str, tuple[int, float]] = {}
    try:
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            futures = {pool.submit(run, name): name for name in runs}
            session.log(f"tests groups started side by side: {', '.join(runs)}")
            for future in as_completed(futures):
                name = futures[future]
                code, seconds = results[name] = future.result()
                session.log(f"tests group {name}: {'passed' if code == 0 else f'exit {code}'} after {seconds:.0f} s")
        order = sorted(results, key=lambda name: (results[name][0] != 0, results[name][1]))
        for name in order:
            session.log(f"output of tests group {name} ({' '.join(runs[name][1:])}):")
            print((work / f"{name}.log").read_text(encoding="utf-8", errors="replace"), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = ", ".join(f"{name} {seconds:.0f} s" for name, (_, seconds) in results.items())
    session.log(f"tests groups: {figures}; {time.monotonic() - began:.0f} s wall")
    failed = [name for name in order if results[name][0] != 0]
    if failed:
        session.error(f"tests group(s) failed: {', '.join(failed)} (their output is above)")


FAST = "not libvirtd and not realguest and not loopback"
"""The tests that need no daemon and no guest (the markers conftest.py assigns)."""


@nox.session
def fast(session: nox.Session) -> None:
    """The developer's lane: every test that needs no daemon and no guest (not in the default sessions)."""
    session.run(PY, "-m", "pytest", "-q", "-m", FAST, *junit("fast"), *session.posargs, external=True)


@nox.session
def conformance(session: nox.Session) -> None:
    """The conformance kit against every backend: memory://, test:///default, qemu:///system, loopback Hyper-V;
    and its lifecycle group on the aarch64, ppc64le, s390x and riscv64 guests (:func:`arch_lane`)."""
    kit = [PY, "-m", "pytest", "-p", "polyvisor.testing", "-q", "-p", "no:cacheprovider"]
    # Each run but the arch lane's (its runs share qemu:///system at once) names any test that leaves a volume.
    # memory:// and the loopback Hyper-V host make a guest that ignores shutdown from a label; a real guest needs
    # its own spec (a kernel argument). libvirt's test driver cannot model one, so its deadline cases skip.
    kit_dir = Path(tempfile.mkdtemp(prefix="polyvisor-kit-"))
    stubborn = label_stubborn(kit_dir)
    memory_provisioning = memory_kit_files(kit_dir)
    # Networks the host takes part in (internal, NAT, external) are made only where no real host interface is
    # touched: memory://, the test driver and the loopback host. qemu:///system gets isolated networks only.
    host_networks = ["--polyvisor-subnet", "10.213.0.0/16"]
    session.run(
        *kit,
        "--polyvisor-check-volumes",
        *junit("conformance-memory"),
        "--polyvisor-uri",
        "memory:///conformance",
        *stubborn,
        *memory_provisioning,
        *host_networks,
        *("--polyvisor-adapter", "eth0"),
        external=True,
    )
    # libvirt targets load the kit's libvirt extras: a base volume made in a pool of the target for the session
    # (the test driver's storage lives in the testing process, so it is made there), and seeds read back from the
    # pool. The test driver fakes an address for each NIC of a running domain.
    libvirt_kit = [*kit, "-p", "polyvisor_libvirt.testing"]
    test_address = kit_dir / "test-address.json"
    test_address.write_text(json.dumps({"nics": [{"network": "default"}]}))
    test_provisioning = [
        *("--polyvisor-libvirt-base-volume", f"default-pool/pvconf-base-{secrets.token_hex(4)}.qcow2=64"),
        *("--polyvisor-address-spec", str(test_address)),
    ]
    session.run(
        *libvirt_kit,
        "--polyvisor-check-volumes",
        *junit("conformance-test"),
        "--polyvisor-uri",
        "test:///default",
        *test_provisioning,
        *host_networks,
        external=True,
    )
    # test:///default has no PCI or USB node devices (nor has this machine a spare one): the devices group runs again
    # on a test driver host that has some.
    devices_host = Path("plugins/polyvisor-libvirt/tests/host-devices.xml").resolve()
    session.run(
        *libvirt_kit,
        "--polyvisor-check-volumes",
        *junit("conformance-test-devices"),
        "--polyvisor-uri",
        f"test://{devices_host}",
        "-k",
        "test_devices",
        external=True,
    )
    spec = GUEST_DIR / "x86_64" / "conformance-spec.json"
    if spec.exists() or os.environ.get("CI") == "true":
        before = pool_volumes()
        real_stubborn = ["--polyvisor-stubborn-spec", str(spec.with_name("conformance-stubborn-spec.json"))]
        # The guest's init gives each NIC a TEST-NET-1 address, which its QEMU guest agent reports.
        real_address = kit_dir / "qemu-address.json"
        real_address.write_text(json.dumps({"nics": [{"network": "polyvisor-isolated"}]}))
        real_provisioning = [
            *("--polyvisor-libvirt-base-volume", f"{TEST_POOL}/pvconf-base-{secrets.token_hex(4)}.qcow2=64"),
            *("--polyvisor-address-spec", str(real_address)),
        ]
        session.run(
            *libvirt_kit,
            "--polyvisor-check-volumes",
            *junit("conformance-qemu"),
            *("--polyvisor-uri", "qemu:///system", "--polyvisor-spec", str(spec)),
            *real_stubborn,
            *real_provisioning,
            external=True,
        )
        arch_lane(session, libvirt_kit)
        for pattern in ("pvconf-*.log", f"{ARCH_LANE_PREFIX}*.log"):
            for log in Path("/var/log/libvirt/qemu").glob(pattern):
                log.unlink()  # libvirt keeps one QEMU log per domain name, forever
        left = pool_volumes() - before
        if left:
            session.error(f"the conformance suite left volumes in the test pool: {sorted(left)}")
    else:
        session.warn(f"{spec} missing: run scripts/build-guest-image to include qemu:///system")
    # The loopback host holds a base VHDX from its start; a guest on a switch reports addresses through KVP
    # (--kvp-delay seconds after it starts). The Hyper-V extras name a VM's disk files for the delete-storage case.
    hyperv_base = "C:\\PolyvisorKit\\base.vhdx"
    hyperv_address = kit_dir / "hyperv-address.json"
    hyperv_address.write_text(json.dumps({"nics": [{"network": "Default Switch"}]}))
    hyperv_provisioning = [
        *("--polyvisor-base-image", hyperv_base),
        *("--polyvisor-address-spec", str(hyperv_address)),
    ]
    with loopback_hyperv_host("--base-vhd", f"{hyperv_base}=64") as (ready, env):
        user = ready["username"]
        urls = {endpoint["scheme"]: endpoint for endpoint in ready["endpoints"]}
        https, http = urls["https"], urls["http"]
        targets = [
            # PSRP over HTTPS, verifying the host's certificate against its test CA.
            (f"hyperv://{user}@127.0.0.1:{https['port']}/?transport=psrp", [f"ca_path={https['ca_path']}"]),
            # The WinRM shell over plain HTTP with NTLM message encryption.
            (f"hyperv://{user}@127.0.0.1:{http['port']}/?transport=winrm&scheme=http&auth=ntlm", []),
        ]
        for (uri, options), transport in zip(targets, ("psrp", "winrm"), strict=True):
            extra = [arg for option in options for arg in ("--polyvisor-option", option)]
            password = ["--polyvisor-password-env", PASSWORD_ENV]
            session.run(
                *kit,
                "--polyvisor-check-volumes",
                *("-p", "polyvisor_hyperv.testing"),
                *junit(f"conformance-hyperv-{transport}"),
                "--polyvisor-uri",
                uri,
                *extra,
                *password,
                *stubborn,
                *hyperv_provisioning,
                *host_networks,
                *("--polyvisor-adapter", "Ethernet"),
                env=env,
                external=True,
            )


ARCH_LANE = ("aarch64", "ppc64le", "s390x", "riscv64")
"""The architectures whose tiny guests run the kit's lifecycle group on qemu:///system (x86_64 runs all of it)."""
ARCH_LANE_JOBS = 2
"""Guests run side by side: each is one TCG vCPU thread, and CI has two cores."""
ARCH_LANE_PREFIX = "pvtest-kit-"


def arch_lane(session: nox.Session, libvirt_kit: list[str]) -> None:
    """The kit's lifecycle group on the tiny guest of every other architecture, emulated under TCG: one VM per
    architecture walks the group (``--polyvisor-area lifecycle``), ARCH_LANE_JOBS of them at a time, each run with a
    name prefix of its own so that the runs do not take each other's VMs for leftovers. What an architecture cannot
    do is skipped on the capability its VM declares; the lane prints the seconds each architecture took."""
    from concurrent.futures import ThreadPoolExecutor

    runs: dict[str, list[str]] = {}
    for arch in ARCH_LANE:
        spec = GUEST_DIR / arch / "conformance-spec.json"
        if not spec.exists():
            if os.environ.get("CI") == "true":
                session.error(f"{spec} missing: scripts/test builds it (scripts/build-guest-image --arch {arch})")
            session.warn(f"{spec} missing: run scripts/build-guest-image --arch {arch} to include {arch}")
            continue
        runs[arch] = [
            *libvirt_kit,
            *junit(f"conformance-qemu-{arch}"),
            *("--polyvisor-uri", "qemu:///system", "--polyvisor-spec", str(spec)),
            *("--polyvisor-area", "lifecycle", "--polyvisor-name-prefix", f"{ARCH_LANE_PREFIX}{arch}-"),
            "-rs",
        ]

    def run(arch: str) -> tuple[int, float, str]:
        began = time.monotonic()
        done = subprocess.run(runs[arch], capture_output=True, text=True, check=False, timeout=900)
        return done.returncode, time.monotonic() - began, done.stdout + done.stderr

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=ARCH_LANE_JOBS) as pool:
        results = dict(zip(runs, pool.map(run, runs), strict=True))
    wall = time.monotonic() - began
    for arch, (_, seconds, output) in results.items():
        session.log(f"lifecycle group on {arch} ({seconds:.1f} s):\n{output}")
    figures = ", ".join(f"{arch} {seconds:.1f} s" for arch, (_, seconds, _) in results.items())
    session.log(f"architecture lane: {figures}; {wall:.1f} s wall with {ARCH_LANE_JOBS} at a time")
    failed = [arch for arch, (code, _, _) in results.items() if code != 0]
    if failed:
        session.error(f"the lifecycle group failed on {', '.join(failed)} (their output is above)")


# Every distribution of the repository, and the test distribution the kit must pass on (tests/kit).
DISTRIBUTIONS = [ROOT, *sorted(path.parent for path in (ROOT / "plugins").glob("*/pyproject.toml"))]
KIT_TEST_DISTRIBUTIONS = [ROOT / "tests" / "kit" / "minimal-backend"]
BUILD_TOOLS = ["build==1.6.1", "hatchling==1.32.4"]  # the build backend every pyproject.toml names, pinned


def pinned(name: str) -> str:
    """The requirement ``name==VERSION`` as requirements-dev.txt pins it."""
    for line in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}=="):
            return line.split("#")[0].strip()
    raise LookupError(f"requirements-dev.txt does not pin {name}")


@nox.session
def packaging(session: nox.Session) -> None:
    """Build each distribution's sdist and its wheel from that sdist, install the wheels (not editable) into a fresh
    venv, and run the conformance kit there on memory:// and on the minimal backend, away from the source tree."""
    work = Path(tempfile.mkdtemp(prefix="polyvisor-packaging-"))
    try:
        wheels = build_distributions(session, work)
        python = fresh_venv(session, work / "venv", *(str(wheel) for wheel in wheels), pinned("pytest"))
        # Outside the checkout and without PYTHONPATH, so nothing can come from the source tree.
        env = {"PYTHONPATH": ""}
        check = (
            "import pathlib, sys, polyvisor, polyvisor.testing\n"
            "for module in (polyvisor, polyvisor.testing):\n"
            "    assert pathlib.Path(sys.prefix) in pathlib.Path(module.__file__).parents, module.__file__\n"
            "assert {'memory', 'minimal', 'hyperv', 'qemu'} <= set(polyvisor.schemes()), polyvisor.schemes()\n"
        )
        # No pyproject.toml up here: the project's strictness is given on the command line.
        kit = [python, "-m", "pytest", "-p", "polyvisor.testing", "-q", "-p", "no:cacheprovider"]
        kit += ["--rootdir", str(work), "-W", "error", "--strict-markers", "--import-mode=importlib"]
        with session.chdir(work):
            session.run(python, "-c", check, env=env, external=True)
            memory = ["--polyvisor-uri", "memory:///packaging", *label_stubborn(work), *memory_kit_files(work)]
            session.run(*kit, *junit("packaging-memory"), *memory, env=env, external=True)
            minimal = ["--polyvisor-uri", "minimal:///packaging"]
            session.run(*kit, *junit("packaging-minimal"), *minimal, env=env, external=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # two virtual environments: not worth keeping


def build_distributions(session: nox.Session, work: Path) -> list[Path]:
    """Build the sdist and wheel of every distribution into ``work/dist``; return the wheels."""
    dist = work / "dist"
    builder = fresh_venv(session, work / "build-venv", *BUILD_TOOLS)
    for source in [*DISTRIBUTIONS, *KIT_TEST_DISTRIBUTIONS]:
        # Without --sdist/--wheel, build makes the sdist and then the wheel from the unpacked sdist, so a file the
        # sdist misses fails here.
        session.run(builder, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source), external=True)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    expected = len(DISTRIBUTIONS) + len(KIT_TEST_DISTRIBUTIONS)
    if len(sdists) != expected or len(wheels) != expected:
        session.error(f"expected {expected} sdists and wheels, built {[path.name for path in (*sdists, *wheels)]}")
    return wheels


def fresh_venv(session: nox.Session, path: Path, *requirements: str) -> str:
    """Create a virtual environment at ``path`` with ``requirements`` installed; return its Python."""
    session.run(PY, "-m", "venv", str(path), external=True)
    python = str(path / "bin" / "python")
    session.run(python, "-m", "pip", "install", "-q", *requirements, external=True)
    return python


def label_stubborn(directory: Path) -> list[str]:
    """The kit's option for a guest that ignores shutdown, from a label (memory:// and the loopback Hyper-V host)."""
    path = directory / "stubborn.json"
    path.write_text(json.dumps({"labels": {"polyvisor.test/guest": "ignore-shutdown"}}))
    return ["--polyvisor-stubborn-spec", str(path)]


def memory_kit_files(directory: Path) -> list[str]:
    """The kit's provisioning options for memory://, which clones real local files, and whose guests report an
    address (here half a second after boot) once they have a NIC."""
    base = directory / "base.img"
    base.write_bytes(b"polyvisor conformance base image\n" + bytes(1024 * 1024))
    address = directory / "address.json"
    address.write_text(json.dumps({"nics": [{}], "labels": {"polyvisor.test/address-delay": "0.5"}}))
    return ["--polyvisor-base-image", str(base), "--polyvisor-address-spec", str(address)]


PASSWORD_ENV = "POLYVISOR_HYPERV_HOST_PASSWORD"
TEST_POOL = "polyvisor-test"


def pool_volumes() -> set[str]:
    """Names of the volumes in the real-guest test pool."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        pool = conn.storagePoolLookupByName(TEST_POOL)
        pool.refresh(0)
        return set(pool.listVolumes())
    finally:
        conn.close()


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against peers, measured in the same run (not part of the default sessions)."""
    session.run(PY, "bench/bench_listing.py", "--vms", "1000", external=True)
    session.run(PY, "bench/bench_listing.py", "--vms", "200", "--uri", "qemu:///system", external=True)
    session.run(PY, "bench/bench_stats.py", "--vms", "1000", "--uri", "qemu:///system", external=True)
    session.run(PY, "bench/bench_hyperv.py", external=True)
    session.run(PY, "bench/bench_fleet.py", external=True)
    session.run(PY, "bench/bench_provisioning.py", external=True)
    session.run(PY, "bench/bench_cloud_ready.py", external=True)
    session.run(PY, "bench/bench_upload.py", external=True)


@nox.session(name="bench-smoke")
def bench_smoke(session: nox.Session) -> None:
    """Every benchmark once at a tiny size, so CI proves each still runs end to end (its figures mean nothing)."""
    session.run(PY, "bench/bench_listing.py", "--vms", "20", "--repeat", "1", external=True)
    session.run(PY, "bench/bench_stats.py", "--vms", "20", "--repeat", "1", external=True)
    session.run(PY, "bench/bench_hyperv.py", "--calls", "3", "--threads", "2", "--per-thread", "2", external=True)
    fleet = ["--hyperv", "2", "--hosts", "4", "--vms", "2", "--repeat", "1", "--ensure-vms", "2", "--rounds", "1"]
    session.run(PY, "bench/bench_fleet.py", *fleet, "--forks", "4", external=True)
    session.run(PY, "bench/bench_provisioning.py", "--runs", "1", external=True)
    session.run(PY, "bench/bench_cloud_ready.py", "--runs", "1", external=True)
    session.run(PY, "bench/bench_upload.py", "--size-mib", "64", "--data-mib", "8", "--runs", "1", external=True)
    upload = ["--hosts", "2", "--size-mib", "0.25", "--latency-ms", "0", "--repeat", "1"]
    session.run(PY, "bench/bench_fleet_upload.py", *upload, external=True)


@contextmanager
def loopback_hyperv_host(*options: str) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """Run the loopback Hyper-V host (``python -m polyvisor_hyperv_loopback``, with these extra options) for the
    duration of the block."""
    from polyvisor_hyperv_loopback.launch import start_host

    state = Path(tempfile.mkdtemp(prefix="polyvisor-hvhost-"))
    env = {**os.environ, PASSWORD_ENV: secrets.token_urlsafe(16)}
    arguments = ("--http-port", "0", "--https-port", "0", *options, "--state-dir", str(state))
    with start_host(
        arguments,
        ready_file=state / "ready.json",
        command=[PY, "-m", "polyvisor_hyperv_loopback"],
        env=env,
        stdout=None,
    ) as host:
        yield host.ready, env
