"""Domain, device and metadata XML: built with ElementTree (never by formatting strings) and parsed back.

Labels live in ``<metadata>`` under :data:`LABELS_NS` as ``<label key="..." value="..."/>``: keys and values are
attributes, so newlines, tabs and carriage returns survive (XML escapes them as character references). The volumes
polyvisor created for a VM are recorded under :data:`STORAGE_NS` (new disks, clones of base images, cloud-init
seeds), so ``delete(storage=True)`` removes those and never an image the user brought or a clone's base. A dynamic
memory minimum (libvirt has none of its own: ``<memory>`` is the maximum, ``<currentMemory>`` the balloon's size) is
recorded under :data:`MEMORY_NS`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from polyvisor.errors import BackendError, ValidationError
from polyvisor.model import BootDevice, DiskBus, GraphicsProtocol, GraphicsSpec, KernelBoot, PortForward, VideoModel
from polyvisor_libvirt import devicexml
from polyvisor_libvirt.devicexml import DeviceFacts, Hostdev

__all__ = [
    "LABELS_NS",
    "LABELS_PREFIX",
    "MEMORY_NS",
    "MEMORY_PREFIX",
    "SNAPSHOT_NS",
    "SNAPSHOT_PREFIX",
    "STORAGE_NS",
    "STORAGE_PREFIX",
    "Definition",
    "DiskDevice",
    "DomainPlan",
    "GraphicsDevice",
    "NicDevice",
    "build_domain",
    "disk_element",
    "graphics_element",
    "labels_xml",
    "memory_xml",
    "nic_element",
    "owned_xml",
    "parse_definition",
    "parse_forwards",
    "parse_graphics",
    "parse_labels",
    "parse_owned",
    "snapshot_marker_xml",
    "snapshot_wants_memory",
    "snapshot_xml",
    "to_text",
    "vcpus_element",
]

LABELS_NS = "https://polyvisor.dev/xmlns/labels/1"
LABELS_PREFIX = "polyvisor"
STORAGE_NS = "https://polyvisor.dev/xmlns/storage/1"
SNAPSHOT_NS = "https://polyvisor.dev/xmlns/snapshot/1"
"""A marker the domain carries while a snapshot is taken, so the snapshot's own copy of the domain records it."""
SNAPSHOT_PREFIX = "pvsnap"
STORAGE_PREFIX = "polyvisor-storage"
MEMORY_NS = "https://polyvisor.dev/xmlns/memory/1"
"""Where a dynamic-memory minimum is kept (``<dynamic minimum-mib="..."/>``)."""
MEMORY_PREFIX = "polyvisor-memory"

# Readable prefixes in the XML libvirt stores; libvirt keys metadata by namespace URI, not by prefix.
ET.register_namespace(LABELS_PREFIX, LABELS_NS)
ET.register_namespace(STORAGE_PREFIX, STORAGE_NS)
ET.register_namespace(SNAPSHOT_PREFIX, SNAPSHOT_NS)
ET.register_namespace(MEMORY_PREFIX, MEMORY_NS)

_BOOT_DEV = {BootDevice.DISK: "hd", BootDevice.CDROM: "cdrom", BootDevice.NETWORK: "network"}
_TARGET_PREFIX = {DiskBus.VIRTIO: "vd", DiskBus.SCSI: "sd", DiskBus.SATA: "sd", DiskBus.IDE: "hd"}


