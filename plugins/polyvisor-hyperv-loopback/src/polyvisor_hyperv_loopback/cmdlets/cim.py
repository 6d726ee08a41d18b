"""The CIM cmdlets for the WMI classes polyvisor reads: Get-CimInstance and Invoke-CimMethod.

Get-CimInstance ``-Namespace -ClassName`` lists a class's instances: in ``root/cimv2`` the raw virtual processor
counters (:mod:`.metering`); in ``root/virtualization/v2`` (Hyper-V's WMI provider) ``Msvm_VideoHead``,
``Msvm_VirtualSystemSettingData`` and ``Msvm_VirtualSystemManagementService`` (:mod:`..hyperv.display`). Each
instance is a custom object typed ``Microsoft.Management.Infrastructure.CimInstance#<namespace>/<class>`` with the
properties a client reads. Invoke-CimMethod ``-InputObject <service> -MethodName GetVirtualSystemThumbnailImage
-Arguments @{TargetSystem = <settings instance>; WidthPixels; HeightPixels}`` returns the method's result:
``ReturnValue`` and the out parameter ``ImageData`` (a byte[]). Other classes, namespaces and methods are errors.
"""

from __future__ import annotations

from psrpcore.types import PSObject, PSUInt

from polyvisor_hyperv_loopback.hyperv.display import SettingData
from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.values import PSHashtable, new_custom_object, property_value, to_ps_string

from .base import Cmdlet, CommandContext, Param
from .metering import CIMV2, VP_CLASS, vp_instances

__all__ = ["CMDLETS", "VIRTUALIZATION"]

CIM_CMD = "Microsoft.Management.Infrastructure.CimCmdlets"
VIRTUALIZATION = "root/virtualization/v2"
_SERVICE = "Msvm_VirtualSystemManagementService"
_SETTINGS = "Msvm_VirtualSystemSettingData"
_HEAD = "Msvm_VideoHead"
_THUMBNAIL = "GetVirtualSystemThumbnailImage"


def _cim(namespace: str, class_name: str, pairs: list[tuple[str, object]]) -> PSObject:
    obj = new_custom_object(pairs)
    obj.PSObject.type_names.insert(0, f"Microsoft.Management.Infrastructure.CimInstance#{namespace}/{class_name}")
    return obj


def _cim_error(message: str, hresult: str, target: str) -> HostError:
    return HostError(
        message,
        error_id=f"HRESULT {hresult}",
        category="MetadataError",
        target_name=target,
        exception_type="Microsoft.Management.Infrastructure.CimException",
    )


def _namespace(args: dict[str, object]) -> str:
    return str(args.get("Namespace") or CIMV2).replace("\\", "/").strip("/").casefold()


def _virtualization(ctx: CommandContext, name: str) -> list[PSObject] | None:
    display = ctx.host.display
    low = name.casefold()
    if low == _HEAD.casefold():
        return [
            _cim(
                VIRTUALIZATION,
                _HEAD,
                [
                    ("SystemCreationClassName", "Msvm_ComputerSystem"),
                    ("SystemName", head.system_name),
                    ("CurrentHorizontalResolution", PSUInt(head.width)),
                    ("CurrentVerticalResolution", PSUInt(head.height)),
                ],
            )
            for head in display.video_heads()
        ]
    if low == _SETTINGS.casefold():
        return [
            _cim(
                VIRTUALIZATION,
                _SETTINGS,
                [
                    ("InstanceID", data.instance_id),
                    ("ElementName", data.element_name),
                    ("VirtualSystemIdentifier", str(data.vm_id).upper()),
                    ("VirtualSystemType", data.system_type),
                ],
            )
            for data in display.setting_data()
        ]
    if low == _SERVICE.casefold():
        pairs: list[tuple[str, object]] = [
            ("CreationClassName", _SERVICE),
            ("Name", "vmms"),
            ("SystemName", ctx.host.computer_name),
        ]
        return [_cim(VIRTUALIZATION, _SERVICE, pairs)]
    return None


def _get_cim_instance(ctx: CommandContext, args: dict[str, object]) -> None:
    namespace = _namespace(args)
    name = str(args.get("ClassName", ""))
    if namespace == CIMV2 and name.casefold() == VP_CLASS.casefold():
        found: list[PSObject] | None = vp_instances(ctx)
    elif namespace == VIRTUALIZATION:
        found = _virtualization(ctx, name)
    elif namespace != CIMV2:
        # ASSUMPTION: the text and HRESULT of WBEM_E_INVALID_NAMESPACE as the CIM cmdlets report it.
        ctx.fail(_cim_error("Invalid namespace ", "0x8004100e", namespace))
        return
    else:
        found = None
    if found is None:
        # ASSUMPTION: this host models a few classes; any other reads as one WMI does not have (WBEM_E_INVALID_CLASS).
        ctx.fail(_cim_error("Invalid class ", "0x80041010", name))
        return
    for obj in found:
        ctx.write(obj)


def _class_of(obj: object) -> str:
    names = obj.PSObject.type_names if isinstance(obj, PSObject) else []
    for type_name in names:
        if type_name.startswith("Microsoft.Management.Infrastructure.CimInstance#"):
            return type_name.rsplit("/", 1)[-1]
    return ""


def _invoke_cim_method(ctx: CommandContext, args: dict[str, object]) -> None:
    target = args.get("InputObject")
    method = str(args.get("MethodName", ""))
    arguments = args.get("Arguments")
    if _class_of(target) != _SERVICE or method.casefold() != _THUMBNAIL.casefold():
        # ASSUMPTION: WBEM_E_METHOD_NOT_IMPLEMENTED / not found, as the CIM cmdlets word it.
        ctx.fail(_cim_error("Method not found ", "0x80041055", method))
        return
    table = arguments if isinstance(arguments, PSHashtable) else PSHashtable()
    settings = _settings(ctx, table["TargetSystem"])
    try:
        width, height = int(table["WidthPixels"] or 0), int(table["HeightPixels"] or 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        width = height = 0
    code, image = (32773, None) if settings is None else ctx.host.display.thumbnail(settings, width, height)
    pairs: list[tuple[str, object]] = [("ImageData", image), ("ReturnValue", PSUInt(code))]
    result = new_custom_object(pairs)
    result.PSObject.type_names.insert(0, "Microsoft.Management.Infrastructure.CimMethodResult")
    ctx.write(result)


def _settings(ctx: CommandContext, reference: object) -> SettingData | None:
    """The settings a TargetSystem reference names (by its key, InstanceID), or None."""
    if _class_of(reference) != _SETTINGS:
        return None
    key = to_ps_string(property_value(reference, "InstanceID"))
    return next((data for data in ctx.host.display.setting_data() if data.instance_id == key), None)


CMDLETS = (
    Cmdlet(
        "Get-CimInstance",
        f"{CIM_CMD}.GetCimInstanceCommand",
        (Param("ClassName", "str", position=0), Param("Namespace", "str")),
        _get_cim_instance,
        aliases=("gcim",),
        module="CimCmdlets",
    ),
    Cmdlet(
        "Invoke-CimMethod",
        f"{CIM_CMD}.InvokeCimMethodCommand",
        (
            Param("InputObject", "object", pipeline=True, aliases=("CimInstance",)),
            Param("MethodName", "str", position=0, aliases=("Name",)),
            Param("Arguments", "object", position=1),
        ),
        _invoke_cim_method,
        module="CimCmdlets",
    ),
)
