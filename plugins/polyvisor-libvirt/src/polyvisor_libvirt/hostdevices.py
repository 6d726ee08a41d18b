"""A domain's devices beyond disks and NICs: the host's node devices as values, what the host can give a guest
(a TPM, its CPU's virtualization extensions, PCI and USB devices), and a spec's requests checked and planned.

What the host can do is read from libvirt's domain capabilities (``getDomainCapabilities``) at connect:

* ``tpm``: ``<tpm supported='yes'>`` with the ``emulator`` backend model, which libvirt lists only when it finds
  swtpm (Debian: packages swtpm and swtpm-tools);
* ``nested-virtualization``: KVM must be usable (TCG, QEMU's emulator, offers no VT-x, and under libvirt's
  ``qemu`` domain type ``host-passthrough`` is ``supported='no'``), ``host-passthrough`` supported, the host CPU
  must have ``vmx`` or ``svm`` and, locally, the KVM module's ``nested`` parameter must be on;
* ``pci-passthrough``: the ``vfio`` PCI backend, which libvirt lists only when the host's IOMMU is on;
* ``usb-passthrough``: ``usb`` among the hostdev subsystem types;
* ``host-devices``: the node device driver answers ``listAllDevices``.

Each feature a probe takes away gets its reason (:attr:`~polyvisor.backend.Backend.feature_reasons`). libvirt's
test driver keeps whatever a definition holds, so there every device option is declared: a custom test driver file
(``test:///path/to/host.xml``) with ``<device>`` elements gives it node devices to list.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from polyvisor.errors import UnsupportedError, ValidationError
from polyvisor.model import Feature, HostDevice, HostDeviceKind, VMSpec
from polyvisor_libvirt.devicexml import Hostdev, hostdev_matches, parse_device_facts
from polyvisor_libvirt.domainxml import DomainPlan
from polyvisor_libvirt.probe import HostCaps, kvm_usable

if TYPE_CHECKING:
    from polyvisor_libvirt.client import LibvirtClient

__all__ = ["DEVICE_FEATURES", "DeviceCaps", "HostDevices", "probe_device_caps"]

F = Feature
DEVICE_FEATURES = frozenset({F.TPM, F.NESTED_VIRTUALIZATION, F.HOST_DEVICES, F.PCI_PASSTHROUGH, F.USB_PASSTHROUGH})
_QEMU = ("qemu", "kvm")
_PCI_BRIDGE_CLASS = 0x06  # PCI class 06: bridges, which carry other devices and are never assigned
_NESTED_PARAMETERS = ("/sys/module/kvm_intel/parameters/nested", "/sys/module/kvm_amd/parameters/nested")


@dataclass(frozen=True, slots=True)
class DeviceCaps:
    """What the host can give a guest, probed at connect, with the reason for each feature it cannot."""

    features: frozenset[Feature] = frozenset()
    reasons: dict[Feature, str] = field(default_factory=dict)
    virt_type: str = "qemu"
    cpu_feature: str | None = None
    """``vmx`` (Intel) or ``svm`` (AMD), when the host CPU has one."""


def _domcaps(conn: libvirt.virConnect, arch: str, virt_type: str) -> ET.Element | None:
    try:
        return ET.fromstring(conn.getDomainCapabilities(None, arch, None, virt_type, 0))
    except (libvirt.libvirtError, ET.ParseError):
        return None


def _values(root: ET.Element | None, path: str) -> set[str]:
    return {value.text or "" for value in root.iterfind(path)} if root is not None else set()


def _host_cpu_feature(conn: libvirt.virConnect) -> str | None:
    with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
        cpu = ET.fromstring(conn.getCapabilities()).find("host/cpu")
        names = {feature.get("name") for feature in cpu.iter("feature")} if cpu is not None else set()
        return next((name for name in ("vmx", "svm") if name in names), None)
    return None


def _kvm_nested_on() -> bool | None:
    """The local KVM module's ``nested`` parameter (None: no KVM module loaded)."""
    for path in _NESTED_PARAMETERS:
        with contextlib.suppress(OSError):
            return Path(path).read_text().strip() in ("Y", "1")
    return None


