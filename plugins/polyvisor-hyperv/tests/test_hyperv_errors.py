"""PowerShell error records and client exceptions map onto polyvisor's error tree."""

from __future__ import annotations

import inspect

import pytest
import requests
import winrm.exceptions as winrm_errors
from psrpcore.types import ErrorCategory
from pypsrp import exceptions as psrp_errors

import polyvisor.errors as pe
from polyvisor_hyperv.errors import (
    CATEGORY_ERRORS,
    ERROR_CATEGORY_NAMES,
    ErrorRecord,
    error_from_record,
    error_from_transport,
)

# System.Management.Automation.ErrorCategory, from an independent implementation of the protocol (psrpcore).
ERROR_CATEGORIES = [category.name for category in sorted(ErrorCategory, key=lambda c: c.value)]


def test_every_error_category_is_mapped() -> None:
    assert len(ERROR_CATEGORIES) == 32
    assert {category.value: category.name for category in ErrorCategory} == ERROR_CATEGORY_NAMES
    assert set(CATEGORY_ERRORS) == set(ERROR_CATEGORIES)
    assert all(issubclass(kind, pe.PolyvisorError) for kind in CATEGORY_ERRORS.values())


@pytest.mark.parametrize("category", ERROR_CATEGORIES)
def test_each_category_yields_its_error(category: str) -> None:
    error = error_from_record(ErrorRecord("it broke", category, f"X,{category}"), doing="testing", host="hv")
    assert isinstance(error, CATEGORY_ERRORS[category])
    assert "it broke" in str(error)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # A missing VM by Id is ObjectNotFound / ObjectNotFound (VirtualizationObjectLocator.GetVirtualMachineById).
        (
            ErrorRecord(
                'Hyper-V was unable to find a virtual machine with id "5a1f".',
                "ObjectNotFound",
                "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVM",
                "Microsoft.HyperV.PowerShell.VirtualizationException",
            ),
            pe.NotFoundError,
        ),
        # Get-VM by a name that matches nothing writes InvalidParameter / InvalidArgument: the category decides,
        # the wording does not turn it into something else.
        (
            ErrorRecord(
                'Hyper-V was unable to find a virtual machine with name "web".',
                "InvalidArgument",
                "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
                "Microsoft.HyperV.PowerShell.VirtualizationException",
            ),
            pe.ValidationError,
        ),
        # Id and category come before any English wording in the message.
        (
            ErrorRecord("The disk was not found in its current state.", "InvalidOperation", "InvalidState,X"),
            pe.InvalidStateError,
        ),
        (ErrorRecord("The path cannot find a way.", "PermissionDenied", "AccessDenied,X"), pe.AuthenticationError),
        # Wording only as a last resort, for records whose id and category say nothing specific.
        (ErrorRecord("The VHD file does not exist.", "NotSpecified", "OperationFailed,X"), pe.NotFoundError),
        (ErrorRecord("The VM is not in a state for that.", "NotSpecified", "OperationFailed,X"), pe.InvalidStateError),
        (
            ErrorRecord(
                "'vm' failed to change state.\nThe operation cannot be performed while the object is in its current "
                "state.",
                "InvalidOperation",
                "InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM",
            ),
            pe.InvalidStateError,
        ),
        (ErrorRecord("The file already exists.", "NotSpecified", "OperationFailed,X"), pe.AlreadyExistsError),
        (ErrorRecord("Cannot bind parameter.", "InvalidArgument", "ParameterBindingFailed,X"), pe.ValidationError),
        (ErrorRecord("nope", "ObjectNotFound", "ObjectNotFound,X"), pe.NotFoundError),
        (ErrorRecord("denied", "PermissionDenied", "AccessDenied,X"), pe.AuthenticationError),
        (ErrorRecord("exists", "ResourceExists", "Duplicate,X"), pe.AlreadyExistsError),
        (ErrorRecord("slow", "OperationTimeout", "OperationFailed,X"), pe.TimeoutError),
        (
            ErrorRecord("The term 'Get-VM' is not recognized", "ObjectNotFound", "CommandNotFoundException"),
            pe.UnsupportedError,
        ),
        (ErrorRecord("odd", "NotSpecified", "OperationFailed,X"), pe.BackendError),
    ],
)
def test_id_then_category_then_wording(record: ErrorRecord, expected: type[pe.PolyvisorError]) -> None:
    error = error_from_record(record, doing="testing", host="hv", vm="web")
    assert type(error) is expected


