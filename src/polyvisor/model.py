"""The domain model: power states, statuses, VM specs, snapshots, host facts and capabilities.

Everything here is a frozen value object. Specs validate themselves on construction, so an invalid spec raises
:class:`~polyvisor.errors.ValidationError` before any backend is called.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import os
import re
import uuid as uuid_module
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

from polyvisor.errors import UnsupportedError, ValidationError

__all__ = [
    "VNC_PASSWORD_LIMIT",
    "AddressAnswer",
    "Architecture",
    "BootDevice",
    "Capabilities",
    "CloneMode",
    "CloudInit",
    "DetailsNotLoaded",
    "DiskBus",
    "DiskFormat",
    "DiskInfo",
    "DiskSpec",
    "DynamicMemory",
    "Event",
    "EventKind",
    "Feature",
    "Firmware",
    "GraphicsInfo",
    "GraphicsProtocol",
    "GraphicsSpec",
    "GuestAddress",
    "GuestArchitecture",
    "HostDevice",
    "HostDeviceKind",
    "HostInfo",
    "KernelBoot",
    "NetworkInfo",
    "NetworkMode",
    "NicKind",
    "NicSpec",
    "PortForward",
    "PowerState",
    "Readiness",
    "ReadyAnswer",
    "Secret",
    "ShutdownMode",
    "Snapshot",
    "SnapshotTree",
    "TpmModel",
    "TpmSpec",
    "VMDetails",
    "VMInfo",
    "VMSpec",
    "VMStatus",
    "VideoModel",
    "device_facts",
    "parse_graphics",
    "parse_video",
]


class PowerState(enum.StrEnum):
    """The one power-state model every backend maps onto."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    SAVED = "saved"
    SUSPENDED = "suspended"
    STARTING = "starting"
    STOPPING = "stopping"
    SAVING = "saving"
    PAUSING = "pausing"
    RESUMING = "resuming"
    CRASHED = "crashed"
    UNKNOWN = "unknown"

    @property
    def is_transitional(self) -> bool:
        """Return whether the state is on its way to another one."""
        return self in _TRANSITIONAL

    @property
    def holds_memory(self) -> bool:
        """Return whether a VM in this state may occupy host memory (every state but stopped and saved)."""
        return self not in (PowerState.STOPPED, PowerState.SAVED)


_TRANSITIONAL = frozenset(
    {
        PowerState.STARTING,
        PowerState.STOPPING,
        PowerState.SAVING,
        PowerState.PAUSING,
        PowerState.RESUMING,
    }
)


@dataclass(frozen=True, slots=True)
class VMStatus:
    """A VM's normalized state, with the backend's own words for it."""

    state: PowerState
    raw_state: str
    reason: str | None = None
    critical: bool = False

    def __str__(self) -> str:
        text = f"{self.state.value} ({self.raw_state}"
        if self.reason:
            text += f": {self.reason}"
        return text + (", critical)" if self.critical else ")")


class Feature(enum.StrEnum):
    """A feature a backend (or one VM) may support; query with :meth:`Capabilities.supports`."""

    CREATE = "create"
    PAUSE = "pause"
    SAVE = "save"
    RESET = "reset"
    REBOOT = "reboot"
    SHUTDOWN_ACPI = "shutdown-acpi"
    SHUTDOWN_AGENT = "shutdown-agent"
    SNAPSHOTS = "snapshots"
    SNAPSHOT_MEMORY = "snapshot-memory"
    SNAPSHOT_DESCRIPTION = "snapshot-description"
    LABELS = "labels"
    EVENTS = "events"
    DELETE_STORAGE = "delete-storage"
    DISK_ATTACH = "disk-attach"
    DISK_HOTPLUG = "disk-hotplug"
    NIC_ATTACH = "nic-attach"
    NIC_HOTPLUG = "nic-hotplug"
    GUEST_ADDRESSES = "guest-addresses"
    CONSOLE = "console"
    """What the guest wrote to its serial console can be read back (:meth:`polyvisor.VM.console_output`)."""
    CONSOLE_STREAM = "console-stream"
    """The guest's serial console opens as a byte stream both ways (:meth:`polyvisor.VM.console`)."""
    GUEST_EXEC = "guest-exec"
    """Commands run inside the guest, argv as a list, stdout and stderr captured (:meth:`polyvisor.VM.exec`)."""
    GUEST_FILES = "guest-files"
    """Files are copied into and out of the guest (:meth:`polyvisor.VM.read_file`, ``write_file``)."""
    GUEST_LOGIN = "guest-login"
    """The channel into the guest logs in: ``exec`` and the file calls need ``credentials=`` (Hyper-V's PowerShell
    Direct). Without it they run as the guest agent's own account and refuse credentials."""
    DIRECT_KERNEL_BOOT = "direct-kernel-boot"
    UEFI = "uefi"
    SECURE_BOOT = "secure-boot"
    NETWORKS = "networks"
    ACCELERATOR_CHOICE = "accelerator-choice"
    ARCHITECTURE_CHOICE = "architecture-choice"
    READONLY_DISK = "readonly-disk"
    DISK_CLONE_LINKED = "disk-clone-linked"
    """A new disk can be a linked clone of a base image (a qcow2 overlay, a differencing VHD)."""
    DISK_CLONE_COPY = "disk-clone-copy"
    """A new disk can be a full, independent copy of a base image."""
    DISK_RESIZE = "disk-resize"
    """A VM's disks can be listed with their sizes (:meth:`polyvisor.VM.disks`) and grown
    (:meth:`polyvisor.VM.resize_disk`)."""
    CLOUD_INIT = "cloud-init"
    """A spec's ``cloud_init`` is attached as a NoCloud seed CD-ROM and deleted with the VM."""
    RECONFIGURE = "reconfigure"
    """CPUs and memory of a stopped VM can be changed (:meth:`polyvisor.VM.reconfigure`)."""
    RECONFIGURE_LIVE_CPUS = "reconfigure-live-cpus"
    """The CPU count of a running VM can change (within the maximum it was started with)."""
    RECONFIGURE_LIVE_MEMORY = "reconfigure-live-memory"
    """The memory of a running VM can change (a balloon or dynamic memory, within its maximum)."""
    DYNAMIC_MEMORY = "dynamic-memory"
    """A spec may give ``dynamic_memory`` (minimum and maximum around the startup memory)."""
    MEMORY_BUFFER = "memory-buffer"
    """``dynamic_memory.buffer_percent`` is honoured (Hyper-V's memory buffer)."""
    USER_NETWORKING = "user-networking"
    """A NIC may be ``kind="user"``: NATed by the hypervisor without a bridge, its ``forwards`` reaching the guest
    from the host's loopback (libvirt: QEMU's user-mode stack)."""
    NAT_FORWARDING = "nat-forwarding"
    """A NIC may be ``kind="nat"``: behind the host's own NAT with a static address polyvisor chooses and writes into
    the seed's network-config, its ``forwards`` reaching the guest from the host's external addresses, never from the
    host itself (Hyper-V: WinNAT's static mappings)."""
    READINESS = "readiness"
    """The backend tells when a guest finished initializing (:meth:`polyvisor.VM.wait_until_ready`): libvirt
    reads cloud-init's result through the guest agent, Hyper-V the guest's heartbeat."""
    STORAGE = "storage"
    """Pools and their volumes are listed (:meth:`polyvisor.Connection.pools`, ``volumes``)."""
    IMAGE_UPLOAD = "image-upload"
    """A local image file can be uploaded into a pool (:meth:`polyvisor.Connection.upload_image`)."""
    IMAGE_DOWNLOAD = "image-download"
    """A volume can be downloaded into a local file (:meth:`polyvisor.Connection.download_image`)."""
    POOL_WRITE = "pool-write"
    """Directory pools (Hyper-V: image folders) can be created and deleted."""
    VOLUME_WRITE = "volume-write"
    """Empty volumes can be created and volumes deleted."""
    VOLUME_RESIZE = "volume-resize"
    """Volumes can be grown (:meth:`polyvisor.Connection.resize_volume`)."""
    NETWORK_WRITE = "network-write"
    """Networks (Hyper-V: virtual switches) can be created and deleted (:meth:`polyvisor.Connection.create_network`);
    which kinds is declared by the ``network-*`` mode features."""
    NETWORK_ISOLATED = "network-isolated"
    """A new network can be ``isolated``: the VMs reach one another only (libvirt: no forward; Hyper-V: Private)."""
    NETWORK_INTERNAL = "network-internal"
    """A new network can be ``internal``: the VMs and the host (libvirt: a host address; Hyper-V: Internal)."""
    NETWORK_NAT = "network-nat"
    """A new network can be ``nat``: the VMs reach beyond the host through its NAT (libvirt)."""
    NETWORK_EXTERNAL = "network-external"
    """A new network can be ``external``: bound to a host adapter (Hyper-V's External switch)."""
    NETWORK_ADDRESSES = "network-addresses"
    """A new network takes a ``subnet``: the host takes its first address and hands out the others by DHCP."""
    STATS = "stats"
    """VMs' counters can be sampled (:meth:`polyvisor.Connection.stats`, :meth:`polyvisor.VM.stats`)."""
    # -- the screen (polyvisor.model) --
    GRAPHICS = "graphics"
    """A running VM says how to reach its screen (:meth:`polyvisor.VM.graphics`)."""
    SCREENSHOT = "screenshot"
    """A running VM's screen can be captured as a PNG (:meth:`polyvisor.VM.screenshot`)."""
    GRAPHICS_VNC = "graphics-vnc"
    """A spec's ``graphics`` may be ``vnc``."""
    GRAPHICS_SPICE = "graphics-spice"
    """A spec's ``graphics`` may be ``spice`` (libvirt: QEMU built with SPICE, per the domain capabilities)."""
    GRAPHICS_NONE = "graphics-none"
    """A spec's ``graphics`` may be ``none``: a VM with no graphical console (Hyper-V always has VMConnect)."""
    GRAPHICS_PASSWORD = "graphics-password"
    """A spec's graphics may carry a ``password`` the viewer must give."""
    VIDEO_VIRTIO = "video-virtio"
    """A spec's ``video`` may be ``virtio``."""
    VIDEO_QXL = "video-qxl"
    """A spec's ``video`` may be ``qxl``."""
    VIDEO_VGA = "video-vga"
    """A spec's ``video`` may be ``vga``."""
    VIDEO_BOCHS = "video-bochs"
    """A spec's ``video`` may be ``bochs``."""
    VIDEO_NONE = "video-none"
    """A spec's ``video`` may be ``none`` (no display adapter)."""
    TPM = "tpm"
    """A spec may give ``tpm``: a virtual TPM 2.0 (libvirt: swtpm, the emulator backend; Hyper-V: a local key
    protector and ``Enable-VMTPM``, Generation 2 only)."""
    NESTED_VIRTUALIZATION = "nested-virtualization"
    """A spec may ask for ``nested_virtualization``: the guest sees the CPU's virtualization extensions (VT-x or
    AMD-V), so it can run a hypervisor of its own."""
    HOST_DEVICES = "host-devices"
    """The host's devices that can be passed through to a VM are listed (:meth:`polyvisor.Connection.host_devices`)."""
    PCI_PASSTHROUGH = "pci-passthrough"
    """A spec's ``host_devices`` may name PCI devices of the host (libvirt: VFIO; Hyper-V: Discrete Device
    Assignment)."""
    USB_PASSTHROUGH = "usb-passthrough"
    """A spec's ``host_devices`` may name USB devices of the host."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The set of features a backend declares, and why the host's probe took some away."""

    features: frozenset[Feature]
    backend: str = ""
    reasons: Mapping[Feature, str] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    """Why a feature is not supported here, where the probe knows ("KVM is not usable ...")."""

    def supports(self, feature: Feature) -> bool:
        """Return whether the feature is declared."""
        return feature in self.features

    def why_not(self, feature: Feature) -> str | None:
        """Return why a feature is not supported here, when the backend said so (None otherwise)."""
        return None if feature in self.features else self.reasons.get(feature)

    def require(self, feature: Feature, *, host: str | None = None, vm: str | None = None) -> None:
        """Raise :class:`~polyvisor.errors.UnsupportedError` unless the feature is declared."""
        if feature not in self.features:
            who = self.backend or "this backend"
            reason = self.reasons.get(feature)
            raise UnsupportedError(
                f"{who} does not support {feature.value!r}"
                + (f" here: {reason}" if reason else "")
                + f"; check connection.capabilities.supports(Feature.{feature.name}) before calling",
                feature=feature,
                host=host,
                vm=vm,
            )

    def __iter__(self) -> Iterator[Feature]:
        return iter(sorted(self.features))


