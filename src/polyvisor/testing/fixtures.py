"""Fixtures of the conformance kit; override ``polyvisor_spec`` to adapt VMs to your hypervisor."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor import VM, Connection, Feature, PolyvisorError, PowerState, VMSpec

SpecFactory = Callable[..., VMSpec]
VMFactory = Callable[..., VM]
SeedReader = Callable[[VM], Callable[[], bytes | None]]
VolumePaths = Callable[[VM], list[str]]

NAME_PREFIX = "pvconf-"
"""The default start of every name the kit gives a VM (``--polyvisor-name-prefix`` changes it for one run)."""
_NAME_PREFIX_SHAPE = re.compile(r"^[a-z][a-z0-9-]{0,38}-$")
_names = {"prefix": NAME_PREFIX}  # this pytest process's prefix, set once at configure


def use_name_prefix(prefix: str) -> None:
    """Name this run's VMs ``PREFIX...``: runs with prefixes of their own share a target without seeing each
    other's VMs as leftovers (the start-of-session check looks for this prefix only)."""
    if not _NAME_PREFIX_SHAPE.match(prefix):
        raise pytest.UsageError(
            f"--polyvisor-name-prefix {prefix!r}: give lower-case letters, digits and dashes, starting with a letter "
            "and ending with a dash, 40 characters at most (e.g. pvconf-ppc64le-)"
        )
    _names["prefix"] = prefix


def name_prefix() -> str:
    """The start of every name this run gives a VM."""
    return _names["prefix"]


@pytest.fixture(scope="session")
def polyvisor_uri(request: pytest.FixtureRequest) -> str:
    """The URI under test (``--polyvisor-uri``)."""
    uri = request.config.getoption("--polyvisor-uri", default=None)
    if not uri:
        pytest.fail("the conformance suite needs --polyvisor-uri URI")
    return str(uri)


@pytest.fixture(scope="session")
def polyvisor_connect_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments for ``polyvisor.connect()`` from ``--polyvisor-option`` and the password variable."""
    options: dict[str, Any] = {}
    for item in request.config.getoption("--polyvisor-option", default=[]) or []:
        key, sep, value = item.partition("=")
        if not sep:
            pytest.fail(f"--polyvisor-option {item!r} is not KEY=VALUE")
        options[key] = value
    variable = request.config.getoption("--polyvisor-password-env", default=None)
    if variable:
        if variable not in os.environ:
            pytest.fail(f"--polyvisor-password-env names ${variable}, which is not set")
        options["password"] = os.environ[variable]
    return options


@pytest.fixture(scope="session")
def polyvisor_connection(
    request: pytest.FixtureRequest, polyvisor_uri: str, polyvisor_connect_options: dict[str, Any]
) -> Iterator[Connection]:
    """One connection shared by the suite.

    The target must start without VMs named like the kit's (``pvconf-...``): the session stops at once, naming
    them and saying how to delete them, rather than blaming them on whichever test notices. At the end, no VM the
    suite made may be left.
    """
    with polyvisor.connect(polyvisor_uri, **polyvisor_connect_options) as conn:
        found = kit_vms(conn)
        if found:
            pytest.exit(leftovers_message(conn, found, request.config), returncode=pytest.ExitCode.USAGE_ERROR)
        yield conn
        left = kit_vms(conn)
        if left:
            pytest.fail(
                f"this run of the conformance suite left VMs behind: {', '.join(left)} (a test that made one failed "
                f"to delete it; see the errors above). {_how_to_delete(conn, request.config)}"
            )


def kit_vms(conn: Connection) -> list[str]:
    """The names of the VMs on the target that are named like the kit's VMs, sorted."""
    return sorted(info.name for info in conn.list() if info.name.startswith(name_prefix()))


def leftovers_message(conn: Connection, names: Sequence[str], config: pytest.Config) -> str:
    """What the kit says when the target already has VMs named like its own when the session starts."""
    return (
        f"{conn.uri} already has {len(names)} VM(s) named like the conformance kit's ({name_prefix()}...), left by "
        f"an earlier run that did not finish (or by one still running): {', '.join(names)}. The kit runs only on "
        f"a target without them, so that what it finds at the end is its own. {_how_to_delete(conn, config)}"
    )


