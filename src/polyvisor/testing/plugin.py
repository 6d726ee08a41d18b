"""pytest hooks of the conformance kit: options, collection of the suite, and the coverage summary."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

from polyvisor.testing.fixtures import NAME_PREFIX, use_name_prefix

SUITE_DIR = Path(__file__).parent / "suite"

# Each suite module covers one area of the contract; the summary reports them under these titles.
AREAS = {
    "test_identity": "identity and lookup (UUID, name, NotFoundError, AlreadyExistsError)",
    "test_transitions": "verbs on the hypervisor: delete from every state and with its storage, saved state",
    "test_paths": "every verb from every way of reaching its from-state (one walk over all verb pairs)",
    "test_deadlines": "deadlines: a guest that ignores shutdown, timeout + 1 s, the connection afterwards",
    "test_capabilities": "capabilities declared once: derived from the backend class, narrowed only",
    "test_ensure": "desired state: ensure() from every state, force semantics",
    "test_waits": "wait_for, timeouts and lifecycle events",
    "test_labels": "labels: validation, round trip, visibility from a second connection",
    "test_snapshots": "snapshot trees: create, list, current, revert, delete with and without children",
    "test_create": "create: spec validation, hostile input, rollback on failure",
    "test_errors": "error tree, capability gates (UnsupportedError), closed connections",
    "test_host": "host facts and networks",
    "test_provisioning": (
        "provisioning: clones of a base image, cloud-init seeds, address and readiness waits, reconfigure, resize"
    ),
    "test_stats": "counters: one bulk sample of every VM, what a backend cannot say declared, rates in range",
    "test_storage": "storage: pools and volumes as values, uploads and downloads, pools and volumes made and deleted",
    "test_networks": "networks and switches: listed, made and deleted by mode, refused before acting, in use by VMs",
    "test_inguest": "inside the guest: console streams (one at a time, no leaked descriptors), exec and file checks",
    "test_screen": "the screen: graphics consoles and how to reach them, screenshots as PNG",
    "test_lifecycle": "lifecycle group: one VM through create, start, pause, save, snapshot, shutdown and delete",
    "test_devices": "devices: a TPM, nested virtualization, host devices given to one VM at a time, by capability",
}


_RESULTS = pytest.StashKey[defaultdict[str, Counter[str]]]()
_SKIPS = pytest.StashKey[Counter[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the kit's command-line options."""
    group = parser.getgroup("polyvisor", "polyvisor conformance kit")
    group.addoption("--polyvisor-uri", help="run the conformance suite against this URI or connection name")
    group.addoption(
        "--polyvisor-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword argument for polyvisor.connect() (repeatable); never pass secrets this way",
    )
    group.addoption(
        "--polyvisor-password-env",
        metavar="VAR",
        help="read the connection password from this environment variable",
    )
    group.addoption(
        "--polyvisor-spec",
        metavar="FILE",
        help="TOML or JSON table merged into every VM spec the suite creates (e.g. a bootable kernel)",
    )
    group.addoption(
        "--polyvisor-stubborn-spec",
        metavar="FILE",
        help="TOML or JSON table merged into the spec of a guest that ignores graceful shutdown (for the deadline "
        "tests); without it they are skipped, for a target that cannot make such a guest",
    )
    group.addoption(
        "--polyvisor-base-image",
        metavar="PATH",
        help="a base disk image on the target (a path the hypervisor host can read, smaller than 4 GiB) for the "
        "clone tests; without it they are skipped",
    )
    group.addoption(
        "--polyvisor-address-spec",
        metavar="FILE",
        help="TOML or JSON table merged into the spec of a guest that gets a usable address once started (for the "
        "address-wait test); without it that test is skipped",
    )
    group.addoption(
        "--polyvisor-subnet",
        metavar="CIDR",
        help="a private IPv4 range (/8 to /28) the kit may give networks the host takes part in (internal, nat); "
        "without it only isolated networks are made. Never give it for a host whose networking others rely on",
    )
    group.addoption(
        "--polyvisor-area",
        action="append",
        default=[],
        metavar="AREA",
        help="run only this contract area of the suite (repeatable): a suite module's name without test_, e.g. "
        "lifecycle (the group one VM walks through, for a slow target such as an emulated architecture)",
    )
    group.addoption(
        "--polyvisor-name-prefix",
        metavar="PREFIX",
        help=f"start every VM name with PREFIX instead of {NAME_PREFIX} (runs with prefixes of their own can share "
        "one target at the same time)",
    )
    group.addoption(
        "--polyvisor-adapter",
        metavar="NAME",
        help="a host network adapter the kit may bind an external network to; without it that test is skipped",
    )
    group.addoption(
        "--polyvisor-check-volumes",
        action="store_true",
        help="fail each test that leaves a volume behind in any of the target's storage pools (for a target where "
        "nothing but the kit makes volumes during the run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Add the suite to the collection when a URI was given."""
    config.addinivalue_line("markers", "polyvisor_area(name): the contract area a conformance test covers")
    if config.getoption("--polyvisor-uri", default=None):
        suite = str(SUITE_DIR)
        if config.args_source is not pytest.Config.ArgsSource.ARGS:
            # No paths on the command line: run the suite alone, not the project's own test paths.
            config.args[:] = [suite]
        elif suite not in config.args:
            config.args.append(suite)
        prefix = config.getoption("--polyvisor-name-prefix", default=None)
        if prefix:
            use_name_prefix(prefix)
        asked = config.getoption("--polyvisor-area", default=[]) or []
        unknown = sorted(area for area in asked if f"test_{area.removeprefix('test_')}" not in AREAS)
        if unknown:
            known = ", ".join(module.removeprefix("test_") for module in AREAS)
            raise pytest.UsageError(f"--polyvisor-area {', '.join(unknown)}: not an area of the suite ({known})")
        results: defaultdict[str, Counter[str]] = defaultdict(Counter)
        config.stash[_RESULTS] = results
        config.stash[_SKIPS] = Counter()


def _wanted_areas(config: pytest.Config) -> list[str]:
    return [f"test_{area.removeprefix('test_')}" for area in config.getoption("--polyvisor-area", default=[]) or []]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the suite's tests of the areas ``--polyvisor-area`` names (all of them without it)."""
    wanted = set(_wanted_areas(config))
    if not wanted:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        area = _area(item.nodeid)
        (dropped if area is not None and area not in wanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _area(nodeid: str) -> str | None:
    for module in AREAS:
        if f"/{module}.py::" in nodeid or nodeid.startswith(f"{module}.py::"):
            return module
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Count outcomes per contract area."""
    report = yield
    config = item.config
    if _RESULTS not in config.stash:
        return report
    area = _area(report.nodeid)
    if area is None:
        return report
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        config.stash[_RESULTS][area][report.outcome] += 1
        if report.skipped and isinstance(report.longrepr, tuple):
            config.stash[_SKIPS][str(report.longrepr[2])] += 1
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print what the conformance suite covered."""
    if _RESULTS not in config.stash:
        return
    results = config.stash[_RESULTS]
    uri = config.getoption("--polyvisor-uri")
    terminalreporter.section(f"polyvisor conformance: {uri}")
    for module, title in AREAS.items():
        counts = results.get(module, Counter())
        line = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "not run"
        terminalreporter.write_line(f"  {title}: {line}")
    skips = config.stash[_SKIPS]
    if skips:
        terminalreporter.write_line("  skipped (an undeclared capability, or a guest this target cannot make):")
        for reason, n in sorted(skips.items()):
            terminalreporter.write_line(f"    {n} x {reason}")
