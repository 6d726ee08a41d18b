"""The real cloud guest: Debian 12 from Debian packages (scripts/build-cloud-image), booted through polyvisor.

A VM is a linked clone of the built disk with a ``cloud_init`` seed; real cloud-init (Debian's 22.4) reads the
seed, and the tests look at what it did through the guest agent (:mod:`.agent`). Booting takes about a minute
under TCG, so the tests share booted guests (the session fixtures in conftest.py); :func:`boot` starts several at
once and waits for them together.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from polyvisor import CloneMode, DiskSpec, NicSpec, VMSpec
from polyvisor.testing import eventually

from .agent import GuestAgent, cloud_init_finished
from .support import GUEST_ROOT, NETWORK, POOL, ensure_environment, unavailable

if TYPE_CHECKING:
    import libvirt

    from polyvisor import VM, Connection
    from polyvisor.provisioning import CloudInit

    from .pvguest import Guests

CLOUD_NAME = "debian12-cloud"
CLOUD_HINT = "run `scripts/build-cloud-image` as root (scripts/test does)"
# Under TCG on a loaded 2-core machine: cloud-init usually finishes 40-80 s after start.
BOOT_TIMEOUT = 420.0
REPO = Path(__file__).resolve().parents[4]


@dataclass(frozen=True)
class CloudImage:
    """The disk and facts of `manifest.json` that scripts/build-cloud-image writes."""

    disk: Path
    disk_format: str
    default_user: str
    kernel_version: str
    cloud_init_version: str
    agent_channel: str
    packages: tuple[str, ...]

    @classmethod
    def load(cls, manifest: Path) -> CloudImage:
        """Read a manifest.json."""
        raw = json.loads(manifest.read_text())
        return cls(
            disk=Path(raw["disk"]),
            disk_format=raw["disk_format"],
            default_user=raw["default_user"],
            kernel_version=raw["kernel_version"],
            cloud_init_version=raw["cloud_init_version"],
            agent_channel=raw["agent_channel"],
            packages=tuple(raw["packages"]),
        )


def ensure_cloud_image() -> CloudImage:
    """The built cloud guest, after checking libvirtd, the pool and the network (fails under CI=true if absent)."""
    ensure_environment("x86_64")
    manifest = GUEST_ROOT / CLOUD_NAME / "manifest.json"
    if not manifest.exists():
        unavailable(f"no cloud guest at {manifest}; {CLOUD_HINT}")
    image = CloudImage.load(manifest)
    if not image.disk.exists():
        unavailable(f"{image.disk} is missing; {CLOUD_HINT}")
    return image


@dataclass(frozen=True)
class KeyPair:
    """An OpenSSH key pair made for the test session (the private half for a real ``ssh``)."""

    private: Path
    public: str


def make_keypair(directory: Path, name: str) -> KeyPair:
    """Make an ed25519 key pair with ssh-keygen (OpenSSH), no passphrase."""
    private = directory / name
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@polyvisor-tests", "-f", str(private)],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError:
        unavailable("ssh-keygen is not installed (Debian package openssh-client)")
    return KeyPair(private, private.with_suffix(".pub").read_text().strip())


def cloud_init_reader() -> ModuleType:
    """tests/cloud_init_reader.py: Debian's cloud-init package read as a library on the test machine."""
    path = REPO / "tests" / "cloud_init_reader.py"
    spec = importlib.util.spec_from_file_location("polyvisor_tests_cloud_init_reader", path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cloud_spec(image: CloudImage, name: str, cloud_init: CloudInit, *, mac: str, **overrides: Any) -> VMSpec:
    """A VM from the cloud guest: a linked clone of its disk, a NIC on the isolated network, TCG, BIOS."""
    fields: dict[str, Any] = {
        "name": name,
        "memory_mib": 1024,
        "cpus": 1,
        "arch": "x86_64",
        "accelerator": "tcg",  # nested KVM is not dependable on CI hosts
        "disks": (DiskSpec(image=str(image.disk), clone=CloneMode.LINKED, pool=POOL),),
        "nics": (NicSpec(network=NETWORK, mac=mac),),
        "cloud_init": cloud_init,
    }
    fields.update(overrides)
    return VMSpec(**fields)


@dataclass
class CloudGuest:
    """A booted cloud guest whose cloud-init has finished, and how long that took."""

    vm: VM
    dom: libvirt.virDomain
    agent: GuestAgent
    seed: CloudInit
    result: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *argv: str, timeout: float = 60.0) -> str:
        """Run a command in the guest through the agent; return its stdout (it must exit 0)."""
        return self.agent.run(*argv, timeout=timeout).check()

    def read(self, path: str) -> bytes:
        """A file of the guest, through the agent."""
        return self.agent.read_file(path)


def boot(conn: Connection, raw: libvirt.virConnect, guests: Guests, specs: dict[str, VMSpec]) -> dict[str, CloudGuest]:
    """Create and start every spec at once, then wait until cloud-init has finished in each (together: they boot
    in parallel).

    ``timings`` of each, in seconds: ``create`` (create() returning), ``start`` (start() returning), ``agent`` (from
    start until the agent first answered) and ``cloud_init_done`` (from start until result.json appeared).
    """
    made: dict[str, tuple[VM, float]] = {}
    for key, spec in specs.items():  # all created first, so they start (and boot) together
        begin = time.monotonic()
        made[key] = (guests.track(conn.create(spec)), time.monotonic() - begin)
    pending: dict[str, tuple[VM, GuestAgent, float, dict[str, float]]] = {}
    for key, (vm, create_seconds) in made.items():
        begin = time.monotonic()
        vm.start()
        at = time.monotonic()
        timings = {"create": create_seconds, "start": at - begin}
        pending[key] = (vm, GuestAgent(raw.lookupByUUIDString(vm.uuid)), at, timings)
    booted: dict[str, CloudGuest] = {}

    def all_finished() -> bool:
        for key, (vm, agent, at, timings) in list(pending.items()):
            if "agent" not in timings and agent.answers():
                timings["agent"] = time.monotonic() - at
            if "agent" in timings and (result := cloud_init_finished(agent)) is not None:
                timings["cloud_init_done"] = time.monotonic() - at
                seed = specs[key].cloud_init
                assert seed is not None
                booted[key] = CloudGuest(vm, agent.dom, agent, seed, result, timings)
                del pending[key]
        return not pending

    try:
        eventually(all_finished, timeout=BOOT_TIMEOUT, what="cloud-init to finish in every guest", interval=1.0)
    except AssertionError as error:
        tails = "".join(
            f"\n--- {vm.name()} console tail:\n{vm.console_output()[-3000:]}" for vm, *_ in pending.values()
        )
        raise AssertionError(f"{error}; still booting: {sorted(pending)}{tails}") from None
    return booted
