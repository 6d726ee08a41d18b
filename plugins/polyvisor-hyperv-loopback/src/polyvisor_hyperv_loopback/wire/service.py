"""The WS-Management service: routes SOAP requests to shells and turns errors into faults."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from polyvisor_hyperv_loopback.engine_api import PowerShellExe

from .cmd_shell import CMD_RESOURCE_URI, CmdShell
from .shell import DEFAULT_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT, Shell
from .soap import (
    ACTION_COMMAND,
    ACTION_CONNECT,
    ACTION_CREATE,
    ACTION_DELETE,
    ACTION_DISCONNECT,
    ACTION_ENUMERATE,
    ACTION_GET,
    ACTION_RECEIVE,
    ACTION_RECONNECT,
    ACTION_SEND,
    ACTION_SIGNAL,
    MalformedRequest,
    Request,
    WSManFault,
    action_not_supported,
    element,
    envelope,
    envelope_too_large,
    invalid_operation_timeout,
    invalid_request,
    operation_timed_out,
    parse_duration,
    q,
    resource_uri_not_found,
    schema_validation_error,
    shell_instance_not_found,
    shell_not_found,
    sub,
)

_log = logging.getLogger(__name__)

SHELL_RESOURCE_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
COMMAND_RESOURCE_URI = SHELL_RESOURCE_URI + "/Command"
_ENUMERATION_NS = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
CONFIG_RESOURCE_URI = "http://schemas.microsoft.com/wbem/wsman/1/config"
PSRP_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"

#: Windows' default MaxEnvelopeSizekb (500) in bytes: the largest request the service accepts.
DEFAULT_MAX_ENVELOPE_SIZE = 500 * 1024
#: What a response may use when the request does not say (the clients always say).
_FALLBACK_RESPONSE_ENVELOPE = 153600
#: Room for the SOAP header and Receive wrapper elements around base64 stream data.
_ENVELOPE_OVERHEAD = 4096

ShellFactory = Callable[[str, str, str, Request], Shell]


@dataclass(frozen=True)
class Reply:
    """An HTTP status and a SOAP envelope."""

    status: int
    body: bytes


class _Stall:
    """Holds back the next matching operations, as a busy or hung server would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[str | None, float | None]] = []
        self.released = threading.Event()

    def arm(self, action: str | None, seconds: float | None) -> None:
        with self._lock:
            self._pending.append((action, seconds))
            self.released.clear()

    def take(self, action: str) -> tuple[bool, float | None]:
        with self._lock:
            for index, (wanted, seconds) in enumerate(self._pending):
                if wanted is None or wanted == action:
                    del self._pending[index]
                    return True, seconds
        return False, None


