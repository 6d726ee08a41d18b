"""The wire as Windows speaks it: faults, idle timeouts, shell and runspace pool replies, pipeline states.

Each expectation comes from traffic recorded against real Windows hosts (pypsrp's tests/tests_pypsrp/responses/*.yml)
or from MS-WSMV / MS-PSRP; the fidelity ledger names the source of each.
"""

from __future__ import annotations

import base64
import struct
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pypsrp.exceptions import InvalidPSRPOperation, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool

from polyvisor_hyperv_loopback import LoopbackHost
from polyvisor_hyperv_loopback.wire.service import Reply, WSManService

from ._clients import PASSWORD, USER, psrp_wsman
from ._stub_engine import StubEngine

pytestmark = pytest.mark.loopback

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
INVALID_SELECTORS_REASON = (
    "The WS-Management service cannot process the request because the request contained invalid selectors for the "
    "resource. "
)
CMD_SHELL = (
    "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
    "{extra}</rsp:Shell>"
)


def soap(
    action: str,
    resource_uri: str,
    body: str = "",
    shell_id: str | None = None,
    timeout: str = "PT5S",
) -> bytes:
    selectors = f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>' if shell_id else ""
    return f"""<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}">
<s:Header><a:Action s:mustUnderstand="true">{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>
<w:ResourceURI s:mustUnderstand="true">{resource_uri}</w:ResourceURI>
<w:OperationTimeout>{timeout}</w:OperationTimeout><w:MaxEnvelopeSize>153600</w:MaxEnvelopeSize>{selectors}</s:Header>
<s:Body>{body}</s:Body></s:Envelope>""".encode()


