"""Snapshots of libvirt domains: internal snapshots, with polyvisor's marker for memory-less ones of a running VM."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import libvirt

from polyvisor.backend import Deadline
from polyvisor.model import PowerState, Snapshot
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["Snapshots"]


class Snapshots:
    """Create, list, revert and delete snapshots over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        """snapshotCreateXML (internal snapshots).

        Internal snapshots of a running VM always hold its memory (QEMU and the test driver alike), and libvirt
        9 cannot revert external disk-only ones. So ``memory=False`` on a running VM is kept as the contract
        means it: the choice is recorded in the snapshot itself (a marker in the domain's metadata while it is
        taken) and reverting to it leaves the VM stopped, with its disks as they were.
        """
        doing = f"taking snapshot {name!r}"
        with self._client.acting(uuid, doing, deadline) as dom:
            running = bool(dom.isActive())
            marker = running and not memory
            if marker:
                self._set_snapshot_marker(dom, domainxml.snapshot_marker_xml(name, memory=False))
            try:
                xml = domainxml.snapshot_xml(name, description, memory=memory or running, running=running)
                snap = self._client.bounded(dom, deadline, doing, lambda: dom.snapshotCreateXML(xml, 0))
            finally:
                if marker:
                    self._set_snapshot_marker(dom, None)
            return _snapshot(snap, current=True)

    def _set_snapshot_marker(self, dom: libvirt.virDomain, xml: str | None) -> None:
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            xml,
            domainxml.SNAPSHOT_PREFIX if xml else None,
            domainxml.SNAPSHOT_NS,
            self._client.affect(dom),
        )

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        """Every snapshot with its parent and whether it is current."""
        with self._client.acting(uuid, "listing snapshots") as dom:
            current = None
            if dom.hasCurrentSnapshot(0):
                current = dom.snapshotCurrent(0).getName()
            return [_snapshot(snap, current=snap.getName() == current) for snap in dom.listAllSnapshots(0)]

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        """revertToSnapshot; a snapshot taken without memory ends stopped, whatever libvirt kept."""
        doing = f"reverting to snapshot {name!r}"
        with self._client.acting(uuid, doing, deadline) as dom:
            snap = dom.snapshotLookupByName(name, 0)
            wants_memory = domainxml.snapshot_wants_memory(ET.fromstring(snap.getXMLDesc(0)))
            if wants_memory is False:
                self._client.bounded(
                    dom, deadline, doing, lambda: dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED)
                )
                if dom.isActive():
                    dom.destroy()
            else:
                self._client.bounded(dom, deadline, doing, lambda: dom.revertToSnapshot(snap, 0))
            self._client.cache.drop(dom.UUIDString())

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        """Delete one snapshot (its children move up) or the whole subtree."""
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if children else 0
        with self._client.acting(uuid, f"deleting snapshot {name!r}", deadline) as dom:
            dom.snapshotLookupByName(name, 0).delete(flags)


def _snapshot(snap: libvirt.virDomainSnapshot, *, current: bool) -> Snapshot:
    root = ET.fromstring(snap.getXMLDesc(0))
    created = root.findtext("creationTime")
    memory = root.find("memory")
    state = root.findtext("state", "")
    return Snapshot(
        name=root.findtext("name", ""),
        parent=root.findtext("parent/name"),
        created=datetime.fromtimestamp(int(created), UTC) if created else None,
        state=_SNAPSHOT_STATES.get(state, PowerState.UNKNOWN),
        has_memory=memory is not None
        and memory.get("snapshot") in ("internal", "external")
        and domainxml.snapshot_wants_memory(root) is not False,
        description=root.findtext("description", ""),
        is_current=current,
    )


_SNAPSHOT_STATES = {
    "running": PowerState.RUNNING,
    "blocked": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "shutdown": PowerState.STOPPING,
    "shutoff": PowerState.STOPPED,
    "crashed": PowerState.CRASHED,
    "pmsuspended": PowerState.SUSPENDED,
    "disk-snapshot": PowerState.RUNNING,
}
