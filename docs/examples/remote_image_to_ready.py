"""Put a disk image from this machine on a remote host, make a VM of a linked clone of it, and wait until it is ready.

    python remote_image_to_ready.py URI IMAGE [--pool POOL] [--name NAME] [--key PUBLIC_KEY_FILE]
                                    [--forward PORT | --network NETWORK] [--accelerator kvm|tcg]

IMAGE is a file here: a qcow2 or raw cloud image for a libvirt host, a VHDX for a Hyper-V host. It is uploaded into
POOL (the host's default pool, or its virtual hard disk path, without --pool) under its own file name. The VM gets a
linked clone of it beside it, the SSH key (default ~/.ssh/id_ed25519.pub) through cloud-init, and a NIC: a user-mode
one whose guest port 22 listens on the host's 127.0.0.1:PORT (--forward), or one on NETWORK. The VM is left running;
the last lines say how to log in. If anything fails, the VM and the uploaded image are deleted again. If the host
needs a password, it is read from $POLYVISOR_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import polyvisor
from polyvisor import TransferProgress, VMSpec
from polyvisor.provisioning import CloudInit

MiB = 1024 * 1024


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("uri")
    parser.add_argument("image", type=Path)
    parser.add_argument("--pool")
    parser.add_argument("--name", default="web1")
    parser.add_argument("--key", type=Path, default=Path.home() / ".ssh" / "id_ed25519.pub")
    parser.add_argument("--login", default="debian", help="the image's default user (debian, ubuntu, ...)")
    nic = parser.add_mutually_exclusive_group()
    nic.add_argument("--forward", type=int, metavar="PORT")
    nic.add_argument("--network")
    parser.add_argument("--accelerator", choices=["kvm", "tcg"])
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    keys = [line for line in args.key.read_text().splitlines() if line.strip() and not line.startswith("#")]
    with polyvisor.connect(args.uri, password=os.environ.get("POLYVISOR_PASSWORD")) as conn:
        # 1. The image goes up the connection itself (over SSH for qemu+ssh://): no scp, no shared folder.
        began, seen = time.monotonic(), [TransferProgress(0, 0, 0)]
        volume = conn.upload_image(args.image, pool=args.pool, progress=seen.append)
        print(
            f"uploaded {volume.name} into pool {volume.pool}: {seen[-1].sent / MiB:.1f} MiB sent for a "
            f"{seen[-1].total / MiB:.1f} MiB file in {time.monotonic() - began:.1f} s"
        )
        nic = {"kind": "user", "forwards": [f"{args.forward}:22"]} if args.forward else {"network": args.network}
        spec = VMSpec(
            name=args.name,
            cpus=1,
            memory_mib=1024,
            # 2. A linked clone: a thin overlay beside the uploaded image, which stays as it is.
            disks=[{"image": volume, "clone": "linked"}],
            nics=[nic],
            cloud_init=CloudInit(instance_id=args.name, local_hostname=args.name, ssh_authorized_keys=tuple(keys)),
            accelerator=args.accelerator,
        )
        vm = None
        try:
            vm = conn.create(spec)
            vm.start()
            print(f"{spec.name}: a linked clone of {volume.name}, running")
            # 3. Ready: the host's own sources (cloud-init's result through the guest agent on libvirt, the guest's
            # heartbeat on Hyper-V), asked over the same connection.
            ready = vm.wait_until_ready(timeout=600)
            print(f"{spec.name}: ready: {ready}")
            if args.forward:
                # The forward listens on the host's loopback, so log in through the host.
                jump = f"{conn.uri.username}@{conn.uri.host}" + (f":{conn.uri.port}" if conn.uri.port else "")
                print(f"log in: ssh -J {jump} -p {args.forward} {args.login}@127.0.0.1")
            else:
                address = vm.wait_for_address(timeout=300)
                print(f"log in: ssh {args.login}@{address.address}")
        except BaseException:
            if vm is not None:
                vm.ensure("stopped", force=True)
                vm.delete(storage=True)
            conn.delete_volume(volume.name, pool=volume.pool)
            raise


if __name__ == "__main__":
    main()
