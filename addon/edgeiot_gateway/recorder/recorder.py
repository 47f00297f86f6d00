"""The recorder: every field value becomes an InfluxDB point, through a durable journal."""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .. import bus
from ..supervision import LoopHealth, backoff, keep_running
from .influx import InfluxTarget, InfluxWriter, WriteFailed, WriteRejected, WriteTooLarge
from .journal import Journal
from .line_protocol import PRECISION_FACTORS, encode_line, escape_measurement, tag_set

_LOGGER = logging.getLogger(__name__)

_UNKNOWN = ""  # not a valid line prefix: marks a field not looked up yet
RETRY_MAX = 10.0
IN_FLIGHT = 2  # POSTs to InfluxDB at a time
REMOVAL_RETRY = 1.0  # seconds before a failed removal of sent batches is tried again
COMMIT_LOOP = "recorder commit"
SEND_LOOP = "recorder send"


@dataclass(slots=True)
class RecorderConfig:
    """What is recorded, where, and how it is batched."""

    target: InfluxTarget
    measurement: str = "edgeiot"
    strings: bool = True  # record string and enum values as `text`
    include: list[str] = field(default_factory=list)  # fnmatch on node.source.field
    exclude: list[str] = field(default_factory=list)
    min_interval: float = 0.0  # seconds between points of one field (downsampling)
    batch_size: int = 5000
    flush_interval: float = 0.2  # seconds before staged points are committed to the journal
    max_queue_points: int = 5_000_000
    # Points held in memory while the journal cannot be written (a full disk): past it the
    # oldest are dropped and counted.
    max_staged_points: int = 200_000


