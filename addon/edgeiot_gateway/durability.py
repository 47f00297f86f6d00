"""Acknowledge only what is durable: callbacks that run once every sink has committed.

A sink (the store, the recorder's journal) counts the bus events it has `seen` and, after each
successful commit, how many of them are `durable`. `when_durable(callback)` runs the callback once
every sink has made durable all the events it had seen at the time of the call; until then the
sinks are asked to commit soon. Providers use it to acknowledge messages to their source (MQTT
PUBACK) only after their effects are on disk, so a crash of the gateway loses nothing the source
believes delivered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

_LOGGER = logging.getLogger(__name__)


class Sink(Protocol):
    """Something that commits bus events to disk."""

    @property
    def seen(self) -> int:
        """Events taken from the bus so far."""

    @property
    def durable(self) -> int:
        """Of those, how many are committed (a prefix: events are committed in order)."""

    def commit_soon(self) -> None:
        """Commit what was seen without waiting for the usual interval."""


class Durability:
    """Runs callbacks when every sink has committed what it had seen when they were queued."""

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._waiting: deque[tuple[list[int], Callable[[], None]]] = deque()

    def add_sink(self, sink: Sink) -> None:
        """Include a sink in every later barrier."""
        self._sinks.append(sink)

    @property
    def waiting(self) -> int:
        """Callbacks that wait for a commit."""
        return len(self._waiting)

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Run `callback` (on the event loop) once everything seen so far is committed."""
        targets = [sink.seen for sink in self._sinks]
        if not self._waiting and self._reached(targets):
            callback()
            return
        self._waiting.append((targets, callback))
        for sink, target in zip(self._sinks, targets, strict=True):
            if sink.durable < target:
                sink.commit_soon()

    def committed(self) -> None:
        """A sink committed: run the callbacks whose events are now all durable, in order."""
        waiting = self._waiting
        while waiting and self._reached(waiting[0][0]):
            _, callback = waiting.popleft()
            try:
                callback()
            except Exception:
                _LOGGER.exception("Acknowledgement callback %s failed", callback)

    def _reached(self, targets: list[int]) -> bool:
        return all(sink.durable >= t for sink, t in zip(self._sinks, targets, strict=True))
