# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Inventory plugin: every VM of a polyvisor fleet, grouped by host, backend, power state and label."""

from __future__ import annotations

DOCUMENTATION = r"""
name: polyvisor
short_description: VMs on every hypervisor of a polyvisor fleet (libvirt/KVM, Hyper-V)
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Lists the VMs of each hypervisor named in the polyvisor config file (or given inline), asking every host at
    once through C(polyvisor.Fleet).
  - Puts each VM in the groups C(host_<connection>), C(backend_<backend>) (C(backend_libvirt), C(backend_hyperv)),
    C(state_<power state>) and C(label_<key>_<value>); characters other than letters, digits and C(_) become C(_).
  - Sets C(polyvisor_state), C(polyvisor_host), C(polyvisor_uuid), C(polyvisor_labels), C(polyvisor_addresses)
    (for running VMs on hosts that report guest addresses) and C(ansible_host) when an address is known.
  - Sets C(polyvisor_hypervisor) - how to reach the VM's host (its connection's name, URI, user and the environment
    variable or keyring entry of its password, never a secret) - which the C(polyvisor.hypervisors.guest)
    connection reads, so that a listed VM runs tasks through its hypervisor with no more settings.
  - A host that cannot be reached is skipped with a warning naming it (as the config names it) and its error; the
    other hosts are still listed, unless O(strict) is set. When no host answers, the inventory fails.
  - An option this plugin does not know, a O(group) the config file does not have, and O(connections) given with
    O(group) or O(config) fail the inventory. These failures, and those of O(strict), fail the Ansible run, whatever
    C(inventory_any_unparsed_is_failed) says (otherwise Ansible would go on with an empty inventory).
  - A VM name found on more than one host becomes C(<name>@<connection>) on each of them.
  - With O(cache=true), what the hosts said is kept in Ansible's inventory cache (O(cache_plugin), such as
    C(ansible.builtin.jsonfile)) for O(cache_timeout) seconds, and a run within that time asks no host (the
    constructed groups and variables are made again from it). A listing in which any host was skipped is never
    cached, so a skipped host is tried again, and warned about, on the next run. C(ansible-inventory --flush-cache)
    asks every host afresh.
  - Needs the C(polyvisor) library and the backends it talks to (C(polyvisor-libvirt), C(polyvisor-hyperv)) on the
    controller.
requirements:
  - polyvisor (Python library) with the backends of the hosts it lists
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a source for this plugin.
    required: true
    choices: ["polyvisor.hypervisors.polyvisor"]
  config:
    description:
      - The polyvisor config file (TOML) whose C([connections]) name the hosts.
      - Defaults to where polyvisor looks for it (C($POLYVISOR_CONFIG), then
        C($XDG_CONFIG_HOME/polyvisor/config.toml)).
      - Ignored when O(connections) is given.
    type: path
  group:
    description:
      - Which hosts of the config file to list - V(all) (every connection), a group of its C([groups]) table
        (C(lab = ["kvm1", "hv01"]), groups may nest), or one connection's name.
    type: str
    default: all
  connections:
    description:
      - Hosts given inline instead of a config file. Secrets never go here; name an environment variable that holds
        the password with C(password_env).
    type: list
    elements: dict
    suboptions:
      name:
        description: The connection's name (the C(host_<name>) group); defaults to the URI's host.
        type: str
      uri:
        description: A polyvisor URI (C(qemu:///system), C(hyperv://admin@hv01/)).
        type: str
        required: true
      username:
        description: User name, when the URI does not carry one.
        type: str
      password_env:
        description: Environment variable (on the controller) that holds the password.
        type: str
      options:
        description: Further connect options, such as C(ca_path) or C(transport).
        type: dict
  discover_addresses:
    description: Ask running VMs for their addresses (on hosts with the C(guest-addresses) capability).
    type: bool
    default: true
  max_workers:
    description: How many hosts are asked at once.
    type: int
    default: 8
  timeout:
    description:
      - Seconds each host may take to answer (a connection's own C(timeout) in the config file wins); a host that
        does not answer in time is skipped with a warning.
    type: float
    default: 30
  strict:
    description:
      - Fail the inventory (and the run) when any host is skipped - unreachable, refusing the credentials or too
        slow - instead of warning and listing the others.
      - As in every constructed inventory, also make errors in O(compose), O(groups) and O(keyed_groups) fatal.
    type: bool
    default: false
"""

EXAMPLES = r"""
# inventory.polyvisor.yml: every VM of every connection in ~/.config/polyvisor/config.toml
plugin: polyvisor.hypervisors.polyvisor

# Two hosts given inline, VMs grouped also by their "role" label value
plugin: polyvisor.hypervisors.polyvisor
connections:
  - name: kvm1
    uri: qemu+ssh://root@kvm1.example.com/system
  - name: hv01
    uri: hyperv://Administrator@hv01.example.com/
    password_env: HV01_PASSWORD
    options:
      ca_path: /etc/ssl/hv01-ca.pem
keyed_groups:
  - key: polyvisor_labels.role | default('none')
    prefix: role
"""