class Recorder:
    """Follows `field value` events; commits points to the journal; drains it to InfluxDB.

    Points are acknowledged when committed to the journal (every `flush_interval` or
    `batch_size` points). Batches leave the journal only after InfluxDB accepted them (2xx)
    or refused their data for good (400), so outages and restarts lose nothing; replays of a
    batch are idempotent in InfluxDB (same series and timestamp).
    """

    def __init__(
        self,
        gateway_id: str,
        config: RecorderConfig,
        data_dir: Path,
        health: LoopHealth | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.config = config
        self.health = health or LoopHealth()
        self.on_commit: Callable[[], None] = lambda: None
        self.journal = Journal(data_dir / "recorder.db", config.max_queue_points)
        self._measurement = escape_measurement(config.measurement)
        self._factor = PRECISION_FACTORS[config.target.precision]
        self._strings, self._min_interval = config.strings, config.min_interval
        self._batch_size = config.batch_size
        self._prefixes: dict[tuple[str, str, str], str | None] = {}
        self._last_point: dict[tuple[str, str, str], float] = {}
        # Accepted points not yet in the journal: batches of `batch_size` lines already joined
        # (here, so the journal thread holds the GIL only briefly), then the current batch.
        self._full: deque[tuple[bytes, int]] = deque()
        self._staged: list[str] = []
        self._staged_points = 0
        self._commit_now = asyncio.Event()
        self._send_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._writer: InfluxWriter | None = None
        self._prepared = False  # database created (1.x)
        self._send_failures = 0  # in a row, for the backoff
        self._sent_upto = 0  # the newest batch id sent: the send loop reads after it
        self._read_ahead: asyncio.Future[list[tuple[int, int, bytes]]] | None = None
        self._sent_ids: list[int] = []  # sent, to be removed from the journal with the next read
        self._unremoved: set[int] = set()  # sent, not yet removed: reads skip them
        self._removals: set[asyncio.Future[None]] = set()
        self._removal_retry: asyncio.TimerHandle | None = None
        self._unsubscribe: Any = None
        self.seen = 0  # bus events taken (the durability barrier's counters)
        self.durable = 0  # of those, committed to the journal
        self.written = 0
        self.rejected = 0
        self.filtered = 0
        self.invalid = 0  # values InfluxDB cannot store, refused here
        self.staging_dropped = 0
        self.last_error: str | None = None
        self.last_write: float | None = None

    async def start(self, events: bus.EventBus) -> None:
        """Open the journal, follow the bus and start draining."""
        await self.journal.open()
        self._session = aiohttp.ClientSession()
        self._unsubscribe = events.subscribe(self._on_event)
        self._writer = InfluxWriter(self.config.target, self._session)
        self._tasks = [
            asyncio.create_task(
                keep_running(COMMIT_LOOP, self._commit_step, self.health),
                name="edgeiot-recorder-commit",
            ),
            asyncio.create_task(
                keep_running(SEND_LOOP, self._send_step, self.health),
                name="edgeiot-recorder-send",
            ),
        ]

    async def stop(self) -> None:
        """Commit what is staged, stop sending, close everything (the journal keeps the rest)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._removal_retry is not None:
            self._removal_retry.cancel()
        if self._read_ahead is not None:
            await asyncio.gather(self._next_batches(), return_exceptions=True)
        await asyncio.gather(*self._removals, return_exceptions=True)
        if self._sent_ids:
            await asyncio.gather(self.journal.remove(self._sent_ids), return_exceptions=True)
        try:
            await self._commit()
        except Exception:
            _LOGGER.exception("Recorder: %d staged points not committed", self._staged_points)
        if self._session is not None:
            await self._session.close()
        await self.journal.close()

    def status(self) -> dict[str, Any]:
        """Figures for the API and HA's diagnostic entities."""
        return {
            "staged": self._staged_points,  # accepted, committed within flush_interval
            "queued": self.journal.points,  # committed to disk, waiting for InfluxDB
            "written": self.written,
            "dropped": self.journal.dropped + self.staging_dropped,
            "rejected": self.rejected,
            "invalid": self.invalid,
            "filtered": self.filtered,
            "last_error": self.last_error,
            "last_write": self.last_write,
        }

    # Accepting points ------------------------------------------------------------------------

    def _prefix_for(self, key: tuple[str, str, str]) -> str | None:
        """A field's `measurement,tags ` line prefix, or None when include/exclude leave it out
        (cached by _on_event)."""
        name = ".".join(key)
        include, exclude = self.config.include, self.config.exclude
        included = not include or any(fnmatch.fnmatchcase(name, p) for p in include)
        wanted = included and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
        prefix = f"{self._measurement},{tag_set(self.gateway_id, *key)} " if wanted else None
        self._prefixes[key] = prefix
        return prefix

    def _on_event(self, event: bus.Event) -> None:
        # Runs for every field value of the gateway: kept to a few dict and attribute lookups.
        self.seen += 1
        if event.name != bus.FIELD_VALUE:
            return
        data = event.data
        key = (data["node_id"], data["source_id"], data["field_id"])
        prefix = self._prefixes.get(key, _UNKNOWN)
        if prefix is _UNKNOWN:
            prefix = self._prefix_for(key)
        value, updated = data["value"], data["updated"]
        if prefix is None or (not self._strings and isinstance(value, str)):
            self.filtered += 1
            return
        if self._min_interval:
            if updated - self._last_point.get(key, float("-inf")) < self._min_interval:
                self.filtered += 1
                return
            self._last_point[key] = updated
        line = encode_line(prefix, value, updated, self._factor)
        if line is None:
            self.invalid += 1
            return
        staged = self._staged
        staged.append(line)
        self._staged_points += 1
        if len(staged) >= self._batch_size:
            self._stage_batch()

    def _stage_batch(self) -> None:
        """The current batch is full: join it (the journal then only stores it), commit soon."""
        staged = self._staged
        self._full.append(("\n".join(staged).encode(), len(staged)))
        self._staged = []
        self._commit_now.set()
        failing = self.health.failing(COMMIT_LOOP)  # the journal refused the last commit
        while failing and self._full and self._staged_points > self.config.max_staged_points:
            _, count = self._full.popleft()  # the oldest
            self._staged_points -= count
            self.staging_dropped += count

    def commit_soon(self) -> None:
        """Commit without waiting for `flush_interval` (an acknowledgement waits for it)."""
        self._commit_now.set()

    async def _commit_step(self) -> None:
        try:
            async with asyncio.timeout(self.config.flush_interval):
                await self._commit_now.wait()
        except TimeoutError:
            pass
        self._commit_now.clear()
        await self._commit()

    async def _commit(self) -> None:
        """Commit everything staged, in batches of at most `batch_size`, with one transaction;
        on a failure the points stay staged (ahead of newer ones) for the next attempt."""
        seen = self.seen
        if self._staged:
            self._full.append(("\n".join(self._staged).encode(), len(self._staged)))
            self._staged = []
        if self._full:
            batches, self._full = list(self._full), deque()
            try:
                await self.journal.append(batches)
            except BaseException as err:
                self._full.extendleft(reversed(batches))  # ahead of newer ones
                self.last_error = f"journal: {type(err).__name__}: {err}"[:300]
                raise
            self._staged_points -= sum(count for _, count in batches)
            self._send_now.set()
            if self.last_error is not None and self.last_error.startswith("journal:"):
                self.last_error = None
        if seen > self.durable:
            self.durable = seen
            self.on_commit()

    # Draining to InfluxDB -------------------------------------------------------------------------

    async def _send_step(self) -> None:
        """Send the oldest batches; they leave the journal once InfluxDB took them (2xx) or
        refused their data for good (400). The next batches are read, and the sent ones
        removed, while these are sent, so the loop mostly waits for InfluxDB."""
        writer = self._writer
        assert writer is not None
        if not self._prepared:
            await writer.prepare()
            self._prepared = True
        self._send_now.clear()  # before reading: a commit meanwhile sets it again
        batches = await self._next_batches() if self._read_ahead is not None else []
        if not batches:
            # The read-ahead began before the clear: read again (this also forgets the batches
            # sent last), so no commit is missed before waiting.
            self._read_next(self._sent_upto)
            batches = await self._next_batches()
            if not batches:
                await self._send_now.wait()
                return
        self._read_next(batches[-1][0])
        failure = await self._send_batches(writer, batches)
        if failure is not None:
            self.failed(str(failure))
            self._send_failures += 1
            if "database not found" in str(failure):
                self._prepared = False
            # Read again after the pause: the bound may drop batches meanwhile.
            await asyncio.gather(self._next_batches(), return_exceptions=True)
            await asyncio.sleep(min(backoff(self._send_failures), RETRY_MAX))

    async def _send_batches(
        self, writer: InfluxWriter, batches: list[tuple[int, int, bytes]]
    ) -> WriteFailed | None:
        """POST the batches, IN_FLIGHT at a time (InfluxDB parses one while the next is on
        its way); after a failure no further one is started. Batches done (written or refused)
        are removed from the journal by the next read; `_sent_upto` moves to the last batch
        before the first one not done, so the next read starts there and skips the removed."""
        failed: list[int] = []
        failure: WriteFailed | None = None
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def send(index: int, points: int, lines: bytes) -> None:
            nonlocal failure
            async with slots:
                if failure is not None:
                    failed.append(index)
                    return
                try:
                    await self._write(writer, lines)
                except WriteFailed as err:
                    failure = failure or err
                    failed.append(index)
                    return
                except WriteRejected as err:
                    self._rejected(points, err)
                else:
                    self._written(points)
                self._sent_ids.append(batches[index][0])
                self._send_failures = 0  # InfluxDB answers: a failure starts a short backoff

        await asyncio.gather(*(send(i, p, lines) for i, (_, p, lines) in enumerate(batches)))
        first_failed = min(failed, default=len(batches))
        if first_failed:
            self._sent_upto = batches[first_failed - 1][0]
        return failure

    def _read_next(self, after: int) -> None:
        """Start reading the batches after `after`, and removing the ones sent so far."""
        if self._sent_ids:
            ids, self._sent_ids = self._sent_ids, []
            self._unremoved.update(ids)
            removal = asyncio.ensure_future(self.journal.remove(ids))
            self._removals.add(removal)
            removal.add_done_callback(functools.partial(self._removed, ids))
        self._read_ahead = asyncio.ensure_future(self._read(after, frozenset(self._unremoved)))

    async def _read(self, after: int, sent: frozenset[int]) -> list[tuple[int, int, bytes]]:
        """The batches after `after`, without those sent: the ones not removed when the read
        began (its snapshot may still hold them) and those not removed yet."""
        batches = await self.journal.oldest(8, after)
        unremoved = self._unremoved
        return [b for b in batches if b[0] not in sent and b[0] not in unremoved]

    def _removed(self, ids: list[int], removal: asyncio.Future[None]) -> None:
        self._removals.discard(removal)
        if removal.cancelled() or (err := removal.exception()) is not None:
            if not removal.cancelled():
                _LOGGER.warning("Recorder: forgetting %d sent batches failed (tried again): %r",
                                len(ids), err)  # fmt: skip
            self._sent_ids[:0] = ids  # tried again with the next read; still skipped meanwhile
            # Wake the send loop for that read even if no further points arrive.
            if self._removal_retry is not None:
                self._removal_retry.cancel()
            self._removal_retry = removal.get_loop().call_later(REMOVAL_RETRY, self._send_now.set)
        else:
            self._unremoved.difference_update(ids)

    async def _next_batches(self) -> list[tuple[int, int, bytes]]:
        """The read started by _read_next."""
        read, self._read_ahead = self._read_ahead, None
        assert read is not None
        return await read

    def _written(self, points: int) -> None:
        self.written += points
        self.last_write = time.time()
        if self.last_error is not None and not self.last_error.startswith("journal:"):
            _LOGGER.info("InfluxDB writes resumed")
            self.last_error = None

    def _rejected(self, points: int, err: WriteRejected) -> None:
        # InfluxDB 1.x writes the valid points of a batch and says which it refused.
        refused = points if err.refused is None else min(points, err.refused)
        self.rejected += refused
        self.written += points - refused
        self.last_error = f"rejected: {err}"
        _LOGGER.error("InfluxDB refused %d points (not retried): %s", refused, err)

    async def _write(self, writer: InfluxWriter, body: bytes) -> None:
        try:
            await writer.write(body)
        except WriteTooLarge:
            lines = body.split(b"\n")
            if len(lines) < 2:
                raise WriteRejected("a single point is larger than the server accepts") from None
            half = len(lines) // 2
            await self._write(writer, b"\n".join(lines[:half]))
            await self._write(writer, b"\n".join(lines[half:]))

    def failed(self, error: str) -> None:
        """A write failed for a reason that may go away: keep the points, say why."""
        if self.last_error != error:
            _LOGGER.warning("InfluxDB write failed, keeping %d points queued: %s",
                            self.journal.points, error)  # fmt: skip
        self.last_error = error
