"""What the interpreter needs from the commands a script calls and from the session it runs in.

The language knows no cmdlet: :class:`~.interpreter.Interpreter` looks a command name up in a
:class:`CommandTable` and runs what it finds with the session. :mod:`polyvisor_hyperv_loopback.cmdlets` provides
both (its ``Registry`` and ``Session``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["Command", "CommandTable", "ScriptSession"]


class ScriptSession(Protocol):
    """The state a script shares with the commands it runs: the preference variables, the stop signal, and the
    host's files as .NET streams read them."""

    error_preference: str
    warning_preference: str

    def check_stopped(self) -> None:
        """Raise the PipelineStopped record if the client stopped the pipeline."""
        ...

    def read_file(self, path: str, offset: int, count: int) -> tuple[bytes, int]:
        """Up to ``count`` bytes of a file from ``offset``, and its length (a script's FileStream reads so);
        FileNotFoundError or IsADirectoryError when the path is no file."""
        ...


SessionT = TypeVar("SessionT", bound=ScriptSession)
SessionT_contra = TypeVar("SessionT_contra", bound=ScriptSession, contravariant=True)


class Command(Protocol[SessionT_contra]):
    """A command a script can call."""

    def run(
        self,
        session: SessionT_contra,
        arguments: Sequence[tuple[str | None, object]],
        pipeline_input: Sequence[object] | None,
    ) -> list[object]:
        """Bind ``arguments`` and run, once per input object when there is input; return the output."""
        ...


class CommandTable(Protocol[SessionT_contra]):
    """The commands a script can call, by name."""

    def get(self, name: str) -> Command[SessionT_contra] | None:
        """Return the command called ``name``, or None."""
        ...
