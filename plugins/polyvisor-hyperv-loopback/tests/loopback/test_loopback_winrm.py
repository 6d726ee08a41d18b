"""pywinrm (unmodified) against the loopback host's WinRS cmd shell."""

from __future__ import annotations

import base64

import pytest
import winrm
from pypsrp.exceptions import WSManFaultError as PSRPWSManFaultError
from pypsrp.shell import Process, SignalCode, WinRS
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WSManFaultError

from polyvisor_hyperv_loopback import LoopbackHost

from ._clients import psrp_wsman, winrm_session
from ._stub_engine import StubEngine

pytestmark = pytest.mark.loopback


def test_run_cmd_over_ntlm_with_message_encryption(http_host: LoopbackHost) -> None:
    result = winrm_session(http_host).run_cmd("echo", ["hello", "world"])

    assert (result.status_code, result.std_out, result.std_err) == (0, b"hello world\r\n", b"")


def test_unknown_program_is_not_recognized(http_host: LoopbackHost) -> None:
    result = winrm_session(http_host).run_cmd("frobnicate.exe", ["/x"])

    assert result.status_code == 1
    assert result.std_out == b""
    assert result.std_err == (
        b"'frobnicate.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    )


@pytest.mark.parametrize(("length", "accepted"), [(8191, True), (8192, False)])
def test_cmd_exe_command_line_limit(http_host: LoopbackHost, length: int, accepted: bool) -> None:
    text = "a" * (length - len("echo "))

    result = winrm_session(http_host).run_cmd("echo " + text)

    if accepted:
        assert (result.status_code, result.std_out) == (0, text.encode() + b"\r\n")
    else:
        assert (result.status_code, result.std_out) == (1, b"")
        assert result.std_err == b"The command line is too long.\r\n"


def test_run_ps_hands_the_encoded_script_to_powershell(http_host: LoopbackHost, stub_engine: StubEngine) -> None:
    result = winrm_session(http_host).run_ps("Get-VM -Name 'a b'")

    assert (result.status_code, result.std_out) == (0, b"ran:Get-VM -Name 'a b'\r\n")
    encoded = base64.b64encode("Get-VM -Name 'a b'".encode("utf-16-le")).decode()
    assert stub_engine.powershell_args[-1] == ["-encodedcommand", encoded]


def test_run_ps_longer_than_the_command_line_limit_fails_like_windows(http_host: LoopbackHost) -> None:
    # UTF-16LE then base64: 3,100 characters become ~8,300 on the command line.
    result = winrm_session(http_host).run_ps("#" * 3100)

    assert result.status_code == 1
    assert result.std_err == b"The command line is too long.\r\n"


def test_stdin_is_fed_by_send_until_end(http_host: LoopbackHost) -> None:
    protocol = winrm_session(http_host).protocol
    shell_id = protocol.open_shell()
    try:
        # Pipe mode (WINRS_CONSOLEMODE_STDIN=FALSE), as clients that feed stdin ask for it (Ansible's winrm plugin).
        command_id = protocol.run_command(shell_id, "powershell.exe", ["-NoProfile", "-"], console_mode_stdin=False)
        protocol.send_command_input(shell_id, command_id, b"first ")
        protocol.send_command_input(shell_id, command_id, b"second", end=True)
        stdout, stderr, code = protocol.get_command_output(shell_id, command_id)
        protocol.cleanup_command(shell_id, command_id)
    finally:
        protocol.close_shell(shell_id)

    assert (stdout, stderr, code) == (b"stdin:first second\r\n", b"", 0)


def test_console_mode_stdin_is_not_ended_by_the_send_end_flag(http_host: LoopbackHost) -> None:
    # pywinrm's default (console_mode_stdin=True) makes stdin a console: End does not give the reader end of input.
    protocol = winrm_session(http_host).protocol
    shell_id = protocol.open_shell()
    try:
        command_id = protocol.run_command(shell_id, "powershell.exe", ["-NoProfile", "-"])
        protocol.send_command_input(shell_id, command_id, b"data", end=True)
        protocol.operation_timeout_sec = 1
        with pytest.raises(WinRMOperationTimeoutError):  # still running, waiting for the end of its input
            protocol.get_command_output_raw(shell_id, command_id)
        protocol.cleanup_command(shell_id, command_id)
    finally:
        protocol.close_shell(shell_id)


def test_large_output_arrives_in_several_receives_within_the_envelope(http_host: LoopbackHost) -> None:
    protocol = winrm_session(http_host).protocol
    sizes: list[int] = []
    send_message = protocol.transport.send_message

    def measured(message: str | bytes) -> bytes:
        response: bytes = send_message(message)
        sizes.append(len(response))
        return response

    # A spy: every call still goes to the real transport.
    protocol.transport.send_message = measured  # type: ignore[method-assign]
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "powershell", ["-Big", "400000"])
    receives = 0
    stdout = stderr = b""
    done = False
    while not done:
        out, err, code, done = protocol.get_command_output_raw(shell_id, command_id)
        receives += 1
        stdout += out
        stderr += err
    protocol.cleanup_command(shell_id, command_id)
    protocol.close_shell(shell_id)

    assert (stdout, stderr, code) == (b"o" * 400000, b"e" * 10, 0)
    assert receives >= 4
    assert max(sizes) <= protocol.max_env_sz


