"""The loopback host's HTTP layer: TLS, keep-alive, SOAP addressing, faults and test controls."""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ET

import certifi
import pytest
import requests
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WinRMTransportError

from polyvisor_hyperv_loopback import LoopbackHost

from ._clients import PASSWORD, USER, winrm_session

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"


def soap(action: str, resource_uri: str, message_id: str, body: str = "", shell_id: str | None = None) -> bytes:
    selectors = f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>' if shell_id else ""
    return f"""<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}"
 xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="{NS["rsp"]}">
<s:Header><a:Action s:mustUnderstand="true">{action}</a:Action><a:MessageID>{message_id}</a:MessageID>
<w:ResourceURI s:mustUnderstand="true">{resource_uri}</w:ResourceURI>
<w:OperationTimeout>PT5S</w:OperationTimeout><w:MaxEnvelopeSize>153600</w:MaxEnvelopeSize>{selectors}</s:Header>
<s:Body>{body}</s:Body></s:Envelope>""".encode()


def post(host: LoopbackHost, payload: bytes) -> requests.Response:
    return requests.post(
        host.url,
        data=payload,
        auth=(USER, PASSWORD),
        headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
        proxies={"http": "", "https": ""},
        timeout=10,
    )


def test_every_response_relates_to_its_request(open_http_host: LoopbackHost) -> None:
    create_id = f"uuid:{uuid.uuid4()}"
    create = post(
        open_http_host,
        soap(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
            CMD_URI,
            create_id,
            "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>",
        ),
    )
    root = ET.fromstring(create.content)
    shell_id = root.findtext("s:Body/rsp:Shell/rsp:ShellId", namespaces=NS)
    delete_id = f"uuid:{uuid.uuid4()}"
    delete = post(
        open_http_host,
        soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete", CMD_URI, delete_id, shell_id=shell_id),
    )
    again_id = f"uuid:{uuid.uuid4()}"
    again = post(
        open_http_host,
        soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete", CMD_URI, again_id, shell_id=shell_id),
    )

    assert (create.status_code, delete.status_code, again.status_code) == (200, 200, 500)
    for response, message_id in ((create, create_id), (delete, delete_id), (again, again_id)):
        relates_to = ET.fromstring(response.content).findtext("s:Header/a:RelatesTo", namespaces=NS)
        assert relates_to == message_id
    fault = ET.fromstring(again.content).find("s:Body/s:Fault/s:Detail/f:WSManFault", NS)
    assert fault is not None
    assert fault.get("Code") == "2150858843"


@pytest.mark.parametrize(
    ("action", "resource_uri", "code"),
    [
        (
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/bogus",
            "2150858770",
        ),
        ("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate", CMD_URI, "2150858771"),
    ],
)
def test_unsupported_requests_are_soap_faults(
    open_http_host: LoopbackHost, action: str, resource_uri: str, code: str
) -> None:
    message_id = f"uuid:{uuid.uuid4()}"
    response = post(open_http_host, soap(action, resource_uri, message_id))

    assert response.status_code == 500
    root = ET.fromstring(response.content)
    assert root.findtext("s:Header/a:RelatesTo", namespaces=NS) == message_id
    assert root.find(f"s:Body/s:Fault/s:Detail/f:WSManFault[@Code='{code}']", NS) is not None


def test_https_ntlm_with_the_test_ca(https_host: LoopbackHost) -> None:
    assert https_host.ca_path is not None
    assert https_host.url.startswith("https://")

    result = winrm_session(https_host).run_cmd("echo", ["tls"])

    assert result.std_out == b"tls\r\n"


def test_https_ntlm_requires_channel_binding(https_host: LoopbackHost) -> None:
    # Like CbtHardeningLevel=Strict: NTLM over HTTPS must be bound to the server certificate.
    with pytest.raises(InvalidCredentialsError):
        winrm_session(https_host, send_cbt=False).run_cmd("echo", ["x"])


def test_https_basic_is_allowed_even_when_unencrypted_http_is_not(https_host: LoopbackHost) -> None:
    result = winrm_session(https_host, transport="basic").run_cmd("echo", ["basic"])

    assert result.std_out == b"basic\r\n"


def test_https_client_that_does_not_trust_the_ca_fails(https_host: LoopbackHost) -> None:
    # The public CA bundle does not contain the host's throw-away CA.
    with pytest.raises(requests.exceptions.SSLError):
        winrm_session(https_host, ca_trust_path=certifi.where()).run_cmd("echo", ["x"])


def test_keep_alive_and_request_counting(fresh_http_host: LoopbackHost) -> None:
    assert fresh_http_host.requests_served == 0

    winrm_session(fresh_http_host).run_cmd("echo", ["one"])

    # Probe + NTLM (3 legs) then Create, Command, Receive, Signal, Delete on one connection.
    per_connection = fresh_http_host.requests_per_connection()
    assert fresh_http_host.requests_served == sum(per_connection.values())
    assert max(per_connection.values()) >= 7
    assert fresh_http_host.open_shells == 0


def test_drop_connections(fresh_http_host: LoopbackHost) -> None:
    sealed = winrm_session(fresh_http_host).protocol
    plain = winrm_session(fresh_http_host, message_encryption="never").protocol
    shell_id = sealed.open_shell()
    plain.open_shell()
    opened = fresh_http_host.connections_opened

    assert fresh_http_host.drop_connections() == 2

    # The NTLM sealing keys died with the connection: the re-sent body cannot be decrypted.
    with pytest.raises(WinRMTransportError) as caught:
        sealed.run_command(shell_id, "echo", ["after"])
    assert caught.value.code == 400
    # Without message encryption the client re-authenticates on a new connection and carries on;
    # the shell survived on the server.
    command_id = plain.run_command(shell_id, "echo", ["after"])
    assert plain.get_command_output(shell_id, command_id) == (b"after\r\n", b"", 0)
    assert fresh_http_host.connections_opened > opened


def test_stall_with_a_delay_provokes_a_client_read_timeout(fresh_http_host: LoopbackHost) -> None:
    protocol = winrm_session(fresh_http_host, operation_timeout_sec=1, read_timeout_sec=2).protocol
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "echo", ["slow"])

    fresh_http_host.stall_next(seconds=10)
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            protocol.get_command_output_raw(shell_id, command_id)
    finally:
        fresh_http_host.release_stalls()


def test_a_blocked_receive_does_not_block_other_clients(fresh_http_host: LoopbackHost) -> None:
    waiting = winrm_session(fresh_http_host, operation_timeout_sec=20, read_timeout_sec=30).protocol
    shell_id = waiting.open_shell()
    command_id = waiting.run_command(shell_id, "echo", ["held"])
    outcome: list[BaseException] = []

    def blocked_receive() -> None:
        try:
            waiting.get_command_output_raw(shell_id, command_id)
        except BaseException as exc:  # Handed to the main thread, which asserts on it.
            outcome.append(exc)

    fresh_http_host.stall_next()
    thread = threading.Thread(target=blocked_receive)
    thread.start()
    try:
        result = winrm_session(fresh_http_host).run_cmd("echo", ["meanwhile"])
        assert thread.is_alive(), "the stalled Receive should still be waiting"
    finally:
        fresh_http_host.release_stalls()
        thread.join(10)

    assert result.std_out == b"meanwhile\r\n"
    assert len(outcome) == 1
    assert isinstance(outcome[0], WinRMOperationTimeoutError)
