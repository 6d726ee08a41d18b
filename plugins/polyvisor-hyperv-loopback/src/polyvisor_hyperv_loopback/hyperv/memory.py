"""Memory and processors: Set-VMMemory / Get-VMMemory (dynamic memory, runtime resize) and Set-VMProcessor.

Rules, as Windows has them:

* Minimum, maximum and buffer need dynamic memory (NEON ``Commands/SetVMMemory.cs`` ValidateParametersInternal,
  ``SetVMMemory_ParameterMismatch``: "Setting maximum, minimum, and buffer settings requires Dynamic Memory to be
  enabled."). Buffer is 5 to 2000 (Set-VMMemory.md); minimum <= startup <= maximum (Hyper-V Dynamic Memory
  Overview, "About the Dynamic Memory Settings").
* A running VM with dynamic memory may raise its maximum and lower its minimum, nothing else of the two
  (Dynamic Memory Overview, "Run-time Dynamic Memory configuration changes"); dynamic memory cannot be switched on
  or off, nor the startup memory changed, while it runs (ASSUMPTION: the overview lists only those two changes).
* A running VM without dynamic memory may change its memory (runtime memory resize: WSDOCS What's new in Hyper-V on
  Windows Server, "Hot add and remove for network adapters and memory"); its assigned memory follows.
* The processor count changes only while the VM is off (the host's existing Set-VM rule; ASSUMPTION for the error).
"""

from __future__ import annotations

import copy
import uuid

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .host import HyperVHost
from .records import VMRecord

__all__ = ["set_memory"]

MiB = 1024**2
_MAXIMUM = 1024**4  # 1 TB: Maximum RAM "can be set from as low as the value for Startup RAM to as high as 1 TB"


def _failed(vm: VMRecord, detail: str, *, state: bool = False) -> HostError:
    return HostError(
        f"Failed to modify device 'Memory'.\n'{vm.name}' failed to modify device 'Memory'. "
        f"(Virtual machine ID {str(vm.id).upper()})\n{detail}",
        error_id="InvalidState" if state else "InvalidParameter",
        category="InvalidOperation" if state else "InvalidArgument",
        target_name=vm.name,
    )


def _check_amount(vm: VMRecord, what: str, value: int) -> None:
    if value < 32 * MiB or value % (2 * MiB) or value > _MAXIMUM:
        raise _failed(
            vm, f"Invalid {what} memory amount: it must be at least 32 MB, at most 1 TB and a multiple of 2 MB."
        )


def set_memory(
    host: HyperVHost,
    vm_id: uuid.UUID,
    *,
    dynamic: bool | None = None,
    startup: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    buffer: int | None = None,
) -> VMRecord:
    """Set-VMMemory on one VM; raise HostError as Windows refuses (see the module docstring)."""
    with host.condition:
        vm = host.vm_record(vm_id)
        cfg = vm.config
        enabled = cfg.dynamic_memory if dynamic is None else dynamic
        if not enabled and (minimum is not None or maximum is not None or buffer is not None):
            raise HostError(
                "Setting maximum, minimum, and buffer settings requires Dynamic Memory to be enabled.",
                error_id="InvalidParameter",
                category="InvalidArgument",
                target_name=vm.name,
            )
        if buffer is not None and not 5 <= buffer <= 2000:
            raise _failed(vm, f"The memory buffer ({buffer}%) must be from 5 to 2000.")
        new_startup = cfg.memory_startup if startup is None else int(startup)
        new_minimum = cfg.memory_minimum if minimum is None else int(minimum)
        new_maximum = cfg.memory_maximum if maximum is None else int(maximum)
        for what, value in (("startup", startup), ("minimum", minimum), ("maximum", maximum)):
            if value is not None:
                _check_amount(vm, what, int(value))
        if vm.state != "Off":
            _check_running_change(vm, enabled, new_startup, new_minimum, new_maximum)
        if enabled and not new_minimum <= new_startup <= new_maximum:
            raise _failed(
                vm,
                f"The minimum memory ({new_minimum // MiB} MB) must not exceed the startup memory "
                f"({new_startup // MiB} MB), and the startup memory must not exceed the maximum memory "
                f"({new_maximum // MiB} MB).",
            )
        cfg.dynamic_memory = enabled
        cfg.memory_startup = new_startup
        if enabled:
            cfg.memory_minimum, cfg.memory_maximum = new_minimum, new_maximum
        if buffer is not None:
            cfg.memory_buffer = buffer
        host.condition.notify_all()
        return copy.deepcopy(vm)


def _check_running_change(vm: VMRecord, enabled: bool, startup: int, minimum: int, maximum: int) -> None:
    cfg = vm.config
    running = "The operation cannot be performed while the object is in its current state."
    if enabled != cfg.dynamic_memory:
        raise _failed(vm, f"Dynamic memory cannot be turned on or off while the VM runs. {running}", state=True)
    if not enabled:
        return  # runtime memory resize of static memory
    if startup != cfg.memory_startup:
        raise _failed(vm, f"The startup memory of a running VM with dynamic memory is fixed. {running}", state=True)
    if maximum < cfg.memory_maximum:
        raise _failed(
            vm,
            f"The maximum memory of a running VM can only be raised, not lowered below "
            f"{cfg.memory_maximum // MiB} MB. {running}",
            state=True,
        )
    if minimum > cfg.memory_minimum:
        raise _failed(
            vm,
            f"The minimum memory of a running VM can only be lowered, not raised above "
            f"{cfg.memory_minimum // MiB} MB. {running}",
            state=True,
        )