def test_operation_timeout_fault_is_retried_by_the_client(http_host: LoopbackHost) -> None:
    protocol = winrm_session(http_host, operation_timeout_sec=1, read_timeout_sec=5).protocol
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "echo", ["late"])

    http_host.stall_next()
    with pytest.raises(WinRMOperationTimeoutError):
        protocol.get_command_output_raw(shell_id, command_id)
    http_host.stall_next()
    output = protocol.get_command_output(shell_id, command_id)
    protocol.close_shell(shell_id)

    assert output == (b"late\r\n", b"", 0)


def test_unknown_shell_is_a_wsman_fault(http_host: LoopbackHost) -> None:
    protocol = winrm_session(http_host).protocol

    with pytest.raises(WSManFaultError) as caught:
        protocol.run_command("0BADC0DE-0000-0000-0000-000000000000", "echo", ["hi"])

    assert caught.value.code == 500
    assert caught.value.wsman_fault_code == 2150858843
    assert caught.value.fault_subcode == "w:InvalidSelectors"
    # pywinrm reports s:Reason, which Windows fills with the generic sentence; the specific one is in f:Message.
    assert caught.value.reason == (
        "The WS-Management service cannot process the request because the request contained invalid selectors for "
        "the resource. "
    )
    assert (
        "The request for the Windows Remote Shell with ShellId 0BADC0DE-0000-0000-0000-000000000000 "
        "failed because the shell was not found on the server."
    ) in caught.value.response


def test_wrong_password_is_rejected(http_host: LoopbackHost) -> None:
    with pytest.raises(InvalidCredentialsError):
        winrm_session(http_host, password="not-the-password").run_cmd("echo", ["x"])


def test_basic_over_http_is_refused_while_unencrypted_traffic_is_not_allowed(http_host: LoopbackHost) -> None:
    with pytest.raises(InvalidCredentialsError):
        winrm_session(http_host, transport="basic").run_cmd("echo", ["x"])


def test_basic_over_http_works_when_unencrypted_traffic_is_allowed(open_http_host: LoopbackHost) -> None:
    result = winrm_session(open_http_host, transport="basic").run_cmd("echo", ["plain"])

    assert (result.status_code, result.std_out) == (0, b"plain\r\n")


def test_unencrypted_ntlm_is_refused_unless_allowed(http_host: LoopbackHost, open_http_host: LoopbackHost) -> None:
    with pytest.raises(InvalidCredentialsError):
        winrm_session(http_host, message_encryption="never").run_cmd("echo", ["x"])

    result = winrm_session(open_http_host, message_encryption="never").run_cmd("echo", ["y"])
    assert result.std_out == b"y\r\n"


def test_basic_is_refused_when_disabled(stub_engine: StubEngine) -> None:
    with LoopbackHost("vagrant", "pw", engine=stub_engine, allow_basic=False, allow_unencrypted=True) as host:
        session = winrm_session(host, transport="basic", password="pw")
        with pytest.raises(InvalidCredentialsError):
            session.run_cmd("echo", ["x"])
        assert winrm_session(host, password="pw").run_cmd("echo", ["ntlm"]).std_out == b"ntlm\r\n"


def test_ctrl_c_ends_a_command_waiting_for_stdin(http_host: LoopbackHost) -> None:
    with WinRS(psrp_wsman(http_host)) as shell:
        process = Process(shell, "powershell.exe", ["-"])
        process.begin_invoke()
        process.signal(SignalCode.CTRL_C)
        process.end_invoke()

    assert process.rc == 0xC000013A  # STATUS_CONTROL_C_EXIT, as Windows reports it


def test_terminate_forgets_the_command(http_host: LoopbackHost) -> None:
    with WinRS(psrp_wsman(http_host)) as shell:
        process = Process(shell, "echo", ["bye"])
        process.invoke()
        process.signal(SignalCode.TERMINATE)  # pypsrp spells it .../signal/Terminate
        with pytest.raises(PSRPWSManFaultError) as caught:
            shell.receive(command_id=process.id)

    assert process.stdout == b"bye\r\n"
    assert caught.value.code == 2150858843


@pytest.mark.parametrize("user", ["vagrant", "VAGRANT", r".\vagrant", r"WORKGROUP\vagrant"])
def test_ntlm_accepts_local_account_spellings_and_any_password_characters(stub_engine: StubEngine, user: str) -> None:
    password = "p:a;s s\\w0rd"
    with LoopbackHost("vagrant", password, engine=stub_engine) as host:
        session = winrm.Session(host.url, auth=(user, password), transport="ntlm", proxy=None, ca_trust_path=None)
        assert session.run_cmd("echo", ["ok"]).std_out == b"ok\r\n"
