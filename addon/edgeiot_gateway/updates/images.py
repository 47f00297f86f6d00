"""Format checks for uploaded firmware: ESP images, merged ESP flash, Intel HEX, EdgeIoT bundles.

Every check raises ImageError with a message naming the problem; nothing is trusted from the
uploader beyond what the bytes confirm.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

ESP_TARGETS = ("esp32", "esp32s3", "esp32c3", "esp8266")
TARGETS = (*ESP_TARGETS, "mysensors", "edgeiot")
FORMATS = ("esp-image", "esp-merged", "intel-hex", "edgeiot-bundle")

ESP_MAGIC = 0xE9
# Chip ids of the esp32-family extended image header (esptool's IMAGE_CHIP_ID values).
CHIP_IDS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2", 13: "esp32c6",
            16: "esp32h2", 18: "esp32p4", 20: "esp32c61", 23: "esp32c5"}  # fmt: skip
BOOTLOADER_OFFSETS = {"esp32": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0, "esp8266": 0x0}
# Where a plain application image goes when the upload names no offset.
DEFAULT_APP_OFFSETS = {"esp32": 0x10000, "esp32s3": 0x10000, "esp32c3": 0x10000, "esp8266": 0x0}
MAX_SEGMENTS = 16
FLASH_SIZE_MAX = 16 * 1024 * 1024

BUNDLE_MAGIC = b"EIOTBNDL"
BUNDLE_MAX = 4 * 1024 * 1024
BUNDLE_MANIFEST_MAX = 64 * 1024
BUNDLE_TARGETS = ("esp32", "esp8266", "any")
_BUNDLE_PATH = re.compile(r"[A-Za-z0-9_./-]{1,255}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ImageError(ValueError):
    """An upload that is not a valid image of its declared format and target."""


@dataclass(frozen=True)
class ImageInfo:
    """What the checks learned: the format, the target and (ESP formats) the flash offset."""

    format: str
    target: str
    offset: int | None = None
    chip: str | None = None  # the chip the image header names (ESP formats)
    version: str | None = None  # the bundle manifest's version


def detect_format(data: bytes, target: str) -> str:
    """The format of `data` judged by its first bytes, or ImageError."""
    if data.startswith(BUNDLE_MAGIC):
        return "edgeiot-bundle"
    if data[:1] == b":":
        return "intel-hex"
    if data[:1] == bytes([ESP_MAGIC]):
        return "esp-image"
    boot = BOOTLOADER_OFFSETS.get(target)
    if boot and data[boot : boot + 1] == bytes([ESP_MAGIC]):
        return "esp-merged"
    raise ImageError(
        f"unknown firmware format: starts with {data[:8].hex() or 'nothing'}"
        " (expected an ESP image (0xE9), merged ESP flash, Intel HEX or an EdgeIoT bundle)"
    )


def check_image(
    data: bytes, target: str, fmt: str | None = None, offset: int | None = None
) -> ImageInfo:
    """Check `data` as firmware of `fmt` (detected when None) for `target`."""
    if target not in TARGETS:
        raise ImageError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    fmt = fmt or detect_format(data, target)
    if fmt not in FORMATS:
        raise ImageError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt in ("esp-image", "esp-merged"):
        if target not in ESP_TARGETS:
            raise ImageError(f"format {fmt} needs an ESP target, not {target!r}")
        if fmt == "esp-image":
            chip = check_esp_image(data, target)
            start = DEFAULT_APP_OFFSETS[target] if offset is None else offset
        else:
            start = 0 if offset is None else offset
            chip = _check_merged(data, target, start)
        if start % 4096 or start + len(data) > FLASH_SIZE_MAX:
            raise ImageError(f"offset 0x{start:x}: must be 4 KiB aligned and fit 16 MiB of flash")
        return ImageInfo(fmt, target, start, chip)
    if offset is not None:
        raise ImageError(f"format {fmt} takes no offset")
    if fmt == "intel-hex":
        if target != "mysensors":
            raise ImageError(f"Intel HEX is for target mysensors, not {target!r}")
        hex_to_binary(data)
        return ImageInfo(fmt, target)
    manifest = check_bundle(data)
    if target != "edgeiot" and manifest["target"] not in (target, "any"):
        raise ImageError(f"bundle is for {manifest['target']}, not {target}")
    return ImageInfo(fmt, target, version=manifest["version"])


def check_esp_image(data: bytes, target: str) -> str:
    """Check an ESP image's headers and segments; returns the chip it names (or ImageError)."""
    if len(data) < 8 or data[0] != ESP_MAGIC:
        first = f"0x{data[0]:02x}" if data else "nothing"
        raise ImageError(f"not an ESP image: first byte is {first}, expected 0xe9")
    count = data[1]
    if not 1 <= count <= MAX_SEGMENTS:
        raise ImageError(f"ESP image header: {count} segments (expected 1..{MAX_SEGMENTS})")
    position, chip = 8, "esp8266"
    if target != "esp8266":
        if len(data) < 24:
            raise ImageError("ESP image: truncated extended header")
        chip_id = struct.unpack_from("<H", data, 12)[0]
        chip = CHIP_IDS.get(chip_id, f"unknown chip id {chip_id}")
        position = 24
    for number in range(count):
        if position + 8 > len(data):
            raise ImageError(f"ESP image: segment {number} header past the end of the file")
        address, length = struct.unpack_from("<II", data, position)
        if length % 4 or position + 8 + length > len(data):
            raise ImageError(
                f"ESP image: segment {number} (address 0x{address:08x}) has a bad length {length}"
            )
        position += 8 + length
    if chip != target:
        raise ImageError(f"image is for {chip}, not {target}")
    return chip


