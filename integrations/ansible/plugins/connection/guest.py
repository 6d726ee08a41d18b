# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Connection plugin: commands and files inside a VM through its hypervisor's own channel into the guest."""

from __future__ import annotations

DOCUMENTATION = r"""
name: guest
short_description: Run tasks inside a VM through its hypervisor (QEMU guest agent), no network into the guest
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Runs Ansible's commands in a VM, and copies files in and out of it, through the channel its hypervisor has into
    the guest (polyvisor's C(vm.exec()), C(vm.write_file()) and C(vm.read_file())) - on libvirt/KVM the QEMU guest
    agent. The guest needs no network, no SSH server and no key.
  - An inventory host found by the C(polyvisor.hypervisors.polyvisor) inventory connects with no more settings - its
    C(polyvisor_hypervisor) and C(polyvisor_uuid) variables say where the VM is. Other hosts name the hypervisor with
    O(hypervisor_uri) or O(hypervisor_connection), and the VM with O(vm) (default - the inventory host's name).
  - Every command is Ansible's own shell command, run as the argument list C([/bin/sh, -c, command]) - it reaches
    the guest as one argument, never spliced into other text. POSIX guests only (the C(sh) shell family).
  - Privilege escalation (C(become)) works as far as it needs no terminal - sudo or su without a password, and sudo
    with one (it reads it from standard input, C(-S), as Ansible's sudo plugin asks by default). The QEMU guest
    agent itself runs commands as root.
  - Files move whole, at most 64 MiB each (the polyvisor API's limit); a larger one is refused before anything is
    sent.
  - The VM must be running, its hypervisor must declare the C(guest-exec) and C(guest-files) features and the
    guest's agent must answer; otherwise the host is unreachable, with a message that says which and what to do.
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt), on the controller
options:
  vm:
    description:
      - The VM's name or UUID. Defaults to the inventory host's name; the inventory plugin's C(polyvisor_uuid) wins
        over it (so a VM listed as C(name@connection) is found too), and C(polyvisor_vm) over both.
    type: str
    vars:
      - name: inventory_hostname
      - name: polyvisor_name
      - name: polyvisor_uuid
      - name: polyvisor_vm
  hypervisor_uri:
    description:
      - The hypervisor's polyvisor URI, such as C(qemu:///system).
      - With none of O(hypervisor_uri), O(hypervisor_connection) and O(hypervisor), polyvisor's default applies
        (C($POLYVISOR_URI), or the config file's C(default)).
    type: str
    vars:
      - name: polyvisor_uri
  hypervisor_connection:
    description:
      - A connection named in the polyvisor config file (see O(hypervisor_config)); mutually exclusive with
        O(hypervisor_uri).
    type: str
    vars:
      - name: polyvisor_connection
  hypervisor_config:
    description: The polyvisor config file that names O(hypervisor_connection); polyvisor's default file without it.
    type: path
    vars:
      - name: polyvisor_config
  hypervisor:
    description:
      - How to reach the VM's hypervisor, as the C(polyvisor.hypervisors.polyvisor) inventory found it - its
        connection's C(name), C(uri), C(username), C(username_env), C(password_env), C(password_keyring) and
        C(options). It holds no secret; a password is read from the environment variable or keyring it names.
      - Used when neither O(hypervisor_uri) nor O(hypervisor_connection) is set.
    type: dict
    vars:
      - name: polyvisor_hypervisor
  hypervisor_user:
    description: User name on the hypervisor, when the URI or named connection does not carry one.
    type: str
    vars:
      - name: polyvisor_username
  hypervisor_password:
    description: Password on the hypervisor (Hyper-V); never shown in output or logs.
    type: str
    vars:
      - name: polyvisor_password
  hypervisor_ca_path:
    description: PEM file with the CA that signed the hypervisor's certificate (Hyper-V over HTTPS).
    type: path
    vars:
      - name: polyvisor_ca_path
  hypervisor_validate_certs:
    description: Verify the hypervisor's TLS certificate. Turn off only for test setups.
    type: bool
    default: true
    vars:
      - name: polyvisor_validate_certs
  guest_user:
    description:
      - The account in the guest to log in as, for channels that log in (the C(guest-login) feature, such as
        Hyper-V's PowerShell Direct), which need it with O(guest_password).
      - Refused where the channel cannot log in (the QEMU guest agent runs as root); use C(become) there.
      - C(ansible_user) is not read, as it usually names an SSH account.
    type: str
    vars:
      - name: polyvisor_guest_user
    env:
      - name: POLYVISOR_GUEST_USER
  guest_password:
    description: The password of O(guest_user); never shown in output or logs.
    type: str
    vars:
      - name: polyvisor_guest_password
    env:
      - name: POLYVISOR_GUEST_PASSWORD
  guest_timeout:
    description:
      - Seconds each command and each file copy in the guest may take. A command still running then fails its
        task; the QEMU guest agent cannot stop it, so it runs on in the guest.
    type: float
    default: 3600
    vars:
      - name: polyvisor_guest_timeout
    env:
      - name: POLYVISOR_GUEST_TIMEOUT
  pipelining:
    description:
      - Send modules to the guest's Python on its standard input instead of copying them to a temporary directory
        first - one file copy and one command per module instead of about five steps (a module is larger than one
        guest-agent request carries, so it still travels as a file).
      - On by default, as the guest channel has no terminal that C(requiretty) could ask for.
    type: bool
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
notes:
  - Each task opens its own connection to the hypervisor, as every Ansible connection plugin does for a task. On
    hypervisors that keep their VMs only while a connection is open (libvirt's C(test:///default), polyvisor's
    C(memory://)) a task therefore never finds a VM made by an earlier one.
"""

