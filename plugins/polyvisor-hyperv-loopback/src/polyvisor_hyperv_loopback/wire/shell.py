"""What every WinRS shell (cmd or PowerShell remoting) has in common."""

from __future__ import annotations

import abc
import datetime
import itertools
import threading
import time
import xml.etree.ElementTree as ET

from .soap import Request, element, format_duration, sub

STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
SIGNAL_CTRL_C = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c"
SIGNAL_PS_CTRL_C = "powershell/signal/ctrl_c"
SIGNAL_PS_CRTL_C = "powershell/signal/crtl_c"  # The misspelling in MS-PSRP, which some clients send.
SIGNAL_CTRL_BREAK = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_break"

#: Windows' default shell IdleTimeOut and MaxIdleTimeOut, as a PowerShell 5.1 host reports them in Create.
DEFAULT_IDLE_TIMEOUT = 7200.0
MAX_IDLE_TIMEOUT = 2147483.647

_process_ids = itertools.count(4012, 4)  # Windows process ids are multiples of four


def _elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"P0DT{whole // 3600}H{whole // 60 % 60}M{whole % 60}S"


class Shell(abc.ABC):
    """One WinRS shell: created by Create, addressed by its ShellId, removed by Delete.

    A shell that no request has used for ``idle_timeout`` seconds is deleted by the service, as Windows does; a
    shell that can be disconnected (:attr:`disconnects`, the PowerShell plugin's) is first disconnected, as Windows
    reports an idle-expired runspace pool (``rsp:State`` Disconnected: pypsrp's recorded
    test_psrp_is_alive_state_disconnected.yml), and deleted once it stayed disconnected for its idle timeout
    (WSMAN_SHELL_DISCONNECT_INFO: the time a shell stays open after its client disconnected).
    """

    #: Whether the shell can be disconnected and reconnected (MS-WSMV 3.1.4.15-3.1.4.17).
    disconnects = False

    #: Whether Create and Get describe the hosting process (ProcessId, MaxIdleTimeOut, Locale, ... State): the
    #: PowerShell plugin's shells do, the cmd shell's do not.
    describes_process = False

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
        self.process_id = next(_process_ids)
        self.idle_timeout = DEFAULT_IDLE_TIMEOUT
        self.max_idle_timeout = MAX_IDLE_TIMEOUT
        self.locale = "en-US"
        self.data_locale = "en-US"
        self.profile_loaded = True
        self._activity = threading.Lock()
        self._busy = 0
        self._last_active = time.monotonic()
        #: "Connected" or "Disconnected" (rsp:State); the wsmv:SessionId of the client session that may Reconnect.
        self.state = "Connected"
        self.session_id = ""

    # -- idle timeout ---------------------------------------------------------------------

    def begin_request(self) -> None:
        """A request for this shell arrived: it is not idle until the request is answered."""
        with self._activity:
            self._busy += 1

    def end_request(self) -> None:
        """A request for this shell was answered: the idle clock starts again."""
        with self._activity:
            self._busy -= 1
            self._last_active = time.monotonic()

    def expires_at(self) -> float | None:
        """When (time.monotonic) the shell idles out (is disconnected, or deleted when disconnected already), or None
        while a request is being served."""
        with self._activity:
            return None if self._busy else self._last_active + self.idle_timeout

    def mark_disconnected(self, idle_timeout: float | None = None) -> None:
        """The shell is disconnected now (a Disconnect, or its idle timeout): its deletion clock starts."""
        with self._activity:
            self.state = "Disconnected"
            self._last_active = time.monotonic()
            if idle_timeout is not None:
                self.idle_timeout = idle_timeout

    def mark_connected(self) -> None:
        """A client reconnected to the shell."""
        with self._activity:
            self.state = "Connected"
            self._last_active = time.monotonic()

    def _inactivity(self) -> float:
        with self._activity:
            return 0.0 if self._busy else time.monotonic() - self._last_active

    # -- description ----------------------------------------------------------------------

    def shell_element(self) -> ET.Element:
        """Return the ``rsp:Shell`` description Windows returns from Create and Get."""
        shell = element("rsp:Shell", {"xmlns:rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"})
        sub(shell, "rsp:ShellId", text=self.shell_id)
        sub(shell, "rsp:ResourceUri", text=self.resource_uri)
        sub(shell, "rsp:Owner", text=self.owner)
        sub(shell, "rsp:ClientIP", text=self.client_ip)
        if self.describes_process:
            sub(shell, "rsp:ProcessId", text=str(self.process_id))
        sub(shell, "rsp:IdleTimeOut", text=format_duration(self.idle_timeout))
        sub(shell, "rsp:InputStreams", text=self.input_streams)
        sub(shell, "rsp:OutputStreams", text=self.output_streams)
        if self.describes_process:
            sub(shell, "rsp:MaxIdleTimeOut", text=format_duration(self.max_idle_timeout))
            sub(shell, "rsp:Locale", text=self.locale)
            sub(shell, "rsp:DataLocale", text=self.data_locale)
            sub(shell, "rsp:CompressionMode", text="NoCompression")
            sub(shell, "rsp:ProfileLoaded", text="Yes" if self.profile_loaded else "No")
            sub(shell, "rsp:Encoding", text="UTF8")
            sub(shell, "rsp:BufferMode", text="Block")
            sub(shell, "rsp:State", text=self.state)
        runtime = datetime.datetime.now(datetime.UTC) - self._created
        sub(shell, "rsp:ShellRunTime", text=_elapsed(runtime.total_seconds()))
        sub(shell, "rsp:ShellInactivity", text=_elapsed(self._inactivity()))
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

    # -- disconnected operations (only shells that :attr:`disconnects`) ---------------------------------------

    def disconnect(self, idle_timeout: float | None) -> None:
        """Disconnect the shell and its commands: their input and output streams are suspended."""
        raise NotImplementedError

    def reconnect(self, command_id: str | None) -> None:
        """Reconnect the shell (``command_id`` None) or one of its commands, from the client session that left."""
        raise NotImplementedError

    def connect(self, request: Request) -> list[ET.Element]:
        """Connect a new client session to the disconnected shell, or to one of its commands; the response body."""
        raise NotImplementedError

    def command_elements(self) -> list[ET.Element]:
        """The ``rsp:Command`` description of each command, as Enumerate lists them."""
        return []


def simple_response(tag: str) -> list[ET.Element]:
    """Return a body holding one empty element, e.g. ``rsp:SendResponse``."""
    return [element(tag)]


def command_response(command_id: str) -> list[ET.Element]:
    """Return the body of a Command response."""
    response = element("rsp:CommandResponse")
    sub(response, "rsp:CommandId", text=command_id)
    return [response]
