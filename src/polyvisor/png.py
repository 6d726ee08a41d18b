"""PNG images written and read with zlib and struct alone: screenshots need no imaging library.

Hypervisors hand screens over in their own formats: QEMU a PNG or a binary PPM (``P6``, what ``virDomainScreenshot``
streams from older QEMUs), Hyper-V raw RGB 565 (``GetVirtualSystemThumbnailImage``). :func:`encode` writes 8-bit
RGB PNGs (ISO/IEC 15948, filter 0 on every row); :func:`decode` reads the non-interlaced 8-bit PNGs hypervisors and
this module write back into pixels, checking every chunk's CRC, so a test (or a caller) can look at what it got.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["SIGNATURE", "Image", "decode", "encode", "from_ppm", "from_rgb565", "is_png"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (8-bit grey, RGB, grey+alpha, RGBA)
_MAX_SIDE = 16384  # no hypervisor screen is larger; refuses absurd headers before allocating


@dataclass(frozen=True, slots=True)
class Image:
    """An 8-bit RGB image: ``pixels`` holds ``width * height`` RGB triples, row by row from the top."""

    width: int
    height: int
    pixels: bytes

    def __post_init__(self) -> None:
        if len(self.pixels) != self.width * self.height * 3:
            raise ValueError(f"{self.width}x{self.height} RGB needs {self.width * self.height * 3} bytes")

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The (red, green, blue) of one pixel."""
        at = (y * self.width + x) * 3
        red, green, blue = self.pixels[at : at + 3]
        return red, green, blue

    def colours(self) -> set[tuple[int, int, int]]:
        """Every distinct colour in the image."""
        data = self.pixels
        return {(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)}


def is_png(data: bytes) -> bool:
    """Return whether ``data`` starts with the PNG signature."""
    return data[:8] == SIGNATURE


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode(image: Image) -> bytes:
    """Return the image as PNG bytes (8-bit RGB, not interlaced)."""
    stride = image.width * 3
    raw = b"".join(b"\x00" + image.pixels[row * stride : (row + 1) * stride] for row in range(image.height))
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 2, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def _paeth(left: int, up: int, corner: int) -> int:
    estimate = left + up - corner
    to_left, to_up, to_corner = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    return up if to_up <= to_corner else corner


def _unfilter(kind: int, line: bytearray, previous: bytes, step: int) -> None:
    if kind == 1:
        for i in range(step, len(line)):
            line[i] = (line[i] + line[i - step]) & 0xFF
    elif kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + previous[i]) & 0xFF
    elif kind == 3:
        for i in range(len(line)):
            left = line[i - step] if i >= step else 0
            line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(line)):
            left = line[i - step] if i >= step else 0
            corner = previous[i - step] if i >= step else 0
            line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
    elif kind != 0:
        raise ValueError(f"unknown PNG row filter {kind}")


def decode(data: bytes) -> Image:
    """Read a PNG into RGB pixels; raise ValueError naming what is wrong with it.

    Grey, grey+alpha, RGB and RGBA at 8 bits per sample are read (alpha is dropped); palettes, 16-bit samples and
    interlacing are refused: no hypervisor screenshot uses them.
    """
    if not is_png(data):
        raise ValueError("not a PNG: the signature is missing")
    at, header, compressed = 8, b"", bytearray()
    ended = False
    while at < len(data):
        if at + 8 > len(data):
            raise ValueError("truncated PNG: a chunk header is cut off")
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        if len(body) != length or at + 12 + length > len(data):
            raise ValueError(f"truncated PNG: the {kind.decode('latin-1')} chunk is cut off")
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"corrupt PNG: the {kind.decode('latin-1')} chunk's CRC does not match")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            ended = True
            break
        at += 12 + length
    if len(header) != 13 or not ended:
        raise ValueError("invalid PNG: no IHDR or no IEND chunk")
    width, height, depth, colour, _compression, _filtering, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {colour}, interlace {interlace}")
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ValueError(f"unsupported PNG size {width}x{height}")
    step = _CHANNELS[colour]
    stride = width * step
    try:
        raw = zlib.decompress(bytes(compressed))
    except zlib.error as error:
        raise ValueError(f"corrupt PNG image data: {error}") from None
    if len(raw) != height * (stride + 1):
        raise ValueError(f"PNG image data holds {len(raw)} bytes, not {height * (stride + 1)}")
    rows = []
    previous = bytes(stride)
    for row in range(height):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, previous, step)
        previous = bytes(line)
        rows.append(previous)
    samples = b"".join(rows)
    if colour == 2:
        pixels = samples
    elif colour == 6:
        pixels = bytes(b for i in range(0, len(samples), 4) for b in samples[i : i + 3])
    else:  # grey, with or without alpha
        pixels = bytes(samples[i] for i in range(0, len(samples), step) for _ in range(3))
    return Image(width, height, pixels)


def from_ppm(data: bytes) -> Image:
    """Read a binary PPM (``P6``, maximum value 255): what QEMU's screendump writes."""
    fields: list[bytes] = []
    at = 0
    while len(fields) < 4:
        while at < len(data) and data[at : at + 1].isspace():
            at += 1
        if data[at : at + 1] == b"#":
            while at < len(data) and data[at : at + 1] != b"\n":
                at += 1
            continue
        start = at
        while at < len(data) and not data[at : at + 1].isspace():
            at += 1
        if start == at:
            raise ValueError("truncated PPM header")
        fields.append(data[start:at])
    magic, width_text, height_text, maximum = fields
    if magic != b"P6" or maximum != b"255":
        raise ValueError(f"not an 8-bit binary PPM (magic {magic!r}, maximum {maximum!r})")
    width, height = int(width_text), int(height_text)
    pixels = data[at + 1 : at + 1 + width * height * 3]  # one whitespace byte ends the header
    if len(pixels) != width * height * 3:
        raise ValueError(f"truncated PPM: {len(pixels)} bytes of pixels for {width}x{height}")
    return Image(width, height, pixels)


def from_rgb565(data: bytes, width: int, height: int) -> Image:
    """Read raw RGB 565 pixels (16-bit little-endian words, red in the top 5 bits), as Hyper-V sends a thumbnail."""
    if len(data) != width * height * 2:
        raise ValueError(f"{len(data)} bytes of RGB 565 for {width}x{height} (expected {width * height * 2})")
    out = bytearray(width * height * 3)
    for index, (word,) in enumerate(struct.iter_unpack("<H", data)):
        red, green, blue = word >> 11, (word >> 5) & 0x3F, word & 0x1F
        out[index * 3] = (red << 3) | (red >> 2)
        out[index * 3 + 1] = (green << 2) | (green >> 4)
        out[index * 3 + 2] = (blue << 3) | (blue >> 2)
    return Image(width, height, bytes(out))
