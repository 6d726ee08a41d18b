"""Walk one VM through its life on any polyvisor URI, printing the state the hypervisor reports after each step.

    python quickstart.py [URI]        # default: test:///default

If the host needs a password, it is read from $POLYVISOR_PASSWORD. Extra connection options (such as
``ca_path``) go in the URI's query string.
"""

from __future__ import annotations

import os
import sys

import polyvisor
from polyvisor import Feature, VMSpec


def main(uri: str) -> None:
    password = os.environ.get("POLYVISOR_PASSWORD")  # None when the host needs none

    with polyvisor.connect(uri, password=password) as conn:
        host = conn.host_info()
        print(f"connected to {conn.uri} ({host.hypervisor} on {host.hostname})")

        spec = VMSpec(name="quickstart-demo", cpus=1, memory_mib=512, labels={"purpose": "quickstart"})
        if conn.exists(spec.name):  # left over from an interrupted run
            old = conn.vm(spec.name)
            old.ensure("stopped", force=True)
            old.delete()

        vm = conn.create(spec)
        print(f"created   {vm.name()} {vm.uuid}: {vm.status()}")
        print(f"start     -> {vm.start()}")
        print(f"pause     -> {vm.pause()}")
        print(f"resume    -> {vm.resume()}")
        caps = vm.capabilities()  # what this backend (and this VM) can do
        if caps.supports(Feature.SNAPSHOTS):
            vm.snapshot("before-save", memory=caps.supports(Feature.SNAPSHOT_MEMORY))
            print(f"snapshot  -> {[snap.name for snap in vm.snapshots()]}")
        print(f"save      -> {vm.save()}")
        print(f"start     -> {vm.start()}  (memory restored)")
        print(f"shutdown  -> {vm.shutdown(timeout=60)}")
        print(f"labels    -> {dict(vm.labels())}")
        vm.delete()
        print(f"delete    -> exists: {conn.exists(spec.name)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test:///default")