import contextlib
import copy
import dataclasses
import difflib
import ipaddress
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ansible import constants
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

try:
    import polyvisor
    from polyvisor import config as polyvisor_config
except ImportError as error:  # reported when the plugin is used, not when Ansible lists plugins
    IMPORT_ERROR: str | None = str(error)
else:
    IMPORT_ERROR = None

display = Display()

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_group(*parts: str) -> str:
    """Return a group name from parts joined by ``_``; characters Ansible does not allow become ``_``."""
    return _UNSAFE.sub("_", "_".join(parts))


@dataclass
class Listing:
    """What one host said: its backend's name and its VMs as host variables."""

    backend: str
    vms: list[dict[str, Any]] = field(default_factory=list)


def pick_ansible_host(addresses: Sequence[Mapping[str, Any]]) -> str | None:
    """Return the address Ansible should connect to: IPv4 first, never loopback or link-local."""
    usable: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for entry in addresses:
        try:
            address = ipaddress.ip_address(str(entry["address"]).split("%", maxsplit=1)[0])
        except ValueError:
            continue
        if not (address.is_loopback or address.is_link_local or address.is_unspecified):
            usable.append(address)
    usable.sort(key=lambda address: address.version)  # stable: keeps the host's order within a family
    return str(usable[0]) if usable else None


def list_host(conn: polyvisor.Connection, discover_addresses: bool) -> Listing:
    """Ask one host for its VMs, and the running ones for their addresses where the host can tell them."""
    listing = Listing(conn.capabilities.backend)
    addresses_known = discover_addresses and conn.supports(polyvisor.Feature.GUEST_ADDRESSES)
    for info in conn.list(details=True):
        listing.vms.append(_vm_vars(conn, info, addresses_known))
    return listing


def _vm_vars(conn: polyvisor.Connection, info: polyvisor.VMInfo, addresses_known: bool) -> dict[str, Any]:
    addresses: list[dict[str, Any]] = []
    if addresses_known and info.state is polyvisor.PowerState.RUNNING:
        try:
            found = conn.vm(info).addresses()
        except polyvisor.PolyvisorError as error:  # a guest that cannot tell its addresses is still listed
            display.vvv(f"polyvisor: no addresses for {info.name} on {conn.host}: {error}")
        else:
            addresses = [
                {
                    "interface": address.interface,
                    "mac": address.mac,
                    "address": address.address,
                    "prefix": address.prefix,
                    "source": address.source,
                }
                for address in found
            ]
    return {
        "polyvisor_name": info.name,
        "polyvisor_uuid": info.uuid,
        "polyvisor_state": info.state.value,
        "polyvisor_raw_state": info.status.raw_state,
        "polyvisor_labels": dict(info.labels),
        "polyvisor_cpus": info.cpus,
        "polyvisor_memory_mib": info.memory_mib,
        "polyvisor_addresses": addresses,
    }


def hypervisor_vars(target: polyvisor_config.NamedConnection) -> dict[str, Any]:
    """How the ``polyvisor.hypervisors.guest`` connection reaches a VM's host: its connection without secrets (a
    password stays in the environment variable or keyring entry it names)."""
    fields = {
        "name": target.name,
        "uri": target.uri,
        "username": target.username,
        "username_env": target.username_env,
        "password_env": target.password_env,
        "password_keyring": target.password_keyring,
        "options": dict(target.options),
    }
    return {key: value for key, value in fields.items() if value not in (None, {})}


def named(error: polyvisor.PolyvisorError, host: str) -> str:
    """The error's message naming the host as the inventory does (``[host hv1]``), not by its address."""
    if error.host is not None and error.host != host:
        error = copy.copy(error)
        error.host = host
    return str(error)


