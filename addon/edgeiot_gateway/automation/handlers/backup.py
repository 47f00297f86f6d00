"""The `backup` handler: the gateway's backup document written into `<data dir>/backups/`,
atomically, keeping the newest `keep` files."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import voluptuous as vol

from .base import Handler, HandlerContext, register_handler

PREFIX = "edgeiot-backup-"


@register_handler
class Backup(Handler):
    name = "backup"
    schema = vol.Schema({vol.Optional("keep", default=7): vol.All(int, vol.Range(min=1, max=365))})

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        document = ctx.backup()  # taken on the loop; the thread only encodes and writes it
        folder = ctx.data_dir / "backups"
        path = await asyncio.to_thread(_write, folder, document, time.time())
        removed = await asyncio.to_thread(_prune, folder, params["keep"])
        return {"file": path.name, "removed": removed}


def _write(folder: Path, document: dict[str, Any], now: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.3f}"[1:] + "Z"
    path = folder / f"{PREFIX}{stamp}.json"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        json.dump(document, file, separators=(",", ":"))
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
    return path


def _prune(folder: Path, keep: int) -> int:
    files = sorted(folder.glob(f"{PREFIX}*.json"))  # the names sort by time
    for old in files[:-keep]:
        old.unlink(missing_ok=True)
    return max(len(files) - keep, 0)
