"""SQLite store for nodes and last values: one writer thread, batched writes, versioned schema."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import bus
from .errors import DATABASE_ERRORS, database_error
from .models import Node, Value, node_from_dict
from .processor import MAX_TOMBSTONES
from .sqlite_worker import SqliteWorker
from .supervision import LoopHealth, keep_running

_LOGGER = logging.getLogger(__name__)

type ValueKey = tuple[str, str, str]

FLUSH_LOOP = "store flush"

MIGRATIONS = [
    """
    CREATE TABLE nodes (id TEXT PRIMARY KEY, definition TEXT NOT NULL);
    CREATE TABLE field_values (
        node_id TEXT NOT NULL, source_id TEXT NOT NULL, field_id TEXT NOT NULL,
        value TEXT NOT NULL, updated REAL,
        PRIMARY KEY (node_id, source_id, field_id)
    ) WITHOUT ROWID;
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # Nodes removed through the API: a replayed (retained) announce must not bring them back.
    """
    CREATE TABLE removed_nodes (id TEXT PRIMARY KEY, removed REAL NOT NULL);
    """,
    # The firmware library's entries (the files are <data_dir>/firmware/<sha256>.bin).
    """
    CREATE TABLE firmware (id TEXT PRIMARY KEY, entry TEXT NOT NULL);
    """,
]

RESTORE_HINT = (
    "move {path} away (the gateway then starts with no nodes) and restore a backup: POST the"
    " document of GET /api/v1/backup to /api/v1/restore (or the `restore` WebSocket command),"
    " or restore the add-on from a Home Assistant backup"
)


