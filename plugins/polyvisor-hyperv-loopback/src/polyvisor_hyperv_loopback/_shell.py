"""What every WinRS shell (cmd or PowerShell remoting) has in common."""

from __future__ import annotations

import abc
import datetime
import xml.etree.ElementTree as ET

from ._soap import Request, element, sub

STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
SIGNAL_CTRL_C = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c"
SIGNAL_PS_CTRL_C = "powershell/signal/ctrl_c"
SIGNAL_PS_CRTL_C = "powershell/signal/crtl_c"  # The misspelling in MS-PSRP, which some clients send.
SIGNAL_CTRL_BREAK = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_break"


class Shell(abc.ABC):
    """One WinRS shell: created by Create, addressed by its ShellId, removed by Delete."""

    def __init__(
        self,
        shell_id: str,
        resource_uri: str,
        owner: str,
        client_ip: str,
        input_streams: str,
        output_streams: str,
    ) -> None:
        self.shell_id = shell_id
        self.resource_uri = resource_uri
        self.owner = owner
        self.client_ip = client_ip
        self.input_streams = input_streams
        self.output_streams = output_streams
        self._created = datetime.datetime.now(datetime.UTC)

    def shell_element(self) -> ET.Element:
        """Return the ``rsp:Shell`` description Windows returns from Create and Get."""
        shell = element("rsp:Shell", {"xmlns:rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"})
        sub(shell, "rsp:ShellId", text=self.shell_id)
        sub(shell, "rsp:ResourceUri", text=self.resource_uri)
        sub(shell, "rsp:Owner", text=self.owner)
        sub(shell, "rsp:ClientIP", text=self.client_ip)
        sub(shell, "rsp:IdleTimeOut", text="PT7200.000S")
        sub(shell, "rsp:InputStreams", text=self.input_streams)
        sub(shell, "rsp:OutputStreams", text=self.output_streams)
        runtime = datetime.datetime.now(datetime.UTC) - self._created
        seconds = int(runtime.total_seconds())
        sub(shell, "rsp:ShellRunTime", text=f"P0DT{seconds // 3600}H{seconds // 60 % 60}M{seconds % 60}S")
        sub(shell, "rsp:ShellInactivity", text="P0DT0H0M0S")
        sub(shell, "rsp:State", text="Connected")
        return shell

    def created_body(self, endpoint: str) -> list[ET.Element]:
        """Return the body of the Create response."""
        created = element("x:ResourceCreated")
        sub(created, "a:Address", text=endpoint)
        reference = sub(created, "a:ReferenceParameters")
        sub(reference, "w:ResourceURI", text=self.resource_uri)
        selectors = sub(reference, "w:SelectorSet")
        sub(selectors, "w:Selector", {"Name": "ShellId"}, self.shell_id)
        return [created, self.shell_element()]

    @abc.abstractmethod
    def command(self, request: Request) -> list[ET.Element]:
        """Start a command; return the CommandResponse body."""

    @abc.abstractmethod
    def send(self, request: Request) -> list[ET.Element]:
        """Deliver input; return the SendResponse body."""

    @abc.abstractmethod
    def receive(self, request: Request, budget: int, deadline: float) -> list[ET.Element]:
        """Return output (at most ``budget`` raw bytes), waiting until ``deadline`` for some.

        Raises the TimedOut fault when there is nothing to report by then.
        """

    @abc.abstractmethod
    def signal(self, request: Request) -> list[ET.Element]:
        """Handle a Signal; return the SignalResponse body."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything the shell holds (Delete, or the host shutting down)."""


def simple_response(tag: str) -> list[ET.Element]:
    """Return a body holding one empty element, e.g. ``rsp:SendResponse``."""
    return [element(tag)]


def command_response(command_id: str) -> list[ET.Element]:
    """Return the body of a Command response."""
    response = element("rsp:CommandResponse")
    sub(response, "rsp:CommandId", text=command_id)
    return [response]
