"""powershell.exe (5.1) as the WinRM cmd shell starts it: its command line, its output and its error stream.

stdout gets each output object as the console host formats it; stderr gets the warnings and error records as
text, or, for ``-EncodedCommand`` (what pywinrm's ``run_ps`` sends), as the ``#< CLIXML`` document PowerShell
writes when its caller reads serialized streams.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import BinaryIO
from xml.sax.saxutils import escape

from psrpcore.types import PSObject

from .errors import PSErrorRecord
from .values import property_names, to_ps_string

__all__ = ["StdoutText", "format_output", "parse_command_line", "write_stderr"]


class StdoutText(io.TextIOBase):
    """[Console]::Out of the emulated powershell.exe: text goes to the process's stdout as it is written (UTF-8)."""

    def __init__(self, stdout: BinaryIO) -> None:
        super().__init__()
        self._stdout = stdout

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._stdout.write(text.encode("utf-8"))
        return len(text)


_VALUE_FLAGS = {"executionpolicy", "ep", "inputformat", "outputformat", "windowstyle", "configurationname", "version"}
_SWITCHES = {"noprofile", "nop", "noninteractive", "noni", "nologo", "mta", "sta", "noexit"}


def parse_command_line(args: Sequence[str], stdin: BinaryIO) -> tuple[str, bool]:
    """Return (script text, whether stderr uses CLIXML) from powershell.exe's command line."""
    items = list(args)
    if items and items[0].casefold().removesuffix(".exe").endswith("powershell"):
        items = items[1:]
    i = 0
    while i < len(items):
        flag = items[i]
        low = flag.lstrip("-/").casefold()
        if not flag.startswith(("-", "/")):
            return " ".join(items[i:]), False
        if low in _SWITCHES:
            i += 1
        elif low in _VALUE_FLAGS:
            i += 2
        elif low in {"encodedcommand", "enc", "e", "ec"}:
            if i + 1 >= len(items):
                raise ValueError(
                    "Cannot process the command because of a missing parameter. Specify a parameter "
                    "of type 'System.String' for '-EncodedCommand'."
                )
            try:
                return base64.b64decode(items[i + 1], validate=True).decode("utf-16-le"), True
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError("Cannot process the encoded command because it is not valid Base64.") from None
        elif low in {"command", "c"}:
            rest = items[i + 1 :]
            if rest == ["-"]:
                return stdin.read().decode("utf-8"), False
            return " ".join(rest), False
        elif low in {"file", "f"}:
            raise ValueError("-File is not supported by the loopback host; use -Command or -EncodedCommand.")
        else:
            raise ValueError(
                f"-{flag.lstrip('-/')} : The term '-{flag.lstrip('-/')}' is not recognized as a powershell.exe "
                "parameter."
            )
    return "", False


def format_output(item: object) -> str:
    if isinstance(item, PSObject) and not isinstance(item, str | int) and property_names(item):
        lines = [f"{name} : {to_ps_string(item[name])}" for name in property_names(item)]
        return "\r\n" + "\r\n".join(lines) + "\r\n"
    return to_ps_string(item) + "\r\n"


def _clixml_string(text: str, stream: str) -> str:
    body = escape(text).replace("\r", "_x000D_").replace("\n", "_x000A_")
    return f'<S S="{stream}">{body}_x000D__x000A_</S>'


def write_stderr(stderr: BinaryIO, records: list[PSErrorRecord], warnings: list[str], clixml: bool) -> None:
    if not records and not warnings:
        return
    if not clixml:
        text = "".join(f"WARNING: {w}\r\n" for w in warnings) + "".join(r.render() for r in records)
        stderr.write(text.encode("utf-8"))
        return
    parts = [_clixml_string(w, "warning") for w in warnings]
    for record in records:
        for line in record.render().split("\r\n"):
            if line:
                parts.append(_clixml_string(line, "Error"))
    doc = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        + "".join(parts)
        + "</Objs>"
    )
    stderr.write(doc.encode("utf-8"))