def to_text(element: ET.Element) -> str:
    """Serialize an element to a string."""
    return ET.tostring(element, encoding="unicode")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def target_name(bus: DiskBus, index: int) -> str:
    """Return the ``index``-th target name on a bus: vda, vdb, ..., vdz, vdaa."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return _TARGET_PREFIX[bus] + letters


@dataclass(frozen=True, slots=True)
class DiskDevice:
    """A resolved disk: a file path (or block device) with its format, bus and target."""

    path: str
    target: str
    bus: str
    format: str | None = None
    device: str = "disk"
    readonly: bool = False
    boot_order: int | None = None


@dataclass(frozen=True, slots=True)
class NicDevice:
    """A resolved NIC: on a libvirt network, or user-mode (``network`` None) with its port forwards."""

    network: str | None
    mac: str | None
    model: str
    forwards: tuple[PortForward, ...] = ()


@dataclass(frozen=True, slots=True)
class DomainPlan:
    """Everything resolved against the host before the domain XML is written."""

    uuid: str
    name: str
    domain_type: str
    os_type: str
    arch: str | None
    cpus: int
    memory_mib: int
    """The maximum memory (``<memory>``); the VM starts with ``current_memory_mib`` when that is set."""
    machine: str | None = None
    disks: tuple[DiskDevice, ...] = ()
    nics: tuple[NicDevice, ...] = ()
    boot_order: tuple[BootDevice, ...] = ()
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    owned_volumes: tuple[str, ...] = ()
    kernel: KernelBoot | None = None
    uefi: bool = False
    secure_boot: bool = False
    acpi: bool = False
    serial_log: str | None = None
    guest_agent: bool = False
    cpu_model: str | None = None
    hotplug_ports: int = 0
    """Spare PCIe root ports (q35): each hot-plugged PCIe device needs a free one."""
    scsi_controller: str | None = None
    """The model of the SCSI controller (``virtio-scsi``) when the domain has SCSI devices, else libvirt's choice."""
    max_cpus: int | None = None
    """The vCPU maximum (``<vcpu>``) when above ``cpus`` (then ``<vcpu current=cpus>``)."""
    current_memory_mib: int | None = None
    """``<currentMemory>``: the balloon's size at start, when below ``memory_mib``."""
    memory_minimum_mib: int | None = None
    """A dynamic-memory minimum, kept in polyvisor's metadata and enforced by :meth:`reconfigure`."""
    hotpluggable_cpus: bool = False
    """List each vCPU in ``<vcpus>``, every one but the first hot-pluggable (QEMU unplugs only those)."""
    graphics: GraphicsSpec | None = None
    """The graphical console (``<graphics>``); None or protocol ``none`` adds none."""
    video: VideoModel | None = None
    """The display adapter (``<video><model type=...>``); None leaves libvirt's default."""
    tpm_version: str | None = None
    """A TPM of this version, emulated by swtpm (:mod:`.devicexml`)."""
    tpm_model: str | None = None
    nested_cpu_feature: str | None = None
    """``vmx`` or ``svm``: pass the host's CPU through and require its virtualization extension (nested)."""
    hostdevs: tuple[Hostdev, ...] = ()
    """Host devices given to the domain."""


def disk_element(disk: DiskDevice) -> ET.Element:
    """Return a ``<disk>`` element for a file-backed disk or CD-ROM."""
    element = ET.Element("disk", {"type": "file", "device": disk.device})
    if disk.format:
        _sub(element, "driver", name="qemu", type=disk.format)
    _sub(element, "source", file=disk.path)
    _sub(element, "target", dev=disk.target, bus=disk.bus)
    if disk.readonly or disk.device == "cdrom":
        _sub(element, "readonly")
    if disk.boot_order is not None:
        _sub(element, "boot", order=str(disk.boot_order))
    return element


def nic_element(nic: NicDevice) -> ET.Element:
    """Return an ``<interface type='network'>`` element, or ``<interface type='user'>`` with its forwards.

    A forward is libvirt's own ``<portForward proto address><range start to/></portForward>``: libvirt 9.0 keeps
    it in the definition whatever the backend, and hands it only to passt itself (see :mod:`.forwards`).
    """
    element = ET.Element("interface", {"type": "network" if nic.network is not None else "user"})
    if nic.mac:
        _sub(element, "mac", address=nic.mac)
    if nic.network is not None:
        _sub(element, "source", network=nic.network)
    for forward in nic.forwards:
        rule = _sub(element, "portForward", proto=forward.protocol, address=forward.host_address)
        _sub(rule, "range", start=str(forward.host_port), to=str(forward.guest_port))
    _sub(element, "model", type=nic.model)
    return element


def parse_forwards(interface: ET.Element) -> tuple[PortForward, ...]:
    """The forwards of an ``<interface>``: one per ``<range>`` of its ``<portForward>`` elements.

    A range with an ``end`` (many ports), or one without ``to`` (the same port in the guest), is read as libvirt
    means it; a rule polyvisor cannot represent (no address, a port out of range) is left out.
    """
    found: list[PortForward] = []
    for rule in interface.findall("portForward"):
        for span in rule.findall("range"):
            try:
                start = int(span.get("start", ""))
                end = int(span.get("end") or start)
                to = int(span.get("to") or start)
                for offset in range(end - start + 1):
                    found.append(
                        PortForward(start + offset, to + offset, rule.get("proto", "tcp"), rule.get("address", ""))
                    )
            except (ValueError, ValidationError):
                continue
    return tuple(found)