def refuse(path: str, reason: str) -> NoReturn:
    """Fail this inventory source, and the run with it.

    Ansible only warns about a source that failed to parse and goes on without its hosts, so a playbook would run
    on nothing and succeed; a polyvisor source that cannot be honoured fails the run instead.
    """
    constants.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    raise AnsibleParserError(f"polyvisor inventory {path}: {reason}")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):  # type: ignore[misc]  # Ansible ships no type hints
    """The ``polyvisor.hypervisors.polyvisor`` inventory source."""

    NAME = "polyvisor.hypervisors.polyvisor"

    def verify_file(self, path: str) -> bool:
        """Accept YAML files; the ``plugin:`` key inside decides whether they are ours."""
        return bool(super().verify_file(path)) and path.endswith((".yml", ".yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        """Read the source file, ask every host, and add their VMs to the inventory."""
        super().parse(inventory, loader, path, cache)
        if IMPORT_ERROR is not None:
            raise AnsibleParserError(
                f"the polyvisor inventory needs the polyvisor Python library on the controller: {IMPORT_ERROR}"
            )
        source = self._read_config_data(path)
        self._check_source(path, source)
        key = self.get_cache_key(path)
        use_cache = bool(self.get_option("cache"))
        listings = None
        if use_cache and cache:  # cache=False: ansible-inventory --flush-cache, or a refresh
            with contextlib.suppress(KeyError):
                listings = {host: Listing(**listing) for host, listing in self._cache[key].items()}
        if listings is None:
            listings, complete = self._ask_hosts(path)
            if use_cache and complete:
                self._cache[key] = {host: dataclasses.asdict(listing) for host, listing in listings.items()}
        self._populate(listings)

    def _ask_hosts(self, path: str) -> tuple[dict[str, Listing], bool]:
        """Ask every host for its VMs; return what they said, and whether every host answered."""
        discover = bool(self.get_option("discover_addresses"))
        try:
            with self._fleet() as fleet:
                answers = fleet.map(lambda conn: list_host(conn, discover))
        except polyvisor.PolyvisorError as error:
            refuse(path, str(error))
        if not answers:
            display.warning(f"polyvisor inventory {path}: no connections to list")
        for host, failure in answers.errors.items():
            display.warning(f"polyvisor: host {host} skipped: {named(failure, host)}")
        if answers.errors and not answers.values:
            refuse(path, f"no host answered ({', '.join(answers.errors)}); see the warnings above")
        if answers.errors and self.get_option("strict"):
            refuse(path, f"strict: {', '.join(answers.errors)} skipped; see the warnings above")
        return dict(answers.values), not answers.errors

    def _check_source(self, path: str, source: Mapping[str, Any]) -> None:
        """Refuse options this plugin does not know, and ``connections`` with options it makes meaningless."""
        known = sorted(self._options)
        unknown = sorted(str(key) for key in source if key not in self._options)
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
            refuse(path, f"unknown option(s) {', '.join(hints)}; the options are: {', '.join(known)}")
        if source.get("connections"):
            clashing = [key for key in ("group", "config") if key in source]
            if clashing:
                refuse(
                    path,
                    f"connections names the hosts itself; drop {' and '.join(clashing)}, which pick hosts of a "
                    "config file",
                )

    def _fleet(self) -> polyvisor.Fleet:
        workers = max(1, int(self.get_option("max_workers")))
        timeout = float(self.get_option("timeout"))
        inline = self.get_option("connections")
        if inline:
            entries = [self._inline(raw) for raw in inline]
            return polyvisor.Fleet({entry.name: entry for entry in entries}, max_concurrency=workers, timeout=timeout)
        path_option = self.get_option("config")
        if path_option and not Path(path_option).exists():
            raise polyvisor.ValidationError(f"config file {path_option} does not exist", field="config")
        return polyvisor.Fleet.from_config(
            self.get_option("group"),
            path=Path(path_option) if path_option else None,
            max_concurrency=workers,
            timeout=timeout,
        )

    @staticmethod
    def _inline(raw: Mapping[str, Any]) -> polyvisor_config.NamedConnection:
        uri = raw.get("uri")
        if not isinstance(uri, str):
            raise polyvisor.ValidationError("every inline connection needs a uri", field="connections")
        name = raw.get("name") or polyvisor.URI.parse(uri).display_host
        return polyvisor_config.NamedConnection(
            name=str(name),
            uri=uri,
            username=raw.get("username"),
            password_env=raw.get("password_env"),
            options=dict(raw.get("options") or {}),
        )

    def _targets(self) -> dict[str, polyvisor_config.NamedConnection]:
        """How each host of the source is reached (its connection from the config file or the source), read
        without connecting."""
        inline = self.get_option("connections")
        if inline:
            return {entry.name: entry for entry in (self._inline(raw) for raw in inline)}
        path_option = self.get_option("config")
        return dict(polyvisor_config.read_config(Path(path_option) if path_option else None).connections)

    def _populate(self, listings: Mapping[str, Listing]) -> None:
        names = Counter(vm["polyvisor_name"] for listing in listings.values() for vm in listing.vms)
        targets = self._targets()
        strict = bool(self.get_option("strict"))
        for host, listing in listings.items():
            host_group = safe_group("host", host)
            self.inventory.add_group(host_group)
            # "Hyper-V" -> backend_hyperv: the group names the backend as a word, the variable keeps its spelling.
            backend_group = safe_group("backend", re.sub(r"[^a-z0-9]", "", listing.backend.lower()))
            for variables in listing.vms:
                name = variables["polyvisor_name"]
                hostname = name if names[name] == 1 else f"{name}@{host}"
                variables = {
                    **variables,
                    "polyvisor_host": host,
                    "polyvisor_backend": listing.backend,
                    "polyvisor_hypervisor": hypervisor_vars(targets[host]),
                }
                address = pick_ansible_host(variables["polyvisor_addresses"])
                if address is not None:
                    variables["ansible_host"] = address
                for group in (
                    host_group,
                    backend_group,
                    safe_group("state", variables["polyvisor_state"]),
                    *(safe_group("label", key, value) for key, value in sorted(variables["polyvisor_labels"].items())),
                ):
                    self.inventory.add_group(group)
                    self.inventory.add_host(hostname, group=group)
                for key, value in variables.items():
                    self.inventory.set_variable(hostname, key, value)
                self._set_composite_vars(self.get_option("compose"), variables, hostname, strict=strict)
                self._add_host_to_composed_groups(self.get_option("groups"), variables, hostname, strict=strict)
                self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, hostname, strict=strict)
