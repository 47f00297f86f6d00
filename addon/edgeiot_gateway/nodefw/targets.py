"""Flash layouts of MicroPython 1.26.1's generic ESP32 and ESP8266 builds (docs/node-firmware.md).

ESP32 (ports/esp32/partitions-4MiBplus.csv, main.c): the bootloader at 0x1000, the factory app
partition 0x10000 + 0x1F0000; no "vfs" row, so at boot MicroPython registers a "vfs" partition
from the end of the last partition (0x200000) to the end of the physical flash.
ESP8266 (boards/esp8266_2MiB.ld, modules/flashbdev.py): the firmware from 0x0, the filesystem from
`esp.flash_user_start()` = 0x100000 (sector 256) to 20 KiB before the end of the flash (SDK
parameters). Both use 4 KiB blocks and mount LittleFS v2 (`vfs.VfsLfs2`, read/prog size 32,
lookahead 32, LittleFS 2.11, on-disk version 2.1).
"""

from __future__ import annotations

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