def _check_merged(data: bytes, target: str, start: int) -> str:
    boot = BOOTLOADER_OFFSETS[target] - start
    if boot < 0 or len(data) <= boot:
        raise ImageError(
            f"merged image at 0x{start:x} does not cover the {target} bootloader offset"
            f" 0x{BOOTLOADER_OFFSETS[target]:x}"
        )
    try:
        return check_esp_image(data[boot:], target)
    except ImageError as err:
        raise ImageError(f"merged image, bootloader at 0x{boot:x}: {err}") from None


def hex_to_binary(data: bytes) -> bytes:
    """An Intel HEX file's bytes from its lowest to its highest address (gaps 0xFF)."""
    from intelhex import IntelHex, IntelHexError  # noqa: PLC0415

    hexfile = IntelHex()
    try:
        hexfile.loadhex(io.StringIO(data.decode("ascii")))
    except UnicodeDecodeError:
        raise ImageError("Intel HEX: not ASCII text") from None
    except IntelHexError as err:
        raise ImageError(f"Intel HEX: {err}") from None
    if not len(hexfile):
        raise ImageError("Intel HEX: no data records")
    binary: bytes = hexfile.tobinstr()
    return binary


def check_bundle(data: bytes) -> dict[str, Any]:
    """Check an EdgeIoT bundle (docs/firmware.md); returns its manifest."""
    if len(data) > BUNDLE_MAX:
        raise ImageError(f"bundle: {len(data)} bytes, at most {BUNDLE_MAX}")
    if not data.startswith(BUNDLE_MAGIC) or len(data) < 12:
        raise ImageError("bundle: missing the EIOTBNDL header")
    length = struct.unpack_from("<I", data, 8)[0]
    if length > BUNDLE_MANIFEST_MAX or 12 + length > len(data):
        raise ImageError(f"bundle: manifest length {length} is past the end or too large")
    try:
        manifest = json.loads(data[12 : 12 + length].decode("utf-8"))
    except ValueError as err:
        raise ImageError(f"bundle manifest: not UTF-8 JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise ImageError('bundle manifest: expected an object with "format": 1')
    if not isinstance(manifest.get("version"), str) or not manifest["version"]:
        raise ImageError("bundle manifest: version must be a non-empty string")
    if manifest.get("target") not in BUNDLE_TARGETS:
        raise ImageError(f"bundle manifest: target must be one of {', '.join(BUNDLE_TARGETS)}")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise ImageError("bundle manifest: files must be a non-empty list")
    position, seen = 12 + length, set()
    for number, entry in enumerate(files):
        where = f"bundle manifest: files[{number}]"
        if not isinstance(entry, dict):
            raise ImageError(f"{where}: not an object")
        path, size, digest = entry.get("path"), entry.get("size"), entry.get("sha256")
        if not isinstance(path, str) or not _safe_path(path):
            raise ImageError(f"{where}.path: {path!r} is not a safe relative path")
        if path in seen:
            raise ImageError(f"{where}.path: {path!r} appears twice")
        seen.add(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{where}.size: not a size")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ImageError(f"{where}.sha256: not 64 lowercase hex digits")
        content = data[position : position + size]
        if len(content) != size:
            raise ImageError(f"{where}: {path} runs past the end of the bundle")
        if hashlib.sha256(content).hexdigest() != digest:
            raise ImageError(f"{where}: {path} does not match its sha256")
        position += size
    if position != len(data):
        raise ImageError(f"bundle: {len(data) - position} bytes after the last file")
    return manifest


def _safe_path(path: str) -> bool:
    parts = path.split("/")
    return (
        bool(_BUNDLE_PATH.fullmatch(path))
        and not path.startswith("/")
        and all(part not in ("", ".", "..") for part in parts)
    )
