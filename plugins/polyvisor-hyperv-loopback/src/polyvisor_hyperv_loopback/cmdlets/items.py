"""File-system provider cmdlets beyond file contents: Get-ChildItem, New-Item, Rename-Item and Get-PSDrive.

What they emit is the part of .NET's ``System.IO.FileInfo``/``DirectoryInfo`` and of ``PSDriveInfo`` a client
selects (Name, FullName, Length; Used, Free), as custom objects carrying those type names.
"""

from __future__ import annotations

import ntpath

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.hyperv.filesystem import FileEntry, normalize_path
from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.values import new_custom_object

from .base import Cmdlet, CommandContext, Param

__all__ = ["CMDLETS"]

MANAGEMENT = "Microsoft.PowerShell.Commands"
_MODULE = "Microsoft.PowerShell.Management"


def _typed(obj: PSObject, *names: str) -> PSObject:
    for index, name in enumerate(names):
        obj.PSObject.type_names.insert(index, name)
    return obj


def file_object(entry: FileEntry) -> PSObject:
    """A FileInfo as Get-ChildItem emits it (the properties a client selects)."""
    pairs: list[tuple[str, object]] = [
        ("Name", ntpath.basename(entry.path)),
        ("FullName", entry.path),
        ("Length", len(entry.data) if entry.vhd_type is None else entry.file_size),
        ("PSIsContainer", False),
    ]
    return _typed(new_custom_object(pairs), "System.IO.FileInfo", "System.IO.FileSystemInfo")


def directory_object(path: str) -> PSObject:
    """A DirectoryInfo as Get-ChildItem and New-Item emit it."""
    pairs: list[tuple[str, object]] = [("Name", ntpath.basename(path)), ("FullName", path), ("PSIsContainer", True)]
    return _typed(new_custom_object(pairs), "System.IO.DirectoryInfo", "System.IO.FileSystemInfo")


def _get_child_item(ctx: CommandContext, args: dict[str, object]) -> None:
    paths = args.get("Path") or ["."]
    for path in paths:  # type: ignore[attr-defined]
        full = normalize_path(str(path))
        entry = ctx.host.files.get(full)
        if entry is not None:  # a file's children are the file itself
            if not args.get("Directory"):
                ctx.write(file_object(entry))
            continue
        dirs, files = ctx.host.files.children(full)
        if not args.get("File"):
            for directory in dirs:
                ctx.write(directory_object(directory))
        if not args.get("Directory"):
            for found in files:
                ctx.write(file_object(found))


def _new_item(ctx: CommandContext, args: dict[str, object]) -> None:
    kind = str(args.get("ItemType") or "File")
    if kind.casefold() != "directory":
        raise HostError(
            "This host makes directories only (New-Item -ItemType Directory).",
            error_id="NotSupported",
            category="NotImplemented",
            exception_type="System.NotSupportedException",
        )
    for path in args["Path"]:  # type: ignore[attr-defined]
        full = normalize_path(str(path) if not args.get("Name") else ntpath.join(str(path), str(args["Name"])))
        if ctx.host.files.exists(full) and not args.get("Force"):
            raise HostError(
                f"An item with the specified name {full} already exists.",
                error_id="DirectoryExist",
                category="ResourceExists",
                target_name=full,
                exception_type="System.IO.IOException",
            )
        if ctx.should_process(high_impact=False):
            ctx.write(directory_object(ctx.host.files.make_directory(full)))


def _rename_item(ctx: CommandContext, args: dict[str, object]) -> None:
    new_name = str(args["NewName"])
    for path in args["Path"]:  # type: ignore[attr-defined]
        full = normalize_path(str(path))
        if "\\" in new_name or "/" in new_name:
            # Rename-Item.md, example 2: a NewName that is a path elsewhere is refused.
            if normalize_path(new_name, ntpath.dirname(full)).casefold() != ntpath.dirname(full).casefold():
                raise HostError(
                    "Cannot rename because the target specified represents a path or device name.",
                    error_id="Argument",
                    category="InvalidArgument",
                    target_name=full,
                    exception_type="System.ArgumentException",
                )
            new_name = ntpath.basename(new_name)
        if ctx.host.disks.in_use(full):
            raise HostError(
                f"The process cannot access the file because it is being used by another process. ({full})",
                error_id="RenameItemIOError",
                category="WriteError",
                target_name=full,
                exception_type="System.IO.IOException",
            )
        if ctx.should_process(high_impact=False):
            entry = ctx.host.files.rename(full, new_name)
            if args.get("PassThru"):
                ctx.write(file_object(entry))


def _get_psdrive(ctx: CommandContext, args: dict[str, object]) -> None:
    names = [str(name).rstrip(":").upper() for name in (args.get("Name") or ["C"])]  # type: ignore[attr-defined]
    for name in names:
        used = sum(entry.file_size for entry in ctx.host.files.entries() if entry.path.upper().startswith(f"{name}:"))
        free = max(ctx.host.drive_capacity - used, 0)
        pairs: list[tuple[str, object]] = [
            ("Name", name),
            ("Root", f"{name}:\\"),
            ("Provider", "Microsoft.PowerShell.Core\\FileSystem"),
            ("Used", used),
            ("Free", free),
        ]
        ctx.write(_typed(new_custom_object(pairs), "System.Management.Automation.PSDriveInfo"))


_PATH = Param("Path", "str[]", position=0, aliases=("LiteralPath", "PSPath"))

CMDLETS = (
    Cmdlet(
        "Get-ChildItem",
        f"{MANAGEMENT}.GetChildItemCommand",
        (_PATH, Param("File", "switch"), Param("Directory", "switch"), Param("Force", "switch")),
        _get_child_item,
        aliases=("dir", "ls", "gci"),
        module=_MODULE,
    ),
    Cmdlet(
        "New-Item",
        f"{MANAGEMENT}.NewItemCommand",
        (_PATH, Param("Name", "str"), Param("ItemType", "str", aliases=("Type",)), Param("Force", "switch")),
        _new_item,
        aliases=("ni",),
        module=_MODULE,
    ),
    Cmdlet(
        "Rename-Item",
        f"{MANAGEMENT}.RenameItemCommand",
        (_PATH, Param("NewName", "str", position=1), Param("Force", "switch"), Param("PassThru", "switch")),
        _rename_item,
        aliases=("ren", "rni"),
        module=_MODULE,
    ),
    Cmdlet(
        "Get-PSDrive",
        f"{MANAGEMENT}.GetPSDriveCommand",
        (Param("Name", "str[]", position=0, aliases=("LiteralName",)), Param("PSProvider", "str[]")),
        _get_psdrive,
        aliases=("gdr",),
        module=_MODULE,
    ),
)