def vcpus_element(current: int, maximum: int) -> ET.Element:
    """``<vcpus>``: vCPU 0 fixed, the others hot-pluggable (QEMU can unplug only vCPUs libvirt marks so), the first
    ``current`` enabled."""
    element = ET.Element("vcpus")
    for index in range(maximum):
        _sub(
            element,
            "vcpu",
            id=str(index),
            enabled="yes" if index < current else "no",
            hotpluggable="no" if index == 0 else "yes",
        )
    return element


def labels_xml(labels: Mapping[str, str]) -> str:
    """Return the labels metadata element (libvirt puts it in :data:`LABELS_NS`)."""
    root = ET.Element("labels")
    for key, value in sorted(labels.items()):
        _sub(root, "label", key=key, value=value)
    return to_text(root)


def memory_xml(minimum_mib: int) -> str:
    """Return the memory metadata element recording a dynamic-memory minimum (libvirt puts it in :data:`MEMORY_NS`)."""
    return to_text(ET.Element("dynamic", {"minimum-mib": str(minimum_mib)}))


def owned_xml(paths: Sequence[str]) -> str:
    """Return the storage metadata element listing volumes polyvisor created."""
    root = ET.Element("volumes")
    for path in paths:
        _sub(root, "volume", path=path)
    return to_text(root)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_labels(element: ET.Element | None) -> dict[str, str]:
    """Return the labels stored in a labels metadata element (with or without its namespace)."""
    if element is None:
        return {}
    labels = {}
    for child in element:
        if _local(child.tag) == "label" and child.get("key") is not None:
            labels[child.get("key", "")] = child.get("value", "")
    return labels


def parse_owned(element: ET.Element | None) -> tuple[str, ...]:
    """Return the volume paths listed in a storage metadata element."""
    if element is None:
        return ()
    return tuple(child.get("path", "") for child in element if _local(child.tag) == "volume" and child.get("path"))