def test_backend_error_keeps_the_native_code_and_message() -> None:
    record = ErrorRecord("disk full", "WriteError", "WriteFailed,Microsoft.Vhd.PowerShell.Cmdlets.NewVhd")
    error = error_from_record(record, doing="creating a disk", host="hv01", vm="web")
    assert isinstance(error, pe.BackendError)
    assert error.code == "WriteFailed,Microsoft.Vhd.PowerShell.Cmdlets.NewVhd"
    assert error.native_message == "disk full"
    assert "creating a disk" in str(error)
    assert "hv01" in str(error)


def test_record_from_runner_fields_accepts_numeric_categories() -> None:
    record = ErrorRecord.from_fields({"message": "m", "category": 13, "fullyQualifiedErrorId": "X,Y"})
    assert record.category == "ObjectNotFound"
    assert record.error_id == "X"


def _native_errors() -> list[type[BaseException]]:
    classes: list[type[BaseException]] = []
    for module in (winrm_errors, psrp_errors):
        classes += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__ and not cls.__name__.startswith("_")
        ]
    return classes


def _instance(cls: type[BaseException]) -> BaseException:
    for args in [(500, "msg", "body", "reason"), ("http", 500, "body"), ("msg",), ()]:
        try:
            return cls(*args)
        except TypeError:
            continue
    raise AssertionError(f"cannot build {cls}")


@pytest.mark.parametrize("cls", _native_errors(), ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_client_exception_is_mapped(cls: type[BaseException]) -> None:
    error = error_from_transport(_instance(cls), doing="testing", host="hv", endpoint="https://hv:5986/wsman")
    assert isinstance(error, pe.PolyvisorError)
    assert not isinstance(error, pe.BackendError), f"{cls} fell through to the generic mapping"


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        (winrm_errors.InvalidCredentialsError("401"), pe.AuthenticationError),
        (psrp_errors.AuthenticationError("bad"), pe.AuthenticationError),
        (requests.exceptions.SSLError("certificate verify failed"), pe.ConnectionError),
        (requests.exceptions.ConnectionError("refused"), pe.ConnectionError),
        (requests.exceptions.ReadTimeout("read timed out"), pe.TimeoutError),
        (winrm_errors.WinRMOperationTimeoutError(), pe.TimeoutError),
        (ConnectionResetError("reset"), pe.ConnectionError),
    ],
)
def test_transport_errors(native: BaseException, expected: type[pe.PolyvisorError]) -> None:
    error = error_from_transport(native, doing="listing VMs", host="hv", endpoint="https://hv:5986/wsman")
    assert type(error) is expected
    assert "listing VMs" in str(error)


def test_certificate_failure_says_how_to_pass_the_ca() -> None:
    error = error_from_transport(
        requests.exceptions.SSLError("certificate verify failed"), doing="x", host="hv", endpoint="e"
    )
    assert "ca_path" in str(error)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # A German host: the ids and categories are the same, the messages are not.
        (
            ErrorRecord(
                'Hyper-V konnte keinen virtuellen Computer mit der ID "5a1f" finden.',
                "ObjectNotFound",
                "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVM",
                "Microsoft.HyperV.PowerShell.VirtualizationException",
            ),
            pe.NotFoundError,
        ),
        (
            ErrorRecord(
                "Der Vorgang kann im aktuellen Zustand des virtuellen Computers nicht ausgef\u00fchrt werden.",
                "InvalidOperation",
                "InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM",
            ),
            pe.InvalidStateError,
        ),
        (
            ErrorRecord("Zeit\u00fcberschreitung des Vorgangs.", "NotSpecified", "OperationTimeout,X"),
            pe.TimeoutError,
        ),
        (
            ErrorRecord("Zugriff verweigert.", "NotSpecified", "AccessDenied,X"),
            pe.AuthenticationError,
        ),
    ],
)
def test_a_localized_host_maps_by_id_and_category(record: ErrorRecord, expected: type[pe.PolyvisorError]) -> None:
    error = error_from_record(record, doing="testing", host="hv", vm="web")
    assert type(error) is expected
