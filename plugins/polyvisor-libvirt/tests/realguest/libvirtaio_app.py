"""An application that runs libvirt's events on its own asyncio loop (libvirtaio), driving polyvisor.aio.

Run in a process of its own (libvirt keeps one event-loop implementation per process, for good):
``python libvirtaio_app.py URI SPEC_JSON``. It prints one JSON line: which implementation polyvisor found, the
threads alive, and the events the stream delivered, each with whether its callback ran on the loop's thread.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import libvirtaio

import polyvisor
import polyvisor.aio
from polyvisor.model import PowerState, VMSpec
from polyvisor_libvirt.eventloop import event_loop_kind


def stop_from_another_client(uri: str, uuid: str) -> None:
    """Power the VM off through the sync API on a connection of its own (its events run on the same loop)."""
    with polyvisor.connect(uri) as other:
        other.vm(uuid).stop()


async def main(uri: str, spec: VMSpec) -> dict[str, Any]:
    libvirtaio.virEventRegisterAsyncIOImpl()  # before the first connection, as libvirt requires
    loop_thread = threading.get_ident()
    seen: list[dict[str, Any]] = []
    async with polyvisor.aio.connect(uri) as conn:
        vm = await conn.create(spec)
        try:
            async with conn.events() as stream:
                await vm.start()
                async with asyncio.timeout(60):
                    async for event in stream:
                        if event.uuid != vm.uuid:
                            continue
                        seen.append({"kind": event.kind.value, "state": event.state and event.state.value})
                        if event.state is PowerState.RUNNING:
                            break
            # A wait woken by events (not by polling): another client's stop reaches it through the same loop.
            waiting = asyncio.create_task(vm.wait_for("stopped", timeout=60))
            await asyncio.sleep(0)
            await asyncio.to_thread(stop_from_another_client, uri, vm.uuid)
            final = (await waiting).state.value
        finally:
            await vm.delete(storage=True)
    kind = event_loop_kind()
    return {
        "kind": kind and kind.value,
        "threads": sorted(thread.name for thread in threading.enumerate()),
        "events": seen,
        "final": final,
        "loop_thread_is_main": loop_thread == threading.main_thread().ident,
    }


if __name__ == "__main__":
    target, spec_json = sys.argv[1], sys.argv[2]
    print(json.dumps(asyncio.run(main(target, VMSpec.from_dict(json.loads(spec_json))))))
