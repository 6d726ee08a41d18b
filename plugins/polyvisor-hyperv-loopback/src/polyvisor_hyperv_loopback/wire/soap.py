"""WS-Management SOAP envelopes: parse requests, build responses and faults.

Responses are built with literal ``prefix:name`` tags and explicit ``xmlns`` declarations (as
Windows writes them) instead of ElementTree's global namespace registry, which the clients
running in the same process also use.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
    "ps": "http://schemas.microsoft.com/powershell",
}

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACTION_COMMAND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
ACTION_SEND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
ACTION_RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
ACTION_SIGNAL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
# Disconnected operations (MS-WSMV 3.1.4.15-3.1.4.17; MS-PSRP 3.1.4.9, 3.1.4.10) and Enumerate (MS-WSMV 3.1.4.8).
ACTION_DISCONNECT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Disconnect"
ACTION_RECONNECT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Reconnect"
ACTION_CONNECT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Connect"
ACTION_ENUMERATE = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"

ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")

#: Windows' default OperationTimeout when a request does not carry one.
DEFAULT_OPERATION_TIMEOUT = 60.0


def parse_duration(text: str | None, default: float = DEFAULT_OPERATION_TIMEOUT) -> float | None:
    """Return seconds for an xs:duration such as ``PT20S`` (only the time part), ``default`` when absent.

    Returns None for text that is not such a duration (a negative one such as ``PT-1S`` included).
    """
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if match is None or text.strip() == "PT":
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as Windows writes a shell's timeouts, e.g. ``PT7200.000S``."""
    return f"PT{seconds:.3f}S"


def q(prefix: str, local: str) -> str:
    """Return the ElementTree (Clark) name of ``prefix:local`` for searching parsed requests."""
    return f"{{{NS[prefix]}}}{local}"


def _never() -> bool:
    return False


class MalformedRequest(ValueError):
    """The body is not a WS-Management SOAP envelope."""


@dataclass
class Request:
    """The parts of a WS-Management request the host acts on."""

    action: str
    message_id: str
    resource_uri: str
    selectors: dict[str, str]
    options: dict[str, str]
    operation_timeout: float
    max_envelope_size: int | None
    body: ET.Element
    #: The OperationTimeout header as sent, when it is not a valid duration (the request is refused).
    bad_operation_timeout: str | None = None
    #: The client session's wsmv:SessionId (MS-WSMV 3.1.4.1.37), without its ``uuid:`` prefix, upper case.
    session_id: str = ""
    #: Whether the TCP connection the request came on is gone (set by the listener): a held Receive then ends
    #: without taking any output, as HTTP.sys tells the WinRM service of a client that disconnected.
    client_gone: Callable[[], bool] = _never

    @classmethod
    def parse(cls, data: bytes) -> Request:
        """Parse a request envelope."""
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise MalformedRequest(f"request is not XML: {exc}") from exc
        if root.tag != q("s", "Envelope"):
            raise MalformedRequest("request is not a SOAP 1.2 envelope")
        header = root.find(q("s", "Header"))
        body = root.find(q("s", "Body"))
        if header is None or body is None:
            raise MalformedRequest("request lacks a SOAP header or body")

        def text(prefix: str, local: str) -> str:
            node = header.find(q(prefix, local))
            return (node.text or "").strip() if node is not None else ""

        selectors = {
            node.get("Name", ""): (node.text or "").strip()
            for node in header.iterfind(f"{q('w', 'SelectorSet')}/{q('w', 'Selector')}")
        }
        options = {
            node.get("Name", ""): (node.text or "").strip()
            for node in header.iterfind(f"{q('w', 'OptionSet')}/{q('w', 'Option')}")
        }
        max_env_text = text("w", "MaxEnvelopeSize")
        timeout_text = text("w", "OperationTimeout")
        operation_timeout = parse_duration(timeout_text or None)
        return cls(
            action=text("a", "Action"),
            message_id=text("a", "MessageID"),
            resource_uri=text("w", "ResourceURI"),
            selectors=selectors,
            options=options,
            operation_timeout=DEFAULT_OPERATION_TIMEOUT if operation_timeout is None else operation_timeout,
            max_envelope_size=int(max_env_text) if max_env_text.isdigit() else None,
            body=body,
            bad_operation_timeout=timeout_text if operation_timeout is None else None,
            session_id=text("p", "SessionId").upper().removeprefix("UUID:"),
        )


