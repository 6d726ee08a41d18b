"""Disk files: where new ones go, and finding and removing a VM's files (with checkpoint chains) on delete."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence

from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, NotFoundError, PolyvisorError
from polyvisor.model import DiskFormat, DiskSpec
from polyvisor_hyperv.client import HyperVClient, as_text, then
from polyvisor_hyperv.commands import SWITCH, Step

__all__ = ["CHECKPOINT_DISK", "Storage"]

CHECKPOINT_DISK = re.compile(r"_[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\.avhdx?$", re.IGNORECASE)
"""A checkpoint's differencing disk: Hyper-V names it after the chain's root, ``<root>_<GUID>.avhdx``."""


class Storage:
    """Disk files on the host."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    def new_vhd_path(self, uuid: str, disk: DiskSpec, extension: str | None = None) -> str:
        if extension is None:
            extension = "vhd" if disk.disk_format is DiskFormat.VHD else "vhdx"
        # The VM's Id, not its name, names the file: names may hold characters Windows paths cannot.
        return f"{self._client.vhd_dir().rstrip(chr(92))}\\{uuid}-{secrets.token_hex(4)}.{extension}"

    def delete_files(self, paths: Sequence[str]) -> None:
        """Delete files made for a VM that did not come to be (best effort: a failure is not raised)."""
        for path in paths:
            with contextlib.suppress(PolyvisorError):
                self._client.run(
                    [Step("Remove-Item", {"LiteralPath": path, "Force": SWITCH, "ErrorAction": "SilentlyContinue"})],
                    doing="removing a disk file",
                )

    def disk_files(
        self,
        vms: Sequence[Step],
        *,
        doing: str,
        vm: str | None = None,
        deadline: Deadline | None = None,
        every_parent: bool = False,
    ) -> list[str]:
        """Return the disk files of the VMs ``vms`` selects and of their checkpoints, with the parent chains of
        checkpoint disks, children before parents.

        Only a checkpoint's differencing disk (``<root>_<GUID>.avhdx``) leads to its parent: the parent of any
        other differencing disk is a base image the VM was cloned from (``clone="linked"``), never the VM's own.
        ``every_parent`` follows every parent instead: what other VMs depend on, which must stay.

        A pass-through drive has a ``DiskNumber`` and its ``Path`` is the physical disk's friendly name, no file
        (nforgeio/neonSDK .../PowerShell/HardDiskDrive.cs), so it is left out.
        """
        paths: list[str] = []
        for via in ([], [then("Get-VMSnapshot")]):
            rows = self._client.run(
                [*vms, *via, then("Get-VMHardDiskDrive")],
                doing=doing,
                vm=vm,
                select=("Path", "DiskNumber"),
                deadline=deadline,
            )
            paths += [as_text(row.get("Path")) for row in rows if row.get("Path") and row.get("DiskNumber") is None]
        parents: dict[str, str | None] = {}  # casefolded path -> parent path
        known = {path.casefold(): path for path in paths}
        frontier = list(dict.fromkeys(paths))
        while frontier:
            # One Get-VHD per level of the chains; a drive that is no VHD (or a missing file) has no parent.
            rows = self._client.run(
                [Step("Get-VHD", {"Path": frontier, "ErrorAction": "SilentlyContinue"})],
                doing=doing,
                vm=vm,
                select=("Path", "ParentPath"),
                deadline=deadline,
            )
            for path in frontier:
                parents.setdefault(path.casefold(), None)
            frontier = []
            for row in rows:
                parent = as_text(row.get("ParentPath")) or None
                child = as_text(row.get("Path"))
                if not every_parent and not CHECKPOINT_DISK.search(child):
                    continue  # a linked clone's base image: not this VM's to remove
                parents[child.casefold()] = parent
                if parent is not None and parent.casefold() not in known:
                    known[parent.casefold()] = parent
                    frontier.append(parent)

        def depth(key: str) -> int:
            seen: set[str] = set()
            while (parent := parents.get(key)) is not None and key not in seen:
                seen.add(key)
                key = parent.casefold()
            return len(seen)

        return sorted(known.values(), key=lambda path: -depth(path.casefold()))

    def delete_disks(self, paths: Sequence[str], uuid: str) -> None:
        """Remove ``paths`` in order; try every one, then raise naming those left (the VM is already gone)."""
        left: list[str] = []
        first: PolyvisorError | None = None
        for path in paths:
            try:
                self._client.run(
                    [Step("Remove-Item", {"LiteralPath": path, "Force": SWITCH})],
                    doing=f"removing disk file {path}",
                    vm=uuid,
                )
            except NotFoundError:
                continue  # already gone: nothing left behind
            except PolyvisorError as error:
                left.append(path)
                first = first or error
        if left:
            raise BackendError(
                f"the VM was deleted, but {len(left)} of its disk files could not be removed; remove them by hand: "
                + "; ".join(left)
                + f" (first error: {first})",
                host=self._client.host,
                vm=uuid,
            )
