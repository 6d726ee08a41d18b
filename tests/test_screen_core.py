"""The screen in the core: PNGs written and read back, PPM and RGB 565 converted, graphics specs validated before
any backend call, and both faces answering from the same engine steps (on memory://)."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

import polyvisor
import polyvisor.aio
from polyvisor import Feature, GraphicsSpec, UnsupportedError, ValidationError, VMSpec, png
from polyvisor.testing import faults


def test_a_png_reads_back_pixel_for_pixel() -> None:
    pixels = bytes(range(256)) * 3 + bytes(48)  # 272 RGB pixels
    image = png.Image(17, 16, pixels)
    data = png.encode(image)
    assert png.is_png(data)
    assert png.decode(data) == image


def test_every_row_filter_is_undone() -> None:
    # Rows filtered with Sub, Up, Average and Paeth (QEMU's pixman PNGs use all of them).
    width = 4
    rows = [bytes(b for x in range(width) for b in (10 * x + y, 3 * x, 200 - y)) for y in range(4)]
    raw, previous = b"", bytes(width * 3)
    for kind, row in zip((1, 2, 3, 4), rows, strict=True):
        out = bytearray(row)
        for i in range(len(row)):
            left = row[i - 3] if i >= 3 else 0
            up, corner = previous[i], previous[i - 3] if i >= 3 else 0
            guess = {1: left, 2: up, 3: (left + up) >> 1, 4: _paeth(left, up, corner)}[kind]
            out[i] = (row[i] - guess) & 0xFF
        raw += bytes([kind]) + bytes(out)
        previous = row
    body = struct.pack(">IIBBBBB", width, 4, 8, 2, 0, 0, 0)
    chunks = b"".join(
        _chunk(kind, data) for kind, data in ((b"IHDR", body), (b"IDAT", zlib.compress(raw)), (b"IEND", b""))
    )
    assert png.decode(png.SIGNATURE + chunks).pixels == b"".join(rows)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_a_corrupt_png_is_refused_naming_the_chunk() -> None:
    data = bytearray(png.encode(png.Image(2, 2, bytes(12))))
    data[45] ^= 0xFF  # inside IDAT's data (8 signature + 25 IHDR + 8 IDAT header bytes before it)
    with pytest.raises(ValueError, match="IDAT chunk's CRC"):
        png.decode(bytes(data))
    with pytest.raises(ValueError, match="signature"):
        png.decode(b"P6 1 1 255\n\x00\x00\x00")


def test_ppm_and_rgb565_become_the_same_pixels() -> None:
    ppm = b"P6\n# QEMU screendump\n2 1\n255\n\xff\x00\x00\x00\xff\x00"
    assert png.from_ppm(ppm).pixels == b"\xff\x00\x00\x00\xff\x00"
    red, green = struct.pack("<H", 0xF800), struct.pack("<H", 0x07E0)
    assert png.from_rgb565(red + green, 2, 1).pixels == b"\xff\x00\x00\x00\xff\x00"
    with pytest.raises(ValueError, match="RGB 565"):
        png.from_rgb565(red, 2, 1)


@pytest.mark.parametrize(
    ("graphics", "field"),
    [
        ({"protocol": "rdp"}, "graphics.protocol"),
        ({"protocol": "vnc", "listen": "localhost"}, "graphics.listen"),
        ({"protocol": "vnc", "port": 5000}, "graphics.port"),
        ({"protocol": "none", "port": 5901}, "graphics"),
        ({"protocol": "spice", "password": "tab\there"}, "graphics.password"),
        ({"protocol": "vnc", "colour": "blue"}, "graphics"),
    ],
)
def test_bad_graphics_are_refused_naming_the_field(graphics: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        VMSpec(name="g", graphics=graphics)  # type: ignore[arg-type]  # a table is taken
    assert raised.value.field == field
    assert "tab\there" not in str(raised.value)


def test_a_spec_takes_a_protocol_name_and_a_video_model() -> None:
    spec = VMSpec.from_dict({"name": "g", "graphics": "spice", "video": "qxl"})
    assert spec.graphics == GraphicsSpec(protocol="spice")  # type: ignore[arg-type]  # str is taken
    assert spec.graphics is not None
    assert spec.graphics.listen_address == "127.0.0.1"
    with pytest.raises(ValidationError, match="not one of"):
        VMSpec(name="g", video="cirrus")  # type: ignore[arg-type]  # refused


def test_an_undeclared_protocol_is_refused_before_the_backend_is_asked() -> None:
    uri = "memory:///screen-gate?without=graphics-spice,video-bochs"
    with polyvisor.connect(uri) as conn:
        for asks, feature in (
            ({"graphics": "spice"}, Feature.GRAPHICS_SPICE),
            ({"video": "bochs"}, Feature.VIDEO_BOCHS),
        ):
            with pytest.raises(UnsupportedError) as raised:
                conn.create({"name": "gated", **asks})
            assert raised.value.feature is feature
        assert "create" not in faults.calls(conn)


def test_the_asyncio_face_reaches_the_same_screen() -> None:
    async def main() -> tuple[int, bytes]:
        async with polyvisor.aio.connect("memory:///screen-aio") as conn:
            vm = await conn.create({"name": "aio", "graphics": {"protocol": "vnc", "port": 5917}})
            await vm.start()
            try:
                return (await vm.graphics()).port, await vm.screenshot()
            finally:
                await vm.stop()
                await vm.delete()

    port, data = asyncio.run(main())
    assert port == 5917
    assert len(png.decode(data).colours()) > 1


def test_a_fixed_port_another_running_vm_holds_refuses_the_start() -> None:
    with polyvisor.connect("memory:///screen-ports") as conn:
        first = conn.create({"name": "one", "graphics": "vnc"})
        second = conn.create({"name": "two", "graphics": {"protocol": "vnc", "port": 5900}})
        first.start()
        with pytest.raises(polyvisor.AlreadyExistsError, match="5900"):
            second.start()
        first.stop()
        second.start()
        assert second.graphics().port == 5900