def build_domain(plan: DomainPlan) -> str:
    """Return the domain XML for a plan."""
    domain = ET.Element("domain", {"type": plan.domain_type})
    _sub(domain, "name", plan.name)
    _sub(domain, "uuid", plan.uuid)
    if plan.description:
        _sub(domain, "description", plan.description)
    metadata = _sub(domain, "metadata")
    if plan.labels:
        labels = _sub(metadata, f"{{{LABELS_NS}}}labels")
        for key, value in sorted(plan.labels.items()):
            _sub(labels, f"{{{LABELS_NS}}}label", key=key, value=value)
    if plan.owned_volumes:
        volumes = _sub(metadata, f"{{{STORAGE_NS}}}volumes")
        for path in plan.owned_volumes:
            _sub(volumes, f"{{{STORAGE_NS}}}volume", path=path)
    if plan.memory_minimum_mib is not None:
        _sub(metadata, f"{{{MEMORY_NS}}}dynamic", **{"minimum-mib": str(plan.memory_minimum_mib)})
    if plan.hostdevs:
        metadata.append(devicexml.names_element(tuple(device.name for device in plan.hostdevs)))
    _sub(domain, "memory", str(plan.memory_mib * 1024), unit="KiB")
    current = plan.current_memory_mib if plan.current_memory_mib is not None else plan.memory_mib
    _sub(domain, "currentMemory", str(current * 1024), unit="KiB")
    maximum = max(plan.max_cpus or plan.cpus, plan.cpus)
    if maximum > plan.cpus:
        _sub(domain, "vcpu", str(maximum), current=str(plan.cpus))
    else:
        _sub(domain, "vcpu", str(plan.cpus))
    if plan.hotpluggable_cpus and maximum > 1:
        domain.append(vcpus_element(plan.cpus, maximum))

    os_attrs = {"firmware": "efi"} if plan.uefi else {}
    os_element = _sub(domain, "os", **os_attrs)
    type_attrs = {}
    if plan.arch:
        type_attrs["arch"] = plan.arch
    if plan.machine:
        type_attrs["machine"] = plan.machine
    _sub(os_element, "type", plan.os_type, **type_attrs)
    if plan.uefi:
        firmware = _sub(os_element, "firmware")
        enabled = "yes" if plan.secure_boot else "no"
        _sub(firmware, "feature", enabled=enabled, name="secure-boot")
        if plan.secure_boot:
            _sub(firmware, "feature", enabled="yes", name="enrolled-keys")
            _sub(os_element, "loader", secure="yes")
    if plan.kernel is not None:
        _sub(os_element, "kernel", plan.kernel.kernel)
        if plan.kernel.initrd:
            _sub(os_element, "initrd", plan.kernel.initrd)
        if plan.kernel.cmdline:
            _sub(os_element, "cmdline", plan.kernel.cmdline)
    for device in plan.boot_order:
        _sub(os_element, "boot", dev=_BOOT_DEV[device])

    if plan.acpi or plan.secure_boot:
        features = _sub(domain, "features")
        if plan.acpi:
            _sub(features, "acpi")
            _sub(features, "apic")
        if plan.secure_boot:
            _sub(features, "smm", state="on")

    if plan.nested_cpu_feature:
        cpu = _sub(domain, "cpu", mode="host-passthrough", check="none")
        _sub(cpu, "feature", policy="require", name=plan.nested_cpu_feature)
    elif plan.cpu_model:
        cpu = _sub(domain, "cpu", mode="custom", match="exact")
        _sub(cpu, "model", plan.cpu_model, fallback="forbid")

    devices = _sub(domain, "devices")
    for disk in plan.disks:
        devices.append(disk_element(disk))
    for nic in plan.nics:
        devices.append(nic_element(nic))
    if plan.scsi_controller:
        _sub(devices, "controller", type="scsi", index="0", model=plan.scsi_controller)
    if plan.hotplug_ports:
        # Once any PCI controller is given, libvirt wants the root named too; it numbers the ports itself and
        # still adds the ones the defined devices need.
        _sub(devices, "controller", type="pci", index="0", model="pcie-root")
        for _ in range(plan.hotplug_ports):
            _sub(devices, "controller", type="pci", model="pcie-root-port")
    if plan.tpm_version:
        devices.append(devicexml.tpm_element(plan.tpm_version, plan.tpm_model))
    for hostdev in plan.hostdevs:
        devices.append(devicexml.hostdev_element(hostdev))
    if plan.serial_log:
        serial = _sub(devices, "serial", type="pty")
        _sub(serial, "log", file=plan.serial_log, append="on")
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="pty")
        _sub(console, "target", type="serial", port="0")
    if plan.guest_agent:
        channel = _sub(devices, "channel", type="unix")
        _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    if plan.graphics is not None and plan.graphics.protocol is not GraphicsProtocol.NONE:
        devices.append(graphics_element(plan.graphics))
    if plan.video is not None:
        _sub(_sub(devices, "video"), "model", type=plan.video.value)
    return to_text(domain)


def graphics_element(graphics: GraphicsSpec) -> ET.Element:
    """``<graphics type='vnc|spice'>`` listening on one address; the password goes in as an attribute value."""
    fixed = graphics.port is not None
    attrs = {"type": graphics.protocol.value, "autoport": "no" if fixed else "yes"}
    if fixed:
        attrs["port"] = str(graphics.port)
    if graphics.password is not None:
        attrs["passwd"] = graphics.password.reveal()
    element = ET.Element("graphics", attrs)
    _sub(element, "listen", type="address", address=graphics.listen_address)
    return element


@dataclass(frozen=True, slots=True)
class GraphicsDevice:
    """A ``<graphics>`` element as a running domain's XML describes it (never its password)."""

    protocol: str
    port: int
    """The port it listens on; -1 while the domain is off and the port automatic."""
    listen: str
    tls_port: int | None = None
    password: bool | None = None
    """Whether a password is set (None: the XML was read without the secure flag, which drops ``passwd``)."""


