"""The backend against the wire as Windows speaks it: idle shells and pools that the host deletes, and fault texts.

Windows deletes a shell or runspace pool idle past its IdleTimeOut (pypsrp users see pools die after minutes idle:
jborean93/pypsrp#21, #203); the backend reopens and retries only a request that was refused before anything ran.
Windows puts the generic sentence in a fault's s:Reason (what pywinrm reports) and the specific one in
f:WSManFault/f:Message (what pypsrp reports); the backend's errors quote the specific one over both transports.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import polyvisor
from polyvisor_hyperv.errors import error_from_transport

from .conftest import PASSWORD, USER, _loopback_class

pytestmark = pytest.mark.loopback

Connect = Callable[..., polyvisor.Connection]


@pytest.fixture
def idle_host() -> Iterator[Any]:
    """A host whose shells idle for two hours unless the client asks for less (as Windows)."""
    host = _loopback_class()(USER, PASSWORD).start()
    try:
        yield host
    finally:
        host.close()


def test_requested_idle_timeout_reaches_the_host_and_an_expired_session_is_reopened(
    idle_host: Any, uri_for: Callable[..., str], transport: str, connect: Connect
) -> None:
    conn = connect(uri_for(idle_host, transport, idle_timeout="1"))
    conn.list()
    assert idle_host.open_shells == 1

    assert idle_host.wait_for_open_shells(0, timeout=15)  # deleted after one idle second, as requested
    assert conn.host_info().hypervisor == "hyperv"  # refused before anything ran: reopened and retried
    assert idle_host.open_shells == 1


def test_idle_timeout_option_is_validated(idle_host: Any, uri_for: Callable[..., str]) -> None:
    with pytest.raises(polyvisor.errors.ValidationError):
        polyvisor.connect(uri_for(idle_host, "psrp", idle_timeout="-5"), password=PASSWORD)


def _pywinrm_fault(host: Any, shell_id: str) -> BaseException:
    import winrm

    session = winrm.Session(host.url, auth=(USER, PASSWORD), transport="ntlm", proxy=None, ca_trust_path=None)
    protocol = session.protocol
    try:
        protocol.run_command(shell_id, "powershell.exe", ["-NoProfile"])
    except Exception as error:
        return error
    raise AssertionError("the host accepted a command for a shell that does not exist")


def _pypsrp_fault(host: Any, shell_id: str) -> BaseException:
    from pypsrp.wsman import SelectorSet, WSMan

    wsman = WSMan(host.host, port=host.port, username=USER, password=PASSWORD, ssl=False, no_proxy=True, auth="ntlm")
    selectors = SelectorSet()
    selectors.add_option("ShellId", shell_id)
    try:
        wsman.delete("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd", selector_set=selectors)
    except Exception as error:
        return error
    finally:
        wsman.close()
    raise AssertionError("the host deleted a shell that does not exist")


@pytest.mark.parametrize("client", [_pywinrm_fault, _pypsrp_fault], ids=["pywinrm", "pypsrp"])
def test_fault_messages_stay_specific(loopback_http: Any, client: Callable[[Any, str], BaseException]) -> None:
    shell_id = str(uuid.uuid4()).upper()
    error = client(loopback_http, shell_id)

    mapped = error_from_transport(error, doing="listing VMs", host="hv01", endpoint=loopback_http.url)

    assert (
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found"
        in (mapped.message)
    )
    assert "2150858843" in mapped.message
