"""Mapping Hyper-V's errors onto polyvisor's tree.

Two sources: PowerShell ``ErrorRecord`` s (what a cmdlet reported; :func:`error_from_record`) and the client
libraries' exceptions (the connection failed; :func:`error_from_transport`). A record maps by what is the same in
every language: its error id (:data:`ERROR_ID_ERRORS`, Hyper-V's ids), then its category (every ``ErrorCategory``
has a row in :data:`CATEGORY_ERRORS`). English wording is only a last resort, for records whose id and category
say nothing specific (NotSpecified and the like), so a localized host maps the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from polyvisor.errors import (
    AlreadyExistsError,
    AuthenticationError,
    BackendError,
    ConnectionError,
    InvalidStateError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.model import Feature, PowerState

__all__ = [
    "CATEGORY_ERRORS",
    "ERROR_CATEGORY_NAMES",
    "ERROR_ID_ERRORS",
    "ErrorRecord",
    "error_from_record",
    "error_from_transport",
]

ERROR_CATEGORY_NAMES = MappingProxyType(
    dict(
        enumerate(
            [
                "NotSpecified",
                "OpenError",
                "CloseError",
                "DeviceError",
                "DeadlockDetected",
                "InvalidArgument",
                "InvalidData",
                "InvalidOperation",
                "InvalidResult",
                "InvalidType",
                "MetadataError",
                "NotImplemented",
                "NotInstalled",
                "ObjectNotFound",
                "OperationStopped",
                "OperationTimeout",
                "SyntaxError",
                "ParserError",
                "PermissionDenied",
                "ResourceBusy",
                "ResourceExists",
                "ResourceUnavailable",
                "ReadError",
                "WriteError",
                "FromStdErr",
                "SecurityError",
                "ProtocolError",
                "ConnectionError",
                "AuthenticationError",
                "LimitsExceeded",
                "QuotaExceeded",
                "NotEnabled",
            ]
        )
    )
)
"""System.Management.Automation.ErrorCategory by number (PSRP sends the number)."""

CATEGORY_ERRORS: MappingProxyType[str, type[PolyvisorError]] = MappingProxyType(
    {
        "NotSpecified": BackendError,
        "OpenError": BackendError,
        "CloseError": BackendError,
        "DeviceError": BackendError,
        "DeadlockDetected": BackendError,
        "InvalidArgument": ValidationError,
        "InvalidData": ValidationError,
        "InvalidOperation": BackendError,
        "InvalidResult": BackendError,
        "InvalidType": ValidationError,
        "MetadataError": ValidationError,
        "NotImplemented": UnsupportedError,
        "NotInstalled": UnsupportedError,
        "ObjectNotFound": NotFoundError,
        "OperationStopped": BackendError,
        "OperationTimeout": TimeoutError,
        "SyntaxError": BackendError,
        "ParserError": BackendError,
        "PermissionDenied": AuthenticationError,
        "ResourceBusy": BackendError,
        "ResourceExists": AlreadyExistsError,
        "ResourceUnavailable": BackendError,
        "ReadError": BackendError,
        "WriteError": BackendError,
        "FromStdErr": BackendError,
        "SecurityError": AuthenticationError,
        "ProtocolError": ConnectionError,
        "ConnectionError": ConnectionError,
        "AuthenticationError": AuthenticationError,
        "LimitsExceeded": BackendError,
        "QuotaExceeded": BackendError,
        "NotEnabled": UnsupportedError,
    }
)
"""The polyvisor error for each ErrorCategory, when the error id is not in :data:`ERROR_ID_ERRORS`."""

ERROR_ID_ERRORS: MappingProxyType[str, type[PolyvisorError]] = MappingProxyType(
    {
        "ObjectNotFound": NotFoundError,
        "InvalidState": InvalidStateError,
        "OperationTimeout": TimeoutError,
        "AccessDenied": AuthenticationError,
        "NotSupported": UnsupportedError,
        "InvalidParameter": ValidationError,
    }
)
"""The polyvisor error for Hyper-V's error ids (the FullyQualifiedErrorId before the comma), which win over the
category: the ids Microsoft.HyperV.PowerShell's ExceptionHelper gives WMI job failures (32769 AccessDenied, 32770
NotSupported, 32772 OperationTimeout, 32773 InvalidParameter, 32775 InvalidState, 32779 ObjectNotFound) and object
lookups (ObjectNotFound)."""

# Last resort, for records with a generic id and category only (English hosts).
_NOT_FOUND = re.compile(r"unable to find|was not found|cannot find|could not find|does not exist", re.IGNORECASE)
_WRONG_STATE = re.compile(r"current state|invalid state|is not in a state|already in the specified state", re.I)
_EXISTS = re.compile(r"already exists", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """The parts of a PowerShell ErrorRecord that decide the mapping."""

    message: str
    category: str = "NotSpecified"
    fully_qualified_error_id: str = ""
    exception_type: str = ""
    target_name: str = ""

    @property
    def error_id(self) -> str:
        """The FullyQualifiedErrorId without its ``,Command.Class`` tail."""
        return self.fully_qualified_error_id.split(",", 1)[0]

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> ErrorRecord:
        """Build from the plain fields the WinRM shell runner replies with."""
        category = fields.get("category")
        if isinstance(category, int):
            category = ERROR_CATEGORY_NAMES.get(category, "NotSpecified")
        return cls(
            message=str(fields.get("message") or "the command failed without a message"),
            category=str(category or "NotSpecified"),
            fully_qualified_error_id=str(fields.get("fullyQualifiedErrorId") or ""),
            exception_type=str(fields.get("exceptionType") or "").removeprefix("Deserialized."),
            target_name=str(fields.get("targetName") or ""),
        )


def error_from_record(
    record: ErrorRecord, *, doing: str, host: str, vm: str | None = None, feature: Feature | None = None
) -> PolyvisorError:
    """Return the polyvisor error for a PowerShell error; ``doing`` says what was being attempted."""
    native = record.message.strip()
    message = f"{doing} failed: {native}"
    error_id = record.error_id
    if error_id == "CommandNotFoundException":
        return UnsupportedError(
            f"{doing} failed: the Hyper-V PowerShell module is not available on the host; install the Hyper-V "
            f"management tools there ({native})",
            feature=feature,
            host=host,
            vm=vm,
        )
    kind = ERROR_ID_ERRORS.get(error_id) or CATEGORY_ERRORS.get(record.category, BackendError)
    if kind is BackendError:
        if _NOT_FOUND.search(native):
            kind = NotFoundError
        elif _EXISTS.search(native):
            kind = AlreadyExistsError
        elif _WRONG_STATE.search(native):
            kind = InvalidStateError
    if kind is InvalidStateError:
        # The core checked the state just before; the VM moved in between. Its state now is not known here.
        return InvalidStateError(message, state=PowerState.UNKNOWN, host=host, vm=vm)
    if kind is UnsupportedError:
        return UnsupportedError(message, feature=feature, host=host, vm=vm)
    if kind is ValidationError:
        return ValidationError(f"{message} [{f'vm {vm!r}, ' if vm else ''}host {host}]")
    if kind is BackendError:
        return BackendError(message, code=record.fully_qualified_error_id, native_message=native, host=host, vm=vm)
    return kind(message, host=host, vm=vm)


def error_from_transport(
    error: BaseException,
    *,
    doing: str,
    host: str,
    endpoint: str,
    auth: str | None = None,
    spn: str | None = None,
    username: str | None = None,
) -> PolyvisorError:
    """Return the polyvisor error for an exception raised by pypsrp, pywinrm, requests or pyspnego.

    ``auth``, ``spn`` and ``username`` (never a password) let a Kerberos failure say what to do.
    """
    import requests
    import spnego.exceptions
    import winrm.exceptions as winrm_errors
    from pypsrp import exceptions as psrp_errors

    where = f"{doing} on {endpoint}"
    if isinstance(error, PolyvisorError):
        return error
    if auth in ("kerberos", "negotiate", "credssp"):
        from polyvisor_hyperv.kerberos import kerberos_failure

        explained = kerberos_failure(error, principal=username, spn=spn or f"HTTP/{host}")
        if explained is not None:
            return AuthenticationError(f"{where}: {explained}", host=host)
    if auth == "credssp" and _credssp_refused(error):
        return AuthenticationError(
            f"{where}: the host refused the CredSSP credentials; check the username and password, and that the "
            "host accepts CredSSP (Enable-WSManCredSSP -Role Server)",
            host=host,
        )
    if isinstance(error, winrm_errors.InvalidCredentialsError | psrp_errors.AuthenticationError):
        if auth == "kerberos":
            return AuthenticationError(
                f"{where}: the host refused the Kerberos ticket for {spn or f'HTTP/{host}'}; check that the "
                "host's clock is within 5 minutes of this machine's (KRB_AP_ERR_SKEW: synchronise both with the "
                "domain), that its keytab holds that principal's current key, and that the user may log on to it",
                host=host,
            )
        return AuthenticationError(
            f"{where}: the host refused the credentials; check the username and password", host=host
        )
    if isinstance(error, winrm_errors.BasicAuthDisabledError):
        return AuthenticationError(f"{where}: Basic authentication is disabled on the host; use auth=ntlm", host=host)
    if isinstance(error, winrm_errors.AuthenticationError | spnego.exceptions.SpnegoError):
        return AuthenticationError(f"{where}: authentication failed ({type(error).__name__}: {error})", host=host)
    if isinstance(error, requests.exceptions.SSLError):
        return ConnectionError(
            f"{where}: the server's TLS certificate failed verification ({_short(error)}); pass the CA that signed "
            "it with ca_path=PATH (or ?ca=PATH in the URI)",
            host=host,
        )
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return ConnectionError(f"{where}: timed out connecting; is WinRM listening on that port?", host=host)
    if isinstance(error, requests.exceptions.ReadTimeout | winrm_errors.WinRMOperationTimeoutError):
        return TimeoutError(f"{where}: the host did not answer in time", host=host)
    if isinstance(error, requests.exceptions.ConnectionError):
        return ConnectionError(
            f"{where}: cannot reach the host ({_short(error)}); check the host, port and scheme (https on 5986, "
            "http on 5985)",
            host=host,
        )
    if isinstance(error, requests.exceptions.RequestException):
        return ConnectionError(f"{where}: HTTP failure ({_short(error)})", host=host)
    if isinstance(error, winrm_errors.WinRMTransportError | psrp_errors.WinRMTransportError):
        status = _attribute(error, "code")
        if status == 401:
            return AuthenticationError(f"{where}: the host refused the credentials (HTTP 401)", host=host)
        return ConnectionError(f"{where}: unexpected HTTP {status} from the host", host=host)
    if isinstance(error, winrm_errors.WSManFaultError | psrp_errors.WSManFaultError):
        code = _attribute(error, "wsman_fault_code") or _attribute(error, "code")
        if code == 2150858793:
            return TimeoutError(f"{where}: the WS-Management operation timed out", host=host)
        # Windows puts the generic sentence in s:Reason (pywinrm's .reason) and the specific one in f:Message.
        reason = _fault_message(_attribute(error, "response")) or _attribute(error, "reason") or _text(error)
        return ConnectionError(f"{where}: WS-Management fault {code}: {str(reason).strip()}", host=host)
    if isinstance(error, psrp_errors.InvalidRunspacePoolStateError | psrp_errors.InvalidPipelineStateError):
        return ConnectionError(f"{where}: the PowerShell session is no longer usable ({_text(error)})", host=host)
    if isinstance(error, psrp_errors.WinRMError | winrm_errors.WinRMError):
        return ConnectionError(f"{where}: {type(error).__name__}: {_text(error)}", host=host)
    if isinstance(error, OSError):
        return ConnectionError(f"{where}: {type(error).__name__}: {error}", host=host)
    return BackendError(f"{where}: {type(error).__name__}: {error}", code=type(error).__name__, host=host)


def _credssp_refused(error: BaseException) -> bool:
    """Whether requests-credssp or pyspnego's CredSSP says the host refused the exchange (an NTSTATUS such as
    SEC_E_LOGON_DENIED in a TSRequest, or a 401)."""
    try:
        from requests_credssp.exceptions import AuthenticationException, NTStatusException
    except ImportError:  # pragma: no cover - the credssp extra is missing; require() said so before
        return False
    import spnego.exceptions

    return isinstance(error, AuthenticationException | NTStatusException | spnego.exceptions.SpnegoError)


def _attribute(error: BaseException, name: str) -> Any:
    # pypsrp's exceptions compute attributes from args and raise IndexError when built with fewer.
    try:
        return getattr(error, name, None)
    except (IndexError, KeyError, TypeError):
        return None


def _fault_message(response: Any) -> str:
    """The specific text of a WS-Management fault envelope: f:WSManFault/f:Message, or the innermost one of a
    f:ProviderFault; "" when there is none (or the response is not such an envelope)."""
    import xml.etree.ElementTree as ET

    if not isinstance(response, str | bytes) or not response:
        return ""
    try:
        root = ET.fromstring(response)
    except ET.ParseError:
        return ""
    wsman_fault = "{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}"
    nodes = [*root.iter(f"{wsman_fault}Message"), *root.iter(f"{wsman_fault}ProviderFault")]
    texts = [(node.text or "").strip() for node in nodes if (node.text or "").strip()]
    return texts[0] if texts else ""


def _text(error: BaseException) -> str:
    # Some client exceptions render their text from args and fail on unexpected ones; never fail here.
    try:
        return str(error)
    except Exception:
        return repr(error.args)


def _short(error: BaseException) -> str:
    # requests nests urllib3 reasons several levels deep; the innermost text is the useful one.
    text = str(error)
    match = re.search(r"\(Caused by \w+\((.*)\)\)\s*$", text)
    return match.group(1) if match else text
