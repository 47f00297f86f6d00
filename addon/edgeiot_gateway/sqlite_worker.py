"""One SQLite connection owned by one worker thread, so the event loop never waits on disk."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class SqliteWorker:
    """Runs every database call on a dedicated thread; `db` is only used from there."""

    def __init__(self, path: Path, thread_name: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._db: sqlite3.Connection | None = None

    async def run[R](self, func: Callable[..., R], *args: object) -> R:
        """Run `func(*args)` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def connect(self, synchronous: str, page_size: int | None = None) -> sqlite3.Connection:
        """(Worker thread) open the database in WAL mode with autocommit off by default;
        `page_size` applies to a new database only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if page_size is not None:
            db.execute(f"PRAGMA page_size={page_size}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        self._db = db
        return db

    @property
    def db(self) -> sqlite3.Connection:
        """(Worker thread) the open connection."""
        if self._db is None:
            raise RuntimeError(f"{self.path} is not open")
        return self._db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """(Worker thread) BEGIN IMMEDIATE ... COMMIT; any failure, the COMMIT's own (a full
        disk) included, rolls back, so the connection is ready for the next attempt."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @property
    def is_open(self) -> bool:
        """Whether the connection is open."""
        return self._db is not None

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        if self._db is not None:
            await self.run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)
