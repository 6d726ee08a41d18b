"""The tiny guest reads a NoCloud seed from a CD-ROM: `build_seed_iso(CloudInit(...))` + the spec's ``cdrom``.

The guest (scripts/build-guest-image) is not cloud-init: its /init finds a CD-ROM labelled ``cidata``, sets the
hostname from ``local-hostname``, writes meta-data's ``public-keys`` and a ``#cloud-config``'s ``ssh_authorized_keys``
to root's authorized_keys,
runs a ``#!`` user-data and reports each on the console (``polyvisor-seed: ...``). These tests check that hostile
values (quotes, ``$()``, backticks, newlines, 100 KB of text) reach the guest byte for byte and that nothing in them
runs, neither on the host nor in the guest's /init. The seed is a file in the test pool's directory, made by the test;
the guest is the conformance spec plus ``cdrom``, so nothing here depends on a backend's own ``cloud_init`` support.
"""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from polyvisor import PowerState

from .pvguest import wait_console
from .support import POOL, unavailable

if TYPE_CHECKING:
    import libvirt

    from polyvisor import VM, Connection
    from polyvisor.provisioning import CloudInit

    from .pvguest import Guests
    from .support import GuestImage


Recorder = Callable[[str, object], None]
SeedWriter = Callable[["CloudInit"], Path]

# Printable, one line (as CloudInit demands of keys), with what a shell or a YAML reader could trip over.
HOSTILE_KEYS = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvTestKeyOne pv\"q'$(id)`id`;|&<>\\ ü 😀",
    'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQPvTestKeyTwo from="a,b" - [x]: {y} # not a comment',
)


def sha256(data: bytes) -> str:
    """Hex SHA-256, as busybox sha256sum prints it."""
    return hashlib.sha256(data).hexdigest()


def guest_hostname(tag: str) -> str:
    """A host name (CloudInit refuses any other: a guest cannot set one, so hostile text goes in the instance id)."""
    return f"pv-{tag}"


def hostile_instance_id(tag: str) -> str:
    """An instance id the guest's /init prints: it must arrive as written, and nothing in it may run."""
    return f"iid-{tag}-h'\"$(touch /tmp/pw{tag})`touch /tmp/pb{tag}`;|&<>x"


def host_traces(tag: str) -> list[Path]:
    """Files the hostile values would create if anything evaluated them here (on the host)."""
    return [path for path in (Path(f"/tmp/{kind}{tag}") for kind in ("pw", "pb", "pu")) if path.exists()]


def seed_lines(text: str, marker: str) -> dict[str, str]:
    """The guest's ``polyvisor-seed: key=value`` console lines as a dict (the last of each key wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(marker) and "=" in line:
            key, _, value = line[len(marker) :].partition("=")
            out[key] = value
    return out


def pool_directory(raw: libvirt.virConnect) -> Path:
    """The test pool's directory (libvirt-qemu reads files there)."""
    target = ET.fromstring(raw.storagePoolLookupByName(POOL).XMLDesc(0)).find("target/path")
    assert target is not None, f"pool {POOL} has no target path"
    assert target.text, f"pool {POOL} has no target path"
    return Path(target.text)


@pytest.fixture
def write_seed(libvirt_conn: libvirt.virConnect, name_prefix: str) -> Iterator[SeedWriter]:
    """Writes seed ISOs named ``<prefix>seedN.iso`` into the pool directory; removes them afterwards."""
    try:
        from polyvisor.provisioning import build_seed_iso
    except ImportError as exc:  # pycdlib is a dependency of polyvisor: its absence is a broken install
        unavailable(f"polyvisor.provisioning cannot build seeds ({exc})")
    directory = pool_directory(libvirt_conn)
    made: list[Path] = []

    def write(cloud_init: CloudInit) -> Path:
        path = directory / f"{name_prefix}seed{len(made)}.iso"
        made.append(path)
        path.write_bytes(build_seed_iso(cloud_init))
        path.chmod(0o644)
        return path

    yield write
    for path in made:
        path.unlink(missing_ok=True)


@pytest.fixture
def tag() -> Iterator[str]:
    """A unique tag for trace files; any a failing test leaves on the host are removed."""
    unique = uuid.uuid4().hex[:8]
    yield unique
    for path in host_traces(unique):
        path.unlink()


def boot_with_seed(
    pv_conn: Connection, guests: Guests, spec: dict[str, Any], seed: Path, image: GuestImage, what: str
) -> tuple[VM, str]:
    """Create and start the guest with ``seed`` as its CD-ROM; wait until it has applied the seed and printed ``what``
    (the guest reads the seed after its ready marker); return the VM and its console."""
    vm = guests.track(pv_conn.create({**spec, "name": f"{guests.prefix}seed", "cdrom": str(seed)}))
    assert vm.start().state is PowerState.RUNNING
    done = f"{image.seed_marker}done"
    text = wait_console(
        vm, lambda t: image.marker in t and done in t and what in t, f"{what!r}, {done!r} and {image.marker}", 120
    )
    return vm, text


def finish(vm: VM, guests: Guests, raw: libvirt.virConnect) -> None:
    """Stop and delete the guest; nothing of it may remain."""
    footprint = guests.footprint(vm)
    vm.stop()
    vm.delete(storage=True)
    assert footprint.leftovers(raw) == []


