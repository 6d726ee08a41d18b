"""From a base image to an SSH command line: clone, seed, start, wait until ready, resize memory, clean up.

    python image_to_ssh.py URI BASE_IMAGE [PUBLIC_KEY_FILE [LOGIN]]

BASE_IMAGE is a path on the hypervisor host (a qcow2 or raw image for libvirt, a VHDX for Hyper-V); it is never
written. PUBLIC_KEY_FILE defaults to ~/.ssh/id_ed25519.pub. LOGIN is the image's default user, who gets the keys
(``debian`` on Debian's cloud images, ``ubuntu`` on Ubuntu's; root logins are refused by their cloud-init
configuration). If the host needs a password, it is read from $POLYVISOR_PASSWORD.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import polyvisor
from polyvisor import Feature, VMSpec
from polyvisor.provisioning import CloudInit

USER_DATA = """#cloud-config
package_update: false
runcmd:
  - [sh, -c, "echo provisioned by polyvisor > /etc/motd"]
"""


def main(uri: str, base_image: str, key_file: Path, login: str = "debian") -> None:
    keys = [line for line in key_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    spec = VMSpec(
        name="image-to-ssh",
        cpus=1,
        memory_mib=1024,
        # A linked clone: a thin overlay on the base, grown to 4 GiB; the base stays as it is.
        disks=[{"image": base_image, "clone": "linked", "size_mib": 4096}],
        nics=[{}],
        cloud_init=CloudInit(
            instance_id="image-to-ssh-1",
            local_hostname="image-to-ssh",
            user_data=USER_DATA,
            ssh_authorized_keys=tuple(keys),
        ),
        # Memory may change while the guest runs, between 512 MiB and 2 GiB.
        dynamic_memory={"minimum_mib": 512, "maximum_mib": 2048},
    )

    with polyvisor.connect(uri, password=os.environ.get("POLYVISOR_PASSWORD")) as conn:
        vm = conn.create(spec)
        try:
            vm.start()
            address = vm.wait_for_address(timeout=300)  # the first usable IPv4 address any source reports
            if vm.capabilities().supports(Feature.READINESS):
                # An address comes long before cloud-init has installed the keys and run runcmd: wait for that.
                ready = vm.wait_until_ready(timeout=300)
                print(f"ready: {ready}")
            print(f"ssh {login}@{address.address}")
            print(f"(from {address.source} on {address.interface})")

            if vm.capabilities().supports(Feature.RECONFIGURE_LIVE_MEMORY):
                info = vm.reconfigure(memory_mib=2048)  # live: the VM keeps running
                print(f"memory now {info.memory_mib} MiB, {info.state.value}")
        finally:
            vm.ensure("stopped", force=True)
            vm.delete(storage=True)  # the clone and the seed go; the base image stays
    print("deleted the VM, its clone and its seed; the base image is kept")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    key = Path(sys.argv[3]) if len(sys.argv) > 3 else Path.home() / ".ssh" / "id_ed25519.pub"
    main(sys.argv[1], sys.argv[2], key, *sys.argv[4:5])