def parse_graphics(root: ET.Element, *, secure: bool) -> tuple[GraphicsDevice, ...]:
    """The VNC and SPICE consoles of a domain's XML (read with ``VIR_DOMAIN_XML_SECURE`` when ``secure``)."""
    found = []
    for element in root.findall("devices/graphics"):
        if element.get("type") not in ("vnc", "spice"):
            continue
        listen = element.find("listen[@type='address']")
        address = (listen.get("address") if listen is not None else None) or element.get("listen") or "127.0.0.1"
        tls = _int(element.get("tlsPort"), -1)
        found.append(
            GraphicsDevice(
                protocol=element.get("type", ""),
                port=_int(element.get("port"), -1),
                listen=address,
                tls_port=tls if tls > 0 else None,
                password=("passwd" in element.attrib) if secure else None,
            )
        )
    return tuple(found)


@dataclass(frozen=True, slots=True)
class DiskInfo:
    """A disk as the domain XML describes it."""

    target: str
    device: str
    path: str | None
    format: str | None
    pool: str | None = None
    volume: str | None = None
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class NicInfo:
    """A NIC as the domain XML describes it."""

    mac: str
    network: str | None
    target: str | None
    kind: str = "network"
    """The ``<interface>``'s type (``network``, ``user``, ``bridge``, ...)."""
    forwards: tuple[PortForward, ...] = ()
    alias: str | None = None
    """The device alias of a running domain (``net0``); QEMU's netdev is ``host`` + alias."""
    passt: bool = False
    """Whether libvirt runs passt for it (``<backend type='passt'/>``), which then sets the forwards itself."""


@dataclass(frozen=True, slots=True)
class Definition:
    """The facts polyvisor reads from a domain's XML."""

    name: str
    uuid: str
    domain_type: str
    cpus: int
    """vCPUs at start (``<vcpu current=...>``, else the maximum)."""
    memory_mib: int
    """The maximum memory (``<memory>``)."""
    arch: str | None
    description: str
    labels: Mapping[str, str]
    owned_volumes: tuple[str, ...]
    disks: tuple[DiskInfo, ...]
    nics: tuple[NicInfo, ...]
    serial_logs: tuple[str, ...]
    guest_agent: bool
    uefi: bool
    max_cpus: int = 0
    """The vCPU maximum (``<vcpu>``'s text)."""
    current_memory_mib: int = 0
    """``<currentMemory>``: in a running domain's XML, the balloon's size as libvirt last learnt it."""
    memory_minimum_mib: int | None = None
    """The dynamic-memory minimum polyvisor recorded, if any."""
    balloon: bool = True
    """Whether a memory balloon is defined (libvirt adds one unless ``<memballoon model='none'/>``)."""
    console_pty: bool = False
    """Whether a serial port or console is backed by a pty, which ``virDomainOpenConsole`` can stream."""
    graphics: tuple[GraphicsDevice, ...] = ()
    """Its VNC and SPICE consoles."""
    video_models: tuple[str, ...] = ()
    """The models of its display adapters (``<video><model type>``)."""
    devices: DeviceFacts = field(default_factory=DeviceFacts)
    """Its TPM, CPU mode and host devices (:mod:`.devicexml`)."""


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


_MEMORY_UNITS = {"b": 1 / 1024**2, "bytes": 1 / 1024**2, "k": 1 / 1024, "kib": 1 / 1024, "kb": 1 / 1024}
_MEMORY_UNITS.update({"m": 1, "mib": 1, "mb": 1, "g": 1024, "gib": 1024, "gb": 1024})


def _memory_mib(element: ET.Element | None) -> int:
    if element is None:
        return 0
    unit = (element.get("unit") or "KiB").lower()
    return int(_int(element.text) * _MEMORY_UNITS.get(unit, 1 / 1024))


