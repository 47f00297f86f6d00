"""The recorder's durable queue: batches of line protocol in SQLite, oldest first, bounded."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DATABASE_ERRORS, database_error
from ..sqlite_worker import SqliteWorker

_LOGGER = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    points INTEGER NOT NULL,
    lines BLOB NOT NULL
);
"""


# A batch (about 90 bytes a point) spans a few large pages rather than many small ones: appends
# and removals touch a sixteenth of the pages. New journals only; an existing one keeps its size.
PAGE_SIZE = 65536
WAL_CHECKPOINT_BYTES = 4 * 2**20  # SQLite's default with 4 KiB pages


class Journal:
    """Append batches, read the oldest, delete after a successful write.

    A batch is acknowledged once `append` returns: it is committed to disk (WAL, synchronous=FULL)
    and survives SIGKILL and power loss. When the queued points exceed `max_points`, the oldest
    batches are dropped (and counted) to make room. Reads have a connection and thread of their
    own, so reading the next batches never waits behind an append's fsync (WAL lets a reader
    see every committed batch while a write is in progress).
    """

    def __init__(self, path: Path, max_points: int) -> None:
        self.path = path
        self.max_points = max_points
        self.points = 0
        self.batches = 0
        self.dropped = 0
        self._worker = SqliteWorker(path, "edgeiot-journal")
        self._reader = SqliteWorker(path, "edgeiot-journal-read")

    async def open(self) -> None:
        """Open the journal and count what an earlier run left in it (StartupError if it cannot)."""
        try:
            await self._worker.run(self._open)
            await self._reader.run(self._reader.connect, "NORMAL")
        except DATABASE_ERRORS as err:
            hint = f"move {self.path} away (the points it holds for InfluxDB are then lost)"
            raise database_error(self.path, err, hint) from err

    def _open(self) -> None:
        db = self._worker.connect(synchronous="FULL", page_size=PAGE_SIZE)
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // PAGE_SIZE}")
        db.executescript(SCHEMA)
        self.batches, points = db.execute("SELECT COUNT(*), TOTAL(points) FROM batches").fetchone()
        self.points = int(points)
        if self.points:
            _LOGGER.info("Recorder journal holds %d points from an earlier run", self.points)

    async def append(self, batches: list[tuple[bytes, int]]) -> None:
        """Commit batches (line protocol, points) in one transaction (the acknowledgement
        point); past the bound the oldest are dropped."""
        await self._worker.run(self._append, batches)

    def _append(self, blobs: list[tuple[bytes, int]]) -> None:
        db = self._worker.db
        db.execute("PRAGMA synchronous=FULL")  # acknowledged points survive power loss
        points, batches = self.points, self.batches
        dropped: list[int] = []
        # The counters change only once the transaction is committed (not on a full disk).
        with self._worker.transaction():
            db.executemany("INSERT INTO batches (lines, points) VALUES (?, ?)", blobs)
            points += sum(count for _, count in blobs)
            batches += len(blobs)
            while points > self.max_points and batches > 1:
                row = db.execute("SELECT id, points FROM batches ORDER BY id LIMIT 1").fetchone()
                db.execute("DELETE FROM batches WHERE id = ?", (row[0],))
                points -= row[1]
                batches -= 1
                dropped.append(row[1])
        self.points, self.batches = points, batches
        for count in dropped:
            self.dropped += count
            _LOGGER.warning(
                "Recorder queue full (%d points max): dropped the oldest %d points (%d so far)",
                self.max_points, count, self.dropped,
            )  # fmt: skip

    async def oldest(self, limit: int, after: int = 0) -> list[tuple[int, int, bytes]]:
        """Up to `limit` oldest batches with an id above `after`, as (id, points, lines)."""
        return await self._reader.run(self._oldest, limit, after)

    def _oldest(self, limit: int, after: int) -> list[tuple[int, int, bytes]]:
        rows = self._reader.db.execute(
            "SELECT id, points, lines FROM batches WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [(int(i), int(p), bytes(b)) for i, p, b in rows]

    async def remove(self, ids: list[int]) -> None:
        """Forget batches that were written (or rejected for good)."""
        await self._worker.run(self._remove, ids)

    def _remove(self, ids: list[int]) -> None:
        db = self._worker.db
        # No fsync for removals: a removal lost in a crash only replays batches InfluxDB already
        # has (idempotent), and the next append's FULL commit makes it durable anyway.
        db.execute("PRAGMA synchronous=NORMAL")
        points = batches = 0
        with self._worker.transaction():
            for batch_id in ids:
                row = db.execute("DELETE FROM batches WHERE id = ? RETURNING points", (batch_id,))
                if (found := row.fetchone()) is not None:
                    points += found[0]
                    batches += 1
        self.points -= points
        self.batches -= batches

    async def close(self) -> None:
        """Close the database and its threads."""
        await self._reader.close()
        await self._worker.close()
