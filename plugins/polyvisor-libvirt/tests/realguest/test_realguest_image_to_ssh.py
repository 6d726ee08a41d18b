"""The whole job through polyvisor alone: a linked clone of a base image, a cloud-init seed with hostile values,
an address, and a delete that keeps the base.

Unlike test_realguest_seed.py (which hands the guest a seed file of its own through ``cdrom``), here the libvirt
backend builds the seed from the spec's ``cloud_init``, uploads it into the pool and attaches it; the tiny guest
applies it and reports on its console (it follows the NoCloud layout; it is not cloud-init).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyvisor import PowerState
from polyvisor.provisioning import CloudInit

from .pvguest import wait_console
from .support import POOL, create_disk
from .test_realguest_provisioning import sha256
from .test_realguest_seed import HOSTILE_KEYS, guest_hostname, host_traces, hostile_instance_id, seed_lines
from .test_realguest_seed import sha256 as sha256_hex

if TYPE_CHECKING:
    import libvirt

    from polyvisor import Connection

    from .pvguest import Guests
    from .support import GuestImage


Recorder = Callable[[str, object], None]


def test_a_linked_clone_with_a_hostile_seed_boots_reachable_and_leaves_its_base_alone(
    pv_conn: Connection,
    libvirt_conn: libvirt.virConnect,
    guests: Guests,
    x86_seed_image: GuestImage,
    conformance_spec: dict[str, Any],
    name_prefix: str,
    record_property: Recorder,
) -> None:
    tag = uuid.uuid4().hex[:8]
    base = create_disk(libvirt_conn, f"{name_prefix}base.qcow2", capacity_mib=16).path()
    before = sha256(base)
    hostname = guest_hostname(tag)
    script = (
        "#!/bin/sh\n"
        f"echo 'pvtest-user-data: quotes \"'\"'\"' $(touch /tmp/pu{tag}) `touch /tmp/pu{tag}` ran'\n"
        'echo "pvtest-user-data: hostname=$(hostname)"\n'
    )
    user_data = script + "# " + "x" * (100 * 1024) + "\n"  # 100 KB more of text in the same file
    cloud_init = CloudInit(instance_id=hostile_instance_id(tag), local_hostname=hostname, user_data=user_data)
    spec = {
        **conformance_spec,
        "name": f"{guests.prefix}image-to-ssh",
        "disks": [{"image": base, "clone": "linked", "size_mib": 32, "pool": POOL}],
        "cloud_init": cloud_init,
    }
    vm = guests.track(pv_conn.create(spec))
    footprint = guests.footprint(vm)
    owned = vm.info().extra["owned_volumes"]
    assert base not in owned
    assert len(owned) == 2, owned  # the overlay and the seed

    assert vm.start().state is PowerState.RUNNING
    exit_line = f"{x86_seed_image.seed_marker}user-data exit="
    text = wait_console(
        vm, lambda t: exit_line in t and "pvtest-user-data: hostname=" in t, "the seed applied and user-data run", 120
    )
    got = seed_lines(text, x86_seed_image.seed_marker)
    ran = seed_lines(text, "pvtest-user-data: ")
    assert got["instance-id"] == hostile_instance_id(tag)
    assert got["hostname"] == hostname
    assert got["user-data sha256"] == sha256_hex(user_data.encode())
    assert got["user-data exit"] == "0"
    assert ran["hostname"] == hostname
    # The script printed its single-quoted text as it stands: the guest's shell ran it, nothing evaluated it.
    expected = "pvtest-user-data: quotes \"' $(touch /tmp/pu" + tag + ") `touch /tmp/pu" + tag + "` ran"
    assert expected in text, text[-1500:]
    assert host_traces(tag) == [], "a hostile value was evaluated on the host"

    address = vm.wait_for_address(timeout=60)
    assert (address.source, address.address) == ("agent", "192.0.2.10")

    vm.stop()
    vm.delete(storage=True)
    assert footprint.leftovers(libvirt_conn) == []  # the overlay and the seed went with the VM
    assert Path(base).exists()
    assert sha256(base) == before
    record_property("user_data_bytes", len(user_data.encode()))


def test_the_seed_keys_reach_root(
    pv_conn: Connection, guests: Guests, x86_seed_image: GuestImage, conformance_spec: dict[str, Any]
) -> None:
    cloud_init = {"local_hostname": "keys-only", "ssh_authorized_keys": list(HOSTILE_KEYS)}
    vm = guests.track(pv_conn.create({**conformance_spec, "name": f"{guests.prefix}keys", "cloud_init": cloud_init}))
    vm.start()
    done = f"{x86_seed_image.seed_marker}done"
    text = wait_console(vm, lambda t: done in t, done, 120)
    got = seed_lines(text, x86_seed_image.seed_marker)
    expected = "".join(f"{key}\n" for key in HOSTILE_KEYS).encode()
    assert got["authorized_keys sha256"] == f"{sha256_hex(expected)} count={len(HOSTILE_KEYS)}"
    assert got["instance-id"] == vm.name()  # a cloud_init table without instance_id gets the VM's name
    vm.stop()
    vm.delete(storage=True)
