"""List the VMs of a remote host (libvirt or Hyper-V), over any transport, and say what to fix when it cannot connect.

    python remote_host.py URI

The SASL user name and password, for a libvirt daemon that asks for them, are read from $LIBVIRT_USERNAME and
$LIBVIRT_PASSWORD; a Hyper-V host's password from $POLYVISOR_PASSWORD (a password never goes in the URI).
"""

from __future__ import annotations

import os
import sys

import polyvisor
from polyvisor.errors import ConnectionError


def main(uri: str) -> int:
    try:
        conn = polyvisor.connect(
            uri,
            username=os.environ.get("LIBVIRT_USERNAME"),  # None: the URI's user, if any
            password=os.environ.get("LIBVIRT_PASSWORD") or os.environ.get("POLYVISOR_PASSWORD"),
        )
    except ConnectionError as error:  # AuthenticationError included: the message names the fix
        print(f"cannot connect: {error}")
        return 1
    with conn:
        print(f"{conn.uri.scheme} to {conn.host}: {conn.host_info().hypervisor}")
        for vm in conn.list():
            print(f"  {vm.name} {vm.state.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