def post(host: LoopbackHost, payload: bytes, host_header: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/soap+xml;charset=UTF-8"}
    if host_header is not None:
        headers["Host"] = host_header
    return requests.post(
        host.url, data=payload, auth=(USER, PASSWORD), headers=headers, proxies={"http": "", "https": ""}, timeout=10
    )


def fault_of(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 500
    fault = ET.fromstring(response.content).find("s:Body/s:Fault", NS)
    assert fault is not None
    wsman = fault.find("s:Detail/f:WSManFault", NS)
    assert wsman is not None
    message = wsman.find("f:Message", NS)
    assert message is not None
    provider = message.find("f:ProviderFault", NS)
    return {
        "subcode": fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS),
        "reason": fault.findtext("s:Reason/s:Text", namespaces=NS),
        "detail": fault.findtext("s:Detail/w:FaultDetail", namespaces=NS),
        "code": wsman.get("Code"),
        "machine": wsman.get("Machine"),
        "message": message.text,
        "provider": provider,
    }


def create_cmd_shell(host: LoopbackHost, extra: str = "") -> ET.Element:
    response = post(host, soap(CREATE, CMD_URI, CMD_SHELL.format(extra=extra)))
    assert response.status_code == 200, response.text
    shell = ET.fromstring(response.content).find("s:Body/rsp:Shell", NS)
    assert shell is not None
    return shell


@pytest.fixture
def idle_host(stub_engine: StubEngine) -> Iterator[LoopbackHost]:
    """A host whose shells idle out after a second unless the client asks for longer (up to three)."""
    with LoopbackHost(
        USER, PASSWORD, engine=stub_engine, allow_unencrypted=True, idle_timeout=1.0, max_idle_timeout=3.0
    ) as host:
        yield host


# -- W5: a bad OperationTimeout is refused --------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["PT-1S", "soon"])
def test_invalid_operation_timeout_is_refused(open_http_host: LoopbackHost, timeout: str) -> None:
    # Recorded: test_psrp_is_alive_other_wsman_error.yml (PT-1S).
    fault = fault_of(post(open_http_host, soap(CREATE, CMD_URI, CMD_SHELL.format(extra=""), timeout=timeout)))

    assert fault["subcode"] == "a:InvalidMessageInformationHeader"
    assert fault["code"] == "2150858767"
    assert fault["reason"] == (
        "The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers. "
    )
    assert fault["message"] == (
        "The WS-Management service cannot process the request. The XML contains an invalid timeout field in the SOAP "
        f"header: {timeout}. "
    )
    assert open_http_host.open_shells == 0


# -- W3/W4: fault layout ---------------------------------------------------------------------------------------------


def test_missing_shell_fault_has_the_generic_reason_and_the_specific_message(open_http_host: LoopbackHost) -> None:
    shell_id = str(uuid.uuid4()).upper()
    response = post(open_http_host, soap(DELETE, CMD_URI, shell_id=shell_id), host_header="hv01.example.com:5985")
    fault = fault_of(response)

    assert fault["subcode"] == "w:InvalidSelectors"
    assert fault["code"] == "2150858843"
    assert fault["reason"] == INVALID_SELECTORS_REASON
    assert fault["message"] == (
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found on "
        "the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the "
        "server. Provide the correct ShellId or create a new shell and retry the operation. "
    )
    assert fault["detail"] == "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"
    assert fault["machine"] == "hv01.example.com"


def test_missing_command_fault(open_http_host: LoopbackHost) -> None:
    # Recorded: test_winrs_bad_cmd_id.yml.
    shell_id = create_cmd_shell(open_http_host).findtext("rsp:ShellId", namespaces=NS)
    body = f'<rsp:Receive><rsp:DesiredStream CommandId="{uuid.uuid4()}">stdout stderr</rsp:DesiredStream></rsp:Receive>'
    fault = fault_of(post(open_http_host, soap(RECEIVE, CMD_URI, body, shell_id=shell_id)))

    assert fault["reason"] == INVALID_SELECTORS_REASON
    assert fault["message"] == (
        "The Windows Remote Shell received a request to perform an operation on a command identifier that does not "
        "exist. Either the command has completed execution or the client specified an invalid command identifier. "
    )
    assert fault["detail"] == "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"
    assert fault["machine"] == "127.0.0.1"
    post(open_http_host, soap(DELETE, CMD_URI, shell_id=shell_id))


def test_get_of_a_missing_shell_is_a_shell_provider_fault(open_http_host: LoopbackHost) -> None:
    # Recorded: test_psrp_is_alive_invalid_selectors.yml (pypsrp's RunspacePool.is_alive is a Get of the shell).
    fault = fault_of(post(open_http_host, soap(GET, SHELL_URI, shell_id=str(uuid.uuid4()).upper())))

    assert fault["reason"] == INVALID_SELECTORS_REASON
    provider = fault["provider"]
    assert provider is not None
    assert provider.get("provider") == "Shell provider"
    assert provider.get("path") == "%systemroot%\\system32\\WsmSvc.dll"
    assert provider.findtext("f:WSManFault/f:Message", namespaces=NS) == INVALID_SELECTORS_REASON


# -- W1/W2: the shell description and idle timeouts ---------------------------------------------------------------


def test_cmd_shell_creation_reply(open_http_host: LoopbackHost) -> None:
    # Recorded: every test_winrs_*.yml Create response (the cmd shell says less than the PowerShell plugin).
    shell = create_cmd_shell(open_http_host)
    names = [child.tag.split("}", 1)[1] for child in shell]

    assert names == [
        "ShellId",
        "ResourceUri",
        "Owner",
        "ClientIP",
        "IdleTimeOut",
        "InputStreams",
        "OutputStreams",
        "ShellRunTime",
        "ShellInactivity",
    ]
    assert shell.findtext("rsp:IdleTimeOut", namespaces=NS) == "PT7200.000S"
    post(open_http_host, soap(DELETE, CMD_URI, shell_id=shell.findtext("rsp:ShellId", namespaces=NS)))


def test_runspace_pool_creation_reply(fresh_http_host: LoopbackHost, recorded: Recorder) -> None:
    # Recorded: every test_psrp_*.yml Create response (PowerShell 5.1 plugin).
    with RunspacePool(psrp_wsman(fresh_http_host)):
        pass
    [shell] = [node for body in recorded.replies if (node := ET.fromstring(body).find("s:Body/rsp:Shell", NS))]
    names = [child.tag.split("}", 1)[1] for child in shell]

    assert names == [
        "ShellId",
        "ResourceUri",
        "Owner",
        "ClientIP",
        "ProcessId",
        "IdleTimeOut",
        "InputStreams",
        "OutputStreams",
        "MaxIdleTimeOut",
        "Locale",
        "DataLocale",
        "CompressionMode",
        "ProfileLoaded",
        "Encoding",
        "BufferMode",
        "State",
        "ShellRunTime",
        "ShellInactivity",
    ]
    values = {name: shell.findtext(f"rsp:{name}", namespaces=NS) for name in names}
    assert values["IdleTimeOut"] == "PT7200.000S"
    assert values["MaxIdleTimeOut"] == "PT2147483.647S"
    assert values["Locale"] == values["DataLocale"] == "en-US"
    assert values["CompressionMode"] == "NoCompression"
    assert values["ProfileLoaded"] == "Yes"
    assert values["Encoding"] == "UTF8"
    assert values["BufferMode"] == "Block"
    assert values["State"] == "Connected"
    assert values["ProcessId"] is not None
    assert int(values["ProcessId"]) > 0


def test_requested_idle_timeout_is_honoured_up_to_the_maximum(idle_host: LoopbackHost) -> None:
    assert create_cmd_shell(idle_host).findtext("rsp:IdleTimeOut", namespaces=NS) == "PT1.000S"
    asked = create_cmd_shell(idle_host, "<rsp:IdleTimeOut>PT2.5S</rsp:IdleTimeOut>")
    assert asked.findtext("rsp:IdleTimeOut", namespaces=NS) == "PT2.500S"
    capped = create_cmd_shell(idle_host, "<rsp:IdleTimeOut>PT600S</rsp:IdleTimeOut>")
    assert capped.findtext("rsp:IdleTimeOut", namespaces=NS) == "PT3.000S"


def test_an_idle_timeout_that_is_not_a_duration_is_a_schema_error(idle_host: LoopbackHost) -> None:
    # pywinrm's open_shell(idle_timeout=3600000) sends a bare number; Windows answers SchemaValidationError
    # (diyan/pywinrm#377).
    body = CMD_SHELL.format(extra="<rsp:IdleTimeOut>3600000</rsp:IdleTimeOut>")
    response = post(idle_host, soap(CREATE, CMD_URI, body))
    fault = fault_of(response)
    assert (fault["code"], fault["subcode"]) == ("2150858817", "w:SchemaValidationError")
    assert idle_host.open_shells == 0


def test_an_idle_shell_expires_and_later_requests_get_invalid_selectors(idle_host: LoopbackHost) -> None:
    shell_id = create_cmd_shell(idle_host).findtext("rsp:ShellId", namespaces=NS)
    assert idle_host.open_shells == 1

    assert idle_host.wait_for_open_shells(0, timeout=10)
    fault = fault_of(post(idle_host, soap(DELETE, CMD_URI, shell_id=shell_id)))
    assert fault["code"] == "2150858843"
    assert shell_id is not None
    assert shell_id in fault["message"]


def test_an_idle_runspace_pool_expires(idle_host: LoopbackHost) -> None:
    pool = RunspacePool(psrp_wsman(idle_host), idle_timeout=2)
    pool.open()
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-VM")
    ps.invoke()
    assert idle_host.open_shells == 1

    assert idle_host.wait_for_open_shells(0, timeout=10)
    assert pool.shell.idle_time_out == "PT2.000S"
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-VM")
    with pytest.raises(WSManFaultError) as raised:
        ps.invoke()
    assert raised.value.code == 2150858843


def test_a_shell_in_use_does_not_expire(idle_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(idle_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 2)  # longer than the 1 s idle timeout
        ps.invoke()
        assert not ps.had_errors
        assert idle_host.open_shells == 1


# -- PSRP: replies as PowerShell 5.1 sends them ----------------------------------------------------------------------


class Recorder:
    """Keeps every SOAP reply the host sends (the decrypted envelope)."""

    def __init__(self, service: WSManService) -> None:
        self.replies: list[bytes] = []
        self._lock = threading.Lock()
        original = service.handle

        def handle(data: bytes, owner: str, client_ip: str, endpoint: str, **kwargs: Any) -> Reply:
            reply = original(data, owner, client_ip, endpoint, **kwargs)
            with self._lock:
                self.replies.append(reply.body)
            return reply

        service.handle = handle  # type: ignore[method-assign]

    def receive_responses(self) -> list[ET.Element]:
        out = []
        for body in self.replies:
            node = ET.fromstring(body).find("s:Body/rsp:ReceiveResponse", NS)
            if node is not None:
                out.append(node)
        return out

    def psrp_messages(self) -> list[tuple[int, str]]:
        """(message type, body) of every PSRP message the host sent."""
        buffers: dict[int, bytes] = {}
        messages = []
        for response in self.receive_responses():
            for stream in response.iterfind("rsp:Stream", NS):
                data = base64.b64decode(stream.text or "")
                offset = 0
                while offset < len(data):
                    object_id, _fragment_id, flags, length = struct.unpack(">QQBI", data[offset : offset + 21])
                    buffers[object_id] = buffers.get(object_id, b"") + data[offset + 21 : offset + 21 + length]
                    offset += 21 + length
                    if flags & 2:
                        message = buffers.pop(object_id)
                        messages.append((struct.unpack("<I", message[4:8])[0], message[40:].decode("utf-8-sig")))
        return messages


@pytest.fixture
def recorded(fresh_http_host: LoopbackHost) -> Recorder:
    return Recorder(fresh_http_host._service)  # type: ignore[arg-type]


PIPELINE_STATE = 0x00041006


def test_psrp_command_states(fresh_http_host: LoopbackHost, recorded: Recorder) -> None:
    # Recorded (every test_psrp_*.yml): no CommandState until Done, and Done carries ExitCode 0; the only
    # PIPELINE_STATE message is the final one.
    with RunspacePool(psrp_wsman(fresh_http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 1)
        ps.invoke()
        failing = PowerShell(pool)
        failing.add_cmdlet("Start-VM").add_parameter("Name", "vm1")  # the stub fails it (terminating error)
        failing.invoke()

    states = []
    for response in recorded.receive_responses():
        for state in response.iterfind("rsp:CommandState", NS):
            states.append((state.get("State", "").rsplit("/", 1)[-1], state.findtext("rsp:ExitCode", namespaces=NS)))
    assert states == [("Done", "0"), ("Done", "0")]
    pipeline_states = [body for kind, body in recorded.psrp_messages() if kind == PIPELINE_STATE]
    assert len(pipeline_states) == 2
    assert '<I32 N="PipelineState">4</I32>' in pipeline_states[0]  # Completed
    assert '<I32 N="PipelineState">5</I32>' in pipeline_states[1]  # Failed


def test_runspace_pool_sends_the_windows_powershell_version_table(fresh_http_host: LoopbackHost) -> None:
    # Recorded: APPLICATION_PRIVATE_DATA in test_psrp_long_running_cmdlet.yml (PowerShell 5.1.14393).
    with RunspacePool(psrp_wsman(fresh_http_host)) as pool:
        data = pool.application_private_data
    assert data is not None
    table = data.data["PSVersionTable"]
    table = getattr(table, "value", table)
    assert {str(k): " ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in dict(table).items()} == {
        "PSVersion": "5.1.14393.2248",
        "PSEdition": "Desktop",
        "PSCompatibleVersions": "1.0 2.0 3.0 4.0 5.0 5.1.14393.2248",
        "CLRVersion": "4.0.30319.42000",
        "BuildVersion": "10.0.14393.2248",
        "WSManStackVersion": "3.0",
        "PSRemotingProtocolVersion": "2.3",
        "SerializationVersion": "1.1.0.1",
    }


def test_max_runspaces_can_change_after_the_pool_opened(fresh_http_host: LoopbackHost) -> None:
    # Recorded: test_psrp_set_runspaces.yml answers SET_MAX/SET_MIN_RUNSPACES with RUNSPACE_AVAILABILITY.
    with RunspacePool(psrp_wsman(fresh_http_host)) as pool:
        pool.max_runspaces = 5
        pool.min_runspaces = 2
        assert (pool.min_runspaces, pool.max_runspaces) == (2, 5)
        assert pool.get_available_runspaces() == 5
        with pytest.raises(InvalidPSRPOperation):
            pool.min_runspaces = 6  # more than the maximum
        with pytest.raises(InvalidPSRPOperation):
            pool.max_runspaces = -1
        assert (pool.min_runspaces, pool.max_runspaces) == (2, 5)


def test_error_records_carry_invocation_info_and_the_category_message(fresh_http_host: LoopbackHost) -> None:
    # Recorded: test_psrp_error_failed.yml (ErrorCategory_Message "NotSpecified: (:) [Write-Error], ...").
    with RunspacePool(psrp_wsman(fresh_http_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VM").add_parameter("Name", "missing-vm-with-a-long-name-beyond-forty-characters")
        ps.invoke()
    [record] = ps.streams.error
    assert record.message == (
        "InvalidArgument: (missing-vm-with...orty-characters:String) [Get-VM], VirtualizationException"
    )
    assert record.invocation_info is not None
    props = {**record.invocation_info.adapted_properties, **record.invocation_info.extended_properties}
    assert str(props["MyCommand"]) == "Get-VM"
    assert props["InvocationName"] == "Get-VM"
    assert props["PipelineLength"] == 1
    assert props["PipelinePosition"] == 1
