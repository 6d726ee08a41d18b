"""The backend: a VM is a record in a dict shared by every connection to the same ``minimal:///NAME``."""

from __future__ import annotations

import threading
import uuid as uuid_module
from dataclasses import dataclass, replace
from pathlib import Path

from polyvisor.backend import Backend, Credentials, Deadline
from polyvisor.errors import AlreadyExistsError, NotFoundError, ValidationError
from polyvisor.model import HostInfo, PowerState, ShutdownMode, VMDetails, VMInfo, VMSpec, VMStatus, normalize_uuid
from polyvisor.uri import URI

__all__ = ["MinimalBackend"]

_RAW = {PowerState.STOPPED: "off", PowerState.RUNNING: "on"}


@dataclass(frozen=True)
class _VM:
    uuid: str
    name: str
    cpus: int
    memory_mib: int
    description: str
    state: PowerState = PowerState.STOPPED

    def info(self) -> VMInfo:
        details = VMDetails(self.cpus, self.memory_mib, description=self.description)
        return VMInfo(self.uuid, self.name, VMStatus(self.state, _RAW[self.state]), details=details)


_hosts: dict[str, dict[str, _VM]] = {}
_lock = threading.Lock()


class MinimalBackend(Backend):
    """Only the abstract methods of :class:`~polyvisor.backend.Backend`; no option feature."""

    name = "minimal"

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        if credentials.options:
            raise ValidationError(f"minimal:// takes no options, got {sorted(credentials.options)}", field="options")
        self.uri = uri
        self._host = uri.path.strip("/") or "default"
        with _lock:
            self._vms = _hosts.setdefault(self._host, {})

    def close(self) -> None:
        pass

    def host_info(self) -> HostInfo:
        return HostInfo(self._host, "minimal", "1", cpus=4, memory_mib=8192, arch="x86_64")

    def list_vms(self) -> list[VMInfo]:
        with _lock:
            return [vm.info() for vm in self._vms.values()]

    def lookup(self, ref: str) -> VMInfo:
        return self._find(ref).info()

    def info(self, uuid: str) -> VMInfo:
        return self._find(uuid).info()

    def _find(self, ref: str) -> _VM:
        key = normalize_uuid(ref)
        with _lock:
            for vm in self._vms.values():
                if vm.uuid == key or vm.name == ref:
                    return vm
        raise NotFoundError(f"no VM named or with UUID {ref!r}", host=self._host)

    def _set(self, uuid: str, state: PowerState) -> None:
        with _lock:
            vm = self._vms.get(uuid)
            if vm is None:
                raise NotFoundError(f"no VM with UUID {uuid!r}", host=self._host)
            self._vms[uuid] = replace(vm, state=state)

    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        # The disks are only checked (an image must be an existing file) and not kept: no VM here ever boots.
        for disk in spec.disks:
            if disk.image is not None and not Path(disk.image).is_file():
                raise NotFoundError(f"disk image {disk.image!r} does not exist", host=self._host, vm=spec.name)
        vm = _VM(str(uuid_module.uuid4()), spec.name, spec.cpus, spec.memory_mib, spec.description)
        with _lock:
            if any(other.name == spec.name for other in self._vms.values()):
                raise AlreadyExistsError(f"a VM named {spec.name!r} already exists", host=self._host)
            self._vms[vm.uuid] = vm
        return vm.info()

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.RUNNING)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        self._set(uuid, PowerState.STOPPED)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.STOPPED)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        with _lock:
            if self._vms.pop(uuid, None) is None:
                raise NotFoundError(f"no VM with UUID {uuid!r}", host=self._host)
