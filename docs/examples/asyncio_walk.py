"""Start three VMs at once with polyvisor.aio, watching their events, then cancel a wait and clean up.

    python asyncio_walk.py [URI]        # default: test:///default

If the host needs a password, it is read from $POLYVISOR_PASSWORD.
"""

from __future__ import annotations

import asyncio
import os
import sys

import polyvisor.aio
from polyvisor import PowerState


async def main(uri: str) -> None:
    password = os.environ.get("POLYVISOR_PASSWORD")  # None when the host needs none
    async with polyvisor.aio.connect(uri, password=password) as conn:
        names = [f"aio-demo-{n}" for n in range(3)]
        for name in names:  # left over from an interrupted run
            if await conn.exists(name):
                old = await conn.vm(name)
                await old.ensure("stopped", force=True)
                await old.delete()
        vms = await asyncio.gather(*(conn.create({"name": n, "cpus": 1, "memory_mib": 128}) for n in names))

        async with conn.events() as events:  # subscribed from here on
            statuses = await asyncio.gather(*(vm.start() for vm in vms))  # three waits, no thread held
            states = zip(vms, statuses, strict=True)
            print("started:", sorted(f"{vm.seen_name}={status.state.value}" for vm, status in states))
            running: set[str] = set()
            async for event in events:
                if event.name in names and event.state is PowerState.RUNNING:
                    running.add(event.name)
                if running == set(names):
                    break
            print("events: running", sorted(running))

        # Cancelling a wait stops it at once and leaves the VM as it is.
        began = asyncio.Event()
        waiting = asyncio.create_task(vms[0].wait_for("stopped", timeout=60, progress=lambda _note: began.set()))
        await began.wait()  # progress is reported once the wait is under way
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            print("cancelled the wait; the VM is", (await vms[0].state()).value)

        await asyncio.gather(*(vm.ensure("stopped", force=True) for vm in vms))
        await asyncio.gather(*(vm.delete() for vm in vms))
        print("left:", [info.name for info in await conn.list() if info.name in names])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "test:///default"))
