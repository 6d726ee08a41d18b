"""What Windows sees in a file's bytes when it opens them as a VHDX: the facts Get-VHD shows, read per [MS-VHDX].

A file written byte by byte (an uploaded image) is a virtual hard disk on Windows when its bytes are one: Get-VHD
and New-VHD -ParentPath open it by its structures, not by its name. :func:`read_facts` reads those structures from
the bytes as they stand:

* the file type identifier at offset 0 (signature ``vhdxfile``);
* the two headers at 64 KiB and 128 KiB (signature ``head``, a CRC-32C over the 4 KiB header): at least one valid
  (which of two valid ones is current, by sequence number, matters only to the log, which is not modelled);
* the region table at 192 KiB (signature ``regi``, a CRC-32C over its 64 KiB), whose regions (the block allocation
  table, the metadata) must lie within the file, and which locates the metadata region;
* the metadata table (signature ``metadata``) and its items: file parameters (block size, LeaveBlocksAllocated,
  HasParent), virtual disk size, virtual disk id, logical and physical sector size.

Anything missing, short or failing its checksum means the bytes are no VHDX (yet: an upload still under way).
Not modelled: replaying the log (a file whose header names one is taken as it stands), a differencing VHDX's
parent locator (such a file stays a plain file here), and VHD (version 1) files.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

__all__ = ["VhdxFacts", "crc32c", "read_facts"]

KiB = 1024
_HEADER_OFFSETS = (64 * KiB, 128 * KiB)
_HEADER_SIZE = 4 * KiB
_REGION_TABLE_OFFSET = 192 * KiB
_REGION_TABLE_SIZE = 64 * KiB
_METADATA_TABLE_SIZE = 64 * KiB
_METADATA_REGION = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
_FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
_VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
_VIRTUAL_DISK_ID = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
_LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
_PHYSICAL_SECTOR_SIZE = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli), the checksum of VHDX headers and region tables."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass(frozen=True)
class VhdxFacts:
    """What Get-VHD reports of a VHDX file, from its metadata."""

    vhd_type: str  # Fixed | Dynamic | Differencing
    size: int
    block_size: int
    logical_sector_size: int
    physical_sector_size: int
    disk_identifier: uuid.UUID


def _checked(data: bytearray, offset: int, size: int, checksum_at: int, signature: bytes) -> bool:
    """Whether ``data[offset:offset+size]`` starts with ``signature`` and its CRC-32C (taken as zero) matches."""
    if len(data) < offset + size or data[offset : offset + len(signature)] != signature:
        return False
    block = bytearray(data[offset : offset + size])
    (stored,) = struct.unpack_from("<I", block, checksum_at)
    block[checksum_at : checksum_at + 4] = bytes(4)
    return crc32c(block) == int(stored)


def _current_header(data: bytearray) -> bool:
    """Whether a valid header exists."""
    return any(_checked(data, offset, _HEADER_SIZE, 4, b"head") for offset in _HEADER_OFFSETS)


def _metadata_region(data: bytearray) -> int | None:
    end = _REGION_TABLE_OFFSET + _REGION_TABLE_SIZE
    if len(data) < end or data[_REGION_TABLE_OFFSET : _REGION_TABLE_OFFSET + 4] != b"regi":
        return None
    (count,) = struct.unpack_from("<I", data, _REGION_TABLE_OFFSET + 8)
    metadata = None
    for index in range(min(count, 2047)):
        entry = _REGION_TABLE_OFFSET + 16 + 32 * index
        guid = uuid.UUID(bytes_le=bytes(data[entry : entry + 16]))
        file_offset, length = struct.unpack_from("<QI", data, entry + 16)
        if file_offset + length > len(data):
            return None  # every region (the BAT, the metadata) lies within the file
        if guid == _METADATA_REGION:
            metadata = int(file_offset)
    return metadata


def _items(data: bytearray, region: int) -> dict[uuid.UUID, tuple[int, int]] | None:
    """The metadata items (file offset, length) by id."""
    if len(data) < region + _METADATA_TABLE_SIZE or data[region : region + 8] != b"metadata":
        return None
    (count,) = struct.unpack_from("<H", data, region + 10)
    items: dict[uuid.UUID, tuple[int, int]] = {}
    for index in range(min(count, 2047)):
        entry = region + 32 + 32 * index
        guid = uuid.UUID(bytes_le=bytes(data[entry : entry + 16]))
        offset, length = struct.unpack_from("<II", data, entry + 16)
        if len(data) < region + offset + length:
            return None
        items[guid] = (region + offset, length)
    return items


def read_facts(data: bytearray) -> VhdxFacts | None:
    """The VHDX facts of a file's bytes, or None when they are no (complete) VHDX."""
    if data[:8] != b"vhdxfile":
        return None
    region = _metadata_region(data)
    items = _items(data, region) if region is not None else None
    if items is None or any(key not in items for key in (_FILE_PARAMETERS, _VIRTUAL_DISK_SIZE)):
        return None
    # The checksums last: while an upload is under way, the cheap checks above fail first.
    if not _current_header(data) or not _checked(data, _REGION_TABLE_OFFSET, _REGION_TABLE_SIZE, 4, b"regi"):
        return None

    def number(key: uuid.UUID, fmt: str, default: int) -> int:
        if key not in items:
            return default
        return int(struct.unpack_from(fmt, data, items[key][0])[0])

    block_size, flags = struct.unpack_from("<II", data, items[_FILE_PARAMETERS][0])
    if flags & 2:  # HasParent: a differencing disk, whose parent locator this host does not read
        return None
    identifier = uuid.uuid4()
    if _VIRTUAL_DISK_ID in items:
        at = items[_VIRTUAL_DISK_ID][0]
        identifier = uuid.UUID(bytes_le=bytes(data[at : at + 16]))
    return VhdxFacts(
        vhd_type="Fixed" if flags & 1 else "Dynamic",  # LeaveBlocksAllocated
        size=number(_VIRTUAL_DISK_SIZE, "<Q", 0),
        block_size=int(block_size),
        logical_sector_size=number(_LOGICAL_SECTOR_SIZE, "<I", 512),
        physical_sector_size=number(_PHYSICAL_SECTOR_SIZE, "<I", 4096),
        disk_identifier=identifier,
    )
