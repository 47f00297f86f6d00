"""The firmware library: checked, content-addressed files in the data dir, entries in the store.

A file is `<data_dir>/firmware/<sha256>.bin`; the uploader's name is metadata only and never
becomes part of a path. Uploads stream into `firmware/uploads/<random id>.part` and are checked
(images.py) before they become an entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..commands import (
    FIRMWARE_TOO_LARGE,
    IN_USE,
    INVALID_FIRMWARE,
    INVALID_VALUE,
    NOT_FOUND,
    CommandError,
)
from ..schemas import NAME_MAX
from .images import TARGETS, ImageError, check_image

if TYPE_CHECKING:
    from ..store import Store

_LOGGER = logging.getLogger(__name__)

MAX_UPLOADS = 4  # uploads in progress at a time
UPLOAD_IDLE_SECONDS = 600.0  # an upload without a chunk for this long is discarded
CHUNK_MAX = 256 * 1024  # bytes of one firmware_upload_chunk
VERSION_MAX = 64
RELEASE_NOTES_MAX = 8192
META_KEYS = ("name", "version", "target", "format", "size", "sha256", "release_notes", "offset",
             "mysensors")  # fmt: skip
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class _Upload:
    meta: dict[str, Any]
    path: Path
    file: IO[bytes]
    received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    touched: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FirmwareLibrary:
    """Upload, list, get and delete firmware; jobs hold an entry with `use` while they run."""

    def __init__(self, data_dir: Path, store: Store, max_bytes: int) -> None:
        self.directory = data_dir / "firmware"
        self.store = store
        self.max_bytes = max_bytes
        self.entries: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, _Upload] = {}
        self._in_use: Counter[str] = Counter()

    async def open(self) -> None:
        """Load the entries (dropping those whose file is gone) and clear stale uploads."""
        await asyncio.to_thread(self._prepare_directory)
        for entry in await self.store.firmware_entries():
            if self.path(entry).is_file():
                self.entries[entry["id"]] = entry
            else:
                _LOGGER.warning("Firmware %s: file %s is missing; entry dropped",
                                entry["id"], self.path(entry))  # fmt: skip
                await self.store.delete_firmware(entry["id"])

    def _prepare_directory(self) -> None:
        (self.directory / "uploads").mkdir(parents=True, exist_ok=True)
        for stale in (self.directory / "uploads").glob("*.part"):
            stale.unlink()

    def path(self, entry: dict[str, Any]) -> Path:
        """Where an entry's bytes are."""
        return self.directory / f"{entry['sha256']}.bin"

    def list(self) -> list[dict[str, Any]]:
        """Every entry, newest first."""
        return sorted(self.entries.values(), key=lambda e: e["uploaded_at"], reverse=True)

    def get(self, firmware_id: str) -> dict[str, Any]:
        """The entry with that id, or not_found."""
        entry = self.entries.get(firmware_id)
        if entry is None:
            raise CommandError(NOT_FOUND, f"no firmware {firmware_id!r}")
        return entry

    @contextlib.contextmanager
    def use(self, firmware_id: str) -> Iterator[dict[str, Any]]:
        """Hold an entry for a job: it cannot be deleted until the block ends."""
        entry = self.get(firmware_id)
        self._in_use[firmware_id] += 1
        try:
            yield entry
        finally:
            self._in_use[firmware_id] -= 1
            if not self._in_use[firmware_id]:
                del self._in_use[firmware_id]

    async def delete(self, firmware_id: str) -> None:
        """Remove an entry and its file; refused (in_use) while a job uses it."""
        entry = self.get(firmware_id)
        if self._in_use[firmware_id]:
            raise CommandError(IN_USE, f"firmware {firmware_id} is in use by a running job")
        await self.store.delete_firmware(firmware_id)
        del self.entries[firmware_id]
        await asyncio.to_thread(self.path(entry).unlink, missing_ok=True)

    async def begin(self, meta: dict[str, Any]) -> str:
        """Start an upload of `meta["size"]` bytes; returns its upload id."""
        meta = self._checked_meta(meta)
        now = time.monotonic()
        for upload_id, upload in list(self._uploads.items()):
            if now - upload.touched > UPLOAD_IDLE_SECONDS:
                await self._discard(upload_id)
        if len(self._uploads) >= MAX_UPLOADS:
            raise CommandError(INVALID_VALUE, f"{MAX_UPLOADS} uploads are already in progress")
        upload_id = secrets.token_hex(8)
        path = self.directory / "uploads" / f"{upload_id}.part"
        self._uploads[upload_id] = _Upload(meta, path, await asyncio.to_thread(path.open, "wb"))
        return upload_id

    async def chunk(self, upload_id: str, offset: int, data: bytes) -> dict[str, int]:
        """Append `data` at `offset` (which must be the bytes received so far)."""
        upload = self._upload(upload_id)
        async with upload.lock:
            if offset != upload.received:
                raise CommandError(
                    INVALID_VALUE, f"chunk at offset {offset}: expected offset {upload.received}"
                )
            if upload.received + len(data) > upload.meta["size"]:
                raise CommandError(
                    FIRMWARE_TOO_LARGE,
                    f"more than {upload.meta['size']} bytes (the announced size;"
                    f" the library takes at most {self.max_bytes})",
                )
            await asyncio.to_thread(upload.file.write, data)
            upload.hasher.update(data)
            upload.received += len(data)
            upload.touched = time.monotonic()
            return {"received": upload.received}

    async def end(self, upload_id: str) -> dict[str, Any]:
        """Finish an upload: check size, sha256 and format; returns the library entry."""
        upload = self._upload(upload_id)
        async with upload.lock:
            try:
                return await self._finish(upload)
            finally:
                await self._discard(upload_id)

    async def add(self, meta: dict[str, Any], chunks: AsyncIterable[bytes]) -> dict[str, Any]:
        """Upload from a stream of unknown length (REST); refused past the size limit."""
        upload_id = await self.begin({**meta, "size": self.max_bytes})
        try:
            async for data in chunks:
                await self.chunk(upload_id, self._uploads[upload_id].received, data)
            self._uploads[upload_id].meta["size"] = self._uploads[upload_id].received
            return await self.end(upload_id)
        finally:
            await self._discard(upload_id)

    async def close(self) -> None:
        """Discard unfinished uploads."""
        for upload_id in list(self._uploads):
            await self._discard(upload_id)

    def _upload(self, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise CommandError(NOT_FOUND, f"no upload {upload_id!r} in progress")
        return upload

    async def _discard(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            await asyncio.to_thread(upload.file.close)
            await asyncio.to_thread(upload.path.unlink, missing_ok=True)

    async def _finish(self, upload: _Upload) -> dict[str, Any]:
        meta = upload.meta
        if upload.received != meta["size"]:
            raise CommandError(INVALID_VALUE, f"received {upload.received} of {meta['size']} bytes")
        if upload.received == 0:
            raise CommandError(INVALID_FIRMWARE, "the file is empty")
        digest = upload.hasher.hexdigest()
        if meta.get("sha256") not in (None, digest):
            raise CommandError(INVALID_FIRMWARE, f"sha256 is {digest}, not {meta['sha256']}")
        await asyncio.to_thread(upload.file.close)
        data = await asyncio.to_thread(upload.path.read_bytes)
        try:
            info = await asyncio.to_thread(
                check_image, data, meta["target"], meta.get("format"), meta.get("offset")
            )
        except ImageError as err:
            raise CommandError(INVALID_FIRMWARE, str(err)) from None
        firmware_id = digest[:16]
        if (existing := self.entries.get(firmware_id)) is not None:
            return existing  # the same bytes again: the entry stays as it was
        entry = {
            "id": firmware_id,
            "name": meta["name"],
            "version": meta["version"],
            "target": meta["target"],
            "format": info.format,
            "sha256": digest,
            "size": upload.received,
            "offset": info.offset,
            "mysensors": meta.get("mysensors"),
            "release_notes": meta.get("release_notes"),
            "uploaded_at": time.time(),
        }
        await asyncio.to_thread(os.replace, upload.path, self.path(entry))
        await self.store.put_firmware(entry)
        self.entries[firmware_id] = entry
        _LOGGER.info("Firmware %s (%s %s, %s, %d bytes) added", firmware_id, entry["name"],
                     entry["version"], entry["format"], entry["size"])  # fmt: skip
        return entry

    def _checked_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        def invalid(message: str) -> CommandError:
            return CommandError(INVALID_VALUE, message)

        name, version, target = meta.get("name"), meta.get("version"), meta.get("target")
        if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX:
            raise invalid(f"name: 1 to {NAME_MAX} characters")
        if not isinstance(version, str) or not 0 < len(version) <= VERSION_MAX:
            raise invalid(f"version: 1 to {VERSION_MAX} characters")
        if target not in TARGETS:
            raise invalid(f"target: one of {', '.join(TARGETS)}")
        size = meta.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid("size: a number of bytes")
        if size > self.max_bytes:
            raise CommandError(
                FIRMWARE_TOO_LARGE, f"{size} bytes: the library takes at most {self.max_bytes}"
            )
        sha256 = meta.get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
            raise invalid("sha256: 64 lowercase hex digits")
        notes = meta.get("release_notes")
        if notes is not None and not (isinstance(notes, str) and len(notes) <= RELEASE_NOTES_MAX):
            raise invalid(f"release_notes: at most {RELEASE_NOTES_MAX} characters")
        offset = meta.get("offset")
        if offset is not None and (not isinstance(offset, int) or offset < 0):
            raise invalid("offset: a byte offset")
        mysensors = meta.get("mysensors")
        if (target == "mysensors") != (mysensors is not None):
            raise invalid("mysensors {type, version} is required for, and only for, mysensors")
        if mysensors is not None and not (
            isinstance(mysensors, dict)
            and set(mysensors) == {"type", "version"}
            and all(isinstance(v, int) and 0 <= v <= 0xFFFF for v in mysensors.values())
        ):
            raise invalid("mysensors: {type, version} numbers 0..65535")
        return {key: meta.get(key) for key in META_KEYS}