EXAMPLES = r"""
# inventory.polyvisor.yml: the VMs of the local libvirtd, reached through their guest agents
plugin: polyvisor.hypervisors.polyvisor
connections:
  - name: kvm1
    uri: qemu:///system
compose:
  ansible_connection: "'polyvisor.hypervisors.guest'"

# Or a static inventory: the VM named web1 on the local libvirtd
# [vms]
# web1 ansible_connection=polyvisor.hypervisors.guest polyvisor_uri=qemu:///system
"""

import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ansible.errors import AnsibleAuthenticationFailure, AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import (
    connect_kwargs,
    ephemeral_warning,
    named,
)

try:
    import polyvisor
    from polyvisor.config import NamedConnection, read_config
    from polyvisor.guestexec import MAX_FILE_BYTES
except ImportError as error:  # reported when a task connects, not when Ansible lists plugins
    IMPORT_ERROR: str | None = str(error)
    MAX_FILE_BYTES = 64 * 1024 * 1024
else:
    IMPORT_ERROR = None

display = Display()

T = TypeVar("T")

GUEST_SHELL = "/bin/sh"
"""The program each command runs under (``[GUEST_SHELL, "-c", command]``): the POSIX path every Unix guest has."""
CONNECT_TIMEOUT = 60.0
"""Seconds the checks of a new connection (the VM, its features and state) may take."""
STDIN_INLINE_BYTES = 128 * 1024
"""The most stdin sent inside the command's own request. Debian 12's qemu-guest-agent under TCG left a guest-exec
with 384 KiB of input-data unanswered for 30 s, and libvirt then refused every agent command ("not available for
now") until it reconnected; 256 KiB passed in 0.16 s. More goes through a file (64 KiB pieces)."""
STAGED_STDIN = 'f=$1; shift; cat - "$f" | "$@"; s=$?; rm -f -- "$f"; exit "$s"'
"""The script that feeds a staged stdin: ``$1`` is the file, the rest the command's argv (``/bin/sh -c CMD``);
what stdin still carries (a become password line) comes first. The command's exit status is the script's."""
HYPERVISOR_KEYS = ("name", "uri", "username", "username_env", "password_env", "password_keyring", "options")
"""What ``polyvisor_hypervisor`` (the inventory's description of a host) may hold."""
HYPERVISOR_OPTIONS = {
    "username": "user",
    "password": "password",
    "ca_path": "ca_path",
    "validate_certs": "validate_certs",
}
"""polyvisor.connect()'s keyword arguments (as the modules' options name them), by this plugin's hypervisor_ options.

Every option of this plugin is named apart from the task's keywords (remote_user, timeout, connection, ...), which
Ansible gives to options of the same name."""


