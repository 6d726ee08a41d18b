"""Cmdlets for provisioning: Resize-VHD, Copy-Item, Set-/Add-Content -Encoding Byte, Get-FileHash, Get-/Set-VMMemory
and Set-VMProcessor."""

from __future__ import annotations

from polyvisor_hyperv_loopback.hyperv.memory import set_memory
from polyvisor_hyperv_loopback.hyperv.storage import copy_file, resize_vhd, write_bytes
from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.values import new_custom_object, to_ps_string

from .base import Cmdlet, CommandContext, Param
from .objects import memory_object, vhd_object
from .vm import resolve_vms

__all__ = ["CMDLETS"]

CMD = "Microsoft.HyperV.PowerShell.Commands"
VHD_CMD = "Microsoft.Vhd.PowerShell.Cmdlets"
MANAGEMENT = "Microsoft.PowerShell.Commands"
_ENCODINGS = ("Byte", "Unicode", "BigEndianUnicode", "UTF8", "UTF7", "UTF32", "ASCII", "Default", "OEM", "String")


def _resize_vhd(ctx: CommandContext, args: dict[str, object]) -> None:
    for path in args["Path"]:  # type: ignore[attr-defined]
        if not ctx.should_process(high_impact=False):
            continue
        entry = resize_vhd(ctx.host, path, int(args["SizeBytes"]))  # type: ignore[call-overload]
        if args.get("Passthru"):
            ctx.write(vhd_object(ctx.host, entry))


def _copy_item(ctx: CommandContext, args: dict[str, object]) -> None:
    for path in args["Path"]:  # type: ignore[attr-defined]
        if ctx.should_process(high_impact=False):
            copy_file(ctx.host, path, str(args["Destination"]))


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    items = value if isinstance(value, list) else [value]
    return bytes(int(item) for item in items)  # type: ignore[arg-type]  # Byte encoding takes bytes (or ints)


def _content(append: bool) -> object:
    # Windows PowerShell 5.1 Set-Content / Add-Content: -Encoding Byte writes the -Value bytes as they are.
    def body(ctx: CommandContext, args: dict[str, object]) -> None:
        if args.get("Encoding") != "Byte":
            ctx.fail(
                HostError(
                    "This host writes file contents with -Encoding Byte only.",
                    error_id="NotSupported",
                    category="NotImplemented",
                    exception_type="System.NotSupportedException",
                )
            )
        try:
            data = _as_bytes(args.get("Value", b""))
        except (TypeError, ValueError) as exc:
            raise HostError(
                f"Cannot convert the value to System.Byte: {exc}",
                error_id="InvalidCastException",
                category="InvalidArgument",
                exception_type="System.InvalidCastException",
            ) from None
        for path in args["Path"]:  # type: ignore[attr-defined]
            if ctx.should_process(high_impact=False):
                write_bytes(ctx.host, path, data, append=append)

    return body


def _get_file_hash(ctx: CommandContext, args: dict[str, object]) -> None:
    algorithm = str(args.get("Algorithm", "SHA256"))
    for path in args["Path"]:  # type: ignore[attr-defined]
        entry = ctx.host.files.get(path)
        if entry is None:
            raise HostError(
                f"Cannot find path '{path}' because it does not exist.",
                error_id="FileNotFound",
                category="ObjectNotFound",
                target_name=to_ps_string(path),
                exception_type="System.Management.Automation.ItemNotFoundException",
            )
        obj = new_custom_object([("Algorithm", algorithm), ("Hash", entry.sha256()), ("Path", entry.path)])
        obj.PSObject.type_names.insert(0, "Microsoft.Powershell.Utility.FileHash")
        ctx.write(obj)


def _get_vm_memory(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        ctx.write(memory_object(ctx.host, vm))


def _set_vm_memory(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        if not ctx.should_process(high_impact=False):
            continue
        updated = set_memory(
            ctx.host,
            vm.id,
            dynamic=args.get("DynamicMemoryEnabled"),  # type: ignore[arg-type]
            startup=args.get("StartupBytes"),  # type: ignore[arg-type]
            minimum=args.get("MinimumBytes"),  # type: ignore[arg-type]
            maximum=args.get("MaximumBytes"),  # type: ignore[arg-type]
            buffer=args.get("Buffer"),  # type: ignore[arg-type]
        )
        if args.get("Passthru"):
            ctx.write(memory_object(ctx.host, updated))


def _set_vm_processor(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        if not ctx.should_process(high_impact=False):
            continue
        if "Count" in args:
            ctx.host.lifecycle.set_vm(vm.id, processor_count=args["Count"])
        if "ExposeVirtualizationExtensions" in args:
            ctx.host.hardware.expose_virtualization_extensions(vm.id, bool(args["ExposeVirtualizationExtensions"]))


_VM = (Param("VMName", "str[]", position=0), Param("VM", "object[]", pipeline=True), Param("Passthru", "switch"))
_CONTENT = (
    Param("Path", "str[]", position=0, aliases=("LiteralPath", "PSPath")),
    Param("Value", "object", position=1),
    Param("Encoding", "choice", choices=_ENCODINGS),
    Param("Force", "switch"),
)

CMDLETS = (
    Cmdlet(
        "Resize-VHD",
        f"{VHD_CMD}.ResizeVhd",
        (Param("Path", "str[]", position=0), Param("SizeBytes", "int", position=1), Param("Passthru", "switch")),
        _resize_vhd,
    ),
    Cmdlet(
        "Copy-Item",
        f"{MANAGEMENT}.CopyItemCommand",
        (
            Param("Path", "str[]", position=0, aliases=("LiteralPath",)),
            Param("Destination", "str", position=1),
            Param("Force", "switch"),
        ),
        _copy_item,
        aliases=("copy", "cp"),
        module="Microsoft.PowerShell.Management",
    ),
    Cmdlet(
        "Set-Content",
        f"{MANAGEMENT}.SetContentCommand",
        _CONTENT,
        _content(append=False),  # type: ignore[arg-type]
        module="Microsoft.PowerShell.Management",
    ),
    Cmdlet(
        "Add-Content",
        f"{MANAGEMENT}.AddContentCommand",
        _CONTENT,
        _content(append=True),  # type: ignore[arg-type]
        aliases=("ac",),
        module="Microsoft.PowerShell.Management",
    ),
    Cmdlet(
        "Get-FileHash",
        "Get-FileHash",
        (
            Param("Path", "str[]", position=0, aliases=("LiteralPath",)),
            Param("Algorithm", "choice", choices=("SHA1", "SHA256", "SHA384", "SHA512", "MD5")),
        ),
        _get_file_hash,
        module="Microsoft.PowerShell.Utility",
    ),
    Cmdlet("Get-VMMemory", f"{CMD}.GetVMMemory", _VM, _get_vm_memory),
    Cmdlet(
        "Set-VMMemory",
        f"{CMD}.SetVMMemory",
        (
            *_VM,
            Param("DynamicMemoryEnabled", "bool"),
            Param("StartupBytes", "int"),
            Param("MinimumBytes", "int"),
            Param("MaximumBytes", "int"),
            Param("Buffer", "int"),
            Param("Priority", "int"),
        ),
        _set_vm_memory,
    ),
    Cmdlet(
        "Set-VMProcessor",
        f"{CMD}.SetVMProcessor",
        (*_VM, Param("Count", "int"), Param("ExposeVirtualizationExtensions", "bool")),
        _set_vm_processor,
    ),
)