class Store:
    """Keeps nodes and their last values in `<data_dir>/edgeiot.db`.

    Changes arrive as bus events and are written in batches every `flush_interval` seconds,
    so persistence costs nothing per message on the event loop.
    """

    def __init__(
        self, path: Path, flush_interval: float = 1.0, health: LoopHealth | None = None
    ) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.health = health or LoopHealth()
        self.on_commit: Callable[[], None] = lambda: None
        self.seen = 0  # bus events taken (the durability barrier's counters)
        self.durable = 0  # of those, written to the database
        self._flush_now = asyncio.Event()
        self.removed_ids: list[str] = []  # nodes removed through the API, oldest first
        self._worker = SqliteWorker(path, "edgeiot-store")
        self._dirty_nodes: dict[str, Node] = {}
        self._removed_nodes: set[str] = set()
        self._dirty_values: dict[ValueKey, tuple[Value | None, float | None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.writes = 0

    async def open(self) -> list[Node]:
        """Open (and migrate) the database; returns the stored nodes with their last values.

        Raises StartupError when the file is damaged or cannot be written.
        """
        try:
            return await self._worker.run(self._open)
        except DATABASE_ERRORS as err:
            raise database_error(self.path, err, RESTORE_HINT.format(path=self.path)) from err

    def _open(self) -> list[Node]:
        db = self._worker.connect(synchronous="NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            db.executescript(f"BEGIN; {migration}; PRAGMA user_version={number}; COMMIT;")
            _LOGGER.info("Store %s migrated to schema %d", self.path, number)
        nodes = {
            node_id: node_from_dict(json.loads(definition))
            for node_id, definition in db.execute("SELECT id, definition FROM nodes")
        }
        rows = db.execute("SELECT node_id, source_id, field_id, value, updated FROM field_values")
        for node_id, source_id, field_id, value, updated in rows:
            node = nodes.get(node_id)
            field = node.field(source_id, field_id) if node else None
            if field is not None:
                field.value, field.updated = json.loads(value), updated
        self.removed_ids = [
            row[0] for row in db.execute("SELECT id FROM removed_nodes ORDER BY removed")
        ]
        return list(nodes.values())

    def start(self, events: bus.EventBus) -> None:
        """Follow the bus and write changes periodically."""
        events.subscribe(self._on_event)
        self._flusher = asyncio.create_task(
            keep_running(FLUSH_LOOP, self._flush_step, self.health), name="edgeiot-store-flush"
        )

    def commit_soon(self) -> None:
        """Flush without waiting for `flush_interval` (an acknowledgement waits for it)."""
        self._flush_now.set()

    def _on_event(self, event: bus.Event) -> None:
        self.seen += 1
        data = event.data
        match event.name:
            case bus.FIELD_VALUE:
                key = (data["node_id"], data["source_id"], data["field_id"])
                self._dirty_values[key] = (data["value"], data["updated"])
            case bus.NODE_ADDED | bus.NODE_UPDATED:
                node = data["node"]
                self._removed_nodes.discard(node["id"])
                self._dirty_nodes[node["id"]] = node
            case bus.NODE_REMOVED:
                self._dirty_nodes.pop(data["node_id"], None)
                self._removed_nodes.add(data["node_id"])

    async def _flush_step(self) -> None:
        try:
            async with asyncio.timeout(self.flush_interval):
                await self._flush_now.wait()
        except TimeoutError:
            pass
        self._flush_now.clear()
        await self.flush()

    async def flush(self) -> None:
        """Write pending changes in one transaction; on a failure they are kept for the next."""
        seen = self.seen
        if self._dirty_nodes or self._removed_nodes or self._dirty_values:
            await self._write_pending()
        if seen > self.durable:
            self.durable = seen
            self.on_commit()

    async def _write_pending(self) -> None:
        nodes, removed, values = self._dirty_nodes, self._removed_nodes, self._dirty_values
        self._dirty_nodes, self._removed_nodes, self._dirty_values = {}, set(), {}
        try:
            await self._worker.run(self._write, nodes, removed, values)
        except BaseException:
            # Put the batch back (newer changes win) so nothing is lost on a failed write.
            self._dirty_nodes = nodes | self._dirty_nodes
            self._removed_nodes |= removed - self._dirty_nodes.keys()
            self._dirty_values = values | self._dirty_values
            raise

    def _write(
        self,
        nodes: dict[str, Any],
        removed: set[str],
        values: dict[ValueKey, tuple[Value | None, float | None]],
        *,
        replace: bool = False,
    ) -> None:
        db, now = self._worker.db, time.time()
        with self._worker.transaction():
            if replace:  # a restore: the backup's state replaces everything, atomically
                db.execute("DELETE FROM nodes")
                db.execute("DELETE FROM field_values")
            for node_id in removed:
                db.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
                db.execute("DELETE FROM field_values WHERE node_id = ?", (node_id,))
                db.execute("INSERT OR REPLACE INTO removed_nodes VALUES (?, ?)", (node_id, now))
            if removed:  # keep the newest tombstones only
                db.execute(
                    "DELETE FROM removed_nodes WHERE id NOT IN"
                    " (SELECT id FROM removed_nodes ORDER BY removed DESC LIMIT ?)",
                    (MAX_TOMBSTONES,),
                )
            db.executemany("DELETE FROM removed_nodes WHERE id = ?", [(n,) for n in nodes])
            db.executemany(
                "INSERT OR REPLACE INTO nodes (id, definition) VALUES (?, ?)",
                [(node_id, json.dumps(_definition(node))) for node_id, node in nodes.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO field_values VALUES (?, ?, ?, ?, ?)",
                [(*key, json.dumps(value), updated) for key, (value, updated) in values.items()
                 if key[0] not in removed or key[0] in nodes],
            )  # fmt: skip
        self.writes += 1

    async def replace_all(self, nodes: list[Node]) -> None:
        """Replace every stored node and value (restore), in one transaction."""
        self._dirty_nodes, self._removed_nodes, self._dirty_values = {}, set(), {}
        data = [n.as_dict() for n in nodes]
        await self._worker.run(
            functools.partial(
                self._write, {n["id"]: n for n in data}, set(), _values_of(data), replace=True
            )
        )

    async def firmware_entries(self) -> list[dict[str, Any]]:
        """The firmware library's stored entries."""
        rows = await self._worker.run(
            lambda: self._worker.db.execute("SELECT entry FROM firmware ORDER BY id").fetchall()
        )
        return [json.loads(row[0]) for row in rows]

    async def put_firmware(self, entry: dict[str, Any]) -> None:
        """Store (or replace) one firmware entry."""
        await self._worker.run(self._put_firmware, entry["id"], json.dumps(entry))

    async def delete_firmware(self, firmware_id: str) -> None:
        """Forget one firmware entry."""
        await self._worker.run(self._put_firmware, firmware_id, None)

    def _put_firmware(self, firmware_id: str, entry: str | None) -> None:
        with self._worker.transaction() as db:
            if entry is None:
                db.execute("DELETE FROM firmware WHERE id = ?", (firmware_id,))
            else:
                db.execute("INSERT OR REPLACE INTO firmware VALUES (?, ?)", (firmware_id, entry))

    async def close(self) -> None:
        """Flush what is pending and close the database."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._worker.is_open:
            await self.flush()
        await self._worker.close()


def _definition(node: dict[str, Any]) -> dict[str, Any]:
    """A node's API dict reduced to what the store keeps as its definition."""
    definition = {
        k: v for k, v in node.items() if k not in ("online", "battery", "rssi", "last_seen")
    }
    definition["sources"] = [
        {**s, "fields": [{k: v for k, v in f.items() if k not in ("value", "updated")}
                         for f in s["fields"]]}
        for s in node["sources"]
    ]  # fmt: skip
    return definition


def _values_of(nodes: list[dict[str, Any]]) -> dict[ValueKey, tuple[Value | None, float | None]]:
    return {
        (n["id"], s["id"], f["id"]): (f["value"], f["updated"])
        for n in nodes
        for s in n["sources"]
        for f in s["fields"]
        if f["value"] is not None
    }
