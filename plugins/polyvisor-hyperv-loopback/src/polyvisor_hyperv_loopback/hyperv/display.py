"""The VMs' screens as WMI shows them: each VM's video head, its settings, and the thumbnail of its screen.

``Msvm_VideoHead`` (one per running VM, ``SystemName`` the VM's Id, ``CurrentHorizontalResolution`` and
``CurrentVerticalResolution`` its mode), ``Msvm_VirtualSystemSettingData`` (the VM's own settings, ``VirtualSystemType``
``Microsoft:Hyper-V:System:Realized``, and one per checkpoint, ``Microsoft:Hyper-V:Snapshot:Realized``; both with
``VirtualSystemIdentifier`` the VM's Id) and ``Msvm_VirtualSystemManagementService.GetVirtualSystemThumbnailImage``:
raw RGB 565 pixels, 16-bit little-endian words, of the screen scaled to the size asked for. The modelled screen
is drawn from the VM's name and uptime (a band of colour, a frame, text-like rows), so no two VMs look alike and
no screen is one colour. A VM that is not Running or Paused has no screen: the method returns 32775, "Invalid
state for this operation" (ASSUMPTION: Microsoft lists the code, not when it is returned).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache

from .state import HostState

__all__ = [
    "INVALID_STATE",
    "MODE",
    "REALIZED",
    "SNAPSHOT",
    "Display",
    "SettingData",
    "VideoHead",
]

MODE = (1024, 768)
"""The mode of a running VM's screen (Hyper-V's synthetic video default: ASSUMPTION)."""
REALIZED = "Microsoft:Hyper-V:System:Realized"
SNAPSHOT = "Microsoft:Hyper-V:Snapshot:Realized"
COMPLETED = 0
INVALID_PARAMETER = 32773
INVALID_STATE = 32775
_SHOWING = frozenset({"Running", "Paused"})
_MAX_SIDE = 4096  # ASSUMPTION: larger thumbnails are refused as an invalid parameter


@dataclass(frozen=True)
class VideoHead:
    """One Msvm_VideoHead."""

    system_name: str
    width: int
    height: int


@dataclass(frozen=True)
class SettingData:
    """One Msvm_VirtualSystemSettingData: a VM's settings or a checkpoint's."""

    instance_id: str
    vm_id: uuid.UUID
    element_name: str
    system_type: str


class Display:
    """Screens and their WMI classes, over the host's state."""

    def __init__(self, state: HostState) -> None:
        self._state = state

    def video_heads(self) -> list[VideoHead]:
        """A head for every VM that shows a screen."""
        with self._state.condition:
            return [VideoHead(str(vm.id).upper(), *MODE) for vm in self._state.vms.values() if vm.state in _SHOWING]

    def setting_data(self) -> list[SettingData]:
        """Every VM's settings, and every checkpoint's."""
        out: list[SettingData] = []
        with self._state.condition:
            for vm in self._state.vms.values():
                out.append(SettingData(f"Microsoft:{str(vm.id).upper()}", vm.id, vm.name, REALIZED))
                for snapshot in vm.snapshots.values():
                    out.append(SettingData(f"Microsoft:{str(snapshot.id).upper()}", vm.id, snapshot.name, SNAPSHOT))
        return out

    def thumbnail(self, target: SettingData, width: int, height: int) -> tuple[int, bytes | None]:
        """GetVirtualSystemThumbnailImage: (return value, RGB 565 bytes or None)."""
        if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
            return INVALID_PARAMETER, None
        with self._state.condition:
            vm = self._state.vms.get(target.vm_id)
            if vm is None:
                return INVALID_PARAMETER, None
            if target.system_type != REALIZED or vm.state not in _SHOWING:
                return INVALID_STATE, None
            seed = hashlib.sha256(f"{vm.id}:{vm.name}".encode()).digest()
        return COMPLETED, _screen(seed, width, height)


def _rgb565(red: int, green: int, blue: int) -> int:
    return ((red >> 3) << 11) | ((green >> 2) << 5) | (blue >> 3)


@lru_cache(maxsize=16)
def _screen(seed: bytes, width: int, height: int) -> bytes:
    """A console-like screen: a dark background, a title band in the VM's colour, a frame, rows of 'text'."""
    background = _rgb565(16, 16, 24)
    band = _rgb565(seed[0] | 0x40, seed[1] | 0x40, seed[2] | 0x40)
    frame = _rgb565(200, 200, 200)
    text = _rgb565(180, 220, 180)
    band_rows = max(1, height // 12)
    rows: list[bytes] = []
    for y in range(height):
        if y < band_rows:
            line = [band] * width
        elif y in (band_rows, height - 1):
            line = [frame] * width
        else:
            line = [background] * width
            line[0] = line[-1] = frame
            cell = max(1, width // 80)
            row = (y - band_rows) // max(1, height // 40)
            if (y - band_rows) % max(1, height // 40) < max(1, height // 60):
                for x in range(2, width - 2):
                    glyph = (x // cell + row * 7 + seed[(row + x // (cell * 6)) % len(seed)]) % 5
                    if glyph < 3 and (x // (cell * 6) + row) % 9 < 7:
                        line[x] = text
        rows.append(struct.pack(f"<{width}H", *line))
    return b"".join(rows)
