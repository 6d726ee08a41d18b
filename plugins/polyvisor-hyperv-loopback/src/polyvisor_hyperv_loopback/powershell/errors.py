"""PowerShell error records as the loopback Hyper-V host reports them.

``HostError`` is what the in-memory Hyper-V host raises; it knows the error id ("InvalidState") but not which
cmdlet ran. The cmdlet layer turns it into a ``PSErrorRecord`` whose FullyQualifiedErrorId names the cmdlet class
("InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM"), as Windows PowerShell does. ``PipelineStopped``
carries a record that terminates the pipeline (``-ErrorAction Stop``, parameter binding errors, ``throw``).
``PSErrorRecord`` itself is defined with the values the wire serializes (:mod:`polyvisor_hyperv_loopback.engine_api`)
and re-exported here.
"""

from __future__ import annotations

from polyvisor_hyperv_loopback.engine_api import PSErrorRecord

__all__ = [
    "VIRTUALIZATION_EXCEPTION",
    "HostError",
    "PSErrorRecord",
    "PipelineStopped",
]

VIRTUALIZATION_EXCEPTION = "Microsoft.HyperV.PowerShell.VirtualizationException"


class HostError(Exception):
    """An error raised by the Hyper-V host model, before a cmdlet name is attached."""

    def __init__(
        self,
        message: str,
        *,
        error_id: str,
        category: str,
        target_name: str = "",
        target_object: object | None = None,
        exception_type: str = VIRTUALIZATION_EXCEPTION,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id
        self.category = category
        self.target_name = target_name
        self.target_object = target_object
        self.exception_type = exception_type

    def record(self, command_class: str, activity: str = "") -> PSErrorRecord:
        """Return the error record a cmdlet of the given .NET class would write."""
        fqid = f"{self.error_id},{command_class}" if command_class else self.error_id
        return PSErrorRecord(
            message=self.message,
            category=self.category,
            fully_qualified_error_id=fqid,
            exception_type=self.exception_type,
            target_name=self.target_name,
            target_object=self.target_object,
            activity=activity,
        )


class PipelineStopped(Exception):
    """A terminating error: the pipeline (or the enclosing try block) stops with this record."""

    def __init__(self, record: PSErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record
