"""Boot a VM of another architecture than the host's (an emulated guest), then stop and delete it.

    python other_arch.py URI ARCH KERNEL INITRD CMDLINE [NAME [WAIT_FOR]]

KERNEL and INITRD are that architecture's (paths the hypervisor host can read); CMDLINE names its console (hvc0 on
ppc64le, ttysclp0 on s390x, ttyS0 on riscv64 and x86_64, ttyAMA0 on aarch64). With WAIT_FOR the script waits until
the guest's console shows that text.
"""

from __future__ import annotations

import sys
import time

import polyvisor
from polyvisor import Feature, KernelBoot, VMSpec


def main(uri: str, arch: str, kernel: str, initrd: str, cmdline: str, name: str, wait_for: str | None) -> None:
    with polyvisor.connect(uri) as conn:
        offered = {guest.arch: guest for guest in conn.host_info().architectures}
        if arch not in offered:
            raise SystemExit(f"{conn.uri} runs no {arch} guests; it runs {', '.join(offered)}")
        guest = offered[arch]
        print(f"{arch} guests here: machine {guest.machine}, accelerators {', '.join(guest.accelerators)}")
        for feature, reason in sorted(guest.lacks.items()):
            print(f"  their VMs lack {feature.value}: {reason}")

        # The same spec as for a native guest, with arch=: the backend picks machine, firmware, console and buses,
        # and refuses (UnsupportedError, before anything is made) what the architecture cannot carry.
        spec = VMSpec(name=name, arch=arch, memory_mib=128, kernel=KernelBoot(kernel, initrd, cmdline))
        vm = conn.create(spec)
        print(f"created   {vm.name()} ({vm.info().extra['arch']}): {vm.state().value}")
        print(f"start     -> {vm.start(timeout=120).state.value}")
        if wait_for is not None and vm.capabilities().supports(Feature.CONSOLE):
            deadline = time.monotonic() + 240  # an emulated guest boots slowly
            while wait_for not in vm.console_output():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{wait_for!r} did not show on the console in time")
                time.sleep(0.5)
            print(f"console   -> {wait_for}")
        caps = vm.capabilities()  # this VM's: its architecture may take features away
        if caps.supports(Feature.SHUTDOWN_ACPI) or caps.supports(Feature.SHUTDOWN_AGENT):
            print(f"shutdown  -> {vm.shutdown(timeout=120).state.value}")
        else:
            print(f"stop      -> {vm.stop(timeout=60).state.value} (no graceful shutdown for {arch} here)")
        vm.delete(storage=True)
        print(f"delete    -> exists: {conn.exists(name)}")


if __name__ == "__main__":
    if len(sys.argv) < 6:
        raise SystemExit(__doc__)
    uri, arch, kernel, initrd, cmdline, *rest = sys.argv[1:]
    main(uri, arch, kernel, initrd, cmdline, rest[0] if rest else "arch-demo", rest[1] if len(rest) > 1 else None)