# -- the screen: a graphical console, a display adapter, and how to reach them ------------------------------------
VNC_PASSWORD_LIMIT = 8
"""VNC's DES challenge uses the first 8 characters of a password and ignores the rest (RFC 6143, 7.2.2)."""
_VNC_FIRST_PORT = 5900  # QEMU takes a VNC display number: port = 5900 + display


class Secret:
    """A string that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret text; hand it only to the library that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


class GraphicsProtocol(enum.StrEnum):
    """The graphical console a VM offers."""

    VNC = "vnc"
    SPICE = "spice"
    NONE = "none"
    """No graphical console: the VM has only its serial console."""


class VideoModel(enum.StrEnum):
    """The emulated display adapter (libvirt's ``<video><model type=...>``)."""

    VIRTIO = "virtio"
    QXL = "qxl"
    VGA = "vga"
    BOCHS = "bochs"
    NONE = "none"
    """No display adapter: nothing to show, so no screenshot."""


@dataclass(frozen=True, slots=True)
class GraphicsSpec:
    """A graphical console: ``protocol``, the host address it listens on, a fixed ``port`` (None: the hypervisor
    picks a free one when the VM starts) and an optional ``password`` (a str is wrapped in a Secret)."""

    protocol: GraphicsProtocol = GraphicsProtocol.VNC
    listen: str | None = None
    """An IP address of the hypervisor's host; None is ``127.0.0.1``, so only the host itself (or an SSH tunnel to
    it, see :attr:`GraphicsInfo.tunnel`) reaches the screen."""
    port: int | None = None
    password: Secret | None = None

    def __post_init__(self) -> None:
        try:
            protocol = GraphicsProtocol(self.protocol)
        except ValueError:
            choices = ", ".join(member.value for member in GraphicsProtocol)
            raise _fail("graphics.protocol", f"{self.protocol!r} is not one of: {choices}") from None
        object.__setattr__(self, "protocol", protocol)
        if protocol is GraphicsProtocol.NONE:
            given = [name for name in ("listen", "port", "password") if getattr(self, name) is not None]
            if given:
                raise _fail("graphics", f"protocol 'none' has no {', '.join(given)}; drop it or choose vnc or spice")
            return
        if self.listen is not None:
            if not isinstance(self.listen, str):
                raise _fail("graphics.listen", f"must be an IP address string, got {type(self.listen).__name__}")
            try:
                address = ipaddress.ip_address(self.listen)
            except ValueError:
                raise _fail(
                    "graphics.listen",
                    f"{self.listen!r} is not an IP address; give one of the host's addresses such as '127.0.0.1'",
                ) from None
            object.__setattr__(self, "listen", str(address))
        if self.port is not None:
            lowest = _VNC_FIRST_PORT if protocol is GraphicsProtocol.VNC else 1
            if isinstance(self.port, bool) or not isinstance(self.port, int) or not lowest <= self.port <= 65535:
                raise _fail(
                    "graphics.port",
                    f"{self.port!r} is not a {protocol.value} port; give {lowest}-65535, or None for a free one",
                )
        password: object = self.password
        if isinstance(password, str):
            password = Secret(password)
            object.__setattr__(self, "password", password)
        if password is not None:
            if not isinstance(password, Secret):
                raise _fail("graphics.password", f"must be a string or a Secret, got {type(password).__name__}")
            text = password.reveal()
            # The reasons below never quote the password itself.
            if not text or not text.isprintable():
                raise _fail("graphics.password", "must be non-empty printable text (no control characters)")
            if protocol is GraphicsProtocol.VNC and len(text) > VNC_PASSWORD_LIMIT:
                raise _fail(
                    "graphics.password",
                    f"is {len(text)} characters long; VNC uses only the first {VNC_PASSWORD_LIMIT}, so a longer one "
                    "would be cut silently: give at most 8, or use spice",
                )

    @property
    def listen_address(self) -> str:
        """The address the console listens on (``127.0.0.1`` unless :attr:`listen` says otherwise)."""
        return self.listen or "127.0.0.1"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphicsSpec:
        """Build from plain data (a TOML/JSON table)."""
        if not isinstance(data, Mapping):
            raise _fail("graphics", f"must be a table, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise _fail("graphics", f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**data)


def parse_graphics(value: object) -> GraphicsSpec | None:
    """A spec's ``graphics``: None, a protocol name (``"vnc"``), a table or a :class:`GraphicsSpec`."""
    if value is None or isinstance(value, GraphicsSpec):
        return value
    if isinstance(value, str):
        return GraphicsSpec(protocol=value)  # type: ignore[arg-type]  # the spec refuses any other text
    if isinstance(value, Mapping):
        return GraphicsSpec.from_dict(value)
    raise _fail("graphics", "must be 'vnc', 'spice', 'none', a table or a GraphicsSpec")


def parse_video(value: object) -> VideoModel | None:
    """A spec's ``video``: None (the hypervisor's default) or a model name."""
    if value is None:
        return None
    try:
        return VideoModel(value)  # type: ignore[arg-type]  # anything else is refused just below
    except ValueError:
        choices = ", ".join(member.value for member in VideoModel)
        raise _fail("video", f"{value!r} is not one of: {choices}") from None


@dataclass(frozen=True, slots=True)
class GraphicsInfo:
    """How to reach a running VM's screen from this machine (:meth:`polyvisor.VM.graphics`).

    ``host``:``port`` is where a viewer here connects: the display itself, or the local end of :attr:`tunnel`
    when the display listens only on a remote host's loopback. No password is ever in it:
    :attr:`password_required` says whether the viewer will ask for one.
    """

    protocol: str
    """``vnc``, ``spice``, or ``rdp`` (Hyper-V's VMConnect, see :attr:`viewer`)."""
    host: str
    port: int
    listen: str
    """The address the display listens on, on the hypervisor's host."""
    host_port: int
    """The port it listens on there (the same as :attr:`port` unless tunnelled)."""
    tls_port: int | None = None
    """SPICE's TLS port, when it has one."""
    password_required: bool | None = False
    """Whether the viewer must give a password (None: the backend cannot tell, as on a read-only connection)."""
    tunnel: tuple[str, ...] = ()
    """The command (an argv list, never shell text) to run first: an SSH port forward to a remote host's loopback;
    empty when the display is reached directly."""
    viewer: tuple[str, ...] = ()
    """A command (argv) that opens the screen: ``remote-viewer URI``, or ``vmconnect.exe HOST VMNAME``."""
    detail: str = ""

    @property
    def uri(self) -> str:
        """``vnc://host:port`` or ``spice://host:port`` (what remote-viewer takes); empty for RDP, which needs
        VMConnect's own parameters."""
        if self.protocol not in ("vnc", "spice"):
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (``polyvisor graphics VM --json``)."""
        return {
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "uri": self.uri,
            "listen": self.listen,
            "host_port": self.host_port,
            "tls_port": self.tls_port,
            "password_required": self.password_required,
            "tunnel": list(self.tunnel),
            "viewer": list(self.viewer),
            "detail": self.detail,
        }


class Firmware(enum.StrEnum):
    """Boot firmware; on Hyper-V, BIOS means generation 1 and UEFI generation 2."""

    BIOS = "bios"
    UEFI = "uefi"


class DiskFormat(enum.StrEnum):
    """Disk image formats."""

    QCOW2 = "qcow2"
    RAW = "raw"
    VHDX = "vhdx"
    VHD = "vhd"


class CloneMode(enum.StrEnum):
    """How a new disk is made from a base image (``DiskSpec(image=..., clone=...)``)."""

    LINKED = "linked"
    """A thin overlay whose backing file is the base: qcow2 backing store, Hyper-V differencing VHD."""
    COPY = "copy"
    """A full, independent copy of the base."""


class DiskBus(enum.StrEnum):
    """Disk buses; ``VIRTIO`` means the paravirtual bus (synthetic SCSI on Hyper-V)."""

    VIRTIO = "virtio"
    SCSI = "scsi"
    SATA = "sata"
    IDE = "ide"


class BootDevice(enum.StrEnum):
    """Devices in a boot order."""

    DISK = "disk"
    CDROM = "cdrom"
    NETWORK = "network"


class Architecture(enum.StrEnum):
    """Guest CPU architectures, spelled the way libvirt and QEMU spell them."""

    X86_64 = "x86_64"
    I686 = "i686"
    AARCH64 = "aarch64"
    ARMV7L = "armv7l"
    RISCV64 = "riscv64"
    PPC64LE = "ppc64le"
    S390X = "s390x"


class ShutdownMode(enum.StrEnum):
    """How a graceful shutdown asks the guest to stop."""

    DEFAULT = "default"
    ACPI = "acpi"
    AGENT = "agent"


# XML 1.0 forbids these code points; refusing them keeps every value storable and readable back verbatim.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

MAX_NAME_LENGTH = 100
"""Hyper-V's limit, the tightest of the supported hypervisors."""
MAX_TEXT_LENGTH = 16384
MAX_LABELS = 256


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError(message, field=field_name)


def validate_name(name: object, field_name: str = "name") -> str:
    """Return the name if it is a valid VM or snapshot name, else raise :class:`~polyvisor.errors.ValidationError`."""
    if not isinstance(name, str):
        raise _fail(field_name, f"must be a string, got {type(name).__name__}")
    if not name.strip():
        raise _fail(field_name, "must not be empty or blank")
    if len(name) > MAX_NAME_LENGTH:
        raise _fail(field_name, f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if name != name.strip():
        raise _fail(field_name, f"{name!r} has leading or trailing whitespace; remove it")
    if _CONTROL.search(name) or _XML_INVALID.search(name):
        raise _fail(field_name, f"{name!r} contains a control character (newline, tab, ...); remove it")
    if "/" in name or "\\" in name:
        raise _fail(field_name, f"{name!r} contains a path separator ('/' or '\\'); choose another name")
    return name


def validate_text(value: object, field_name: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """Return free text (descriptions, label values) if storable verbatim, else raise."""
    if not isinstance(value, str):
        raise _fail(field_name, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise _fail(field_name, f"is {len(value)} characters long; the limit is {limit}")
    bad = _XML_INVALID.search(value)
    if bad:
        raise _fail(
            field_name,
            f"contains the character U+{ord(bad.group()):04X}, which no hypervisor can store; remove it",
        )
    return value


def validate_labels(labels: object, field_name: str = "labels") -> Mapping[str, str]:
    """Return an immutable copy of valid labels, else raise :class:`~polyvisor.errors.ValidationError`."""
    if not isinstance(labels, Mapping):
        raise _fail(field_name, f"must be a mapping of str to str, got {type(labels).__name__}")
    if len(labels) > MAX_LABELS:
        raise _fail(field_name, f"has {len(labels)} entries; the limit is {MAX_LABELS}")
    clean: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise _fail(
                f"{field_name}[{key!r}]",
                "keys are 1-63 characters of letters, digits, '.', '_', '-' and '/', starting with a letter or digit",
            )
        clean[key] = validate_text(value, f"{field_name}[{key!r}]")
    return MappingProxyType(dict(sorted(clean.items())))


def validate_int(value: object, field_name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field_name, f"must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise _fail(field_name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise _fail(field_name, f"must be at most {maximum}, got {value}")
    return value


def _enum(kind: type[enum.StrEnum], value: object, field_name: str) -> Any:
    try:
        return kind(value)  # type: ignore[arg-type]  # anything else is refused just below
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise _fail(field_name, f"{value!r} is not one of: {choices}") from None


def _path(value: object, field_name: str) -> str:
    if not isinstance(value, str | PurePath | os.PathLike):
        raise _fail(field_name, f"must be a path string, got {type(value).__name__}")
    text = os.fspath(value) if isinstance(value, os.PathLike) else value  # a Volume is PathLike
    if not isinstance(text, str):
        raise _fail(field_name, f"must be a path string, got {type(text).__name__}")
    if not text or _CONTROL.search(text) or _XML_INVALID.search(text):
        raise _fail(field_name, f"{text!r} is not a usable path")
    return text


@dataclass(frozen=True, slots=True)
class DiskSpec:
    """A disk: a new empty one of ``size_mib``, an existing ``image`` attached as it is, or a new disk cloned
    from a base ``image`` (``clone="linked"`` or ``"copy"``, optionally grown to ``size_mib``).

    A clone never writes to its base, and deleting the VM with ``storage=True`` removes the clone, never the base.
    """

    size_mib: int | None = None
    image: str | None = None
    disk_format: DiskFormat | None = None
    bus: DiskBus = DiskBus.VIRTIO
    pool: str | None = None
    readonly: bool = False
    clone: CloneMode | None = None

    def __post_init__(self) -> None:
        if self.clone is not None:
            object.__setattr__(self, "clone", _enum(CloneMode, self.clone, "disk.clone"))
            if self.image is None:
                raise _fail("disk.clone", "needs image, the base image to clone from")
            if self.readonly:
                raise _fail("disk.readonly", "a clone is a new writable disk; drop readonly or clone")
        elif (self.size_mib is None) == (self.image is None):
            raise _fail(
                "disk",
                "give exactly one of size_mib (a new disk) or image (an existing file); to make a new disk from "
                "an image add clone='linked' or clone='copy' (size_mib then grows it)",
            )
        if self.size_mib is not None:
            validate_int(self.size_mib, "disk.size_mib", maximum=64 * 1024 * 1024)
        if self.image is not None:
            object.__setattr__(self, "image", _path(self.image, "disk.image"))
        if self.disk_format is not None:
            object.__setattr__(self, "disk_format", _enum(DiskFormat, self.disk_format, "disk.disk_format"))
        object.__setattr__(self, "bus", _enum(DiskBus, self.bus, "disk.bus"))
        if self.pool is not None:
            validate_name(self.pool, "disk.pool")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiskSpec:
        """Build from plain data (a TOML/JSON table)."""
        spec: DiskSpec = _from_dict(cls, data, "disk")
        return spec


# --- user-mode networking: a NIC the hypervisor NATs without a bridge, and ports forwarded from the host's loopback

_FORWARD = re.compile(r"^(?:(?P<address>[0-9.]+):)?(?P<host>[0-9]+):(?P<guest>[0-9]+)(?:/(?P<protocol>[a-z]+))?$")


class NicKind(enum.StrEnum):
    """How a NIC reaches the world."""

    NETWORK = "network"
    """On a libvirt network or a Hyper-V virtual switch (``NicSpec.network``)."""
    USER = "user"
    """User-mode networking: NATed by the hypervisor's user-space stack, with port forwards (``user-networking``)."""
    NAT = "nat"
    """Behind the host's NAT with a static address from polyvisor, with port forwards from the host's external
    addresses (``nat-forwarding``)."""


ANY_ADDRESS = "0.0.0.0"
"""A NAT forward's default ``host_address``: every external address of the host."""


def _port(value: object, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"must be a port number (an integer), got {type(value).__name__}", field=field_name)
    if not 1 <= value <= 65535:
        raise ValidationError(f"{value} is not a port number; ports are 1-65535", field=field_name)
    return value


@dataclass(frozen=True, slots=True)
class PortForward:
    """A port of the host forwarded to a port of the guest: on the host's loopback through a user-mode NIC, on the
    host's external addresses through a NAT NIC (which addresses each kind takes, :class:`NicSpec` checks)."""

    host_port: int
    guest_port: int
    protocol: str = "tcp"
    """``"tcp"`` or ``"udp"``."""
    host_address: str = "127.0.0.1"
    """The host address to listen on. A user-mode NIC's is a loopback address (127.0.0.0/8), so only the host itself
    reaches the guest; a NAT NIC's is an external one, ``0.0.0.0`` (every one) by default."""

    def __post_init__(self) -> None:
        _port(self.host_port, "forward.host_port")
        _port(self.guest_port, "forward.guest_port")
        if self.protocol not in ("tcp", "udp"):
            raise ValidationError(f"{self.protocol!r} is not 'tcp' or 'udp'", field="forward.protocol")
        if not isinstance(self.host_address, str):
            raise ValidationError("must be an IPv4 address string", field="forward.host_address")
        try:
            address = ipaddress.IPv4Address(self.host_address)
        except ValueError:
            raise ValidationError(
                f"{self.host_address!r} is not an IPv4 address; forwards listen on the host's loopback, such as "
                "'127.0.0.1'",
                field="forward.host_address",
            ) from None
        if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
            raise ValidationError(
                f"{self.host_address} is not an address the host can listen on", field="forward.host_address"
            )
        object.__setattr__(self, "host_address", str(address))

    def check_kind(self, kind: NicKind) -> None:
        """Raise :class:`~polyvisor.errors.ValidationError` unless a NIC of ``kind`` can listen on the address."""
        address = ipaddress.IPv4Address(self.host_address)
        if kind is NicKind.USER and not address.is_loopback:
            raise ValidationError(
                f"{self.host_address} is not a loopback address: a forward listens on the host's loopback "
                "(127.0.0.0/8) so only the host reaches the guest; to serve other machines, put the NIC on a "
                "bridged network instead (or use a NAT NIC, kind='nat', where the backend declares nat-forwarding)",
                field="forward.host_address",
            )
        if kind is NicKind.NAT and address.is_loopback:
            raise ValidationError(
                f"{self.host_address} is a loopback address, and a NAT forward listens on the host's external "
                f"addresses ({ANY_ADDRESS}, every one, is the default): the host cannot reach a guest through its own "
                "NAT mapping, so reach it from the host at the guest's address (info().extra['nat']) or use a "
                "user-mode NIC (kind='user') for 127.0.0.1",
                field="forward.host_address",
            )

    @classmethod
    def parse(cls, text: str, *, default_address: str = "127.0.0.1") -> PortForward:
        """Read ``HOSTPORT:GUESTPORT``, optionally ``ADDRESS:`` before and ``/udp`` after (``2222:22``); without an
        address the forward listens on ``default_address``."""
        match = _FORWARD.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValidationError(
                f"{text!r} is not a forward; write HOSTPORT:GUESTPORT such as '2222:22' (optionally "
                "'127.0.0.1:2222:22' or '5353:53/udp')",
                field="forward",
            )
        return cls(
            host_port=int(match["host"]),
            guest_port=int(match["guest"]),
            protocol=match["protocol"] or "tcp",
            host_address=match["address"] or default_address,
        )

    @property
    def key(self) -> tuple[str, str, int]:
        """What the host listens on: (protocol, address, port); two forwards may not share it."""
        return (self.protocol, self.host_address, self.host_port)

    def fact(self, mac: str, guest_address: str | None = None) -> dict[str, Any]:
        """This forward as an entry of ``info().extra["forwards"]`` (the same on every backend); a NAT NIC's also
        names the guest address it reaches."""
        fact: dict[str, Any] = {
            "mac": mac,
            "protocol": self.protocol,
            "host_address": self.host_address,
            "host_port": self.host_port,
            "guest_port": self.guest_port,
        }
        if guest_address is not None:
            fact["guest_address"] = guest_address
        return fact

    def clashes(self, other: PortForward) -> bool:
        """Whether both listen on one host port: the same protocol and port, and the same address or either on
        every address (``0.0.0.0``)."""
        if (self.protocol, self.host_port) != (other.protocol, other.host_port):
            return False
        return self.host_address == other.host_address or ANY_ADDRESS in (self.host_address, other.host_address)

    def __str__(self) -> str:
        return f"{self.host_address}:{self.host_port}->{self.guest_port}/{self.protocol}"


def _check_forwards(forwards: Iterable[PortForward], field_name: str) -> None:
    """Raise :class:`~polyvisor.errors.ValidationError` if two forwards listen on the same host port."""
    seen: list[PortForward] = []
    for forward in forwards:
        other = next((earlier for earlier in seen if earlier.clashes(forward)), None)
        if other is not None:
            raise ValidationError(
                f"host port {forward.host_address}:{forward.host_port}/{forward.protocol} is forwarded twice "
                f"(to guest ports {other.guest_port} and {forward.guest_port}); give each forward its own host port",
                field=field_name,
            )
        seen.append(forward)


@dataclass(frozen=True, slots=True)
class NicSpec:
    """A network interface on a network (libvirt) or virtual switch (Hyper-V), or a user-mode NIC with port forwards.

    ``kind="user"`` (capability ``user-networking``) needs no network: the guest gets
    an address by DHCP from the hypervisor's user-space stack, and ``forwards`` (``"2222:22"`` or
    :class:`PortForward`) make ports of the host's loopback reach ports of the guest.

    ``kind="nat"`` (capability ``nat-forwarding``) needs no network either: the guest sits behind the host's own NAT
    with a static address the backend chooses and writes into the seed's network-config (so the spec needs
    ``cloud_init`` and no ``network_config`` of its own), and ``forwards`` make ports of the host's external
    addresses (every one by default) reach ports of the guest; the host itself reaches the guest at its address.
    """

    network: str | None = None
    mac: str | None = None
    model: str = "virtio"
    kind: NicKind = NicKind.NETWORK
    forwards: tuple[PortForward, ...] = ()

    def __post_init__(self) -> None:
        if self.network is not None:
            validate_name(self.network, "nic.network")
        if self.mac is not None:
            if not isinstance(self.mac, str) or not _MAC.match(self.mac):
                raise _fail("nic.mac", f"{self.mac!r} is not a MAC address like 52:54:00:12:34:56")
            object.__setattr__(self, "mac", self.mac.lower())
        if not isinstance(self.model, str) or not re.fullmatch(r"[a-z0-9_-]{1,32}", self.model):
            raise _fail("nic.model", f"{self.model!r} is not a NIC model name such as 'virtio' or 'e1000'")
        object.__setattr__(self, "kind", _enum(NicKind, self.kind, "nic.kind"))
        forwards: object = self.forwards
        if isinstance(forwards, str | bytes | Mapping) or not isinstance(forwards, Iterable):
            raise _fail("nic.forwards", "must be a list of forwards such as ['2222:22']")
        items = []
        default_address = ANY_ADDRESS if self.kind is NicKind.NAT else "127.0.0.1"
        for index, item in enumerate(forwards):
            where = f"nic.forwards[{index}]"
            try:
                if isinstance(item, str):
                    forward = PortForward.parse(item, default_address=default_address)
                elif isinstance(item, Mapping):
                    forward = _from_dict(PortForward, {"host_address": default_address, **item}, where)
                elif isinstance(item, PortForward):
                    forward = item
                else:
                    raise _fail(where, "must be 'HOSTPORT:GUESTPORT', a table or a PortForward")
                if self.kind is not NicKind.NETWORK:
                    forward.check_kind(self.kind)
                items.append(forward)
            except ValidationError as error:
                inner = (error.field or "").removeprefix("forward")
                raise _fail(where + (inner if inner.startswith(".") else ""), error.message) from None
        object.__setattr__(self, "forwards", tuple(items))
        if self.kind is NicKind.USER and self.network is not None:
            raise _fail(
                "nic.network",
                f"a user-mode NIC is on no network; drop network={self.network!r} or kind='user'",
            )
        if self.kind is NicKind.NAT and self.network is not None:
            raise _fail(
                "nic.network",
                f"a NAT NIC is on the host's NAT network, chosen by the backend; drop network={self.network!r} or "
                "kind='nat'",
            )
        if self.forwards and self.kind is NicKind.NETWORK:
            raise _fail(
                "nic.forwards",
                "port forwards need a user-mode NIC (kind='user') or a NAT NIC (kind='nat'); a NIC on a network is "
                "reached at the guest's own address",
            )
        _check_forwards(self.forwards, "nic.forwards")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NicSpec:
        """Build from plain data (a TOML/JSON table)."""
        spec: NicSpec = _from_dict(cls, data, "nic")
        return spec


@dataclass(frozen=True, slots=True)
class KernelBoot:
    """Direct kernel boot (capability ``direct-kernel-boot``)."""

    kernel: str
    initrd: str | None = None
    cmdline: str = ""

    def __post_init__(self) -> None:
        _path(self.kernel, "kernel.kernel")
        if self.initrd is not None:
            _path(self.initrd, "kernel.initrd")
        validate_text(self.cmdline, "kernel.cmdline", limit=4096)
        if "\n" in self.cmdline:
            raise _fail("kernel.cmdline", "must be a single line")


@dataclass(frozen=True, slots=True)
class DynamicMemory:
    """Memory that may change while the VM runs, between ``minimum_mib`` and ``maximum_mib``.

    The VM starts with the spec's ``memory_mib``, which must lie between the two. On Hyper-V this is dynamic memory
    (``Set-VMMemory -DynamicMemoryEnabled``), where ``buffer_percent`` is the memory Hyper-V keeps in reserve; on
    libvirt the maximum is the domain's memory and the balloon sets the current size (libvirt has no buffer, so
    ``buffer_percent`` needs the ``memory-buffer`` capability).
    """

    minimum_mib: int
    maximum_mib: int
    buffer_percent: int | None = None

    def __post_init__(self) -> None:
        validate_int(self.minimum_mib, "dynamic_memory.minimum_mib", minimum=16, maximum=64 * 1024 * 1024)
        validate_int(self.maximum_mib, "dynamic_memory.maximum_mib", minimum=16, maximum=64 * 1024 * 1024)
        if self.minimum_mib > self.maximum_mib:
            raise _fail(
                "dynamic_memory",
                f"minimum_mib ({self.minimum_mib}) is above maximum_mib ({self.maximum_mib}); swap them",
            )
        if self.buffer_percent is not None:
            validate_int(self.buffer_percent, "dynamic_memory.buffer_percent", minimum=5, maximum=2000)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DynamicMemory:
        """Build from plain data (a TOML/JSON table)."""
        value: DynamicMemory = _from_dict(cls, data, "dynamic_memory")
        return value


class TpmModel(enum.StrEnum):
    """The TPM device a guest sees, named as libvirt names it; Hyper-V has one model and takes none."""

    TIS = "tpm-tis"
    """The TPM Interface Specification device (x86 and Arm guests)."""
    CRB = "tpm-crb"
    """The Command Response Buffer device (x86 guests, TPM 2.0)."""
    SPAPR = "tpm-spapr"
    """The device of IBM's pseries machines (ppc64 guests)."""


TPM_VERSIONS = ("2.0",)
"""The TPM versions a spec may ask for: 2.0, the one Windows 11 needs and the only one Hyper-V emulates."""


@dataclass(frozen=True, slots=True)
class TpmSpec:
    """A virtual TPM (capability ``tpm``). ``model`` None lets the backend choose the device for the guest's
    architecture; in a spec, ``tpm=True`` is ``TpmSpec()``."""

    version: str = "2.0"
    model: TpmModel | None = None

    def __post_init__(self) -> None:
        if self.version not in TPM_VERSIONS:
            raise _fail(
                "tpm.version",
                f"{self.version!r} is not a TPM version polyvisor offers; use {', '.join(TPM_VERSIONS)} "
                "(TPM 1.2 is not emulated by Hyper-V, and Windows 11 needs 2.0)",
            )
        if self.model is not None:
            object.__setattr__(self, "model", _enum(TpmModel, self.model, "tpm.model"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TpmSpec:
        """Build from plain data (a TOML/JSON table)."""
        value: TpmSpec = _from_dict(cls, data, "tpm")
        return value


class HostDeviceKind(enum.StrEnum):
    """The bus of a host device that can be passed through."""

    PCI = "pci"
    USB = "usb"


@dataclass(frozen=True, slots=True)
class HostDevice:
    """A device of the host that a VM can be given (:meth:`polyvisor.Connection.host_devices`).

    ``name`` is what a spec's ``host_devices`` names: libvirt's node device name (``pci_0000_03_00_0``,
    ``usb_1_4``), Hyper-V's location path (``PCIROOT(0)#PCI(0300)#PCI(0000)``). ``used_by`` is the name of the VM
    that has it, if one does.
    """

    name: str
    kind: HostDeviceKind
    description: str = ""
    address: str = ""
    """Where it sits: ``0000:03:00.0`` (PCI domain:bus:slot.function), ``001:004`` (USB bus:device)."""
    vendor: str = ""
    product: str = ""
    used_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _host_devices(value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise _fail("host_devices", "must be a list of device names, as conn.host_devices() lists them")
    names: list[str] = []
    for index, item in enumerate(value):
        where = f"host_devices[{index}]"
        name = item.name if isinstance(item, HostDevice) else item
        if not isinstance(name, str) or not name or name != name.strip():
            raise _fail(where, f"{name!r} is not a device name; use a name conn.host_devices() lists")
        if _CONTROL.search(name) or _XML_INVALID.search(name) or len(name) > 400:
            raise _fail(where, f"{name!r} is not a device name; use a name conn.host_devices() lists")
        if name in names:
            raise _fail(where, f"{name!r} is listed twice; a device can be given to a VM once")
        names.append(name)
    return tuple(names)


def device_facts(tpm: TpmSpec | str | None, nested: bool, host_devices: Iterable[str]) -> dict[str, Any]:
    """The ``info().extra`` entries of a VM's devices, the same on every backend, each only when the VM has it:
    ``tpm`` (the version, ``"2.0"``), ``nested`` (True: the guest sees the virtualization extensions) and
    ``host_devices`` (the names of the host devices it was given)."""
    facts: dict[str, Any] = {}
    if tpm is not None:
        facts["tpm"] = tpm.version if isinstance(tpm, TpmSpec) else tpm
    if nested:
        facts["nested"] = True
    names = list(host_devices)
    if names:
        facts["host_devices"] = names
    return facts


# -- cloud-init first-boot data ------------------------------------------------------------------------------
# cloud-init reads meta-data and network-config with PyYAML. polyvisor writes them as JSON (valid YAML, so no YAML
# library is needed), with three differences PyYAML would otherwise make, each measured with Debian's cloud-init 22.4:
# - DEL, the C1 controls (U+0080-U+009F), U+FFFE and U+FFFF make PyYAML refuse the whole document, and U+0085,
#   U+2028 and U+2029 are line breaks to it (folded to a space inside a quoted scalar). JSON may carry them raw;
#   written as \u escapes, which YAML's double-quoted scalars share, they read back as themselves.
# - A float without a dot (``1e+20``) is a string to YAML 1.1: one is added (``1.0e+20``), as PyYAML's own writer does.
# - A mapping key is a "simple key", which YAML limits to 1024 characters as written (quotes and escapes included);
#   a longer one makes the document unreadable, so it is refused.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_YAML_KEY_LIMIT = 1024
_JSON_DEPTH_LIMIT = 64
# RFC 1123 host names: dot-separated labels of letters, digits and hyphens, neither starting nor ending with a hyphen.
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HOSTNAME_LIMIT = 253


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a str, not {type(value).__name__}", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"is not encodable as UTF-8 ({exc.reason})", field=name) from None
    return value


def _check_line(value: object, name: str) -> str:
    """A one-line printable string: instance ids, SSH keys."""
    text = _check_text(value, name)
    if not text or text != text.strip():
        raise ValidationError("must be non-empty, without leading or trailing whitespace", field=name)
    if not text.isprintable():
        raise ValidationError("must be a single line of printable characters (no newline or control)", field=name)
    return text


def _check_hostname(value: object, name: str) -> str:
    """A host name the guest can set: RFC 1123 labels (cloud-init sets the part before the first dot)."""
    text = _check_text(value, name)
    labels = text.split(".")
    if len(text) > _HOSTNAME_LIMIT or not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
        raise ValidationError(
            f"{text!r} is not a host name: use dot-separated labels of 1 to 63 ASCII letters, digits and hyphens, "
            f"not starting or ending with a hyphen, {_HOSTNAME_LIMIT} characters in all (write a non-ASCII name "
            "in its IDNA form, xn--...)",
            field=name,
        )
    return text


def _short(key: str) -> str:
    return key if len(key) <= 40 else key[:37] + "..."


def _check_json(value: object, name: str, depth: int = 0) -> Any:
    """Check that *value* is plain JSON data (str keys; str, int, float, bool, None, lists, mappings) that
    cloud-init's YAML loader reads back as itself once :func:`_json_yaml` wrote it."""
    if depth > _JSON_DEPTH_LIMIT:
        raise ValidationError(f"is nested deeper than {_JSON_DEPTH_LIMIT} levels", field=name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:  # beyond Python's int-to-text digit limit
            raise ValidationError("is an integer too long to write", field=name) from None
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("must be a finite number", field=name)
        return value
    if isinstance(value, str):
        return _check_text(value, name)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"keys must be str, not {type(key).__name__} ({key!r})", field=name)
            _check_text(key, name)
            if len(_yaml_string(key)) > _YAML_KEY_LIMIT:
                raise ValidationError(
                    f"key {_short(key)!r} is too long: cloud-init's YAML reader takes keys up to "
                    f"{_YAML_KEY_LIMIT} characters as written (with quotes and escapes); make it shorter or a value",
                    field=name,
                )
            out[key] = _check_json(item, f"{name}[{_short(key)!r}]", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_json(item, f"{name}[{index}]", depth + 1) for index, item in enumerate(value)]
    raise ValidationError(f"holds a {type(value).__name__}, which is not JSON data", field=name)


def _yaml_string(text: str) -> str:
    # ensure_ascii=False keeps non-ASCII as UTF-8 rather than \u escapes, which PyYAML would turn into lone
    # surrogates for characters outside the BMP; JSON escapes the C0 controls itself.
    return _YAML_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", json.dumps(text, ensure_ascii=False))


def _yaml_float(number: float) -> str:
    text = repr(number)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _json_yaml(value: Any, indent: str = "") -> str:
    """*value* (checked by :func:`_check_json`) as JSON laid out like ``json.dumps(indent=2)``, readable as
    itself by YAML 1.1 (see the notes above)."""
    inner = indent + "  "
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = (f"{inner}{_yaml_string(key)}: {_json_yaml(item, inner)}" for key, item in value.items())
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{_json_yaml(item, inner)}" for item in value) + f"\n{indent}]"
    if isinstance(value, str):
        return _yaml_string(value)
    if isinstance(value, float):
        return _yaml_float(value)
    return json.dumps(value)  # None, bool, int


@dataclass(frozen=True, kw_only=True)
class CloudInit:
    """What a guest's cloud-init receives from a NoCloud seed.

    ``instance_id`` and ``local_hostname`` become the ``instance-id`` and ``local-hostname`` of ``meta-data``
    (``local_hostname`` must be an RFC 1123 host name); ``meta_data`` adds further keys (it may not repeat those
    two). ``user_data`` and ``vendor_data`` are written byte for byte (UTF-8) and never edited; ``network_config``
    is either written as given (a str) or written out (a mapping, network config version 1 or 2).
    ``ssh_authorized_keys`` become meta-data's ``public-keys``, which cloud-init installs for the image's default
    user as it does cloud-config's ``ssh_authorized_keys``; user-data may then be anything, and ``meta_data`` may
    not set ``public-keys`` too.

    Every mapping value reads back through cloud-init's YAML loader as itself.

    :raises ~polyvisor.errors.ValidationError: naming the field, for anything cloud-init could not read as meant.
    """

    instance_id: str
    local_hostname: str | None = None
    user_data: str | None = None
    meta_data: Mapping[str, Any] | None = None
    network_config: str | Mapping[str, Any] | None = None
    vendor_data: str | None = None
    ssh_authorized_keys: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_line(self.instance_id, "instance_id")
        if self.local_hostname is not None:
            _check_hostname(self.local_hostname, "local_hostname")
        if self.user_data is not None:
            _check_text(self.user_data, "user_data")
        if self.vendor_data is not None:
            _check_text(self.vendor_data, "vendor_data")
        if self.meta_data is not None:
            if not isinstance(self.meta_data, Mapping):
                raise ValidationError(f"must be a mapping, not {type(self.meta_data).__name__}", field="meta_data")
            checked = _check_json(self.meta_data, "meta_data")
            for reserved in ("instance-id", "local-hostname"):
                if reserved in checked:
                    raise ValidationError(
                        f"may not set {reserved!r}; use the {reserved.replace('-', '_')} field", field="meta_data"
                    )
            object.__setattr__(self, "meta_data", MappingProxyType(checked))
        if self.network_config is not None:
            if isinstance(self.network_config, str):
                _check_text(self.network_config, "network_config")
            elif isinstance(self.network_config, Mapping):
                object.__setattr__(
                    self, "network_config", MappingProxyType(_check_json(self.network_config, "network_config"))
                )
            else:
                raise ValidationError(
                    f"must be a str or a mapping, not {type(self.network_config).__name__}", field="network_config"
                )
        keys: object = self.ssh_authorized_keys  # a list is accepted and copied; a bare str is a common slip
        if not isinstance(keys, tuple | list):
            raise ValidationError(f"must be a tuple of str, not {type(keys).__name__}", field="ssh_authorized_keys")
        for index, key in enumerate(keys):
            _check_line(key, f"ssh_authorized_keys[{index}]")
        object.__setattr__(self, "ssh_authorized_keys", tuple(keys))
        if keys and self.meta_data is not None and "public-keys" in self.meta_data:
            raise ValidationError(
                "meta_data already sets 'public-keys'; put the keys in one place", field="ssh_authorized_keys"
            )

    def files(self) -> dict[str, bytes]:
        """The seed's files by their NoCloud name (``user-data``, ``meta-data``, and the optional ones)."""
        meta: dict[str, Any] = {"instance-id": self.instance_id}
        if self.local_hostname is not None:
            meta["local-hostname"] = self.local_hostname
        if self.ssh_authorized_keys:
            meta["public-keys"] = list(self.ssh_authorized_keys)
        meta.update(self.meta_data or {})
        # cloud-init needs user-data to exist; empty means "nothing to do".
        user_data = self.user_data if self.user_data is not None else ""
        out = {"user-data": user_data.encode("utf-8"), "meta-data": (_json_yaml(meta) + "\n").encode("utf-8")}
        if isinstance(self.network_config, str):
            out["network-config"] = self.network_config.encode("utf-8")
        elif self.network_config is not None:
            out["network-config"] = (_json_yaml(self.network_config) + "\n").encode("utf-8")
        if self.vendor_data is not None:
            out["vendor-data"] = self.vendor_data.encode("utf-8")
        return out


@dataclass(frozen=True, slots=True)
class VMSpec:
    """Everything needed to create a VM. Validated on construction."""

    name: str
    cpus: int = 1
    memory_mib: int = 512
    firmware: Firmware = Firmware.BIOS
    secure_boot: bool = False
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    cdrom: str | None = None
    boot_order: tuple[BootDevice, ...] = (BootDevice.DISK,)
    arch: Architecture | None = None
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    kernel: KernelBoot | None = None
    accelerator: str | None = None
    """``"kvm"``, ``"tcg"`` (libvirt) or None for the backend's own choice (capability ``accelerator-choice``)."""
    cloud_init: CloudInit | None = None
    """First-boot data, attached as a NoCloud seed CD-ROM (capability ``cloud-init``); a table without
    ``instance_id`` gets the VM's name."""
    dynamic_memory: DynamicMemory | None = None
    """Memory that may change while the VM runs (capability ``dynamic-memory``)."""
    graphics: GraphicsSpec | None = None
    """The graphical console (``"vnc"``, ``"spice"``, ``"none"`` or a :class:`~polyvisor.model.GraphicsSpec`);
    None leaves the backend's default (libvirt: none; Hyper-V: VMConnect, always there)."""
    video: VideoModel | None = None
    """The display adapter (``virtio``, ``qxl``, ``vga``, ``bochs``, ``none``); None leaves the backend's default."""
    tpm: TpmSpec | None = None
    """A virtual TPM 2.0 (capability ``tpm``); ``True`` or a table are read as a :class:`TpmSpec`."""
    nested_virtualization: bool = False
    """Show the guest the CPU's virtualization extensions (capability ``nested-virtualization``)."""
    host_devices: tuple[str, ...] = ()
    """Host devices given to the VM, by the names :meth:`polyvisor.Connection.host_devices` lists (capabilities
    ``pci-passthrough``, ``usb-passthrough``); one another VM has is refused."""

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_int(self.cpus, "cpus", maximum=1024)
        validate_int(self.memory_mib, "memory_mib", minimum=16, maximum=64 * 1024 * 1024)
        object.__setattr__(self, "firmware", _enum(Firmware, self.firmware, "firmware"))
        if not isinstance(self.secure_boot, bool):
            raise _fail("secure_boot", "must be true or false")
        if self.secure_boot and self.firmware is not Firmware.UEFI:
            raise _fail("secure_boot", "needs firmware='uefi'; set firmware to 'uefi' or drop secure_boot")
        object.__setattr__(self, "disks", self._items(self.disks, DiskSpec, "disks"))
        object.__setattr__(self, "nics", self._items(self.nics, NicSpec, "nics"))
        _check_forwards((forward for nic in self.nics for forward in nic.forwards), "nics")
        if self.cdrom is not None:
            object.__setattr__(self, "cdrom", _path(self.cdrom, "cdrom"))
        order = tuple(_enum(BootDevice, item, "boot_order") for item in self.boot_order)
        if len(set(order)) != len(order):
            raise _fail("boot_order", "lists a device twice")
        object.__setattr__(self, "boot_order", order)
        if self.arch is not None:
            object.__setattr__(self, "arch", _enum(Architecture, self.arch, "arch"))
        validate_text(self.description, "description")
        object.__setattr__(self, "labels", validate_labels(self.labels))
        kernel: object = self.kernel
        if isinstance(kernel, Mapping):
            object.__setattr__(self, "kernel", _from_dict(KernelBoot, kernel, "kernel"))
        elif kernel is not None and not isinstance(kernel, KernelBoot):
            raise _fail("kernel", "must be a KernelBoot or a table with kernel/initrd/cmdline")
        if self.accelerator is not None and self.accelerator not in ("kvm", "tcg"):
            raise _fail("accelerator", f"{self.accelerator!r} is not 'kvm' or 'tcg'")
        cloud_init: object = self.cloud_init
        if isinstance(cloud_init, Mapping):
            table = {"instance_id": self.name, **cloud_init}
            try:
                value = _from_dict(CloudInit, table, "cloud_init")
            except ValidationError as error:
                # CloudInit names its own fields ("user_data"); in a spec they live under cloud_init.
                where = error.field or ""
                if where != "cloud_init" and not where.startswith("cloud_init."):
                    where = f"cloud_init.{where}" if where else "cloud_init"
                raise _fail(where, error.message) from None
            object.__setattr__(self, "cloud_init", value)
        elif cloud_init is not None and not isinstance(cloud_init, CloudInit):
            raise _fail("cloud_init", "must be a polyvisor.provisioning.CloudInit or a table of its fields")
        memory: object = self.dynamic_memory
        if isinstance(memory, Mapping):
            object.__setattr__(self, "dynamic_memory", _from_dict(DynamicMemory, memory, "dynamic_memory"))
        elif memory is not None and not isinstance(memory, DynamicMemory):
            raise _fail("dynamic_memory", "must be a DynamicMemory or a table with minimum_mib and maximum_mib")
        object.__setattr__(self, "graphics", parse_graphics(self.graphics))
        object.__setattr__(self, "video", parse_video(self.video))
        shown = self.graphics is not None and self.graphics.protocol is not GraphicsProtocol.NONE
        if shown and self.video is VideoModel.NONE:
            raise _fail(
                "video",
                "a graphical console with video 'none' shows nothing; choose a video model or graphics 'none'",
            )
        tpm: object = self.tpm
        if tpm is True:
            object.__setattr__(self, "tpm", TpmSpec())
        elif tpm is False:
            object.__setattr__(self, "tpm", None)
        elif isinstance(tpm, Mapping):
            object.__setattr__(self, "tpm", _from_dict(TpmSpec, tpm, "tpm"))
        elif tpm is not None and not isinstance(tpm, TpmSpec):
            raise _fail("tpm", "must be true, a TpmSpec or a table with version and model")
        if not isinstance(self.nested_virtualization, bool):
            raise _fail("nested_virtualization", "must be true or false")
        object.__setattr__(self, "host_devices", _host_devices(self.host_devices))
        self._check_nat_nics()
        if self.dynamic_memory is not None:
            low, high = self.dynamic_memory.minimum_mib, self.dynamic_memory.maximum_mib
            if not low <= self.memory_mib <= high:
                raise _fail(
                    "memory_mib",
                    f"{self.memory_mib} MiB (the startup memory) is outside dynamic_memory's "
                    f"{low}-{high} MiB; raise maximum_mib or lower memory_mib",
                )

    def _check_nat_nics(self) -> None:
        """A NAT NIC's static address reaches the guest only through the seed's network-config, polyvisor's own."""
        if not any(nic.kind is NicKind.NAT for nic in self.nics):
            return
        if self.cloud_init is None:
            raise _fail(
                "cloud_init",
                "a NAT NIC (kind='nat') gets a static address the guest learns from its cloud-init seed (the NAT "
                "hands out none); give cloud_init (an empty table will do)",
            )
        if self.cloud_init.network_config is not None:
            raise _fail(
                "cloud_init.network_config",
                "a spec with a NAT NIC (kind='nat') gets its network-config from polyvisor (the NIC's static "
                "address, matched by its MAC); drop network_config or the NAT NIC",
            )

    @staticmethod
    def _items(items: object, kind: type[Any], field_name: str) -> tuple[Any, ...]:
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise _fail(field_name, "must be a list")
        out = []
        for index, item in enumerate(items):
            if isinstance(item, kind):
                out.append(item)
            elif isinstance(item, Mapping):
                out.append(_from_dict(kind, item, f"{field_name}[{index}]"))
            else:
                raise _fail(f"{field_name}[{index}]", f"must be a {kind.__name__} or a table")
        return tuple(out)

    @property
    def generation(self) -> int:
        """The Hyper-V generation this spec implies (1 for BIOS, 2 for UEFI)."""
        return 2 if self.firmware is Firmware.UEFI else 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VMSpec:
        """Build and validate a spec from plain data, such as a parsed TOML or JSON file."""
        spec: VMSpec = _from_dict(cls, data, "spec")
        return spec


def _from_dict(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise _fail(where, f"must be a table, got {type(data).__name__}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(
            where,
            f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}",
        )
    try:
        return cls(**data)
    except TypeError as error:  # a missing required field
        raise _fail(where, str(error)) from None


@dataclass(frozen=True, slots=True)
class VMDetails:
    """The part of :class:`VMInfo` some backends cannot list in bulk (it can cost one call per VM)."""

    cpus: int
    memory_mib: int
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    dynamic_memory: DynamicMemory | None = None
    """Minimum and maximum (and Hyper-V's buffer) when the memory may change while the VM runs; ``memory_mib`` is
    then the memory the VM has now (the balloon's size, Hyper-V's assigned memory) or its startup memory when off."""


@dataclass(frozen=True, slots=True)
class VMInfo:
    """What the hypervisor said about one VM at one moment: a plain value that never talks to the hypervisor.

    Identity, status and saved state come with every listing. ``details`` (CPUs, memory, labels, ...) is there
    when the backend reads them in bulk, or when they were asked for (``conn.list(details=True)``,
    ``vm.info()``); reading ``cpus``, ``labels`` and the like without them raises :class:`DetailsNotLoaded`.
    """

    uuid: str
    name: str
    status: VMStatus
    has_saved_state: bool = False
    details: VMDetails | None = None

    @property
    def state(self) -> PowerState:
        """The normalized power state."""
        return self.status.state

    def __hash__(self) -> int:
        # Details hold mappings; equal values still hash equally, since equality compares these fields too.
        return hash((self.uuid, self.name, self.status, self.has_saved_state))

    def _details(self, what: str) -> VMDetails:
        if self.details is None:
            raise DetailsNotLoaded(
                f"this listing of {self.name!r} did not read its {what}; "
                "list with conn.list(details=True) or call vm.info()"
            )
        return self.details

    @property
    def cpus(self) -> int:
        """Virtual CPUs."""
        return self._details("cpus").cpus

    @property
    def memory_mib(self) -> int:
        """Memory in MiB."""
        return self._details("memory").memory_mib

    @property
    def labels(self) -> Mapping[str, str]:
        """Labels stored in the hypervisor."""
        return self._details("labels").labels

    @property
    def description(self) -> str:
        """Free-text description."""
        return self._details("description").description

    @property
    def extra(self) -> Mapping[str, Any]:
        """Backend-specific facts (e.g. ``generation`` on Hyper-V, ``arch`` on libvirt)."""
        return self._details("extra").extra

    def __repr__(self) -> str:
        return f"VMInfo(uuid={self.uuid!r}, name={self.name!r}, state={self.status.state.value!r})"


class DetailsNotLoaded(LookupError):
    """A :class:`VMInfo` was asked for details its listing did not read."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot (libvirt) or checkpoint (Hyper-V)."""

    name: str
    parent: str | None
    created: datetime | None
    state: PowerState
    """The VM's state when the snapshot was taken."""
    has_memory: bool
    description: str = ""
    is_current: bool = False


@dataclass(frozen=True)
class SnapshotTree:
    """A VM's snapshots as a tree: roots, children and the current one."""

    snapshots: tuple[Snapshot, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {snap.name: snap for snap in self.snapshots})

    def __len__(self) -> int:
        return len(self.snapshots)

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(self.snapshots)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> Snapshot:
        try:
            snap: Snapshot = self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no snapshot named {name!r}") from None
        return snap

    @property
    def roots(self) -> tuple[Snapshot, ...]:
        """Snapshots without a parent."""
        return tuple(snap for snap in self.snapshots if snap.parent is None)

    @property
    def current(self) -> Snapshot | None:
        """The snapshot the VM currently derives from, if any."""
        return next((snap for snap in self.snapshots if snap.is_current), None)

    def children(self, name: str) -> tuple[Snapshot, ...]:
        """Direct children of the named snapshot."""
        return tuple(snap for snap in self.snapshots if snap.parent == name)

    def descendants(self, name: str) -> tuple[Snapshot, ...]:
        """All snapshots below the named one, depth first."""
        out: list[Snapshot] = []
        for child in self.children(name):
            out.append(child)
            out.extend(self.descendants(child.name))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class GuestArchitecture:
    """An architecture the host runs guests of (:attr:`HostInfo.architectures`): what a spec's ``arch`` may name."""

    arch: str
    accelerators: tuple[str, ...] = ()
    """How its guests run, as a spec's ``accelerator`` names it: ``kvm`` (the host's CPU) and ``tcg`` (QEMU's
    emulation); empty when the backend has no such choice."""
    machine: str | None = None
    """The machine type its guests get (libvirt: ``q35``, ``virt``, ``pseries``, ``s390-ccw-virtio``), when the
    backend picks one."""
    lacks: Mapping[Feature, str] = field(default_factory=dict)
    """Features the connection declares that this architecture's VMs do not have, each with the reason (their
    :meth:`~polyvisor.VM.capabilities` leave them out)."""


@dataclass(frozen=True, slots=True)
class HostInfo:
    """Facts about the hypervisor host."""

    hostname: str
    hypervisor: str
    hypervisor_version: str
    cpus: int
    memory_mib: int
    arch: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    free_memory_mib: int | None = None
    """Memory the host reports free now, or None when the backend cannot tell (placement then subtracts the
    memory of the VMs that hold some from ``memory_mib``)."""
    architectures: tuple[GuestArchitecture, ...] = ()
    """The architectures the host runs guests of, its own first; empty when the backend does not tell."""


class NetworkMode(enum.StrEnum):
    """Who a network connects (the table in :mod:`polyvisor.networks` maps each onto libvirt and Hyper-V)."""

    ISOLATED = "isolated"
    """The VMs on it reach one another and nothing else (libvirt: no forward, no host address; Hyper-V: Private)."""
    INTERNAL = "internal"
    """The VMs and the host (libvirt: no forward, a host address and DHCP; Hyper-V: Internal)."""
    NAT = "nat"
    """The VMs and the host, and beyond through the host's NAT (libvirt only)."""
    EXTERNAL = "external"
    """The VMs on the physical network of one host adapter (Hyper-V's External switch only)."""


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """A network (libvirt) or virtual switch (Hyper-V) VMs can attach to."""

    name: str
    active: bool
    kind: str
    uuid: str | None = None
    mode: NetworkMode | None = None
    """Who it connects; None for a kind polyvisor does not make (a
    routed or open libvirt network, say)."""
    subnet: str | None = None
    """Its IPv4 range (``10.77.0.0/24``) when the host has an address on it and the backend tells."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """What only one backend knows: libvirt's ``bridge`` and ``autostart``, Hyper-V's ``adapter``."""


@dataclass(frozen=True, slots=True)
class DiskInfo:
    """One hard disk of a VM as the hypervisor has it now (:meth:`polyvisor.VM.disks`)."""

    target: str
    """The name :meth:`polyvisor.VM.resize_disk` and ``detach_disk`` take (``vda``, ``SCSI:0:1``)."""
    path: str | None
    """The image file on the host (None for a disk that is not a file)."""
    capacity: int
    """The virtual size (what the guest sees), in bytes."""
    readonly: bool = False

    @property
    def size_mib(self) -> int:
        """The virtual size in MiB, rounded up."""
        return -(-self.capacity // (1024 * 1024))


@dataclass(frozen=True, slots=True)
class GuestAddress:
    """An address of a guest interface and where it was learnt (agent, lease, arp, hypervisor)."""

    interface: str
    mac: str | None
    address: str
    prefix: int | None
    source: str


@dataclass(frozen=True, slots=True)
class AddressAnswer:
    """What one address source answered when asked for a guest's addresses.

    ``detail`` says why ``addresses`` is empty ("agent not connected", "no lease for 52:54:00:..") or is empty
    when addresses were found.
    """

    source: str
    addresses: tuple[GuestAddress, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReadyAnswer:
    """What one readiness source answered when asked whether a guest finished initializing.

    ``detail`` says what the source saw ("cloud-init: running (stage modules-final)", "10.0.0.5:22 answered
    SSH-2.0-OpenSSH_9.2p1"). ``unavailable`` means the source can never answer for this VM as it is (it has no
    guest agent channel, the heartbeat service is disabled): waiting longer changes nothing. ``errors`` lists what
    the guest reported as failed while initializing (cloud-init's ``errors``); a guest that finished with errors is
    ready, and its errors are the caller's to judge.
    """

    source: str
    ready: bool = False
    detail: str = ""
    unavailable: bool = False
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of :meth:`polyvisor.VM.wait_until_ready`: every source asked, each ready, and the seconds waited."""

    answers: tuple[ReadyAnswer, ...]
    waited: float = 0.0

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources that said the guest is ready, in the order asked."""
        return tuple(answer.source for answer in self.answers)

    @property
    def errors(self) -> tuple[str, ...]:
        """Every error the guest reported while initializing, source by source (``"cloud-init: ..."``)."""
        return tuple(f"{answer.source}: {error}" for answer in self.answers for error in answer.errors)

    def __str__(self) -> str:
        return "; ".join(f"{answer.source}: {answer.detail or 'ready'}" for answer in self.answers)


class EventKind(enum.StrEnum):
    """Kinds of lifecycle events."""

    DEFINED = "defined"
    UNDEFINED = "undefined"
    STATE = "state"
    GAP = "gap"
    """Events may have been missed (the connection dropped and came back): re-read what you track."""


@dataclass(frozen=True, slots=True)
class Event:
    """A lifecycle event from :meth:`polyvisor.Connection.watch`.

    A ``gap`` event has an empty ``uuid`` and ``name``; its ``since`` and ``until`` (UTC) bound the time in which
    events may have been missed, and the events right after it re-read every VM (see "Events" in the contract).
    """

    kind: EventKind
    uuid: str
    name: str
    state: PowerState | None = None
    detail: str = ""
    since: datetime | None = None
    until: datetime | None = None


def normalize_uuid(value: str) -> str | None:
    """Return the canonical lowercase form of a UUID string, or None if it is not one."""
    try:
        return str(uuid_module.UUID(value.strip("{}")))
    except (ValueError, AttributeError):
        return None
