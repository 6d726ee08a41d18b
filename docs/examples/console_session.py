"""Open a VM's serial console, type at it and read what comes back (the console page's example).

    python docs/examples/console_session.py [URI]

On ``memory://`` (the default) the guest's console echoes what it is sent, as a terminal does.
"""

from __future__ import annotations

import sys

import polyvisor

uri = sys.argv[1] if len(sys.argv) > 1 else "memory:///console-demo"
with polyvisor.connect(uri) as conn:
    vm = conn.create({"name": "console-demo"})
    try:
        vm.start()
        with vm.console() as console:  # closed, descriptors and all, when the block ends
            console.write(b"hello, guest\r")
            print("echoed:", console.read_until(b"\r", timeout=10))
            try:
                vm.console()  # one client at a time
            except polyvisor.InUseError:
                print("a second console is refused; force=True takes it over")
            with vm.console(force=True) as taken:
                print("the first one ended:", console.read(timeout=10) == b"")
                taken.write("still here\r")
                print("echoed:", taken.read_until("\r", timeout=10))
    finally:
        vm.stop()
        vm.delete(storage=True)
