"""The NetNat and NetTCPIP cmdlets the host models: New-, Get-, Remove-NetNat; Add-, Get-, Remove-NetNatStaticMapping;
New-, Get-NetIPAddress.

Parameters as Microsoft's references give them (MicrosoftDocs/windows-powershell-docs, docset/winserver2022-ps/netnat
and nettcpip): ``New-NetNat [-Name] -InternalIPInterfaceAddressPrefix``; ``Add-NetNatStaticMapping [-NatName]
-Protocol TCP|UDP -ExternalIPAddress -ExternalPort -InternalIPAddress [-InternalPort]`` (all but -InternalPort
mandatory); ``Remove-NetNat`` and ``Remove-NetNatStaticMapping`` in a Query set (names, IDs: every object without
them) and an InputObject set (the pipeline), each asking to confirm (so a remote session passes -Confirm:$false, as
setup-nat-network's own script does); ``New-NetIPAddress [-IPAddress] -PrefixLength`` with exactly one of
``-InterfaceAlias`` and ``-InterfaceIndex``. The objects are the CIM instances of each cmdlet's OUTPUTS.
"""

from __future__ import annotations

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.hyperv.netnat import IPAddressRecord, MappingRecord, NatRecord
from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.values import new_custom_object
from polyvisor_hyperv_loopback.powershell.wildcards import has_wildcard, wildcard_match

from .base import Cmdlet, CommandContext, Param

__all__ = ["CMDLETS"]

CIM = "Microsoft.Management.Infrastructure.CimInstance#ROOT/StandardCimv2"
NAT_TYPE = f"{CIM}/MSFT_NetNat"
MAPPING_TYPE = f"{CIM}/MSFT_NetNatStaticMapping"
ADDRESS_TYPE = f"{CIM}/MSFT_NetIPAddress"
NAT_CLASS = "Microsoft.Management.Infrastructure.CimCmdlets.NetNat"
TCPIP_CLASS = "Microsoft.Management.Infrastructure.CimCmdlets.NetTCPIP"


def _cim(type_name: str, pairs: list[tuple[str, object]]) -> PSObject:
    obj = new_custom_object(pairs)
    obj.PSObject.type_names.insert(0, type_name)
    return obj


def _nat_object(nat: NatRecord) -> PSObject:
    return _cim(
        NAT_TYPE,
        [
            ("Name", nat.name),
            ("ExternalIPInterfaceAddressPrefix", nat.external_prefix),
            ("InternalIPInterfaceAddressPrefix", nat.internal_prefix),
            ("Active", True),
        ],
    )


def _mapping_object(mapping: MappingRecord) -> PSObject:
    return _cim(
        MAPPING_TYPE,
        [
            ("StaticMappingID", mapping.static_mapping_id),
            ("NatName", mapping.nat_name),
            ("Protocol", mapping.protocol),
            ("RemoteExternalIPAddressPrefix", mapping.remote_external_ip_address_prefix),
            ("ExternalIPAddress", mapping.external_ip_address),
            ("ExternalPort", mapping.external_port),
            ("InternalIPAddress", mapping.internal_ip_address),
            ("InternalPort", mapping.internal_port),
            ("Active", True),
        ],
    )


def _address_object(address: IPAddressRecord) -> PSObject:
    return _cim(
        ADDRESS_TYPE,
        [
            ("IPAddress", address.ip_address),
            ("InterfaceIndex", address.interface_index),
            ("InterfaceAlias", address.interface_alias),
            ("AddressFamily", address.address_family),
            ("Type", "Unicast"),
            ("PrefixLength", address.prefix_length),
            ("PrefixOrigin", "Manual"),
            ("AddressState", "Preferred"),
            ("PolicyStore", "ActiveStore"),
        ],
    )


def _missing(*names: str) -> HostError:
    return HostError(
        f"Cannot process command because of one or more missing mandatory parameters: {' '.join(names)}.",
        error_id="MissingMandatoryParameter",
        category="InvalidArgument",
        exception_type="System.Management.Automation.ParameterBindingException",
    )


def _ambiguous() -> HostError:
    return HostError(
        "Parameter set cannot be resolved using the specified named parameters.",
        error_id="AmbiguousParameterSet",
        category="InvalidArgument",
        exception_type="System.Management.Automation.ParameterBindingException",
    )


def _require(ctx: CommandContext, args: dict[str, object], *names: str) -> None:
    missing = [name for name in names if name not in args]
    if missing:
        ctx.fail(_missing(*missing))


def _not_found(ctx: CommandContext, kind: str, prop: str, value: str) -> None:
    ctx.write_error(
        HostError(
            f"No {kind} objects found with property '{prop}' equal to '{value}'.  Verify the value of the property "
            "and retry.",
            error_id=f"CmdletizationQuery_NotFound_{prop},{ctx.cmdlet.name}",
            category="ObjectNotFound",
            target_name=value,
        )
    )


