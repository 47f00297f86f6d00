"""The gateway's internal event bus: processor → API, recorder, automations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

_LOGGER = logging.getLogger(__name__)

# Event names, as they also appear on the WebSocket API.
NODE_ADDED = "node added"
NODE_UPDATED = "node updated"
NODE_REMOVED = "node removed"
NODE_STATUS = "node status"
NODE_EVENT = "node event"
FIELD_VALUE = "field value"
GATEWAY_STATUS = "gateway status"
AUTOMATION_UPDATED = "automation updated"
AUTOMATION_REMOVED = "automation removed"
AUTOMATION_RUN = "automation run"
ALARM_UPDATED = "alarm updated"
NOTIFY = "notify"
FIRMWARE_PROGRESS = "firmware progress"


class Event(NamedTuple):  # a tuple: the cheapest immutable record to create per field value
    """Something that changed in the gateway's state."""

    name: str
    data: dict[str, Any]


type Listener = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to listeners; one failing listener never stops the others."""

    def __init__(self) -> None:
        # Replaced, never changed in place: a listener added or removed during an emit does
        # not change who gets that event.
        self._listeners: tuple[Listener, ...] = ()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        self._listeners = (*self._listeners, listener)
        return lambda: self._unsubscribe(listener)

    def _unsubscribe(self, listener: Listener) -> None:
        listeners = list(self._listeners)
        listeners.remove(listener)
        self._listeners = tuple(listeners)

    def emit(self, name: str, data: dict[str, Any]) -> None:
        """Deliver an event to every listener."""
        event = Event(name, data)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _LOGGER.exception("Event listener %s failed on %s", listener, name)
