"""The MySensors provider's state file: the nodes it knows and the ids it handed out, written
atomically (temporary file, fsync, rename), at most every `delay` seconds, and at once when an
id must be taken for good before the node hears of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import protocol as ms
from .nodes import Child, NodeState, text

_LOGGER = logging.getLogger(__name__)

STATE_VERSION = 1


class StateFile:
    """Loads the nodes once, then saves snapshots taken on the event loop in a worker thread."""

    def __init__(
        self, path: Path, snapshot: Callable[[], dict[int, NodeState]], delay: float
    ) -> None:
        self.path = path
        self._nodes = snapshot
        self._delay = delay
        self._handle: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self, prefix: str) -> list[NodeState]:
        """The nodes of the file; a broken file is moved aside (ids are handed out afresh)."""
        try:
            data = _read_json(self.path)
            return [] if data is None else nodes_from_json(data, prefix)
        except (OSError, ValueError, TypeError, AttributeError) as err:
            broken = self.path.with_name(f"{self.path.name}.broken-{int(time.time())}")
            _LOGGER.error(  # noqa: TRY400 (the reason is enough, no traceback)
                "MySensors: unreadable state %s (%s); moved to %s", self.path, err, broken
            )
            with contextlib.suppress(OSError):
                self.path.replace(broken)
            return []

    def save_soon(self) -> None:
        """Save within `delay` seconds (changes until then are folded into one write)."""
        if self._handle is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_later(self._delay, self._spawn_save)

    async def save(self) -> None:
        """Save now (raises OSError when the file cannot be written)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        snapshot = nodes_to_json(self._nodes())  # taken on the loop: the thread only writes it
        async with self._lock:
            await asyncio.to_thread(_write_json, self.path, snapshot)

    async def close(self) -> None:
        """Stop planning saves, wait for the running ones, then write the last state."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.save()

    def _spawn_save(self) -> None:
        self._handle = None
        task = asyncio.get_running_loop().create_task(self._save_logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save_logged(self) -> None:
        try:
            await self.save()
        except OSError:
            _LOGGER.exception("MySensors: could not save %s", self.path)


def nodes_to_json(nodes: dict[int, NodeState]) -> dict[str, Any]:
    """The state file's content."""
    return {
        "version": STATE_VERSION,
        "nodes": {str(number): node.to_json() for number, node in sorted(nodes.items())},
    }


def nodes_from_json(data: dict[str, Any], prefix: str) -> list[NodeState]:
    """The nodes of a state file (raises ValueError, TypeError or AttributeError if broken)."""
    nodes = []
    for key, item in data.get("nodes", {}).items():
        number = int(key)
        if not 0 <= number <= ms.MAX_NODE_ID:
            continue
        node = NodeState(number, f"{prefix}-{number}")
        node.sketch_name = text(item.get("sketch_name"))
        node.sketch_version = text(item.get("sketch_version"))
        node.library = text(item.get("library"))
        node.repeater = bool(item.get("repeater"))
        node.smart_sleep = bool(item.get("smart_sleep"))
        if running := item.get("running"):
            node.running = (int(running[0]), int(running[1]))
        node.children = {
            int(cid): Child.from_json(child)
            for cid, child in item.get("children", {}).items()
            if 0 <= int(cid) < ms.NODE_CHILD
        }
        nodes.append(node)
    return nodes


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        json.dump(data, file, separators=(",", ":"))
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(content)
    if not isinstance(data, dict):
        raise TypeError("the state is not a JSON object")
    return data
