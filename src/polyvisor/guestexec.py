"""Commands and files inside a guest: the values :meth:`polyvisor.VM.exec` takes and returns, and their checks.

An argv is a list from the caller to the guest's process: polyvisor never joins it into shell or PowerShell text.
Each argument is ``str`` or ``bytes``; both real channels carry arguments as text (the QEMU guest agent's JSON,
PowerShell's strings), so an argument must be UTF-8 and free of NUL, which no process argument can hold. Any
bytes at all travel as ``input`` (the process's stdin), as stdout and stderr, and as file contents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from polyvisor.backend import Secret
from polyvisor.errors import ValidationError

__all__ = [
    "MAX_ARGV_BYTES",
    "MAX_FILE_BYTES",
    "MAX_INPUT_BYTES",
    "ExecResult",
    "GuestCredentials",
    "validate_argv",
    "validate_guest_path",
    "validate_input",
]

MAX_ARGV_BYTES = 64 * 1024
"""The most an argv may hold in all (arguments' UTF-8 bytes): what every channel carries in one request."""
MAX_INPUT_BYTES = 16 * 1024 * 1024
"""The most ``input`` a command may take (libvirt's agent carries it in one message)."""
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest file :meth:`polyvisor.VM.read_file` and :meth:`polyvisor.VM.write_file` move."""


@dataclass(frozen=True, slots=True)
class GuestCredentials:
    """An account in the guest, for channels that log in (Hyper-V's PowerShell Direct); the password is a
    :class:`~polyvisor.model.Secret` and never shows in reprs, logs or errors."""

    username: str
    password: Secret = field(repr=False)

    def __init__(self, username: str, password: Secret | str) -> None:
        if not isinstance(username, str) or not username or any(c in username for c in "\0\r\n"):
            raise ValidationError("must be a non-empty user name on one line", field="credentials.username")
        if isinstance(password, str):
            password = Secret(password)
        if not isinstance(password, Secret):
            raise ValidationError("must be a str or a Secret", field="credentials.password")
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", password)

    def __repr__(self) -> str:
        return f"GuestCredentials(username={self.username!r}, password=***)"


@dataclass(frozen=True, slots=True)
class ExecResult:
    """A command that ran to its end in the guest: its exit code and everything it wrote, as bytes."""

    argv: tuple[str, ...]
    exit_code: int | None
    """The process's exit status; None when a signal ended it (:attr:`signal`)."""
    stdout: bytes = b""
    stderr: bytes = b""
    signal: int | None = None
    """The signal that ended the process (Linux guests), else None."""
    truncated: bool = False
    """Whether the channel cut stdout or stderr short (the QEMU guest agent keeps at most 16 MiB of each)."""

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_code == 0

    def to_dict(self) -> dict[str, object]:
        """The result as JSON-ready values: output as UTF-8 text where it is, else base64 (``stdout_b64``)."""
        import base64

        out: dict[str, object] = {"argv": list(self.argv), "exit_code": self.exit_code, "signal": self.signal}
        for name, data in (("stdout", self.stdout), ("stderr", self.stderr)):
            try:
                out[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                out[f"{name}_b64"] = base64.b64encode(data).decode("ascii")
        out["truncated"] = self.truncated
        return out


def validate_argv(argv: Sequence[str | bytes]) -> tuple[str, ...]:
    """Return ``argv`` as a tuple of text, refusing what no channel can carry byte for byte.

    A ``str`` or a ``bytes`` alone is refused too: it would be split into characters, or taken for one word.
    """
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise ValidationError(
            f"must be a list of arguments such as ['ls', '-l'], got {type(argv).__name__}; polyvisor never "
            "splits a command line",
            field="argv",
        )
    if not argv:
        raise ValidationError("must name a program: an empty argv runs nothing", field="argv")
    out: list[str] = []
    total = 0
    for index, arg in enumerate(argv):
        where = f"argv[{index}]"
        if isinstance(arg, bytes):
            try:
                text = arg.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValidationError(
                    f"is not UTF-8 (byte {error.start}): a guest channel carries arguments as text; pass such "
                    "bytes as input= or in a file (write_file)",
                    field=where,
                ) from None
        elif isinstance(arg, str):
            text = arg
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError("holds a lone surrogate, which is not text", field=where) from None
        else:
            raise ValidationError(f"must be str or bytes, got {type(arg).__name__}", field=where)
        if "\0" in text:
            raise ValidationError(
                "holds a NUL byte, which no process argument can carry (it would end the argument there)",
                field=where,
            )
        total += len(text.encode("utf-8")) + 1
        out.append(text)
    if not out[0]:
        raise ValidationError("the program name is empty", field="argv[0]")
    if total > MAX_ARGV_BYTES:
        raise ValidationError(f"holds {total} bytes, more than {MAX_ARGV_BYTES}; pass data as input=", field="argv")
    return tuple(out)


def validate_input(data: bytes | str | None) -> bytes:
    """Return the stdin bytes (a str is encoded as UTF-8), refusing more than :data:`MAX_INPUT_BYTES`."""
    if data is None:
        return b""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError(f"must be bytes or str, got {type(data).__name__}", field="input")
    data = bytes(data)
    if len(data) > MAX_INPUT_BYTES:
        raise ValidationError(f"holds {len(data)} bytes, more than {MAX_INPUT_BYTES}; copy a file", field="input")
    return data


def validate_guest_path(path: str) -> str:
    """Return a guest path: absolute (``/...`` or a Windows drive path), one line, no NUL."""
    if not isinstance(path, str) or not path:
        raise ValidationError("must be a non-empty absolute path in the guest", field="path")
    if any(c in path for c in "\0\r\n"):
        raise ValidationError("must be one line without NUL", field="path")
    windows = len(path) > 2 and path[0].isalpha() and path[1] == ":" and path[2] in "\\/"
    if not (path.startswith("/") or windows):
        raise ValidationError(f"{path!r} is relative; give an absolute path in the guest (/tmp/x, C:\\x)", field="path")
    return path
