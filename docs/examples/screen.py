"""A VM's screen: how to connect to it, and a screenshot saved as a PNG (the example of docs/screen.md).

Run it as ``python screen.py [URI] [FILE]``; the docs' tests run it on ``memory:///screen``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import polyvisor
from polyvisor import Feature, png

uri = sys.argv[1] if len(sys.argv) > 1 else "memory:///screen"
out = Path(sys.argv[2] if len(sys.argv) > 2 else "screen.png")

with polyvisor.connect(uri) as conn:
    spec: dict[str, Any] = {"name": "screen-demo", "memory_mib": 256}
    if conn.supports(Feature.GRAPHICS_VNC):  # Hyper-V has VMConnect instead, always there
        spec["graphics"] = {"protocol": "vnc", "password": "v1ewer"}
    if conn.supports(Feature.VIDEO_VGA):
        spec["video"] = "vga"
    vm = conn.create(spec)
    try:
        vm.start()
        info = vm.graphics()
        print(f"{info.protocol} on {info.host}:{info.port}, password required: {info.password_required}")
        print("viewer:", " ".join(info.viewer))
        if info.tunnel:
            print("tunnel first:", " ".join(info.tunnel))
        data = vm.screenshot()
        out.write_bytes(data)
        image = png.decode(data)  # raises ValueError if the bytes are not a PNG
        print(f"{out.name}: {image.width}x{image.height}, {len(image.colours())} colours")
    finally:
        vm.stop()
        vm.delete(storage=True)