def element(tag: str, attrib: Mapping[str, str] | None = None, text: str | None = None) -> ET.Element:
    """Return an element named with a literal ``prefix:local`` tag."""
    node = ET.Element(tag, dict(attrib or {}))
    node.text = text
    return node


def sub(parent: ET.Element, tag: str, attrib: Mapping[str, str] | None = None, text: str | None = None) -> ET.Element:
    """Append a child named with a literal ``prefix:local`` tag."""
    node = ET.SubElement(parent, tag, dict(attrib or {}))
    node.text = text
    return node


def envelope(action: str, relates_to: str, body_children: list[ET.Element]) -> bytes:
    """Serialise a response envelope answering the request ``relates_to``."""
    root = element("s:Envelope", {"xml:lang": "en-US"})
    for prefix in ("s", "a", "x", "w", "rsp", "p"):
        root.set(f"xmlns:{prefix}", NS[prefix])
    header = sub(root, "s:Header")
    sub(header, "a:Action", text=action)
    sub(header, "a:MessageID", text=f"uuid:{str(uuid.uuid4()).upper()}")
    sub(header, "a:To", text=ANONYMOUS)
    if relates_to:
        sub(header, "a:RelatesTo", text=relates_to)
    body = sub(root, "s:Body")
    body.extend(body_children)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


#: Where Windows' shell provider lives, as its ProviderFault elements name it.
SHELL_PROVIDER = ("Shell provider", "%systemroot%\\system32\\WsmSvc.dll")
_UNEXPECTED_SELECTORS = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"
_INVALID_SELECTORS = (
    "The WS-Management service cannot process the request because the request contained invalid selectors for the "
    "resource. "
)


@dataclass
class WSManFault(Exception):
    """A SOAP fault the service answers with (HTTP 500).

    As on Windows, ``reason`` (``s:Reason/s:Text``) is the generic sentence for the subcode and ``message``
    (``f:WSManFault/f:Message``) the specific one; ``provider`` wraps the message in a ``f:ProviderFault`` holding a
    nested WSManFault. Texts end with the space Windows leaves after its sentences. ``machine`` is set by the
    service to the name the client addressed the host by.
    """

    code: int
    subcode: str
    reason: str
    sender: bool = True
    detail: str | None = None
    machine: str = "localhost"
    extra: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    provider: tuple[str, str] | None = None

    def __str__(self) -> str:
        return f"WSManFault {self.code}: {self.message or self.reason}"

    def to_envelope(self, relates_to: str) -> bytes:
        """Serialise as a fault envelope."""
        fault = element("s:Fault")
        code = sub(fault, "s:Code")
        sub(code, "s:Value", text="s:Sender" if self.sender else "s:Receiver")
        subcode = sub(code, "s:Subcode")
        sub(subcode, "s:Value", text=self.subcode)
        reason = sub(fault, "s:Reason")
        sub(reason, "s:Text", {"xml:lang": "en-US"}, self.reason)
        detail = sub(fault, "s:Detail")
        if self.detail:
            sub(detail, "w:FaultDetail", text=self.detail)
        attributes = {"xmlns:f": NS["f"], "Code": str(self.code), "Machine": self.machine}
        wsman_fault = sub(detail, "f:WSManFault", attributes)
        message = self.reason if self.message is None else self.message
        if self.provider is None:
            sub(wsman_fault, "f:Message", text=message)
        else:
            name, path = self.provider
            provider = sub(sub(wsman_fault, "f:Message"), "f:ProviderFault", {"provider": name, "path": path})
            sub(sub(provider, "f:WSManFault", attributes), "f:Message", text=message)
        return envelope(ACTION_FAULT, relates_to, [fault])


def operation_timed_out() -> WSManFault:
    """Return the fault for a Receive that had nothing to say within OperationTimeout."""
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return WSManFault(code=2150858793, subcode="w:TimedOut", reason=text, sender=False)


def invalid_operation_timeout(value: str) -> WSManFault:
    """Return the fault for an OperationTimeout header that is not a valid (non-negative) duration."""
    return WSManFault(
        code=2150858767,
        subcode="a:InvalidMessageInformationHeader",
        reason=(
            "The WS-Management service cannot process the request. The request contains one or more invalid SOAP "
            "headers. "
        ),
        message=(
            "The WS-Management service cannot process the request. The XML contains an invalid timeout field in the "
            f"SOAP header: {value}. "
        ),
    )


