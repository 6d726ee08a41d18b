"""From the cloud image to a real SSH login through the CLI, as docs/image-to-ssh.md tells a user to (issue 14).

The page's console block runs here, its example names swapped for the test's: ``polyvisor create`` with a linked
clone of scripts/build-cloud-image's Debian 12 guest (``--image``), ``--ssh-key``, the page's ``#cloud-config``
(users, write_files, runcmd) as ``--user-data``, a user-mode NIC forwarding a free 127.0.0.1 port to guest port 22
(``--forward``) and ``--wait-ready``; then a real OpenSSH ``ssh`` through the forward, then the page's ``delete``.
A second guest gets the JSON form of ``#cloud-config`` through the same command. Both boot at once (each costs
about a minute of TCG); every output line the page shows is checked.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import clissh
from .cloudguest import BOOT_TIMEOUT
from .cloudseeds import JSON_WRITTEN, RUNCMD_OUT, TEXT, json_user_data
from .support import POOL, TEST_PREFIX, URI, cleanup, open_connection, unavailable

if TYPE_CHECKING:
    from .cloudguest import CloudImage, KeyPair

Recorder = Callable[[str, object], None]
JSON_HOSTNAME = "pv-cli-json"


@dataclass
class CliGuest:
    """A guest ``polyvisor create`` made and waited for, and the page's remaining steps for it."""

    name: str
    port: int
    created: clissh.Ran
    steps: list[clissh.Step]
    """The page's create, ssh and delete steps for this guest."""
    known_hosts: Path


def _spec_file(directory: Path, name: str) -> Path:
    # The page's web.toml, plus what this machine needs: TCG (nested KVM hangs here) and an x86_64 guest.
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"name": name, "memory_mib": 1024, "arch": "x86_64", "accelerator": "tcg"}))
    return path


@pytest.fixture(scope="module")
def cli_guests(
    cloud_image: CloudImage, cloud_keys: dict[str, KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, CliGuest]]:
    """The page's create command for two guests at once: ``yaml`` (the page's user-data) and ``json``."""
    if shutil.which("ssh") is None:
        unavailable("the OpenSSH client is not installed (Debian package openssh-client)")
    assert cloud_image.default_user == "debian", "the page logs in as debian, the image's default user"
    directory = tmp_path_factory.mktemp("cli-ssh")
    prefix = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-"
    page_user_data = "\n".join(clissh.block("image-to-ssh-user-data")) + "\n"
    user_data = {
        "yaml": page_user_data.replace(clissh.PAGE_ALICE_KEY, cloud_keys["extra"].public),
        "json": json_user_data(cloud_keys),
    }
    guests: dict[str, CliGuest] = {}
    started = {}
    raw = open_connection()
    try:
        for key, hostname in (("yaml", "web1"), ("json", JSON_HOSTNAME)):
            name, port = f"{prefix}cli-{key}", clissh.free_port()
            data = directory / f"user-data-{key}"
            data.write_text(user_data[key])
            swaps = {
                "web.toml": str(_spec_file(directory, name)),
                clissh.PAGE_VM: name,
                clissh.PAGE_IMAGE: str(cloud_image.disk),
                clissh.PAGE_KEY: str(cloud_keys["default"].private) + ".pub",
                "user-data.yaml": str(data),
                "web1": hostname,
                clissh.PAGE_PORT: str(port),
            }
            create, *later = clissh.steps(clissh.block("image-to-ssh-cli"), swaps)
            # The clone goes beside nothing the test owns: name the tests' pool (other pools may come and go).
            argv = [*clissh.polyvisor(create.argv), "--pool", POOL, "--timeout", str(BOOT_TIMEOUT)]
            started[key] = (argv, create, clissh.start(argv), name, port, later)
        for key, (argv, create, process, name, port, later) in started.items():
            ran = clissh.finish(process, argv, BOOT_TIMEOUT + 60)
            guests[key] = CliGuest(name, port, ran, [create, *later], directory / f"known_hosts-{key}")
        yield guests
    finally:
        _remove(prefix)
        cleanup(raw, prefix)
        raw.close()


def _remove(prefix: str) -> None:
    """Delete the CLI's VMs with their storage (clones and seeds are named by UUID, not by the prefix)."""
    import polyvisor

    with polyvisor.connect(URI) as conn:
        for info in conn.list():
            if info.name.startswith(prefix):
                vm = conn.vm(info.uuid)
                vm.ensure("stopped", force=True)
                vm.delete(storage=True)


