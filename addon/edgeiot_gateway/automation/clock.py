"""Time for the automation services: the system's, or a manual one that tests move by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod

# A wall-clock sleep wakes at least this often to notice clock steps (NTP, a set date).
WALL_CHECK_INTERVAL = 60.0
# Loop turns `ManualClock.advance` yields so that woken sleepers run before it goes on.
SETTLE_TURNS = 20


class Clock(ABC):
    """Wall time (Unix seconds), monotonic time and sleeping."""

    @abstractmethod
    def time(self) -> float:
        """Unix time in seconds."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds of a clock that never steps back."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""

    @abstractmethod
    async def sleep_until(self, unix_ts: float) -> None:
        """Wait until the wall clock reads `unix_ts` (at once if it already does)."""


class SystemClock(Clock):
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def sleep_until(self, unix_ts: float) -> None:
        # Polling on purpose: a wall clock that steps has no event to wait for.
        while (remaining := unix_ts - time.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, WALL_CHECK_INTERVAL))


class ManualClock(Clock):
    """A clock that only moves on `advance`; sleepers wake in deadline order, nothing waits."""

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._start = self._now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + seconds)

    async def sleep_until(self, unix_ts: float) -> None:
        if unix_ts <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (unix_ts, next(self._order), future))
        await future  # a cancelled sleeper stays in the heap, done, and is skipped

    def sleepers(self) -> int:
        """How many tasks sleep on this clock now."""
        return sum(1 for *_, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline and letting it run."""
        target = self._now + seconds
        await self._settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self._now = max(self._now, deadline)
            future.set_result(None)
            await self._settle()
        self._now = max(self._now, target)
        await self._settle()

    async def _settle(self) -> None:
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)