def shell_not_found(shell_id: str) -> WSManFault:
    """Return the fault for an unknown ShellId in a shell operation (Command, Send, Receive, Signal, Delete)."""
    return WSManFault(
        code=2150858843,
        subcode="w:InvalidSelectors",
        reason=_INVALID_SELECTORS,
        message=(
            f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
            "shell was not found on the server. Possible causes are: the specified ShellId is "
            "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
            "create a new shell and retry the operation. "
        ),
        detail=_UNEXPECTED_SELECTORS,
    )


def shell_instance_not_found() -> WSManFault:
    """Return the fault for a Get of a shell instance that does not exist (pypsrp's ``is_alive``)."""
    return WSManFault(
        code=2150858843,
        subcode="w:InvalidSelectors",
        reason=_INVALID_SELECTORS,
        detail=_UNEXPECTED_SELECTORS,
        provider=SHELL_PROVIDER,
    )


def command_not_found() -> WSManFault:
    """Return the fault for an unknown CommandId."""
    return WSManFault(
        code=2150858843,
        subcode="w:InvalidSelectors",
        reason=_INVALID_SELECTORS,
        message=(
            "The Windows Remote Shell received a request to perform an operation on a command "
            "identifier that does not exist. Either the command has completed execution or the "
            "client specified an invalid command identifier. "
        ),
        detail=_UNEXPECTED_SELECTORS,
    )


def resource_uri_not_found(resource_uri: str) -> WSManFault:
    """Return the fault for a resource URI the host does not serve."""
    return WSManFault(
        code=2150858770,
        subcode="w:DestinationUnreachable",
        reason=(
            f"The WS-Management service cannot process the request. The resource URI ({resource_uri})"
            " was not found in the WS-Management catalog. The catalog contains the metadata that "
            "describes resources, or logical endpoints. "
        ),
    )


def action_not_supported(action: str) -> WSManFault:
    """Return the fault for an action the host does not implement."""
    return WSManFault(
        code=2150858771,
        subcode="a:ActionNotSupported",
        reason=f"The action {action} is not supported by the service. ",
    )


def envelope_too_large(limit: int) -> WSManFault:
    """Return the fault for a request larger than the configured MaxEnvelopeSizekb."""
    return WSManFault(
        code=2150859025,
        subcode="w:EncodingLimit",
        reason=(
            "The WS-Management service cannot process the request because the request packet size "
            f"exceeded the configured MaxEnvelopeSize quota ({limit} bytes). "
        ),
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/MaxEnvelopeSize",
    )


def invalid_request(reason: str) -> WSManFault:
    """Return a generic fault for a request the host cannot make sense of."""
    return WSManFault(code=2150858817, subcode="w:SchemaValidationError", reason=reason)


def schema_validation_error() -> WSManFault:
    """Return the fault Windows answers a body that does not match the schema with (e.g. a bad IdleTimeOut)."""
    return WSManFault(
        code=2150858817,
        subcode="w:SchemaValidationError",
        reason="The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML "
        "and retry. ",
    )


def shell_disconnected(shell_id: str) -> WSManFault:
    """Return the fault for a Command, Send, Receive or Signal on a shell (or command) that is disconnected.

    ERROR_WINRS_SHELL_DISCONNECTED (winerror.h); the message is the loopback host's own (ASSUMPTION).
    """
    return WSManFault(
        code=2150859204,
        subcode="w:InternalError",
        reason="The WS-Management service cannot process the request because the shell is disconnected. ",
        message=(
            f"The Windows Remote Shell with ShellId {shell_id} is disconnected; reconnect to it (Reconnect or "
            "Connect) before using it. "
        ),
    )


def shell_not_disconnected(shell_id: str) -> WSManFault:
    """Return the fault for a Reconnect or Connect to a shell that is connected (ASSUMPTION: the message)."""
    return WSManFault(
        code=2150859224,
        subcode="w:InternalError",
        reason="The WS-Management service cannot process the request because the shell is not disconnected. ",
        message=f"The Windows Remote Shell with ShellId {shell_id} is not disconnected. ",
    )