def _how_to_delete(conn: Connection, config: pytest.Config) -> str:
    storage = conn.supports(Feature.DELETE_STORAGE)
    variable = config.getoption("--polyvisor-password-env", default=None)
    login = f" --password-env {shlex.quote(variable)}" if variable else ""
    target = shlex.quote(str(conn.uri.without_password()))
    command = f"polyvisor -c {target}{login} delete --force{' --storage' if storage else ''}"
    needs_options = (
        " (the CLI takes connection options from a named connection of its config file: give -c its name)"
        if config.getoption("--polyvisor-option", default=None)
        else ""
    )
    return f"Delete each one{', with its disks' if storage else ''}: {command} --yes NAME{needs_options}"


@pytest.fixture
def polyvisor_second_connection(polyvisor_uri: str, polyvisor_connect_options: dict[str, Any]) -> Iterator[Connection]:
    """An independent second connection to the same host."""
    with polyvisor.connect(polyvisor_uri, **polyvisor_connect_options) as conn:
        yield conn


def _load_base(path: str | None) -> Mapping[str, Any]:
    if not path:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    data: Mapping[str, Any] = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    return data


@pytest.fixture(scope="session")
def polyvisor_spec(request: pytest.FixtureRequest) -> SpecFactory:
    """Return ``make(name, **overrides) -> VMSpec``: the smallest VM the backend can create and start."""
    base = dict(_load_base(request.config.getoption("--polyvisor-spec", default=None)))
    base.setdefault("cpus", 1)
    base.setdefault("memory_mib", 64)

    def make(name: str, **overrides: Any) -> VMSpec:
        return VMSpec.from_dict({**base, "name": name, **overrides})

    return make