def _ssh(guest: CliGuest, key: KeyPair, user: str, command: str) -> clissh.Ran:
    argv = clissh.ssh(["ssh", "-p", str(guest.port), f"{user}@127.0.0.1", command], key.private, guest.known_hosts)
    return clissh.run(argv)


@pytest.mark.parametrize("key", ["yaml", "json"])
def test_create_waits_until_cloud_init_is_done_and_sshd_answers_on_the_forward(
    cli_guests: dict[str, CliGuest], key: str, record_property: Recorder
) -> None:
    guest = cli_guests[key]
    create = guest.steps[0]
    assert guest.created.returncode == 0, guest.created.explain()
    assert create.matches(guest.created.stdout), (create.expected, guest.created.explain())
    record_property(f"{key}_create_to_ready_seconds", round(guest.created.seconds, 1))
    print(f"{key}: polyvisor create ... --wait-ready took {guest.created.seconds:.1f} s")


def test_ssh_through_the_forward_prints_what_the_page_says(
    cli_guests: dict[str, CliGuest], cloud_keys: dict[str, KeyPair], record_property: Recorder
) -> None:
    guest = cli_guests["yaml"]
    assert guest.created.returncode == 0, guest.created.explain()
    step = guest.steps[1]
    ran = clissh.run(clissh.ssh(step.argv, cloud_keys["default"].private, guest.known_hosts))
    assert ran.returncode == 0, ran.explain()
    assert step.matches(ran.stdout), (step.expected, ran.explain())
    assert ran.stdout.splitlines()[0] == "runcmd ran as root on web1"
    record_property("ssh_seconds", round(ran.seconds, 2))
    print(f"ssh -p {guest.port} debian@127.0.0.1 ... took {ran.seconds:.2f} s")


def test_the_user_the_cloud_config_adds_logs_in_with_its_own_key(
    cli_guests: dict[str, CliGuest], cloud_keys: dict[str, KeyPair]
) -> None:
    guest = cli_guests["yaml"]
    assert guest.created.returncode == 0, guest.created.explain()
    ran = _ssh(guest, cloud_keys["extra"], "alice", "id -un; cat /etc/motd")
    assert ran.returncode == 0, ran.explain()
    assert ran.stdout == "alice\nprovisioned by polyvisor\n"
    refused = _ssh(guest, cloud_keys["own"], "alice", "true")  # a key the seed never gave alice
    assert refused.returncode == 255, refused.explain()
    assert "Permission denied" in refused.stderr


def test_the_json_form_of_cloud_config_is_applied_through_the_cli(
    cli_guests: dict[str, CliGuest], cloud_keys: dict[str, KeyPair]
) -> None:
    guest = cli_guests["json"]
    assert guest.created.returncode == 0, guest.created.explain()
    # The seed's key (meta-data) and the cloud-config's own key both reach the default user.
    for pair in (cloud_keys["default"], cloud_keys["own"]):
        ran = _ssh(guest, pair, "debian", f"cat {RUNCMD_OUT}; hostname; cat {JSON_WRITTEN}")
        assert ran.returncode == 0, ran.explain()
        assert ran.stdout == f"runcmd: user=root hostname={JSON_HOSTNAME}\n{JSON_HOSTNAME}\n{TEXT}"


def test_root_gets_the_stock_images_refusal(cli_guests: dict[str, CliGuest], cloud_keys: dict[str, KeyPair]) -> None:
    ran = _ssh(cli_guests["yaml"], cloud_keys["default"], "root", "id -un")
    assert 'Please login as the user "debian" rather than the user "root"' in ran.stdout + ran.stderr
    assert "root\n" not in ran.stdout


def test_the_pages_delete_removes_the_vm_and_keeps_the_base(
    cli_guests: dict[str, CliGuest], cloud_image: CloudImage
) -> None:
    guest = cli_guests["yaml"]
    step = guest.steps[2]
    ran = clissh.run(clissh.polyvisor(step.argv))
    assert ran.returncode == 0, ran.explain()
    assert step.matches(ran.stdout), (step.expected, ran.explain())
    listed = clissh.run([*clissh.POLYVISOR, "-c", URI, "list"])
    assert guest.name not in listed.stdout
    assert cloud_image.disk.exists()


def test_the_page_names_the_image_it_was_proven_with(cloud_image: CloudImage) -> None:
    rows = [line for line in clissh.PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| Debian 12")]
    assert len(rows) == 1, rows
    manifest = json.loads((cloud_image.disk.parent / "manifest.json").read_text())
    assert manifest["suite"] == "bookworm"
    assert f"`{cloud_image.kernel_version}`" in rows[0]
    assert f"`{cloud_image.cloud_init_version}`" in rows[0]