class WSManService:
    """Everything behind ``/wsman`` once the HTTP layer has authenticated and decrypted a request."""

    def __init__(
        self,
        powershell: PowerShellExe,
        psrp_factory: ShellFactory | None = None,
        max_envelope_size: int = DEFAULT_MAX_ENVELOPE_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_idle_timeout: float = MAX_IDLE_TIMEOUT,
    ) -> None:
        self._powershell = powershell
        self._psrp_factory = psrp_factory
        self.max_envelope_size = max_envelope_size
        #: A shell's IdleTimeOut when the client asks for none (winrm/config/Winrs IdleTimeout).
        self.idle_timeout = min(idle_timeout, max_idle_timeout)
        #: The longest IdleTimeOut a client may ask for (the plugin's MaxIdleTimeoutms).
        self.max_idle_timeout = max_idle_timeout
        self._shells: dict[str, Shell] = {}
        self._lock = threading.Lock()
        #: Notified when shells come, go or change activity (the idle reaper and waiters use it).
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._stall = _Stall()
        self._reaper = threading.Thread(target=self._reap, name="wsman-idle-reaper", daemon=True)
        self._reaper.start()

    # -- test controls ------------------------------------------------------------------

    def stall_next(self, action: str | None = ACTION_RECEIVE, seconds: float | None = None) -> None:
        """Hold back the next operation with ``action`` (any action when None).

        With ``seconds`` None the operation waits out its OperationTimeout and answers with the
        TimedOut fault without touching the shell; otherwise it is answered normally after
        ``seconds`` (or earlier, when :meth:`release_stalls` is called).
        """
        self._stall.arm(action, seconds)

    def release_stalls(self) -> None:
        """Let every operation currently held by :meth:`stall_next` proceed."""
        self._stall.released.set()

    @property
    def shell_count(self) -> int:
        """Return the number of open shells."""
        with self._lock:
            return len(self._shells)

    def wait_for_shell_count(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` shells are open (e.g. the others idled out); return whether they are."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._shells) == count, timeout)

    def receives(self) -> tuple[int, int]:
        """Receives held now by runspace pools, and Receives they were sent so far."""
        with self._lock:
            shells = list(self._shells.values())
        counts = [(getattr(s, "receives_waiting", 0), getattr(s, "receives_started", 0)) for s in shells]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    # -- idle timeout -------------------------------------------------------------------

    def _reap(self) -> None:
        """Delete shells idle for longer than their IdleTimeOut, as the WinRM service does."""
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                expired = [shell for shell in self._shells.values() if _expired(shell, now)]
                for shell in expired:
                    if shell.disconnects and shell.state == "Connected":
                        shell.disconnect(None)  # idle: Disconnected first, deleted after another idle timeout
                    else:
                        self._forget(shell)
                if expired:
                    self._changed.notify_all()
                deadlines = [at for shell in self._shells.values() if (at := shell.expires_at()) is not None]
                self._changed.wait(max(min(deadlines) - now, 0.01) if deadlines else None)

    def _forget(self, shell: Shell) -> None:
        """Drop a shell (lock held) and release what it holds."""
        self._shells.pop(shell.shell_id.upper(), None)
        shell.close()

    def _begin(self, request: Request) -> Shell | None:
        """Mark the shell a request addresses busy, deleting it first if it already idled out."""
        shell_id = request.selectors.get("ShellId")
        # A Get is no activity: Windows reports a pool polled by Get as idle for as long as nothing else came
        # (ShellInactivity in pypsrp's recorded test_psrp_is_alive_state_disconnected.yml).
        if not shell_id or request.action == ACTION_GET:
            return None
        with self._changed:
            shell = self._shells.get(shell_id.upper())
            if shell is None:
                return None
            if _expired(shell, time.monotonic()):
                if shell.disconnects and shell.state == "Connected":
                    shell.disconnect(None)
                else:
                    self._forget(shell)
                    self._changed.notify_all()
                    return None
            shell.begin_request()
            self._changed.notify_all()
            return shell

    def _end(self, shell: Shell | None) -> None:
        if shell is not None:
            with self._changed:
                shell.end_request()
                self._changed.notify_all()

    # -- request handling ---------------------------------------------------------------

    def handle(
        self,
        data: bytes,
        owner: str,
        client_ip: str,
        endpoint: str,
        machine: str = "localhost",
        client_gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Process one decrypted SOAP request; ``machine`` is the host name the client addressed (faults say it);
        ``client_gone`` says whether the client's connection closed (a held Receive then gives up)."""
        try:
            request = Request.parse(data)
        except MalformedRequest as exc:
            return Reply(400, invalid_request(str(exc)).to_envelope(""))
        if client_gone is not None:
            request.client_gone = client_gone
        shell = None
        try:
            if len(data) > self.max_envelope_size:
                raise envelope_too_large(self.max_envelope_size)
            if request.bad_operation_timeout is not None:
                raise invalid_operation_timeout(request.bad_operation_timeout)
            shell = self._begin(request)
            self._maybe_stall(request)
            body = self._dispatch(request, owner, client_ip, endpoint)
        except WSManFault as fault:
            fault.machine = machine
            return Reply(500, fault.to_envelope(request.message_id))
        except Exception:  # A broken handler must still produce a fault, not a dropped socket.
            _log.exception("WS-Management request failed: %s", request.action)
            internal = WSManFault(
                code=2150858752,
                subcode="w:InternalError",
                reason="The service failed internally.",
                sender=False,
                machine=machine,
            )
            return Reply(500, internal.to_envelope(request.message_id))
        finally:
            self._end(shell)
        return Reply(200, envelope(request.action + "Response", request.message_id, body))

    def _maybe_stall(self, request: Request) -> None:
        matched, seconds = self._stall.take(request.action)
        if not matched:
            return
        if seconds is None:
            self._stall.released.wait(request.operation_timeout)
            raise operation_timed_out()
        self._stall.released.wait(seconds)

    def _dispatch(self, request: Request, owner: str, client_ip: str, endpoint: str) -> list[ET.Element]:
        action = request.action
        if action == ACTION_CREATE:
            shell = self._create_shell(request, owner, client_ip)
            return shell.created_body(endpoint)
        if action == ACTION_GET:
            return self._get(request)
        if action == ACTION_ENUMERATE:
            return self._enumerate(request, owner)
        handlers: dict[str, Callable[[Request], list[ET.Element]]] = {
            ACTION_DELETE: self._delete,
            ACTION_COMMAND: lambda r: self._shell(r).command(r),
            ACTION_SEND: lambda r: self._shell(r).send(r),
            ACTION_RECEIVE: self._receive,
            ACTION_SIGNAL: lambda r: self._shell(r).signal(r),
            ACTION_DISCONNECT: self._disconnect,
            ACTION_RECONNECT: self._reconnect,
            ACTION_CONNECT: self._connect,
        }
        handler = handlers.get(action)
        if handler is None:
            raise action_not_supported(action)
        return handler(request)

    def _create_shell(self, request: Request, owner: str, client_ip: str) -> Shell:
        uri = request.resource_uri
        shell: Shell
        if uri == CMD_RESOURCE_URI:
            shell_id = str(uuid.uuid4()).upper()
            shell = CmdShell(shell_id, owner, client_ip, request.body, request.options, self._powershell)
        elif uri.startswith(PSRP_RESOURCE_PREFIX) and self._psrp_factory is not None:
            shell = self._psrp_factory(uri, owner, client_ip, request)
        else:
            raise resource_uri_not_found(uri)
        shell.idle_timeout, shell.max_idle_timeout = self._idle_timeout(request), self.max_idle_timeout
        with self._changed:
            self._shells[shell.shell_id.upper()] = shell
            self._changed.notify_all()
        return shell

    def _idle_timeout(self, request: Request) -> float:
        """The IdleTimeOut the client asked for in rsp:Shell (an xs:duration), at most MaxIdleTimeOut."""
        text = request.body.findtext(f"{q('rsp', 'Shell')}/{q('rsp', 'IdleTimeOut')}")
        if text is None or not text.strip():
            return self.idle_timeout
        seconds = parse_duration(text.strip())
        if seconds is None:  # e.g. pywinrm's open_shell(idle_timeout=3600000): a number, not a duration
            raise schema_validation_error()
        return min(seconds, self.max_idle_timeout)

    def _shell(self, request: Request) -> Shell:
        shell_id = request.selectors.get("ShellId", "")
        with self._lock:
            shell = self._shells.get(shell_id.upper())
        if shell is None:
            raise shell_not_found(shell_id)
        if shell.resource_uri.lower() != request.resource_uri.lower():
            raise resource_uri_not_found(request.resource_uri)
        return shell

    def _receive(self, request: Request) -> list[ET.Element]:
        shell = self._shell(request)
        envelope_size = request.max_envelope_size or _FALLBACK_RESPONSE_ENVELOPE
        budget = max((envelope_size - _ENVELOPE_OVERHEAD) * 3 // 4, 1024)
        return shell.receive(request, budget, time.monotonic() + request.operation_timeout)

    # -- disconnected operations --------------------------------------------------------------------------------

    def _disconnectable(self, request: Request) -> Shell:
        shell = self._shell(request)
        if not shell.disconnects:  # the cmd shell: the loopback host models disconnection for runspace pools only
            raise action_not_supported(request.action)
        return shell

    def _disconnect(self, request: Request) -> list[ET.Element]:
        """MS-WSMV 3.1.4.15 / MS-PSRP 3.1.5.3.16: an optional rsp:IdleTimeOut replaces the shell's."""
        shell = self._disconnectable(request)
        if shell.state != "Connected":
            raise _already_disconnected(shell.shell_id)
        text = request.body.findtext(f"{q('rsp', 'Disconnect')}/{q('rsp', 'IdleTimeOut')}")
        idle = None
        if text is not None and text.strip():
            seconds = parse_duration(text.strip())
            if seconds is None:
                raise schema_validation_error()
            idle = min(seconds, self.max_idle_timeout)
        with self._changed:
            shell.disconnect(idle)
            self._changed.notify_all()
        return []

    def _reconnect(self, request: Request) -> list[ET.Element]:
        """MS-WSMV 3.1.4.16 / MS-PSRP 3.1.4.10.2: only the client session that disconnected (its wsmv:SessionId)."""
        shell = self._disconnectable(request)
        if not request.session_id or request.session_id != shell.session_id:
            raise _other_session(shell.shell_id)
        reconnect = request.body.find(q("rsp", "Reconnect"))
        command_id = reconnect.get("CommandId") if reconnect is not None else None
        with self._changed:
            shell.reconnect(command_id or None)
            self._changed.notify_all()
        return []

    def _connect(self, request: Request) -> list[ET.Element]:
        """MS-WSMV 3.1.4.17 / MS-PSRP 3.1.4.10.3: a new client session takes a disconnected pool over."""
        shell = self._disconnectable(request)
        body = shell.connect(request)
        with self._changed:
            self._changed.notify_all()
        return body

    def _enumerate(self, request: Request, owner: str) -> list[ET.Element]:
        """MS-WSMV 3.1.4.8 and MS-PSRP 3.1.4.10.1: the user's shells, or (SelectorFilter on ShellId) a shell's
        commands, in one optimized enumeration (EnumerateResponse with the items and EndOfSequence)."""
        with self._lock:
            shells = [shell for shell in self._shells.values() if shell.owner == owner]
        response = element("n:EnumerateResponse", {"xmlns:n": _ENUMERATION_NS})
        sub(response, "n:EnumerationContext")
        items = sub(response, "w:Items")
        if request.resource_uri == SHELL_RESOURCE_URI:
            for shell in shells:
                items.append(shell.shell_element())
        elif request.resource_uri == COMMAND_RESOURCE_URI:
            wanted = {
                (node.text or "").strip().upper()
                for node in request.body.iter(q("w", "Selector"))
                if node.get("Name") == "ShellId"
            }
            for shell in shells:
                if shell.shell_id.upper() in wanted:
                    items.extend(shell.command_elements())
        else:  # the loopback host enumerates nothing else (a cmd shell's resource URI, WMI classes)
            raise action_not_supported(request.action)
        sub(response, "w:EndOfSequence")
        return [response]

    def _delete(self, request: Request) -> list[ET.Element]:
        shell = self._shell(request)
        with self._changed:
            self._shells.pop(shell.shell_id.upper(), None)
            self._changed.notify_all()
        shell.close()
        return []

    def _get(self, request: Request) -> list[ET.Element]:
        if request.resource_uri == CONFIG_RESOURCE_URI:
            config = element("cfg:Config", {"xmlns:cfg": CONFIG_RESOURCE_URI})
            sub(config, "cfg:MaxEnvelopeSizekb", text=str(self.max_envelope_size // 1024))
            sub(config, "cfg:MaxTimeoutms", text="60000")
            return [config]
        if request.resource_uri == SHELL_RESOURCE_URI:
            shell_id = request.selectors.get("ShellId", "")
            with self._lock:
                shell = self._shells.get(shell_id.upper())
            if shell is None:
                raise shell_instance_not_found()
            return [shell.shell_element()]
        raise resource_uri_not_found(request.resource_uri)

    def drop_shells(self) -> int:
        """Close every shell as an idle timeout or a WinRM service restart would; return how many."""
        with self._changed:
            shells = list(self._shells.values())
            self._shells.clear()
            self._changed.notify_all()
        for shell in shells:
            shell.close()
        return len(shells)

    def close(self) -> None:
        """Close every shell (host shutdown)."""
        self.drop_shells()
        self._stall.released.set()
        with self._changed:
            self._closed = True
            self._changed.notify_all()


def _already_disconnected(shell_id: str) -> WSManFault:
    """A Disconnect of a shell that is disconnected already (ASSUMPTION: the code and message)."""
    return WSManFault(
        code=2150859224,
        subcode="w:InternalError",
        reason="The WS-Management service cannot process the request because the shell is disconnected already. ",
        message=f"The Windows Remote Shell with ShellId {shell_id} is disconnected already. ",
    )


def _other_session(shell_id: str) -> WSManFault:
    """A Reconnect from a client session other than the one that disconnected (ASSUMPTION: the code and message)."""
    return WSManFault(
        code=2150858843,
        subcode="w:InvalidSelectors",
        reason=_OTHER_SESSION,
        message=(f"The shell {shell_id} was disconnected by another client session; connect to it with Connect. "),
    )


_OTHER_SESSION = (
    "The WS-Management service cannot process the request because the request contained invalid selectors for the "
    "resource. "
)


def _expired(shell: Shell, now: float) -> bool:
    at = shell.expires_at()
    return at is not None and at <= now