def probe_device_caps(client: LibvirtClient, caps: HostCaps) -> DeviceCaps:
    """Probe what this connection's host can give a guest (see the module docstring)."""
    conn, uri = client.conn, client.uri
    features: set[Feature] = set()
    reasons: dict[Feature, str] = {}
    try:
        conn.listAllDevices(0)
        features.add(F.HOST_DEVICES)
    except libvirt.libvirtError as error:
        reasons[F.HOST_DEVICES] = f"libvirt lists no node devices here ({error.get_error_message()})"
    if uri.driver == "test":
        return DeviceCaps(frozenset(features | {F.TPM, F.NESTED_VIRTUALIZATION, F.PCI_PASSTHROUGH, F.USB_PASSTHROUGH}))
    if uri.driver not in _QEMU:
        why = f"polyvisor passes devices to QEMU/KVM guests only, not to libvirt's {uri.driver!r} driver"
        return DeviceCaps(frozenset(), dict.fromkeys(DEVICE_FEATURES, why))
    kvm = kvm_usable(conn, local=uri.is_local, arch=caps.arch)
    virt_type = "kvm" if kvm else "qemu"
    root = _domcaps(conn, caps.arch, virt_type)
    if "emulator" in _values(root, "devices/tpm[@supported='yes']/enum[@name='backendModel']/value"):
        features.add(F.TPM)
    else:
        reasons[F.TPM] = (
            "libvirt offers no TPM emulator here: install swtpm (Debian packages swtpm and swtpm-tools) on the host "
            "and restart libvirtd"
        )
    if "vfio" in _values(root, "devices/hostdev[@supported='yes']/enum[@name='pciBackend']/value"):
        features.add(F.PCI_PASSTHROUGH)
    else:
        reasons[F.PCI_PASSTHROUGH] = (
            "libvirt offers no VFIO PCI backend here: the host's IOMMU is off or missing (boot with intel_iommu=on "
            "or amd_iommu=on) or vfio-pci is not loaded"
        )
    if "usb" in _values(root, "devices/hostdev[@supported='yes']/enum[@name='subsysType']/value"):
        features.add(F.USB_PASSTHROUGH)
    else:
        reasons[F.USB_PASSTHROUGH] = "libvirt's domain capabilities list no USB host devices here"
    if F.HOST_DEVICES not in features:
        features -= {F.PCI_PASSTHROUGH, F.USB_PASSTHROUGH}
    cpu_feature = _host_cpu_feature(conn)
    nested_reason = _nested_reason(kvm, root, cpu_feature, local=uri.is_local)
    if nested_reason is None:
        features.add(F.NESTED_VIRTUALIZATION)
    else:
        reasons[F.NESTED_VIRTUALIZATION] = nested_reason
    return DeviceCaps(frozenset(features), reasons, virt_type, cpu_feature)


def _nested_reason(kvm: bool, root: ET.Element | None, cpu_feature: str | None, *, local: bool) -> str | None:
    if not kvm:
        return (
            "nested virtualization needs KVM, and KVM is not usable on this host, so guests run under TCG (QEMU's "
            "emulator), which offers them no VT-x and for which libvirt supports no host-passthrough CPU"
        )
    if root is None or root.find("cpu/mode[@name='host-passthrough'][@supported='yes']") is None:
        return "libvirt's domain capabilities say the host CPU cannot be passed through (host-passthrough)"
    if cpu_feature is None:
        return "the host CPU has neither vmx (Intel VT-x) nor svm (AMD-V) to pass on"
    if local and _kvm_nested_on() is False:
        return "the KVM module's nested parameter is off (modprobe kvm_intel nested=1, or kvm_amd nested=1)"
    return None


def _int(text: str | None) -> int:
    try:
        return int(text or "0", 0)
    except ValueError:
        return 0


def _node_device(xml: str) -> tuple[HostDevice, Hostdev] | None:
    """A PCI or USB node device as a value, and as a domain's ``<hostdev>`` names it (None for anything else)."""
    root = ET.fromstring(xml)
    name = root.findtext("name", "")
    for cap in root.iterfind("capability"):
        kind = cap.get("type")
        vendor, product = cap.find("vendor"), cap.find("product")
        ids = (vendor.get("id", "") if vendor is not None else "", product.get("id", "") if product is not None else "")
        words = " ".join(part.text.strip() for part in (vendor, product) if part is not None and part.text)
        if kind == "pci":
            if _int(cap.findtext("class")) >> 16 == _PCI_BRIDGE_CLASS:
                return None
            pci = tuple(_int(cap.findtext(key)) for key in ("domain", "bus", "slot", "function"))
            address = "{:04x}:{:02x}:{:02x}.{:x}".format(*pci)
            value = HostDevice(name, HostDeviceKind.PCI, words, address, *ids)
            return value, Hostdev(name, HostDeviceKind.PCI, pci=pci)  # type: ignore[arg-type]  # four ints
        if kind == "usb_device":
            where = (_int(cap.findtext("bus")), _int(cap.findtext("device")))
            value = HostDevice(name, HostDeviceKind.USB, words, f"{where[0]:03d}:{where[1]:03d}", *ids)
            return value, Hostdev(name, HostDeviceKind.USB, usb_ids=ids, usb_address=where)
    return None