@pytest.fixture(scope="session")
def polyvisor_stubborn_overrides(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """Spec overrides that make a guest ignore graceful shutdown (``--polyvisor-stubborn-spec``)."""
    path = request.config.getoption("--polyvisor-stubborn-spec", default=None)
    if not path:
        pytest.skip("this target has no guest that ignores shutdown (--polyvisor-stubborn-spec)")
    return _load_base(path)


@pytest.fixture(scope="session")
def polyvisor_base_image(request: pytest.FixtureRequest) -> str:
    """A base disk image on the target for the clone tests (``--polyvisor-base-image``)."""
    path = request.config.getoption("--polyvisor-base-image", default=None)
    if not path:
        pytest.skip("no base image on this target (--polyvisor-base-image)")
    return str(path)


@pytest.fixture(scope="session")
def polyvisor_address_overrides(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """Spec overrides that make a guest get a usable address once started (``--polyvisor-address-spec``)."""
    path = request.config.getoption("--polyvisor-address-spec", default=None)
    if not path:
        pytest.skip("this target has no guest that gets an address (--polyvisor-address-spec)")
    return _load_base(path)


@pytest.fixture(scope="session")
def polyvisor_subnet(request: pytest.FixtureRequest) -> ipaddress.IPv4Network | None:
    """The range the kit may give internal and NAT networks (``--polyvisor-subnet``); None: make none."""
    value = request.config.getoption("--polyvisor-subnet", default=None)
    if not value:
        return None
    subnet = ipaddress.IPv4Network(value)
    if subnet.prefixlen > 28 or not subnet.is_private:
        raise pytest.UsageError(f"--polyvisor-subnet {value}: give a private range of /28 or wider")
    return subnet


@pytest.fixture(scope="session")
def polyvisor_adapter(request: pytest.FixtureRequest) -> str | None:
    """A host adapter the kit may bind an external network to (``--polyvisor-adapter``); None: none."""
    value = request.config.getoption("--polyvisor-adapter", default=None)
    return str(value) if value else None


@pytest.fixture(scope="session")
def polyvisor_seed_reader(polyvisor_connection: Connection) -> SeedReader | None:
    """Return ``reader(vm) -> read``, where ``read()`` gives the bytes of the VM's NoCloud seed, or None once the seed
    is gone (``read`` works after the VM is deleted); None when the target cannot show a seed's bytes.

    The default uses the backend's ``seed_iso(uuid)`` test hook where it has one (``memory://`` does); override the
    fixture for a target whose seeds the test machine can read some other way (a storage pool, a share).
    """
    return backend_seed_reader(polyvisor_connection)


def backend_seed_reader(conn: Connection) -> SeedReader | None:
    """The default seed reader: the backend's ``seed_iso(uuid)`` test hook, or None when it has none."""
    hook = getattr(conn.backend, "seed_iso", None)
    if hook is None:
        return None

    def reader(vm: VM) -> Callable[[], bytes | None]:
        read: Callable[[], bytes | None] = hook(vm.uuid)
        return read

    return reader


@pytest.fixture(scope="session")
def polyvisor_volume_paths() -> VolumePaths:
    """Return ``paths(vm) -> list[str]``: the volumes the backend made for the VM, each as a disk's ``image`` names
    it (the delete-storage case checks each is gone after ``delete(storage=True)``).

    The default reads ``info().details.extra["disks"]``, a mapping of disk target to path (``memory://`` shows its
    disks so); override the fixture for a backend that shows them another way.
    """
    return extra_disk_paths


def extra_disk_paths(vm: VM) -> list[str]:
    """The default volume paths: the values of the VM's ``info().details.extra["disks"]`` (target -> path)."""
    details = vm.info().details
    disks = details.extra.get("disks") if details is not None else None
    return [str(path) for path in disks.values()] if isinstance(disks, Mapping) else []


def unique_name(tag: str = "vm") -> str:
    """A fresh VM name under the suite's prefix."""
    return f"{name_prefix()}{tag}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def polyvisor_vm_factory(polyvisor_connection: Connection, polyvisor_spec: SpecFactory) -> Iterator[VMFactory]:
    """Return ``make(tag="vm", **spec_overrides) -> VM``; every VM made is deleted afterwards."""
    made: list[VM] = []

    def make(tag: str = "vm", **overrides: Any) -> VM:
        vm = polyvisor_connection.create(polyvisor_spec(unique_name(tag), **overrides))
        made.append(vm)
        return vm

    yield make
    failures = [f"{vm.seen_name}: {error}" for vm in made if (error := remove_vm(polyvisor_connection, vm))]
    if failures:
        pytest.fail("cleanup failed: " + "; ".join(failures))


@pytest.fixture(autouse=True)
def polyvisor_volume_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """With ``--polyvisor-check-volumes``, fail the test that leaves a volume in any of the target's pools.

    Autouse, so it is set up before the test's own fixtures and torn down after them: volumes a test's fixtures
    delete at teardown do not count. The test that leaks is named, not the end of the session."""
    if not request.config.getoption("--polyvisor-check-volumes", default=False):
        yield
        return
    conn: Connection = request.getfixturevalue("polyvisor_connection")
    if not conn.supports(Feature.STORAGE):
        yield
        return
    before = _all_volumes(conn)
    yield
    kept = request.config.stash.get(_SESSION_VOLUMES, set())
    left = sorted(name for path, name in _all_volumes(conn) - before if path not in kept)
    if left:
        pytest.fail(
            f"this test left {len(left)} volume(s) behind: {', '.join(left)} (a VM deleted without its storage, "
            "or a volume the test made and did not delete)"
        )


_SESSION_VOLUMES = pytest.StashKey[set[str]]()


def session_volume(config: pytest.Config, path: str) -> None:
    """Tell the volume check that ``path`` belongs to the session (a fixture made it for every test, on the first
    test that asked for it through ``request.getfixturevalue``)."""
    config.stash.setdefault(_SESSION_VOLUMES, set()).add(path)


def _all_volumes(conn: Connection) -> set[tuple[str, str]]:
    """(path, pool/name) of every volume of every pool."""
    return {(volume.path, f"{pool.name}/{volume.name}") for pool in conn.pools() for volume in conn.volumes(pool.name)}


def remove_vm(conn: Connection, vm: VM) -> PolyvisorError | None:
    """Power off and delete a VM with its storage, whatever state it is in; return the error if that failed."""
    try:
        if not conn.exists(vm.uuid):
            return None
        state = vm.state()
        if state is PowerState.SAVED:
            vm.discard_saved_state()
        elif state is not PowerState.STOPPED:
            vm.stop()
        vm.delete(storage=conn.supports(Feature.DELETE_STORAGE))
    except PolyvisorError as error:
        return error
    return None
