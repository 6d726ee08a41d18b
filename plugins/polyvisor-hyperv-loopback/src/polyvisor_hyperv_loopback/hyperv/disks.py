"""Virtual hard disk files: creating them, their differencing chains, merges, and files held open.

A checkpoint points each of the VM's drives at a new differencing disk (``<root>_<GUID>.avhdx``); removing
checkpoints merges or deletes the disks no checkpoint needs any more; Remove-VM of a VM with checkpoints merges in
the background. A running VM holds its disks open, and through each one every parent in its chain.
"""

from __future__ import annotations

import copy
import ntpath
import threading
import uuid

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .faults import file_not_found
from .filesystem import FileEntry, normalize_path
from .records import MiB, VMRecord, all_drives
from .state import HostState

__all__ = ["VirtualDisks"]


class VirtualDisks:
    """The host's VHD files: creation, differencing chains, merges, and which files are in use."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition
        self._held: set[str] = set()  # files another process keeps open (casefolded paths)
        self._merging: dict[str, threading.Event] = {}  # casefolded path -> set when its merge may finish
        self._merges: list[threading.Thread] = []

    def create_vhd(self, path: str, size: int, vhd_type: str, parent: str | None) -> FileEntry:
        """Create a VHD/VHDX file of ``vhd_type`` (New-VHD, New-VM -NewVHDPath); hold the condition."""
        full = normalize_path(path, self._state.virtual_hard_disk_path)
        fmt = "VHD" if full.lower().endswith(".vhd") else "VHDX"
        if not full.lower().endswith((".vhd", ".vhdx")):
            raise HostError(
                f"Failed to create the virtual hard disk.\nThe format of '{full}' is not valid: "
                "the file name extension must be .vhd or .vhdx.",
                error_id="InvalidParameter",
                category="InvalidArgument",
                target_name=full,
            )
        if size <= 0 and vhd_type != "Differencing":
            raise HostError(
                "Failed to create the virtual hard disk.\nThe size of the virtual hard disk is not valid.",
                error_id="InvalidParameter",
                category="InvalidArgument",
                target_name=full,
            )
        file_size = size if vhd_type == "Fixed" else 4 * MiB
        block = 0 if vhd_type == "Fixed" else 32 * MiB
        return self._state.files.create(
            FileEntry(
                path=full,
                size=size,
                file_size=file_size,
                vhd_type=vhd_type,
                vhd_format=fmt,
                parent_path=parent,
                block_size=block,
            )
        )

    def new_vhd(
        self, path: str, size: int | None, *, vhd_type: str = "Dynamic", parent_path: str | None = None
    ) -> FileEntry:
        """Create a VHD/VHDX file (Dynamic by default; Differencing needs a parent)."""
        with self._cond:
            if vhd_type == "Differencing":
                if parent_path is None:
                    raise HostError(
                        "Failed to create the virtual hard disk.\nA differencing disk needs a parent path.",
                        error_id="InvalidParameter",
                        category="InvalidArgument",
                        target_name=path,
                    )
                parent = self._state.files.get(normalize_path(parent_path, self._state.virtual_hard_disk_path))
                if parent is None or parent.vhd_type is None:
                    raise file_not_found(normalize_path(parent_path, self._state.virtual_hard_disk_path))
                return copy.deepcopy(self.create_vhd(path, parent.size, "Differencing", parent.path))
            return copy.deepcopy(self.create_vhd(path, size or 0, vhd_type, None))

    def get_vhd(self, path: str) -> FileEntry:
        """Return the VHD at ``path``."""
        full = normalize_path(path, self._state.virtual_hard_disk_path)
        entry = self._state.files.get(full)
        if entry is None or entry.vhd_type is None:
            raise file_not_found(full)
        return copy.deepcopy(entry)

    def branch_drives(self, vm: VMRecord, guid: uuid.UUID) -> None:
        """Point each of the VM's VHD drives at a new differencing disk of the file it points at now.

        Hyper-V names it after the chain's root disk, ``<root>_<GUID>.avhdx`` next to the parent.
        """
        for drive in vm.config.hard_drives:
            parent = self._state.files.get(drive.path) if drive.path else None
            if parent is None or parent.vhd_type is None:
                continue
            root = self.chain(parent.path)[-1]
            stem, extension = ntpath.splitext(ntpath.basename(root.path))
            suffix = ".avhd" if extension.lower() == ".vhd" else ".avhdx"
            child = ntpath.join(ntpath.dirname(parent.path), f"{stem}_{str(guid).upper()}{suffix}")
            self._state.files.create(
                FileEntry(
                    path=child,
                    size=parent.size,
                    file_size=4 * MiB,
                    vhd_type="Differencing",
                    vhd_format=parent.vhd_format,
                    parent_path=parent.path,
                    block_size=2 * MiB,
                    checkpoint_of=vm.id,
                )
            )
            drive.path = normalize_path(child)

    def chain(self, path: str) -> list[FileEntry]:
        """Return the file at ``path`` and its parents, nearest first (missing files end the chain)."""
        out: list[FileEntry] = []
        entry = self._state.files.get(path)
        while entry is not None and all(e.path.casefold() != entry.path.casefold() for e in out):
            out.append(entry)
            entry = self._state.files.get(entry.parent_path) if entry.parent_path else None
        return out

    def _references(self) -> set[str]:
        """Return every file a VM's drive or a checkpoint's drive points at (casefolded)."""
        out: set[str] = set()
        for vm in self._state.vms.values():
            for config in [vm.config, *(snap.config for snap in vm.snapshots.values())]:
                out.update(d.path.casefold() for d in config.hard_drives if d.path)
        return out

    def collapse(self, vm: VMRecord) -> None:
        """Merge or delete the VM's checkpoint differencing disks that no checkpoint needs any more.

        A checkpoint disk nothing points at and with no children is deleted; one whose parent none of this VM's
        drives and checkpoints points at, and that has no other child among this VM's checkpoint disks, is merged
        into that parent (the parent takes its place), as Remove-VMSnapshot does. Hyper-V does not look at other
        VMs when it merges: a parent another VM also uses, directly or through a differencing disk of its own, is
        merged into all the same.
        """
        changed = True
        while changed:
            changed = False
            references = self._references()
            own = {
                d.path.casefold()
                for config in [vm.config, *(snap.config for snap in vm.snapshots.values())]
                for d in config.hard_drives
                if d.path
            }
            files = [self._state.files.get(path) for path in self._state.files.paths()]
            children: dict[str, list[FileEntry]] = {}
            own_children: dict[str, list[FileEntry]] = {}
            for entry in files:
                if entry is not None and entry.parent_path:
                    children.setdefault(entry.parent_path.casefold(), []).append(entry)
                    if entry.checkpoint_of == vm.id:
                        own_children.setdefault(entry.parent_path.casefold(), []).append(entry)
            for entry in files:
                if entry is None or entry.checkpoint_of != vm.id:
                    continue
                key = entry.path.casefold()
                if key not in references and not children.get(key):
                    self._state.files.remove(entry.path)
                    changed = True
                    break
                parent = self._state.files.get(entry.parent_path) if entry.parent_path else None
                if parent is None or parent.path.casefold() in own:
                    continue
                if len(own_children.get(parent.path.casefold(), [])) != 1:
                    continue
                self._merge_into_parent(vm, entry, parent, children.get(key, []))
                changed = True
                break

    def _merge_into_parent(
        self, vm: VMRecord, child: FileEntry, parent: FileEntry, grandchildren: list[FileEntry]
    ) -> None:
        key = child.path.casefold()
        for config in [vm.config, *(snap.config for snap in vm.snapshots.values())]:
            for drive in config.hard_drives:
                if drive.path and drive.path.casefold() == key:
                    drive.path = parent.path
        for entry in grandchildren:
            entry.parent_path = parent.path
        self._state.files.remove(child.path)

    def start_merge(self, vm: VMRecord) -> None:
        """Remove-VM of a VM with checkpoints: its checkpoint disks are merged into their parents after the cmdlet
        returned (DOCS Remove-VM.md), ``merge_delay`` seconds later here; until then every file of the chains is
        held open by the merge, so deleting one fails as a file in use does."""
        files: set[str] = set()
        for config in [vm.config, *(snap.config for snap in vm.snapshots.values())]:
            for drive in config.hard_drives:
                if drive.path:
                    files.update(entry.path.casefold() for entry in self.chain(drive.path))
        release = threading.Event()
        for key in files:
            self._merging[key] = release

        def merge() -> None:
            release.wait(self._state.merge_delay)
            with self._cond:
                vm.config.hard_drives = []
                vm.snapshots = {}
                self.collapse(vm)
                for key in files:
                    if self._merging.get(key) is release:
                        del self._merging[key]
                self._merges = [t for t in self._merges if t is not threading.current_thread()]
                self._cond.notify_all()

        thread = threading.Thread(target=merge, name=f"merge-{vm.id}", daemon=True)
        self._merges.append(thread)
        thread.start()

    def finish_merges(self, timeout: float = 10.0) -> None:
        """Let every background merge (started by Remove-VM) finish now, and wait until they have."""
        with self._cond:
            for event in self._merging.values():
                event.set()
            threads = list(self._merges)
        for thread in threads:
            thread.join(timeout)

    @property
    def merging(self) -> bool:
        """Whether a background merge is running."""
        with self._cond:
            return bool(self._merging)

    def attached_vm(self, path: str) -> VMRecord | None:
        """Return the VM whose drive holds ``path``, if any."""
        key = normalize_path(path).casefold()
        with self._cond:
            for vm in self._state.vms.values():
                drives = all_drives(vm)
                if any(d.path is not None and d.path.casefold() == key for d in drives):
                    return copy.deepcopy(vm)
        return None

    def in_use(self, path: str) -> bool:
        """Whether a running VM (or another process, or a merge) holds the file open; hold the condition."""
        key = normalize_path(path).casefold()
        if key in self._held or key in self._merging:
            return True
        for vm in self._state.vms.values():
            if vm.state == "Off":
                continue
            # A running VM holds its disks open, and through each one every parent in its chain.
            for drive in all_drives(vm):
                if drive.path and any(e.path.casefold() == key for e in self.chain(drive.path)):
                    return True
        return False

    def hold_file(self, path: str, held: bool = True) -> None:
        """Make another process (a backup agent, say) keep ``path`` open, so deleting it fails; False lets go."""
        key = normalize_path(path).casefold()
        with self._cond:
            if held:
                self._held.add(key)
            else:
                self._held.discard(key)

    def remove_file(self, path: str) -> None:
        """Delete a file; one a running VM (or another process) holds open cannot be deleted."""
        with self._cond:
            if self.in_use(path):
                full = normalize_path(path)
                raise HostError(
                    f"Cannot remove item {full}: The process cannot access the file '{full}' because it "
                    "is being used by another process.",
                    error_id="RemoveFileSystemItemIOError",
                    category="WriteError",
                    target_name=full,
                    exception_type="System.IO.IOException",
                )
            self._state.files.remove(path)
