"""Commands and files in the real Debian cloud guest, through its real qemu-guest-agent (Debian's package).

The shared, booted cloud guest of the session (``cloud_guest``): no boot of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cloudguest import CloudGuest

HOSTILE = ["it's", 'say "hi"', "$(touch /tmp/pv-pwned)", "`id`", "a\nb", "ü😀", "-n", "; rm -rf /"]


def test_exec_and_files_in_the_cloud_guest_arrive_byte_for_byte(cloud_guest: CloudGuest) -> None:
    vm = cloud_guest.vm
    result = vm.exec(["printf", "%s\\0", *HOSTILE])
    assert result.ok, result
    assert result.stdout.split(b"\0")[:-1] == [arg.encode() for arg in HOSTILE]
    assert vm.exec(["test", "-e", "/tmp/pv-pwned"]).exit_code == 1
    assert vm.exec(["id", "-u"]).stdout == b"0\n"  # the agent runs as root
    data = bytes(range(256)) * 512
    assert vm.exec(["sha256sum"], input=data).ok
    vm.write_file("/tmp/pv-blob", data)
    assert vm.read_file("/tmp/pv-blob") == data
    vm.exec(["rm", "-f", "/tmp/pv-blob"])