@pytest.mark.parametrize("form", ["flow", "block"])
def test_seed_sets_hostname_and_authorized_keys_byte_for_byte(
    pv_conn: Connection,
    libvirt_conn: libvirt.virConnect,
    guests: Guests,
    x86_seed_image: GuestImage,
    conformance_spec: dict[str, Any],
    write_seed: SeedWriter,
    tag: str,
    form: str,
) -> None:
    from polyvisor.provisioning import CloudInit

    hostname = guest_hostname(tag)
    if form == "flow":  # what CloudInit writes: meta-data `public-keys`, a JSON list
        cloud_init = CloudInit(
            instance_id=hostile_instance_id(tag), local_hostname=hostname, ssh_authorized_keys=HOSTILE_KEYS
        )
    else:  # the block list people write by hand, double- and single-quoted and plain
        first = HOSTILE_KEYS[0].replace("\\", "\\\\").replace('"', '\\"')
        second = HOSTILE_KEYS[1].replace("'", "''")
        user_data = f"#cloud-config\n# keys for root\nssh_authorized_keys:\n  - \"{first}\"\n  - '{second}'\nx: 1\n"
        cloud_init = CloudInit(instance_id=hostile_instance_id(tag), local_hostname=hostname, user_data=user_data)
    files = cloud_init.files()
    seed = write_seed(cloud_init)

    vm, text = boot_with_seed(pv_conn, guests, conformance_spec, seed, x86_seed_image, "authorized_keys sha256=")
    got = seed_lines(text, x86_seed_image.seed_marker)

    # The files arrived byte for byte, and each value was applied as the guest reads it back.
    assert got["meta-data sha256"] == sha256(files["meta-data"]), text
    assert got["user-data sha256"] == sha256(files["user-data"]), text
    assert got["instance-id"] == hostile_instance_id(tag)
    assert got["hostname"] == hostname
    # cloud-init writes each key on a line of its own, the last one ending in a newline too.
    expected_keys = "".join(f"{key}\n" for key in HOSTILE_KEYS).encode()
    assert got["authorized_keys sha256"] == f"{sha256(expected_keys)} count={len(HOSTILE_KEYS)}"
    user_data_kind = "empty" if form == "flow" else "cloud-config"  # the keys never edit the user-data
    assert f"{x86_seed_image.seed_marker}user-data {user_data_kind}" in text
    assert host_traces(tag) == [], "a hostile value was evaluated on the host"
    finish(vm, guests, libvirt_conn)


def test_seed_runs_a_user_data_script_once_with_100_kb_of_hostile_text(
    pv_conn: Connection,
    libvirt_conn: libvirt.virConnect,
    guests: Guests,
    x86_seed_image: GuestImage,
    conformance_spec: dict[str, Any],
    write_seed: SeedWriter,
    tag: str,
    record_property: Recorder,
) -> None:
    from polyvisor.provisioning import CloudInit

    hostname = guest_hostname(tag)
    line = f"q' d\" $(touch /tmp/pu{tag}) `touch /tmp/pu{tag}` ${{HOME}} $((6*7)) \\n \\ \t; | & < > ü 😀 EOF\n"
    body = "".join(f"{n:05d} {line}" for n in range(100 * 1024 // len(line.encode()) + 1))
    assert len(body.encode()) >= 100 * 1024
    assert "\nPVTEST_EOF\n" not in body
    script = (
        "#!/bin/sh\n"
        f"cat >/tmp/blob <<'PVTEST_EOF'\n{body}PVTEST_EOF\n"
        'echo "pvtest-user-data: blob sha256=$(sha256sum /tmp/blob | cut -d" " -f1) bytes=$(wc -c </tmp/blob)"\n'
        f"if [ -e /tmp/pw{tag} ] || [ -e /tmp/pb{tag} ] || [ -e /tmp/pu{tag} ]; then\n"
        '    echo "pvtest-user-data: something was evaluated"\n'
        "else\n"
        '    echo "pvtest-user-data: nothing was evaluated"\n'
        "fi\n"
        'echo "pvtest-user-data: hostname=$(hostname)"\n'
        "exit 3\n"
    )
    cloud_init = CloudInit(instance_id=hostile_instance_id(tag), local_hostname=hostname, user_data=script)
    seed = write_seed(cloud_init)

    exit_line = f"{x86_seed_image.seed_marker}user-data exit="
    vm, text = boot_with_seed(pv_conn, guests, conformance_spec, seed, x86_seed_image, exit_line)
    got = seed_lines(text, x86_seed_image.seed_marker)
    ran = seed_lines(text, "pvtest-user-data: ")

    assert got["user-data sha256"] == sha256(script.encode()), text
    assert got["hostname"] == hostname
    assert got["user-data exit"] == "3"
    assert text.count(exit_line) == 1, "the user-data script ran more than once"
    assert ran["blob sha256"] == f"{sha256(body.encode())} bytes={len(body.encode())}"
    assert ran["hostname"] == hostname
    assert "pvtest-user-data: nothing was evaluated" in text, text[-2000:]
    assert "authorized_keys" not in got
    assert host_traces(tag) == [], "a hostile value was evaluated on the host"
    record_property("user_data_bytes", len(script.encode()))
    finish(vm, guests, libvirt_conn)
