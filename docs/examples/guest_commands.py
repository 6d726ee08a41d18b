"""Run commands in a guest and copy files in and out (the guest-commands page's example).

    python docs/examples/guest_commands.py [URI]

On ``memory://`` (the default) the guest runs a few programs: echo, printf, cat, true, false, exit, sleep.
"""

from __future__ import annotations

import sys

import polyvisor

uri = sys.argv[1] if len(sys.argv) > 1 else "memory:///commands-demo"
with polyvisor.connect(uri) as conn:
    vm = conn.create({"name": "commands-demo"})
    try:
        vm.start()
        # argv is a list all the way into the guest: nothing here is read by a shell.
        hostile = ["it's", "$(reboot)", "a\nb"]
        result = vm.exec(["printf", "%s\\0", *hostile])
        print("exit", result.exit_code, "args back:", result.stdout.split(b"\0")[:-1] == [a.encode() for a in hostile])
        print("stdin to stdout:", vm.exec(["cat"], input=b"\xff\x00 any bytes").stdout)
        vm.write_file("/tmp/report.bin", b"\x00\x01 binary")
        print("file back:", vm.read_file("/tmp/report.bin"))
        try:
            vm.exec(["printf", "a\0b"])
        except polyvisor.ValidationError as error:
            print("refused:", error)
        try:
            vm.exec(["sleep", "5"], timeout=0.5)
        except polyvisor.TimeoutError:
            print("timed out after 0.5 s")
    finally:
        vm.stop()
        vm.delete(storage=True)
