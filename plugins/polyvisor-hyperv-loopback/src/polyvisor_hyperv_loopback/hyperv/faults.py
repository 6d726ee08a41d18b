"""The errors Hyper-V reports that more than one part of the in-memory host raises."""

from __future__ import annotations

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .records import VMRecord

__all__ = ["file_not_found", "invalid_state", "modify_failed", "no_shutdown_service", "not_running_detail"]


def invalid_state(vm: VMRecord) -> HostError:
    """The error of a state change the VM's current state does not allow."""
    return HostError(
        f"'{vm.name}' failed to change state.\n"
        "The operation cannot be performed while the object is in its current state.",
        error_id="InvalidState",
        category="InvalidOperation",
        target_name=vm.name,
    )


def no_shutdown_service(vm: VMRecord) -> HostError:
    """The error of Stop-VM on a guest with no shutdown integration service, without -Force."""
    # Stop-VM's ShouldContinue prompt, which a session without an interactive host cannot show.
    return HostError(
        "A command that prompts the user failed because the host program or the command type does not support "
        "user interaction. The host was attempting to request confirmation with the following message: "
        f"The virtual machine '{vm.name}' cannot be shut down through its shutdown integration service, which is "
        "not available. Do you want to turn it off instead?",
        error_id="HostException",
        category="NotImplemented",
        exception_type="System.Management.Automation.Host.HostException",
        target_name=vm.name,
    )


def modify_failed(vm: VMRecord, device: str, detail: str) -> HostError:
    """The error of a device change Hyper-V refuses, with the reason in ``detail``."""
    return HostError(
        f"Failed to modify device '{device}'.\n'{vm.name}' failed to modify device '{device}'. "
        f"(Virtual machine ID {str(vm.id).upper()})\n{detail}",
        error_id="InvalidState" if "current state" in detail else "InvalidParameter",
        category="InvalidOperation" if "current state" in detail else "InvalidArgument",
        target_name=vm.name,
    )


def not_running_detail() -> str:
    """The detail of a change the VM's current state does not allow."""
    return "The operation cannot be performed while the object is in its current state."


def file_not_found(path: str) -> HostError:
    """The error of a virtual disk or image file that does not exist."""
    return HostError(
        f"Getting the mounted storage instance for the path '{path}' failed.\n"
        "The system cannot find the file specified. (0x80070002)",
        error_id="ObjectNotFound",
        category="ObjectNotFound",
        target_name=path,
    )
