"""The scheduler service: one supervised loop over a heap of next run times.

Specs (parse_schedule, ScheduleSpec) live in schedules.py; they are re-exported here.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..supervision import LoopHealth, keep_running
from .clock import Clock
from .location import Location
from .schedules import ScheduleSpec, parse_schedule

__all__ = ["Callback", "Location", "ScheduleSpec", "Scheduler", "parse_schedule"]

_LOGGER = logging.getLogger(__name__)
LOOP_NAME = "automation scheduler"
# Tracebacks logged per schedule: the first ones, then one in every LOG_EVERY failures.
LOG_FIRST = 3
LOG_EVERY = 100

# Called with the schedule id and the planned run time; may return an awaitable (run as a task).
Callback = Callable[[str, float], Awaitable[None] | None]


@dataclass(slots=True)
class _Entry:
    spec: ScheduleSpec
    callback: Callback
    runs: int
    version: int
    next: float | None = None


class Scheduler:
    """Runs each schedule's callback at its planned times; callback errors never stop it."""

    def __init__(
        self, clock: Clock, location: Location | None = None, health: LoopHealth | None = None
    ) -> None:
        self.clock = clock
        self.location = location
        self.health = health or LoopHealth()
        self.errors: dict[str, int] = {}  # failed callbacks per schedule id
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._versions = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def set(
        self,
        schedule_id: str,
        spec: ScheduleSpec,
        callback: Callback,
        *,
        runs: int = 0,
        last_planned: float | None = None,
    ) -> float | None:
        """Add or replace a schedule; returns its next run time.

        After a restart pass the runs done so far and `last_planned`, the run that was planned
        before the stop: a missed run the spec's policy keeps is due at once.
        """
        now = self.clock.time()
        entry = _Entry(spec, callback, runs, next(self._versions))
        missed = spec.missed_run(last_planned, now, self.location, runs)
        entry.next = missed if missed is not None else spec.next_after(now, self.location, runs)
        self._entries[schedule_id] = entry
        self._push(schedule_id, entry)
        return entry.next

    def remove(self, schedule_id: str) -> None:
        """Stop a schedule (a run already started goes on)."""
        if self._entries.pop(schedule_id, None) is not None:
            self._compact()
            self._wake.set()

    def next_run(self, schedule_id: str) -> float | None:
        """The schedule's next planned run, None when it has ended or is unknown."""
        entry = self._entries.get(schedule_id)
        return entry.next if entry else None

    def runs(self, schedule_id: str) -> int:
        """Runs started since `set` (plus the `runs` passed to it)."""
        entry = self._entries.get(schedule_id)
        return entry.runs if entry else 0

    async def run(self) -> None:
        """The loop, until cancelled."""
        try:
            await keep_running(LOOP_NAME, self._loop, self.health)
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _push(self, schedule_id: str, entry: _Entry) -> None:
        if entry.next is not None:
            heapq.heappush(self._heap, (entry.next, entry.version, schedule_id))
        self._compact()
        self._wake.set()

    def _compact(self) -> None:
        """Drop the heap's entries of replaced or removed schedules once they pile up."""
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._heap = [item for item in self._heap if self._current(item) is not None]
            heapq.heapify(self._heap)

    def _current(self, item: tuple[float, int, str]) -> _Entry | None:
        entry = self._entries.get(item[2])
        return entry if entry is not None and entry.version == item[1] else None

    async def _loop(self) -> None:
        while True:
            while self._heap and self._current(self._heap[0]) is None:
                heapq.heappop(self._heap)  # replaced or removed
            now = self.clock.time()
            if self._heap and self._heap[0][0] <= now:
                planned, _, schedule_id = heapq.heappop(self._heap)
                entry = self._entries[schedule_id]
                entry.runs += 1
                entry.version = next(self._versions)
                # A late loop (suspend, overload) does not replay a backlog: plan from now.
                try:
                    entry.next = entry.spec.next_after(max(planned, now), self.location, entry.runs)
                except Exception as err:  # a bug in a rule ends this schedule, not the loop
                    entry.next = None
                    self._failed(schedule_id, err)
                self._push(schedule_id, entry)
                self._fire(schedule_id, entry.callback, planned)
                continue
            await self._wait(self._heap[0][0] if self._heap else None)

    async def _wait(self, deadline: float | None) -> None:
        self._wake.clear()
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._wake.wait())]
        if deadline is not None:
            waiters.append(asyncio.ensure_future(self.clock.sleep_until(deadline)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _fire(self, schedule_id: str, callback: Callback, planned: float) -> None:
        try:
            result = callback(schedule_id, planned)
        except Exception as err:
            self._failed(schedule_id, err)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._await(schedule_id, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _await(self, schedule_id: str, result: Awaitable[None]) -> None:
        try:
            await result
        except Exception as err:
            self._failed(schedule_id, err)

    def _failed(self, schedule_id: str, err: Exception) -> None:
        count = self.errors[schedule_id] = self.errors.get(schedule_id, 0) + 1
        if count <= LOG_FIRST or count % LOG_EVERY == 0:
            _LOGGER.error("Schedule %s: its run failed (#%d)", schedule_id, count, exc_info=err)
