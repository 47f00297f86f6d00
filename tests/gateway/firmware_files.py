"""Firmware files for the tests, built byte by byte the way the ESP image format lays them out."""

from __future__ import annotations

import hashlib
import json
import struct

CHIP_IDS = {"esp32": 0, "esp32c3": 5, "esp32s3": 9}


def esp_image(target: str = "esp32", segments: int = 2, segment_size: int = 256) -> bytes:
    """A well-formed ESP application image for `target` (extended header except on esp8266)."""
    header = struct.pack("<BBBBI", 0xE9, segments, 2, 0x20, 0x40080000)
    if target != "esp8266":
        header += struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", CHIP_IDS[target], 0, 0, 0xFFFF,
                              b"\0" * 4, 0)  # fmt: skip
    body = b""
    for number in range(segments):
        content = bytes((number * 7 + i) % 251 for i in range(segment_size))
        body += struct.pack("<II", 0x3FFB0000 + number * 0x1000, len(content)) + content
    checksum = 0xEF
    image = header + body
    image += b"\0" * (15 - len(image) % 16)
    for byte in body:
        checksum ^= byte
    return image + bytes([checksum & 0xFF])


def merged_image(target: str = "esp32") -> bytes:
    """Raw flash from 0x0: bootloader at the target's offset, erased gaps, an app at 0x10000."""
    boot = 0x1000 if target == "esp32" else 0
    flash = bytearray(b"\xff" * 0x10000)
    bootloader = esp_image(target, 1, 1024)
    flash[boot : boot + len(bootloader)] = bootloader
    return bytes(flash) + esp_image(target, 3, 4096)


def bundle(files: dict[str, bytes], version: str = "1.2.0", target: str = "esp32") -> bytes:
    """An EdgeIoT bundle holding `files` in order."""
    manifest = {
        "format": 1,
        "version": version,
        "target": target,
        "files": [
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for path, data in files.items()
        ],
    }
    raw = json.dumps(manifest).encode()
    return b"EIOTBNDL" + struct.pack("<I", len(raw)) + raw + b"".join(files.values())


def intel_hex(data: bytes, address: int = 0) -> bytes:
    """`data` as Intel HEX records of 16 bytes plus the end record."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        record = struct.pack(">BHB", len(chunk), address + start, 0) + chunk
        lines.append(":" + (record + bytes([-sum(record) & 0xFF])).hex().upper())
    lines.append(":00000001FF")
    return ("\n".join(lines) + "\n").encode()
