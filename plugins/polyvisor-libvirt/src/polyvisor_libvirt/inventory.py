"""What libvirt says about domains: bulk listings, one domain's facts, its guest addresses and console.

Listing reads states in bulk (``getAllDomainStats`` plus one ``listAllDomains`` filtered on managed-save images).
Definition facts (cpus, memory, labels, description) come from the client's cache of parsed domain XML, which
libvirt's own events keep coherent; a listing carries them only for domains in the cache, and :meth:`Inventory.info`
reads them. So a listing costs two calls whatever the number of VMs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import libvirt

from polyvisor.errors import PolyvisorError, UnsupportedError
from polyvisor.model import DynamicMemory, Feature, GuestAddress, PowerState, VMDetails, VMInfo, VMStatus
from polyvisor_libvirt.addresses import SOURCES, to_addresses
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import Definition
from polyvisor_libvirt.states import to_status

__all__ = ["Inventory"]

log = logging.getLogger("polyvisor.libvirt")

_STATS = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON


class Inventory:
    """Listings and facts of domains, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def list_vms(self) -> list[VMInfo]:
        """Every domain in two bulk calls, whatever their number.

        Names, UUIDs and states come from the bulk calls. The details (CPUs, memory, labels, description) need
        the domain XML, which libvirt cannot return in bulk: they come from the definition cache when libvirt has
        not reported a change since it was read, and are otherwise left out (``details=None``; :meth:`info`
        reads them).
        """
        conn = self._client.live()
        with self._client.errors("listing VMs", host=self._client.host):
            try:
                stats = conn.getAllDomainStats(_STATS)
            except libvirt.libvirtError as error:
                if error.get_error_code() not in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
            saved = {dom.UUIDString() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
        out = []
        for dom, record in stats:
            uuid = dom.UUIDString()
            status = to_status(
                int(record.get("state.state", libvirt.VIR_DOMAIN_NOSTATE)),
                int(record.get("state.reason", 0)),
                managed_save=uuid in saved,
            )
            cached = self._client.cache.get(uuid)
            if cached is not None:
                out.append(self._info(cached, status, record))
                continue
            out.append(VMInfo(uuid, dom.name(), status, has_saved_state=status.state is PowerState.SAVED))
        return out

    def lookup(self, ref: str) -> VMInfo:
        """Find a domain by UUID or name: identity and status (details only when the cache has them)."""
        dom = self._client.domain(ref)
        uuid, name = dom.UUIDString(), dom.name()
        status = self._client.status(dom, name)
        cached = self._client.cache.get(uuid)
        if cached is not None:
            return self._info(cached, status, {})
        return VMInfo(uuid, name, status, has_saved_state=status.state is PowerState.SAVED)

    def info(self, uuid: str) -> VMInfo:
        """The domain with its details, read afresh (and kept in the cache for later listings)."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        return self._info(definition, self._client.status(dom, definition.name), {})

    def status(self, uuid: str) -> VMStatus:
        """The domain's state, reason and managed-save image, without reading its XML."""
        dom = self._client.domain(uuid)
        return self._client.status(dom, uuid)

    def _info(self, definition: Definition, status: VMStatus, record: Mapping[str, Any]) -> VMInfo:
        return VMInfo(
            definition.uuid,
            definition.name,
            status,
            has_saved_state=status.state is PowerState.SAVED,
            details=self._details(definition, record),
        )

    @staticmethod
    def _details(definition: Definition, record: Mapping[str, Any]) -> VMDetails:
        # The memory the VM has now: the balloon's size (a running domain's <currentMemory> tracks it), which is
        # its <memory> unless the balloon or a reconfigure() moved it; a stopped VM's startup memory.
        cpus = int(record.get("vcpu.current", definition.cpus))
        memory_kib = record.get("balloon.current")
        memory = int(memory_kib) // 1024 if memory_kib else definition.current_memory_mib
        dynamic = None
        if definition.memory_minimum_mib is not None:
            dynamic = DynamicMemory(min(definition.memory_minimum_mib, definition.memory_mib), definition.memory_mib)
        return VMDetails(
            cpus=cpus,
            memory_mib=memory,
            labels=MappingProxyType(dict(definition.labels)),
            description=definition.description,
            dynamic_memory=dynamic,
            extra=MappingProxyType(
                {
                    "arch": definition.arch,
                    "domain_type": definition.domain_type,
                    "owned_volumes": definition.owned_volumes,
                    "max_cpus": definition.max_cpus,
                    "max_memory_mib": definition.memory_mib,
                }
            ),
        )

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """interfaceAddresses from each source in order; the first that answers with addresses wins."""
        dom = self._client.domain(uuid)
        last: PolyvisorError | None = None
        for source in sources:
            try:
                doing = f"reading guest addresses ({source})"
                with self._client.errors(doing, host=self._client.host, vm=dom.name()):
                    found = dom.interfaceAddresses(SOURCES[source], 0)
            except PolyvisorError as error:
                last = error
                continue
            out = list(to_addresses(found, source))
            if out:
                return out
        if last is not None and not isinstance(last, UnsupportedError):
            log.debug("no guest addresses for %s: %s", uuid, last)
        return []

    def console_output(self, uuid: str) -> str:
        """The serial log file of a local domain."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=False)
        if not definition.serial_logs or not self._client.uri.is_local:
            raise UnsupportedError(
                "this VM has no serial log file on this host; define it with a <serial> log",
                feature=Feature.CONSOLE,
                host=self._client.host,
                vm=definition.name,
            )
        try:
            with open(definition.serial_logs[0], "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""  # the guest has not run yet
        except OSError as error:
            raise PolyvisorError(
                f"cannot read the serial log {definition.serial_logs[0]}: {error}; check its permissions",
                host=self._client.host,
                vm=definition.name,
            ) from error