def _input_names(ctx: CommandContext, args: dict[str, object], prop: str) -> list[str] | None:
    """The names a Remove- cmdlet acts on: its -Name/-NatName, or those of its InputObject (the pipeline)."""
    inputs = args.get("InputObject")
    if inputs is not None:
        if prop in args:
            ctx.fail(_ambiguous())
        return [str(getattr(obj, prop)) for obj in inputs]  # type: ignore[attr-defined]
    return list(args[prop]) if prop in args else None  # type: ignore[call-overload]


def _get_nat(ctx: CommandContext, args: dict[str, object]) -> None:
    nats = ctx.host.netnat.nats()
    names = args.get("Name")
    if names is None:
        for nat in nats:
            ctx.write(_nat_object(nat))
        return
    for name in names:  # type: ignore[attr-defined]
        matched = [nat for nat in nats if wildcard_match(name, nat.name)]
        if not matched and not has_wildcard(name):
            _not_found(ctx, "MSFT_NetNat", "Name", name)
        for nat in matched:
            ctx.write(_nat_object(nat))


def _new_nat(ctx: CommandContext, args: dict[str, object]) -> None:
    _require(ctx, args, "Name")
    if not ctx.should_process(False):
        return
    internal = args.get("InternalIPInterfaceAddressPrefix")
    external = args.get("ExternalIPInterfaceAddressPrefix")
    nat = ctx.host.netnat.new_nat(
        str(args["Name"]), None if internal is None else str(internal), None if external is None else str(external)
    )
    ctx.write(_nat_object(nat))


def _remove_nat(ctx: CommandContext, args: dict[str, object]) -> None:
    names = _input_names(ctx, args, "Name")
    if not ctx.should_process(True):
        return
    removed = ctx.host.netnat.remove_nats(names)
    for name in names or ():
        if not any(nat.name.casefold() == name.casefold() for nat in removed):
            _not_found(ctx, "MSFT_NetNat", "Name", name)
    if args.get("PassThru"):
        for nat in removed:
            ctx.write(_nat_object(nat))


def _get_mapping(ctx: CommandContext, args: dict[str, object]) -> None:
    mappings = ctx.host.netnat.mappings()
    names = args.get("NatName")
    if names is None:
        for mapping in mappings:
            ctx.write(_mapping_object(mapping))
        return
    for name in names:  # type: ignore[attr-defined]
        matched = [m for m in mappings if wildcard_match(name, m.nat_name)]
        if not matched and not has_wildcard(name):
            _not_found(ctx, "MSFT_NetNatStaticMapping", "NatName", name)
        for mapping in matched:
            ctx.write(_mapping_object(mapping))


def _add_mapping(ctx: CommandContext, args: dict[str, object]) -> None:
    _require(ctx, args, "NatName", "Protocol", "ExternalIPAddress", "ExternalPort", "InternalIPAddress")
    if not ctx.should_process(False):
        return
    internal_port = args.get("InternalPort")
    mapping = ctx.host.netnat.add_mapping(
        str(args["NatName"]),
        str(args["Protocol"]),
        str(args["ExternalIPAddress"]),
        int(args["ExternalPort"]),  # type: ignore[call-overload]
        str(args["InternalIPAddress"]),
        None if internal_port is None else int(internal_port),  # type: ignore[call-overload]
    )
    ctx.write(_mapping_object(mapping))


def _remove_mapping(ctx: CommandContext, args: dict[str, object]) -> None:
    inputs = args.get("InputObject")
    if inputs is not None and ("NatName" in args or "StaticMappingID" in args):
        ctx.fail(_ambiguous())
    if inputs is not None:
        ids: list[int] | None = [int(obj.StaticMappingID) for obj in inputs]  # type: ignore[attr-defined]
        names: list[str] | None = [str(obj.NatName) for obj in inputs]  # type: ignore[attr-defined]
    else:
        ids = [int(i) for i in args["StaticMappingID"]] if "StaticMappingID" in args else None  # type: ignore[attr-defined]
        names = list(args["NatName"]) if "NatName" in args else None  # type: ignore[call-overload]
    if not ctx.should_process(True):
        return
    removed = ctx.host.netnat.remove_mappings(names, ids)
    if (ids or names) and not removed:
        _not_found(ctx, "MSFT_NetNatStaticMapping", "StaticMappingID" if ids else "NatName", str((ids or names)[0]))  # type: ignore[index]
    if args.get("PassThru"):
        for mapping in removed:
            ctx.write(_mapping_object(mapping))


