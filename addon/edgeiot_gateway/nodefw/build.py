"""Node images: the LittleFS image, the merged flash image with a MicroPython base, the manifest,
and the OTA bundle (docs/node-firmware.md, "Building images").

Secrets live in config.json inside the filesystem image (and so in the merged image) and nowhere
else: not in the manifest, not in the bundle, not in what is printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esptool.targets import ESP8266ROM

from ..updates import images
from . import fsimage
from .sources import KEEP_AS_SOURCE, LIB_DIR, AppFile, BuildError
from .targets import (
    BLOCK_SIZE,
    MICROPYTHON,
    MPY_VERSION,
    PARTITION_TABLE,
    PARTITION_TABLE_SIZE,
    Layout,
    esp32_layout,
    layout,
)

CONFIG_PATH = "config.json"  # where the node runtime reads its config
FS_FILE, MERGED_FILE, MANIFEST_FILE = "littlefs.bin", "flash.bin", "manifest.json"


class BaseImageError(ValueError):
    """A MicroPython base image that does not fit the target."""


@dataclass(frozen=True, slots=True)
class Build:
    """What `build` wrote: the manifest and the output files by name."""

    manifest: dict[str, Any]
    outputs: dict[str, Path]


def _part(name: str, data: bytes, offset: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "offset": offset, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()} | extra  # fmt: skip


def plan(target: str, flash_mib: int, base: bytes | None) -> Layout:
    """The target's layout; on esp32 with a base image, the one its partition table gives."""
    default = layout(target, flash_mib)
    if base is None or target != "esp32":
        return default
    start = PARTITION_TABLE - default.base_offset
    try:
        return esp32_layout(base[start : start + PARTITION_TABLE_SIZE], flash_mib)
    except ValueError as err:
        raise BaseImageError(f"base image: {err}") from None


def check_base(base: bytes, layout: Layout) -> bytes:
    """The base image as it is flashed (ESP8266: header flash size set), or BaseImageError."""
    try:
        images.check_esp_image(base, layout.target)
    except images.ImageError as err:
        raise BaseImageError(f"base image: {err}") from None
    room = layout.fs_offset - layout.base_offset
    if len(base) > room:
        raise BaseImageError(
            f"base image: {len(base)} bytes from 0x{layout.base_offset:x} run into the"
            f" filesystem at 0x{layout.fs_offset:x} (at most {room} bytes)"
        )
    if layout.target != "esp8266":
        return base
    # The ESP8266 SDK takes the flash size from the header (esptool --flash-size does the same).
    code = ESP8266ROM.FLASH_SIZES[f"{layout.flash_size // (1024 * 1024)}MB"]
    return base[:3] + bytes([(base[3] & 0x0F) | code]) + base[4:]


def write_private(path: Path, data: bytes) -> None:
    """Write a file holding secrets, readable by its owner only (0600, also if it existed)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def build(
    config: dict[str, Any], app: list[AppFile], layout: Layout, version: str, *,
    base: bytes | None, out: Path,
) -> Build:  # fmt: skip
    """Write the filesystem image, the merged image (with `base`) and manifest.json to `out`."""
    files = [*app, AppFile(CONFIG_PATH, json.dumps(config, indent=1).encode() + b"\n")]
    fs = fsimage.build(files, layout.block_count)
    flashed = check_base(base, layout) if base is not None else None
    out.mkdir(parents=True, exist_ok=True)
    outputs = {FS_FILE: out / FS_FILE}
    parts = [_part("filesystem", fs, layout.fs_offset, file=FS_FILE, block_size=BLOCK_SIZE,
                   block_count=layout.block_count)]  # fmt: skip
    merged_entry = None
    if flashed is not None:
        parts.insert(0, _part("micropython", flashed, layout.base_offset))
        pad = layout.fs_offset - layout.base_offset - len(flashed)
        merged = b"\xff" * layout.base_offset + flashed + b"\xff" * pad + fs
        try:
            images.check_image(merged, layout.target, "esp-merged", 0)
        except images.ImageError as err:
            raise BuildError(f"merged image refused by the firmware library check: {err}") from None
        merged_entry = _part("merged", merged, 0, file=MERGED_FILE, format="esp-merged")
        outputs[MERGED_FILE] = out / MERGED_FILE
        write_private(out / MERGED_FILE, merged)
    else:
        (out / MERGED_FILE).unlink(missing_ok=True)  # an older build's, no longer described
    write_private(out / FS_FILE, fs)
    manifest = {
        "format": 1,
        "target": layout.target,
        "flash_size": layout.flash_size,
        "firmware": {"version": version, "micropython": MICROPYTHON, "mpy_version": MPY_VERSION},
        "node": {"node_id": config["node_id"], "name": config.get("name", config["node_id"])},
        "parts": parts,
        "merged": merged_entry,
        # config.json holds the secrets: listed without size or digest, which would leak them.
        "files": [{"path": f.path, "size": len(f.data), "sha256": f.sha256} for f in app]
        + [{"path": CONFIG_PATH, "secret": True}],
    }
    outputs[MANIFEST_FILE] = out / MANIFEST_FILE
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return Build(manifest, outputs)


def bundle_files(app: list[AppFile]) -> list[AppFile]:
    """A bundle's files: the node unpacks a bundle into a slot directory that boot.py puts first
    on sys.path, so libraries go to the slot's top (not lib/), and boot.py and main.py, which run
    only from the filesystem's root, stay out (a bad update cannot break the rollback)."""
    files: dict[str, AppFile] = {}
    for entry in app:
        if entry.path in KEEP_AS_SOURCE:
            continue
        path = entry.path.removeprefix(LIB_DIR + "/")
        if path in files:
            raise BuildError(f"bundle: {path} comes from both the sources and {LIB_DIR}/")
        files[path] = AppFile(path, entry.data)
    return sorted(files.values(), key=lambda f: f.path)


def bundle(app: list[AppFile], version: str, target: str) -> bytes:
    """An EdgeIoT bundle (contract in docs/firmware.md) of the firmware files, never the config."""
    app = bundle_files(app)
    manifest = {
        "format": 1, "version": version, "target": target,
        "files": [{"path": f.path, "size": len(f.data), "sha256": f.sha256} for f in app],
    }  # fmt: skip
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    data = images.BUNDLE_MAGIC + struct.pack("<I", len(raw)) + raw + b"".join(f.data for f in app)
    try:
        images.check_bundle(data)
    except images.ImageError as err:
        raise BuildError(f"bundle refused by the firmware library check: {err}") from None
    return data
