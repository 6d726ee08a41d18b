"""A tiny in-memory backend: the smallest complete implementation of polyvisor.backend.Backend.

Used by the core's tests and copied into a throwaway plugin distribution to prove third parties can plug in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from polyvisor.backend import Backend, Credentials
from polyvisor.errors import NotFoundError
from polyvisor.model import (
    Capabilities,
    Feature,
    HostInfo,
    PowerState,
    ShutdownMode,
    VMInfo,
    VMSpec,
    VMStatus,
    normalize_uuid,
)
from polyvisor.uri import URI

FEATURES = frozenset({Feature.CREATE, Feature.PAUSE, Feature.SAVE, Feature.RESET, Feature.LABELS})


class ToyBackend(Backend):
    """VMs in a dict; every transition is instant."""

    calls: list[str]

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        self.uri = uri
        self.credentials = credentials
        self.vms: dict[str, VMInfo] = {}
        self.calls = []

    def capabilities(self) -> Capabilities:
        return Capabilities(FEATURES, backend="toy")

    def close(self) -> None:
        self.calls.append("close")

    def host_info(self) -> HostInfo:
        return HostInfo("toyhost", "toy", "1.0", 1, 1024, "x86_64")

    def list_vms(self) -> list[VMInfo]:
        self.calls.append("list_vms")
        return list(self.vms.values())

    def lookup(self, ref: str) -> VMInfo:
        self.calls.append("lookup")
        key = normalize_uuid(ref)
        if key in self.vms:
            return self.vms[key]
        for vm in self.vms.values():
            if vm.name == ref:
                return vm
        raise NotFoundError(f"no VM {ref!r}", host="toyhost")

    def create(self, spec: VMSpec) -> VMInfo:
        info = VMInfo(
            str(uuid.uuid4()),
            spec.name,
            _status(PowerState.STOPPED),
            spec.cpus,
            spec.memory_mib,
            spec.labels,
            spec.description,
        )
        self.vms[info.uuid] = info
        return info

    def _set(self, uuid_: str, state: PowerState, saved: bool = False) -> None:
        self.calls.append(state.value)
        self.vms[uuid_] = self.vms[uuid_].replace(status=_status(state), has_saved_state=saved)

    def start(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING)

    def shutdown(self, uuid: str, mode: ShutdownMode) -> None:
        self._set(uuid, PowerState.STOPPED)

    def stop(self, uuid: str) -> None:
        self._set(uuid, PowerState.STOPPED)

    def reset(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING)

    def pause(self, uuid: str) -> None:
        self._set(uuid, PowerState.PAUSED)

    def resume(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING)

    def save(self, uuid: str) -> None:
        self._set(uuid, PowerState.SAVED, saved=True)

    def discard_saved_state(self, uuid: str) -> None:
        self._set(uuid, PowerState.STOPPED)

    def delete(self, uuid: str, *, storage: bool) -> None:
        del self.vms[uuid]

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        self.vms[uuid] = self.vms[uuid].replace(labels=dict(labels))


def _status(state: PowerState) -> VMStatus:
    return VMStatus(state, f"TOY_{state.name}")