class Connection(ConnectionBase):  # type: ignore[misc]  # Ansible ships no type hints
    """Ansible's commands and file copies, through a polyvisor VM's in-guest channel."""

    transport = "polyvisor.hypervisors.guest"
    has_pipelining = True
    has_tty = False  # a become method that needs a terminal is refused by Ansible before it runs

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn: polyvisor.Connection | None = None
        self._vm: polyvisor.VM | None = None
        self._guest_credentials: polyvisor.GuestCredentials | None = None
        self._where = ""

    # -- connecting ------------------------------------------------------------------------------------------------
    def _connect(self) -> Connection:
        """Open the hypervisor, find the VM and check, before any command, that it can take commands and files."""
        if self._vm is not None:
            return self
        if IMPORT_ERROR is not None:
            raise AnsibleError(
                "the polyvisor.hypervisors.guest connection needs the polyvisor Python library (and the backend of "
                f"the hypervisor, such as polyvisor-libvirt) on the controller: {IMPORT_ERROR}"
            )
        family = getattr(self._shell, "SHELL_FAMILY", "sh")
        if family != "sh":
            raise AnsibleError(
                f"the polyvisor.hypervisors.guest connection runs POSIX shell commands (/bin/sh -c), not {family}; "
                "unset ansible_shell_type for this host"
            )
        ref = self.get_option("vm")
        if not ref:
            raise AnsibleError("no VM named: set polyvisor_vm (or use the VM's name as the inventory host's name)")
        credentials = self._credentials_from_options()
        conn, label = self._open()
        try:
            self._where = f"VM {ref!r} on {label}"
            vm = self._guarded(lambda: conn.vm(ref, timeout=CONNECT_TIMEOUT), "finding the VM", conn)
            self._check_channel(vm, credentials, label)
        except BaseException:
            conn.close()
            raise
        self._conn, self._vm, self._guest_credentials = conn, vm, credentials
        self._where = f"VM {vm.seen_name!r} on {label}"
        display.vvv(f"POLYVISOR GUEST CONNECTION to {self._where}", host=ref)
        self._connected = True
        return self

    def _credentials_from_options(self) -> polyvisor.GuestCredentials | None:
        user, password = self.get_option("guest_user"), self.get_option("guest_password")
        if user is None and password is None:
            return None
        if not user or password is None:
            raise AnsibleAuthenticationFailure(
                "guest credentials need both polyvisor_guest_user and polyvisor_guest_password "
                f"(only {'the user' if user else 'the password'} is set)"
            )
        try:
            return polyvisor.GuestCredentials(user, password)
        except polyvisor.ValidationError as error:
            raise AnsibleAuthenticationFailure(f"polyvisor_guest_user: {error.message}") from None

    def _open(self) -> tuple[polyvisor.Connection, str]:
        """The hypervisor's connection, and how messages name it (the connection's name, or its URI)."""
        uri, name, hypervisor = (
            self.get_option("hypervisor_uri"),
            self.get_option("hypervisor_connection"),
            self.get_option("hypervisor"),
        )
        if uri and name:
            raise AnsibleError(
                f"polyvisor_uri ({uri}) and polyvisor_connection ({name}) both name the hypervisor; keep one"
            )
        kwargs = connect_kwargs(
            {key: self.get_option(f"hypervisor_{option}") for key, option in HYPERVISOR_OPTIONS.items()}
        )
        target: NamedConnection | None = None
        try:
            if name:
                target = self._configured(name)
            elif not uri and hypervisor:
                target = self._described(hypervisor)
            if target is None:
                conn = polyvisor.connect(uri, **kwargs)
                return conn, name or conn.uri.render()
            conn = polyvisor.connect(polyvisor.URI.parse(target.uri), **{**target.credentials(), **kwargs})
        except polyvisor.PolyvisorError as error:
            raise self._failure(error, "connecting to the hypervisor", target.name if target else None) from None
        return conn, target.name

    def _configured(self, name: str) -> NamedConnection:
        path = self.get_option("hypervisor_config")
        config = read_config(Path(path) if path else None)
        if name not in config.connections:
            known = ", ".join(sorted(config.connections)) or "none"
            raise polyvisor.NotFoundError(
                f"polyvisor_connection: no connection named {name!r} in the polyvisor config file (it has: {known})"
            )
        return config.connections[name]

    @staticmethod
    def _described(hypervisor: Mapping[str, Any]) -> NamedConnection:
        unknown = sorted(str(key) for key in hypervisor if key not in HYPERVISOR_KEYS)
        if unknown or not isinstance(hypervisor.get("uri"), str):
            raise polyvisor.ValidationError(
                f"must hold a uri, and only {', '.join(HYPERVISOR_KEYS)}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
                field="polyvisor_hypervisor",
            )
        fields = {key: hypervisor[key] for key in HYPERVISOR_KEYS if hypervisor.get(key) is not None}
        fields.setdefault("name", polyvisor.URI.parse(fields["uri"]).display_host)
        fields["options"] = dict(fields.get("options") or {})
        return NamedConnection(**fields)

    def _check_channel(self, vm: polyvisor.VM, credentials: polyvisor.GuestCredentials | None, label: str) -> None:
        """Refuse, before any command, a VM whose hypervisor has no channel into it or that is not running."""
        caps = self._guarded(lambda: vm.capabilities(timeout=CONNECT_TIMEOUT), "reading its features", vm.connection)
        backend = caps.backend or "this hypervisor"
        missing = [
            f.value for f in (polyvisor.Feature.GUEST_EXEC, polyvisor.Feature.GUEST_FILES) if not caps.supports(f)
        ]
        if missing:
            raise AnsibleConnectionFailure(
                f"{backend} ({label}) has no channel into its guests for commands and files (it does not declare "
                f"{' and '.join(missing)}); reach this VM over the network instead (ansible_connection=ssh)"
            )
        logs_in = caps.supports(polyvisor.Feature.GUEST_LOGIN)
        if logs_in and credentials is None:
            raise AnsibleAuthenticationFailure(
                f"{backend} ({label}) logs into the guest to run commands: set polyvisor_guest_user and "
                "polyvisor_guest_password (or $POLYVISOR_GUEST_USER and $POLYVISOR_GUEST_PASSWORD) to an account "
                f"of {self._where}"
            )
        if not logs_in and credentials is not None:
            raise AnsibleAuthenticationFailure(
                f"{backend} ({label}) runs commands as its guest agent's own account and cannot log in as "
                f"{credentials.username!r}; unset polyvisor_guest_user and polyvisor_guest_password (use become "
                "to run as another user)"
            )
        state = self._guarded(lambda: vm.state(timeout=CONNECT_TIMEOUT), "reading its state", vm.connection)
        if state is not polyvisor.PowerState.RUNNING:
            raise AnsibleConnectionFailure(
                f"{self._where} is {state.value}, and commands run only in a running VM; start it first "
                "(polyvisor.hypervisors.vm with state: running, delegated to localhost)"
            )

    # -- commands and files ----------------------------------------------------------------------------------------
    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        """Run Ansible's shell command as ``/bin/sh -c CMD`` in the guest; return its exit code, stdout and stderr."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        vm = self._the_vm()
        command = to_text(cmd, errors="surrogate_or_strict")
        display.vvv(f"EXEC {command}", host=vm.seen_name)
        become = self.become if sudoable and self.become is not None and self.become.success else None
        prefix = self._become_password(become) if become is not None and become.expect_prompt() else b""
        result = self._run(vm, command, prefix, in_data or b"")
        if result.truncated:
            display.warning(
                f"the guest channel of {self._where} cut the command's output short (it keeps at most 16 MiB of "
                "each stream); write large output to a file and fetch it"
            )
        stdout, stderr = result.stdout, result.stderr
        if become is not None:
            stdout, stderr = self._after_become(become, stdout, stderr)
        code = result.exit_code if result.exit_code is not None else 128 + (result.signal or 0)
        return code, stdout, stderr

    def _run(self, vm: polyvisor.VM, command: str, prefix: bytes, data: bytes) -> polyvisor.ExecResult:
        """Run ``command`` under /bin/sh with ``prefix`` (a become password line) and ``data`` on its stdin.

        Data larger than :data:`STDIN_INLINE_BYTES` (a pipelined module) is copied to a file of the guest first and
        fed from there by a fixed script; the command stays one argument of it, never spliced into its text.
        """
        argv = [GUEST_SHELL, "-c", command]
        stdin = prefix + data
        if len(data) > STDIN_INLINE_BYTES:
            staged = f"/tmp/.polyvisor-ansible-{secrets.token_hex(16)}"
            self._guarded(
                lambda: vm.write_file(staged, data, credentials=self._guest_credentials, timeout=self._timeout()),
                "copying the command's input",
                vm.connection,
            )
            argv = [GUEST_SHELL, "-c", STAGED_STDIN, GUEST_SHELL, staged, *argv]
            stdin = prefix
        return self._guarded(
            lambda: vm.exec(argv, input=stdin, credentials=self._guest_credentials, timeout=self._timeout()),
            "running a command",
            vm.connection,
        )

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy a controller file into the guest, whole (at most 64 MiB)."""
        super().put_file(in_path, out_path)
        vm = self._the_vm()
        display.vvv(f"PUT {in_path} TO {out_path}", host=vm.seen_name)
        local = Path(in_path)
        if not local.is_file():
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        size = local.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AnsibleError(
                f"{in_path} holds {size} bytes; the guest channel of {self._where} copies files of at most "
                f"{MAX_FILE_BYTES} bytes (64 MiB): fetch it from inside the guest (get_url), or split it"
            )
        data = local.read_bytes()
        self._guarded(
            lambda: vm.write_file(out_path, data, credentials=self._guest_credentials, timeout=self._timeout()),
            f"copying {in_path} to {out_path}",
            vm.connection,
        )

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Copy a file of the guest to the controller, whole (at most 64 MiB)."""
        super().fetch_file(in_path, out_path)
        vm = self._the_vm()
        display.vvv(f"FETCH {in_path} TO {out_path}", host=vm.seen_name)
        try:
            data = vm.read_file(in_path, credentials=self._guest_credentials, timeout=self._timeout())
        except polyvisor.NotFoundError as error:
            raise AnsibleFileNotFound(f"{in_path} does not exist in {self._where}: {error}") from None
        except polyvisor.ValidationError as error:
            if error.field != "limit":
                raise self._failure(error, f"copying {in_path} out") from None
            raise AnsibleError(
                f"{in_path} holds more than {MAX_FILE_BYTES} bytes, the most the guest channel of {self._where} "
                "copies; compress or split it in the guest first"
            ) from None
        except polyvisor.PolyvisorError as error:
            raise self._failure(error, f"copying {in_path} out") from None
        Path(out_path).write_bytes(data)

    def reset(self) -> None:
        """Drop the hypervisor connection; the next command opens a new one."""
        self.close()

    def close(self) -> None:
        """Close the hypervisor connection."""
        conn, self._conn, self._vm = self._conn, None, None
        self._connected = False
        if conn is not None:
            conn.close()

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _the_vm(self) -> polyvisor.VM:
        if self._vm is None:
            self._connect()
        if self._vm is None:  # pragma: no cover  # _connect sets it or raises
            raise AnsibleError("the polyvisor.hypervisors.guest connection is not open")
        return self._vm

    def _timeout(self) -> float:
        timeout = float(self.get_option("guest_timeout"))
        if timeout <= 0:
            raise AnsibleError(f"polyvisor_guest_timeout must be a number of seconds > 0, got {timeout:g}")
        return timeout

    def _become_password(self, become: Any) -> bytes:
        """The become password, sent first on the command's stdin: the one way to answer a prompt without a
        terminal, which only sudo's ``-S`` (read the password from stdin) takes."""
        flags = shlex.split(become.get_option("become_flags") or "")
        reads_stdin = any(flag == "--stdin" or re.fullmatch(r"-[A-Za-z]*S[A-Za-z]*", flag) for flag in flags)
        if become.name != "sudo" or not reads_stdin:
            raise AnsibleError(
                f"become method {become.name!r} with a password would prompt on a terminal, and the guest channel "
                f"of {self._where} has none; use sudo with -S in become_flags (Ansible's default), or become "
                "without a password"
            )
        password: bytes = to_bytes(become.get_option("become_pass") or "", errors="surrogate_or_strict")
        return password + b"\n"

    def _after_become(self, become: Any, stdout: bytes, stderr: bytes) -> tuple[bytes, bytes]:
        """Check that privilege escalation succeeded and strip its marker (and sudo's prompt) from the output."""
        if become.expect_prompt():
            stderr = become.strip_become_prompt(stderr)
        if become.check_success(stdout):
            return become.strip_become_success(stdout), stderr
        said = to_text(stderr + stdout, errors="surrogate_or_replace").strip()
        if any(to_text(message) in said for message in getattr(become, "missing", ())):
            raise AnsibleError(f"Missing {become.name} password (in {self._where}): {said}")
        if any(to_text(message) in said for message in getattr(become, "fail", ())):
            raise AnsibleError(f"Incorrect {become.name} password (in {self._where}): {said}")
        raise AnsibleError(f"{become.name} did not succeed in {self._where}: {said or 'it printed nothing'}")

    def _guarded(self, call: Callable[[], T], doing: str, conn: polyvisor.Connection) -> T:
        """Run a polyvisor call; its errors become Ansible's (a VM that cannot be reached: unreachable)."""
        began = time.monotonic()
        try:
            return call()
        except polyvisor.TimeoutError as error:
            # A command past its deadline has run that long; a refusal well before it is an agent not answering.
            if time.monotonic() - began < self._timeout() * 0.9:
                raise AnsibleConnectionFailure(
                    f"the guest agent of {self._where} did not answer {doing}: is it running in the guest "
                    f"(qemu-guest-agent)? A VM that has just started may need a minute more. ({error})"
                ) from None
            raise AnsibleError(f"{doing} in {self._where}: {error}; raise polyvisor_guest_timeout") from None
        except polyvisor.NotFoundError as error:
            if doing == "finding the VM":
                hint = f" ({ephemeral_warning(conn.uri.render())})" if conn.ephemeral else ""
                raise AnsibleConnectionFailure(f"{doing}: {error}{hint}") from None
            if doing == "running a command":
                raise AnsibleConnectionFailure(
                    f"{self._where} has no {GUEST_SHELL} to run Ansible's commands: this connection needs a POSIX "
                    f"guest ({error})"
                ) from None
            raise self._failure(error, doing) from None
        except polyvisor.PolyvisorError as error:
            raise self._failure(error, doing) from None

    def _failure(self, error: polyvisor.PolyvisorError, doing: str, host: str | None = None) -> AnsibleError:
        where = f" in {self._where}" if self._where else ""
        message = f"{doing}{where}: {named(error, host)}"
        if isinstance(error, polyvisor.AuthenticationError):
            return AnsibleAuthenticationFailure(message)
        if isinstance(error, polyvisor.ConnectionError | polyvisor.InvalidStateError | polyvisor.UnsupportedError):
            return AnsibleConnectionFailure(message)
        return AnsibleError(message)
