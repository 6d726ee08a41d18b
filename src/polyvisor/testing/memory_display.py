"""The screens of a ``memory://`` host's VMs, with libvirt's rules.

A VM has a graphical console only when its spec asked for ``vnc`` or ``spice`` (no ``graphics`` means none, as on
libvirt), and a display adapter when its spec names a video model other than ``none``, or asks for a console
without naming one (libvirt then adds its default adapter). A console with an automatic port gets the lowest port
from 5900 up that no other VM holding memory on the host has, when the VM starts; a fixed port another such VM
holds refuses the start, as QEMU's listen fails. The screen is the host's own drawing (:func:`synthetic_screen`):
bands of colour drawn from the VM's name, with a bright bar that moves with each boot, so it is never one colour.
Every connection reaches the screen directly on the host (``memory://`` hosts live in this process).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from polyvisor.backend import Deadline
from polyvisor.errors import AlreadyExistsError
from polyvisor.model import Feature, GraphicsInfo, GraphicsProtocol, GraphicsSpec, PowerState, VideoModel
from polyvisor.png import Image, encode
from polyvisor.testing.faults import Instrumented

__all__ = [
    "FIRST_PORT",
    "SCREEN_FEATURES",
    "SCREEN_SIZE",
    "DisplayPrimitives",
    "Screen",
    "claim_port",
    "synthetic_screen",
]

FIRST_PORT = 5900
SCREEN_FEATURES = frozenset(
    {
        Feature.GRAPHICS_VNC,
        Feature.GRAPHICS_SPICE,
        Feature.GRAPHICS_NONE,
        Feature.GRAPHICS_PASSWORD,
        Feature.VIDEO_VIRTIO,
        Feature.VIDEO_QXL,
        Feature.VIDEO_VGA,
        Feature.VIDEO_BOCHS,
        Feature.VIDEO_NONE,
    }
)
"""The option features of a ``memory://`` host's screens: every protocol and video model."""
SCREEN_SIZE = (640, 480)


@dataclass
class Screen:
    """What a VM's spec asked of its screen, and the port its console holds while the VM runs."""

    graphics: GraphicsSpec | None = None
    video: VideoModel | None = None
    port: int | None = None

    @property
    def console(self) -> bool:
        """Whether the VM has a graphical console (VNC or SPICE)."""
        return self.graphics is not None and self.graphics.protocol is not GraphicsProtocol.NONE

    @property
    def adapter(self) -> bool:
        """Whether the VM has a display adapter to take a screenshot of."""
        if self.video is VideoModel.NONE:
            return False
        return self.video is not None or self.console


class _ScreenVM(Protocol):
    uuid: str
    name: str
    state: PowerState
    booted_at: float
    screen: Screen


class _DisplayHost(Protocol):
    name: str
    lock: threading.RLock

    def screen_vm(self, uuid: str) -> _ScreenVM: ...

    def running_screens(self) -> Iterable[_ScreenVM]: ...


def claim_port(vm: _ScreenVM, others: Iterable[_ScreenVM], host: str) -> None:
    """Give a starting VM's console its port (its fixed one, or the lowest free from :data:`FIRST_PORT`)."""
    screen = vm.screen
    if not screen.console:
        return
    assert screen.graphics is not None
    held = {other.screen.port: other.name for other in others if other is not vm and other.screen.port is not None}
    if screen.graphics.port is not None:
        if screen.graphics.port in held:
            raise AlreadyExistsError(
                f"graphics port {screen.graphics.port} is in use (VM {held[screen.graphics.port]!r} listens on it); "
                "stop that VM, or give this one another port or an automatic one",
                host=host,
                vm=vm.name,
            )
        screen.port = screen.graphics.port
        return
    port = FIRST_PORT
    while port in held:
        port += 1
    screen.port = port


def synthetic_screen(name: str, boot: float) -> bytes:
    """The PNG the modelled display shows: bands of colour from the VM's name, and a bar that moves per boot."""
    width, height = SCREEN_SIZE
    seed = hashlib.sha256(name.encode("utf-8")).digest()
    bar = int(boot * 1000) % (height - 16)
    rows = []
    for y in range(height):
        if bar <= y < bar + 16:
            colour = b"\xf0\xf0\xf0"
        else:
            band = seed[(y // 40) % len(seed)]
            colour = bytes((band, (band * 7) & 0xFF, 0x40))
        rows.append(colour * width)
    return encode(Image(width, height, b"".join(rows)))


class DisplayPrimitives(Instrumented):
    """The screen primitives of :class:`~polyvisor.testing.memory.MemoryBackend` (recorded, faults obeyed)."""

    host: _DisplayHost

    def graphics(self, uuid: str) -> GraphicsInfo:
        with self.host.lock:
            vm = self.host.screen_vm(uuid)
            graphics, port = vm.screen.graphics, vm.screen.port
        # probe_vm_features and the state check saw to both.
        assert graphics is not None
        assert port is not None
        listen = graphics.listen_address
        info = GraphicsInfo(
            protocol=graphics.protocol.value,
            host="127.0.0.1" if listen in ("0.0.0.0", "::") else listen,  # a wildcard listens on loopback too
            port=port,
            listen=listen,
            host_port=port,
            password_required=graphics.password is not None,
        )
        return replace(info, viewer=("remote-viewer", info.uri))

    def screenshot(self, uuid: str, deadline: Deadline) -> bytes:
        with self.host.lock:
            vm = self.host.screen_vm(uuid)
            name, boot = vm.name, vm.booted_at
        deadline.check("taking a screenshot", host=self.host.name, vm=name)
        return synthetic_screen(name, boot)

    def probe_vm_features(self, uuid: str) -> frozenset[Feature] | None:
        with self.host.lock:
            screen = self.host.screen_vm(uuid).screen
        missing = set()
        if not screen.console:
            missing.add(Feature.GRAPHICS)
        if not screen.adapter:
            missing.add(Feature.SCREENSHOT)
        return self.static_features() - missing if missing else None