class HostDevices:
    """The host's node devices and what a spec asks of the domain's devices, over one client."""

    def __init__(self, client: LibvirtClient, caps: DeviceCaps) -> None:
        self._client = client
        self._caps = caps

    def _listing(self) -> list[tuple[HostDevice, Hostdev]]:
        conn = self._client.live()
        flags = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_USB_DEV
        with self._client.errors("listing host devices", host=self._client.host):
            found = [_node_device(device.XMLDesc(0)) for device in conn.listAllDevices(flags)]
        return sorted((item for item in found if item is not None), key=lambda item: item[0].name)

    def _users(self) -> list[tuple[str, tuple[str, ...], tuple[Hostdev, ...]]]:
        """Each domain's name, the device names polyvisor recorded for it, and its ``<hostdev>`` elements."""
        conn = self._client.live()
        users = []
        with self._client.errors("reading which VMs have host devices", host=self._client.host):
            for dom in conn.listAllDomains(0):
                with contextlib.suppress(libvirt.libvirtError):  # undefined meanwhile
                    facts = parse_device_facts(ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
                    if facts.hostdevs or facts.host_devices:
                        users.append((dom.name(), facts.host_devices, facts.hostdevs))
        return users

    def host_devices(self) -> list[HostDevice]:
        """Every PCI (bridges left out) and USB node device, each with the domain whose ``<hostdev>`` is it."""
        users = self._users()
        out = []
        for value, hostdev in self._listing():
            user = next(
                (
                    name
                    for name, named, used in users
                    if value.name in named or any(hostdev_matches(u, hostdev) for u in used)
                ),
                None,
            )
            out.append(replace(value, used_by=user))
        return out

    def plan(self, spec: VMSpec, plan: DomainPlan) -> DomainPlan:
        """Add the spec's TPM, nested CPU and host devices to a plan, refusing (before anything is defined) what the
        domain cannot have: nested virtualization under TCG, a TPM model or emulator QEMU lacks for this guest."""
        host = self._client.host
        if spec.nested_virtualization:
            if self._client.uri.driver in _QEMU and plan.domain_type != "kvm":
                raise UnsupportedError(
                    "nested virtualization needs KVM, and this VM would run under TCG (QEMU's emulator: "
                    f"accelerator={spec.accelerator!r}, arch {plan.arch}), which offers no VT-x; drop "
                    "nested_virtualization or run the guest under KVM",
                    feature=Feature.NESTED_VIRTUALIZATION,
                    host=host,
                    vm=spec.name,
                )
            plan = replace(plan, nested_cpu_feature=self._caps.cpu_feature or "vmx", cpu_model=None)
        if spec.tpm is not None:
            model = spec.tpm.model.value if spec.tpm.model is not None else None
            if self._client.uri.driver in _QEMU:
                self._check_tpm(spec, plan, plan.machine, model)
            plan = replace(plan, tpm_version=spec.tpm.version, tpm_model=model)
        if spec.host_devices:
            listed = {value.name: hostdev for value, hostdev in self._listing()}
            missing = [name for name in spec.host_devices if name not in listed]
            if missing:
                raise ValidationError(f"the host lists no device named {missing[0]!r} any more", field="host_devices")
            plan = replace(plan, hostdevs=tuple(listed[name] for name in spec.host_devices))
        return plan

    def _check_tpm(self, spec: VMSpec, plan: DomainPlan, machine: str | None, model: str | None) -> None:
        conn = self._client.live()
        try:
            root = ET.fromstring(conn.getDomainCapabilities(None, plan.arch, machine, plan.domain_type, 0))
        except (libvirt.libvirtError, ET.ParseError) as error:
            raise UnsupportedError(
                f"libvirt cannot say whether a {plan.arch} guest can have a TPM here: {error}",
                feature=Feature.TPM,
                host=self._client.host,
                vm=spec.name,
            ) from error
        tpm = "devices/tpm[@supported='yes']/enum"
        if "emulator" not in _values(root, f"{tpm}[@name='backendModel']/value"):
            raise UnsupportedError(
                f"QEMU offers no emulated TPM to {plan.arch} guests of machine {machine or 'default'} here",
                feature=Feature.TPM,
                host=self._client.host,
                vm=spec.name,
            )
        models = sorted(_values(root, f"{tpm}[@name='model']/value"))
        if model is not None and model not in models:
            raise ValidationError(
                f"{model!r} is not a TPM model QEMU offers {plan.arch} guests of machine {machine or 'default'} here "
                f"(it offers {', '.join(models) or 'none'}); pick one of those or leave the model out",
                field="tpm.model",
            )
