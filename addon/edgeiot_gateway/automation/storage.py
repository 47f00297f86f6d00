"""Automation definitions and their run state in `<data_dir>/automation.db` (SQLite, its own
writer thread and versioned schema, so rule changes never wait on the node store's flushes).

A definition is acknowledged only once committed (synchronous=FULL); run state (latches,
running `for` timers, alarms, history) is written at most every `STATE_DELAY` seconds and at
stop, so a crash loses at most that much of it, never a definition.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import DATABASE_ERRORS, database_error
from ..sqlite_worker import SqliteWorker

_LOGGER = logging.getLogger(__name__)

STATE_DELAY = 1.0  # seconds
MIGRATIONS = [
    """
    CREATE TABLE definitions (id TEXT PRIMARY KEY, definition TEXT NOT NULL);
    CREATE TABLE run_state (id TEXT PRIMARY KEY, state TEXT NOT NULL);
    """,
]
HINT = (
    "move {path} away (the gateway then starts without automations) and restore a backup,"
    " which holds every definition"
)


class AutomationStorage:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._worker = SqliteWorker(path, "edgeiot-automation")

    async def open(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(definitions, run state by id); StartupError when the file cannot be used."""
        try:
            return await self._worker.run(self._open)
        except DATABASE_ERRORS as err:
            raise database_error(self.path, err, HINT.format(path=self.path)) from err

    def _open(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        db = self._worker.connect(synchronous="FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            db.executescript(f"BEGIN; {migration}; PRAGMA user_version={number}; COMMIT;")
            _LOGGER.info("Automation store %s migrated to schema %d", self.path, number)
        definitions = [
            json.loads(text) for (text,) in db.execute("SELECT definition FROM definitions")
        ]
        states = {i: json.loads(text) for i, text in db.execute("SELECT id, state FROM run_state")}
        return definitions, states

    async def put(self, definition: dict[str, Any]) -> None:
        await self._worker.run(self._put, definition["id"], json.dumps(definition))

    def _put(self, automation_id: str, text: str) -> None:
        with self._worker.transaction() as db:
            db.execute("INSERT OR REPLACE INTO definitions VALUES (?, ?)", (automation_id, text))

    async def delete(self, automation_id: str) -> None:
        await self._worker.run(self._delete, automation_id)

    def _delete(self, automation_id: str) -> None:
        with self._worker.transaction() as db:
            db.execute("DELETE FROM definitions WHERE id = ?", (automation_id,))
            db.execute("DELETE FROM run_state WHERE id = ?", (automation_id,))

    async def replace_all(self, definitions: list[dict[str, Any]]) -> None:
        """Every definition replaced (a restore); run state starts afresh."""
        rows = [(d["id"], json.dumps(d)) for d in definitions]
        await self._worker.run(functools.partial(self._replace_all, rows))

    def _replace_all(self, rows: list[tuple[str, str]]) -> None:
        with self._worker.transaction() as db:
            db.execute("DELETE FROM definitions")
            db.execute("DELETE FROM run_state")
            db.executemany("INSERT INTO definitions VALUES (?, ?)", rows)

    async def save_states(self, states: dict[str, Any]) -> None:
        rows = [(i, json.dumps(s)) for i, s in states.items()]
        await self._worker.run(functools.partial(self._save_states, rows))

    def _save_states(self, rows: list[tuple[str, str]]) -> None:
        with self._worker.transaction() as db:
            db.execute("DELETE FROM run_state")
            db.executemany("INSERT INTO run_state VALUES (?, ?)", rows)

    async def close(self) -> None:
        await self._worker.close()