def parse_definition(xml: str) -> Definition:
    """Parse a domain's XML into the facts polyvisor reports."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise BackendError(f"libvirt returned unreadable domain XML: {error}", code="xml") from error
    metadata = root.find("metadata")
    labels_el = metadata.find(f"{{{LABELS_NS}}}labels") if metadata is not None else None
    owned_el = metadata.find(f"{{{STORAGE_NS}}}volumes") if metadata is not None else None
    memory_el = metadata.find(f"{{{MEMORY_NS}}}dynamic") if metadata is not None else None
    minimum = _int(memory_el.get("minimum-mib")) if memory_el is not None else 0
    vcpu = root.find("vcpu")
    max_cpus = _int(vcpu.text if vcpu is not None else None, 1)
    current_cpus = _int(vcpu.get("current"), max_cpus) if vcpu is not None else max_cpus
    memory_mib = _memory_mib(root.find("memory"))
    current_memory = root.find("currentMemory")
    balloon = root.find("devices/memballoon")
    os_type = root.find("os/type")
    disks = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        target = disk.find("target")
        driver = disk.find("driver")
        path = None
        pool = volume = None
        if source is not None:
            path = source.get("file") or source.get("dev")
            pool, volume = source.get("pool"), source.get("volume")
        disks.append(
            DiskInfo(
                target=target.get("dev", "") if target is not None else "",
                device=disk.get("device", "disk"),
                path=path,
                format=driver.get("type") if driver is not None else None,
                pool=pool,
                volume=volume,
                readonly=disk.find("readonly") is not None,
            )
        )
    nics = []
    for nic in root.findall("devices/interface"):
        mac = nic.find("mac")
        source = nic.find("source")
        target = nic.find("target")
        alias = nic.find("alias")
        nics.append(
            NicInfo(
                mac=(mac.get("address", "") if mac is not None else "").lower(),
                network=source.get("network") if source is not None else None,
                target=target.get("dev") if target is not None else None,
                kind=nic.get("type", "network"),
                forwards=parse_forwards(nic),
                alias=alias.get("name") if alias is not None else None,
                passt=nic.find("backend[@type='passt']") is not None,
            )
        )
    logs: list[str] = []
    for serial in root.findall("devices/serial"):
        log = serial.find("log")
        source = serial.find("source")
        if log is not None and log.get("file"):
            logs.append(log.get("file", ""))
        elif serial.get("type") == "file" and source is not None and source.get("path"):
            logs.append(source.get("path", ""))
    console_pty = any(device.get("type") == "pty" for device in root.findall("devices/serial"))
    console_pty = console_pty or any(device.get("type") == "pty" for device in root.findall("devices/console"))
    agent = any(
        (target := channel.find("target")) is not None and target.get("name") == "org.qemu.guest_agent.0"
        for channel in root.findall("devices/channel")
    )
    os_element = root.find("os")
    uefi = os_element is not None and (
        os_element.get("firmware") == "efi"
        or (os_element.find("loader") is not None and os_element.find("loader").get("type") == "pflash")  # type: ignore[union-attr]
    )
    return Definition(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        domain_type=root.get("type", ""),
        cpus=current_cpus,
        memory_mib=memory_mib,
        arch=os_type.get("arch") if os_type is not None else None,
        description=root.findtext("description", ""),
        labels=parse_labels(labels_el),
        owned_volumes=parse_owned(owned_el),
        disks=tuple(disks),
        nics=tuple(nics),
        serial_logs=tuple(logs),
        guest_agent=agent,
        uefi=uefi,
        max_cpus=max_cpus,
        current_memory_mib=_memory_mib(current_memory) if current_memory is not None else memory_mib,
        memory_minimum_mib=minimum or None,
        balloon=balloon is None or balloon.get("model") != "none",
        console_pty=console_pty,
        graphics=parse_graphics(root, secure=False),
        video_models=tuple(model.get("type", "") for model in root.findall("devices/video/model")),
        devices=devicexml.parse_device_facts(root),
    )


def snapshot_marker_xml(name: str, *, memory: bool) -> str:
    """Return the metadata element recording how polyvisor was asked to take snapshot ``name``."""
    root = ET.Element("snapshot", name=name, memory="yes" if memory else "no")
    return to_text(root)  # libvirt puts it in SNAPSHOT_NS


def snapshot_wants_memory(snapshot: ET.Element) -> bool | None:
    """Return the memory choice recorded inside a ``<domainsnapshot>``'s domain copy, if polyvisor recorded one."""
    name = snapshot.findtext("name")
    for marker in snapshot.iterfind(f"domain/metadata/{{{SNAPSHOT_NS}}}snapshot"):
        if marker.get("name") == name:
            return marker.get("memory") == "yes"
    return None


def snapshot_xml(name: str, description: str, *, memory: bool, running: bool) -> str:
    """Return ``<domainsnapshot>`` XML; ``memory`` asks for the guest's memory to be kept too."""
    root = ET.Element("domainsnapshot")
    _sub(root, "name", name)
    if description:
        _sub(root, "description", description)
    if running:
        _sub(root, "memory", snapshot="internal" if memory else "no")
    return to_text(root)