def _new_address(ctx: CommandContext, args: dict[str, object]) -> None:
    _require(ctx, args, "IPAddress")
    if ("InterfaceAlias" in args) == ("InterfaceIndex" in args):
        ctx.fail(_ambiguous() if "InterfaceAlias" in args else _missing("InterfaceAlias"))
    if not ctx.should_process(False):
        return
    index = args.get("InterfaceIndex")
    alias = args.get("InterfaceAlias")
    address = ctx.host.netnat.new_ip_address(
        str(args["IPAddress"]),
        int(args.get("PrefixLength", 32)),  # type: ignore[call-overload]
        alias=None if alias is None else str(alias),
        index=None if index is None else int(index),  # type: ignore[call-overload]
    )
    ctx.write(_address_object(address))


def _get_address(ctx: CommandContext, args: dict[str, object]) -> None:
    found = ctx.host.netnat.ip_addresses()
    filters = {"IPAddress": "ip_address", "InterfaceAlias": "interface_alias", "AddressFamily": "address_family"}
    for param, attribute in filters.items():
        if param in args:
            patterns = list(args[param])  # type: ignore[call-overload]
            found = [a for a in found if any(wildcard_match(p, str(getattr(a, attribute))) for p in patterns)]
    if "InterfaceIndex" in args:
        indexes = {int(i) for i in args["InterfaceIndex"]}  # type: ignore[attr-defined]
        found = [a for a in found if a.interface_index in indexes]
    if not found and any(param in args for param in (*filters, "InterfaceIndex")):
        ctx.write_error(
            HostError(
                "No matching MSFT_NetIPAddress objects found by CIM query for instances of the "
                "ROOT/StandardCimv2/MSFT_NetIPAddress class on the  CIM server: SELECT * FROM MSFT_NetIPAddress.  "
                "Verify query parameters and retry.",
                error_id="CmdletizationQuery_NotFound,Get-NetIPAddress",
                category="ObjectNotFound",
            )
        )
    for address in found:
        ctx.write(_address_object(address))


CMDLETS = (
    Cmdlet("Get-NetNat", NAT_CLASS, (Param("Name", "str[]", position=0, by_property=True),), _get_nat, module="NetNat"),
    Cmdlet(
        "New-NetNat",
        NAT_CLASS,
        (
            Param("Name", "str", position=0),
            Param("InternalIPInterfaceAddressPrefix", "str"),
            Param("ExternalIPInterfaceAddressPrefix", "str"),
            Param("InternalRoutingDomainId", "str"),
        ),
        _new_nat,
        module="NetNat",
    ),
    Cmdlet(
        "Remove-NetNat",
        NAT_CLASS,
        (
            Param("Name", "str[]", position=0),
            Param("InputObject", "object[]", pipeline=True, pipeline_type=NAT_TYPE),
            Param("PassThru", "switch"),
        ),
        _remove_nat,
        module="NetNat",
    ),
    Cmdlet(
        "Get-NetNatStaticMapping",
        NAT_CLASS,
        (Param("NatName", "str[]", position=0, by_property=True),),
        _get_mapping,
        module="NetNat",
    ),
    Cmdlet(
        "Add-NetNatStaticMapping",
        NAT_CLASS,
        (
            Param("NatName", "str", position=0),
            Param("Protocol", "choice", choices=("TCP", "UDP")),
            Param("RemoteExternalIPAddressPrefix", "str"),
            Param("ExternalIPAddress", "str"),
            Param("ExternalPort", "int"),
            Param("InternalIPAddress", "str"),
            Param("InternalPort", "int"),
            Param("InternalRoutingDomainId", "str"),
        ),
        _add_mapping,
        module="NetNat",
    ),
    Cmdlet(
        "Remove-NetNatStaticMapping",
        NAT_CLASS,
        (
            Param("StaticMappingID", "str[]"),
            Param("NatName", "str[]", position=0),
            Param("InputObject", "object[]", pipeline=True, pipeline_type=MAPPING_TYPE),
            Param("PassThru", "switch"),
        ),
        _remove_mapping,
        module="NetNat",
    ),
    Cmdlet(
        "New-NetIPAddress",
        TCPIP_CLASS,
        (
            Param("IPAddress", "str", position=0),
            Param("InterfaceAlias", "str", aliases=("ifAlias",)),
            Param("InterfaceIndex", "int", aliases=("ifIndex",)),
            Param("PrefixLength", "int"),
            Param("DefaultGateway", "str"),
            Param("AddressFamily", "choice", choices=("IPv4", "IPv6")),
        ),
        _new_address,
        module="NetTCPIP",
    ),
    Cmdlet(
        "Get-NetIPAddress",
        TCPIP_CLASS,
        (
            Param("IPAddress", "str[]", position=0),
            Param("InterfaceIndex", "str[]", aliases=("ifIndex",)),
            Param("InterfaceAlias", "str[]", aliases=("ifAlias",)),
            Param("AddressFamily", "str[]"),
        ),
        _get_address,
        module="NetTCPIP",
    ),
)
