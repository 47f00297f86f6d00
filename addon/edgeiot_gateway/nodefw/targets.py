"""Flash layouts of MicroPython 1.26.1's generic ESP32 and ESP8266 builds (docs/node-firmware.md).

ESP32 (ports/esp32/partitions-4MiBplus.csv, main.c): the bootloader at 0x1000, the factory app
partition 0x10000 + 0x1F0000; no "vfs" row, so at boot MicroPython registers a "vfs" partition
from the end of the last partition (0x200000) to the end of the physical flash. With a base image
the partition table in it (at 0x8000) decides, by the same rule (other board variants, OTA).
ESP8266 (boards/esp8266_2MiB.ld, modules/flashbdev.py): the firmware from 0x0, the filesystem from
`esp.flash_user_start()` = 0x100000 (sector 256) to 20 KiB before the end of the flash (SDK
parameters). Both use 4 KiB blocks and mount LittleFS v2 (`vfs.VfsLfs2`, read/prog size 32,
lookahead 32, LittleFS 2.11, on-disk version 2.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MIB = 1024 * 1024
BLOCK_SIZE = 4096
MICROPYTHON = "1.26.1"
MPY_VERSION = 6  # the .mpy format MicroPython 1.26 loads (header byte 1)
LFS_READ_SIZE = LFS_PROG_SIZE = LFS_LOOKAHEAD = 32  # VfsLfs2's defaults (extmod/vfs_lfs.c)
LFS_BLOCK_CYCLES = 100  # extmod/vfs_lfsx.c
LFS_DISK_VERSION = 0x00020001  # lib/littlefs 2.11


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the MicroPython image and the filesystem go on a board's flash."""

    target: str
    flash_size: int
    base_offset: int  # where MicroPython's firmware .bin is written
    fs_offset: int
    fs_size: int

    @property
    def block_count(self) -> int:
        return self.fs_size // BLOCK_SIZE


FLASH_SIZES = {"esp32": (4, 8, 16), "esp8266": (2, 4)}  # MiB the layouts below support


def layout(target: str, flash_mib: int = 4) -> Layout:
    """The layout of `target` with `flash_mib` MiB of flash (ValueError when unsupported)."""
    if target not in FLASH_SIZES:
        raise ValueError(f"unknown target {target!r} (esp32 or esp8266)")
    if flash_mib not in FLASH_SIZES[target]:
        sizes = ", ".join(map(str, FLASH_SIZES[target]))
        raise ValueError(f"{target}: flash size {flash_mib} MiB unsupported (one of {sizes})")
    size = flash_mib * MIB
    if target == "esp32":
        return Layout(target, size, 0x1000, 0x200000, size - 0x200000)
    start = 0x100000
    blocks = (size - 20 * 1024) // BLOCK_SIZE - start // BLOCK_SIZE
    return Layout(target, size, 0x0, start, blocks * BLOCK_SIZE)


PARTITION_TABLE = 0x8000  # CONFIG_PARTITION_TABLE_OFFSET of MicroPython's ESP32 builds
PARTITION_TABLE_SIZE = 0xC00
_ENTRY = struct.Struct("<2sBBII16sI")  # ESP-IDF's gen_esp32part.py layout
_DATA = 0x01


def esp32_layout(table: bytes, flash_mib: int) -> Layout:
    """The esp32 layout a partition table gives, as MicroPython 1.26's main.c finds its "vfs":
    the "vfs" data partition if there is one, else the flash after the last partition."""
    default = layout("esp32", flash_mib)
    end, found = 0, None
    for start in range(0, min(len(table), PARTITION_TABLE_SIZE) - _ENTRY.size + 1, _ENTRY.size):
        magic, kind, _sub, offset, size, raw_label, _flags = _ENTRY.unpack_from(table, start)
        if magic != b"\xaa\x50":
            break  # 0xEBEB (the table's MD5) or 0xFFFF (erased) end the entries
        label = raw_label.rstrip(b"\0").decode("ascii", "replace")
        if kind == _DATA and label in ("vfs", "ffat"):
            found = (label, offset, size)
        end = max(end, offset + size)
    if not end:
        raise ValueError(f"no partition table at 0x{PARTITION_TABLE:x}")
    if found is not None:
        label, offset, size = found
        if label == "ffat":
            raise ValueError("the partition table's filesystem is FAT (ffat), not LittleFS (vfs)")
        return Layout("esp32", default.flash_size, default.base_offset, offset, size)
    if end >= default.flash_size:
        raise ValueError(f"the partitions end at 0x{end:x}: no room for a filesystem")
    return Layout("esp32", default.flash_size, default.base_offset, end, default.flash_size - end)
