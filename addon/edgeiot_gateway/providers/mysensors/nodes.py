"""What the MySensors provider knows about its nodes (see state_file.py), the queue of a
smart-sleep node, and node id assignment."""

from __future__ import annotations

import asyncio
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import protocol as ms
from . import values as mv

NAME_MAX = 128
UNIT_MAX = 16
# Seconds an id handed to a token is handed to the same token again (a repeated request).
ID_TOKEN_SECONDS = 60.0
MAX_AWAITED_ECHOES = 32  # per node: echoes we asked for and have not seen yet


class FirmwareSource(Protocol):
    """Where OTA firmware comes from (ota_jobs.OtaJobs: the library's firmware assigned to a node).

    A node's bootloader asks, with ST_FIRMWARE_CONFIG_REQUEST, which firmware it should run,
    then fetches it block by block with ST_FIRMWARE_REQUEST. Returning None leaves a request
    unanswered: the bootloader times out and starts the firmware it has.
    """

    def firmware_for(
        self, node_id: str, request: ms.FirmwareConfigRequest
    ) -> ms.FirmwareConfig | None:
        """The firmware `node_id` should run (None: keep its own)."""

    def firmware_block(self, node_id: str, request: ms.FirmwareBlockRequest) -> bytes | None:
        """One 16-byte block of the firmware the node asks for (None: unknown)."""


@dataclass(slots=True)
class Child:
    """A child sensor of a node, as presented and as seen."""

    sensor_type: int | None = None  # None: sent values without being presented
    description: str | None = None
    value_types: list[int] = field(default_factory=list)  # fields, in announce order
    events: list[str] = field(default_factory=list)  # events seen beyond the type's own
    unit: str | None = None  # V_UNIT_PREFIX
    values: dict[int, str] = field(default_factory=dict)  # last payload per V_ type (for req)

    def sensor_spec(self) -> mv.SensorSpec | None:
        """What the presented sensor type offers (None: never presented)."""
        return None if self.sensor_type is None else mv.SENSOR_SPECS.get(self.sensor_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.sensor_type,
            "description": self.description,
            "value_types": list(self.value_types),
            "events": list(self.events),
            "unit": self.unit,
            "values": {str(k): v for k, v in self.values.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Child:
        sensor_type = data.get("type")
        return cls(
            sensor_type=sensor_type if sensor_type in mv.SENSOR_SPECS else None,
            description=text(data.get("description")),
            value_types=[int(v) for v in data.get("value_types", []) if int(v) in mv.FIELD_IDS],
            events=[str(e) for e in data.get("events", [])],
            unit=text(data.get("unit"), UNIT_MAX),
            values={int(k): str(v) for k, v in data.get("values", {}).items()},
        )


@dataclass(slots=True)
class NodeState:
    """What the provider knows about one MySensors node (persisted) and its runtime state."""

    number: int
    node_id: str
    children: dict[int, Child] = field(default_factory=dict)
    sketch_name: str | None = None
    sketch_version: str | None = None
    library: str | None = None
    repeater: bool = False
    smart_sleep: bool = False
    running: tuple[int, int] | None = None  # OTA firmware (type, version) of its config request
    # runtime only
    battery: int | None = None
    awake_until: float = 0.0  # monotonic; a smart-sleep node counts as asleep from then on
    queue: dict[tuple[int, int, int], ms.Message] = field(default_factory=dict)
    # Echoes asked for and not seen yet, by (child, type, payload).
    awaiting_echo: dict[tuple[int, int, str], ms.Message] = field(default_factory=dict)
    announce_handle: asyncio.TimerHandle | None = None
    changes_since: float = 0.0  # loop time of the first change the pending announce covers
    announced: bool = False

    def awake(self, now: float) -> bool:
        """Whether the node listens now (a smart-sleep node only in its pre-sleep window)."""
        return not self.smart_sleep or now < self.awake_until

    def enqueue(self, message: ms.Message) -> None:
        """Keep a command for the node's next pre-sleep window (the newest per value wins)."""
        key = (message.command, message.child_id, message.type)
        self.queue.pop(key, None)
        self.queue[key] = message

    def expect_echo(self, message: ms.Message) -> None:
        """We asked the node to echo `message`."""
        key = (message.child_id, message.type, message.payload)
        self.awaiting_echo.pop(key, None)
        self.awaiting_echo[key] = message
        while len(self.awaiting_echo) > MAX_AWAITED_ECHOES:
            del self.awaiting_echo[next(iter(self.awaiting_echo))]

    def echoed(self, message: ms.Message) -> bool:
        """Whether an inbound echo is of a message we asked to be echoed (then forgotten)."""
        key = (message.child_id, message.type, message.payload)
        return self.awaiting_echo.pop(key, None) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "sketch_name": self.sketch_name,
            "sketch_version": self.sketch_version,
            "library": self.library,
            "repeater": self.repeater,
            "smart_sleep": self.smart_sleep,
            "running": list(self.running) if self.running else None,
            "children": {str(cid): child.to_json() for cid, child in self.children.items()},
        }


def text(value: object, limit: int = NAME_MAX) -> str | None:
    """A payload as a display string: printable, trimmed, non-empty, or None."""
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()[:limit]
    return text or None


def sentence(label: str) -> str:
    """`Wind speed` → `wind speed`, but `UV index` and `pH` stay as they are."""
    if len(label) > 1 and label[1].isupper():
        return label
    return label[:1].lower() + label[1:]


def int_payload(payload: str) -> int | None:
    try:
        return int(float(payload))
    except (ValueError, OverflowError):
        return None


class IdAssigner:
    """Node ids for I_ID_REQUEST. A node sends a random token as the request's child id and
    takes only a response carrying it (MyTransport.cpp), so concurrent requests are told apart;
    the same token asking again within ID_TOKEN_SECONDS gets the same id."""

    def __init__(self) -> None:
        self._tokens: dict[int, tuple[int, float]] = {}  # token → (id, when)

    def assign(self, token: int, taken: Container[int], now: float) -> tuple[int | None, bool]:
        """(id, whether it is newly taken); (None, False) when every id is taken."""
        for old in [t for t, (_, at) in self._tokens.items() if now - at > ID_TOKEN_SECONDS]:
            del self._tokens[old]
        if token != ms.AUTO_NODE and token in self._tokens:
            return self._tokens[token][0], False
        number = next((n for n in range(1, ms.MAX_NODE_ID + 1) if n not in taken), None)
        if number is not None and token != ms.AUTO_NODE:
            self._tokens[token] = (number, now)
        return number, number is not None
