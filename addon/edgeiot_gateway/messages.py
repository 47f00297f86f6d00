"""Messages providers hand to the processor: protocol-neutral, already decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import Node


@dataclass(slots=True, frozen=True)
class NodeAnnounced:
    """A node described itself (sources, fields, identity).

    `replayed`: the provider repeats a stored definition (an MQTT retained announce delivered
    on subscribing, a CAN node from the DBC at start) rather than hearing the node now; such an
    announce does not bring back a node removed through the API.
    """

    node: Node
    replayed: bool = False


@dataclass(slots=True, frozen=True)
class FieldValues:
    """New raw values for fields of one source; the processor checks them against the fields."""

    node_id: str
    source_id: str
    values: dict[str, object]
    timestamp: float | None = None


@dataclass(slots=True, frozen=True)
class NodeStatus:
    """A node went online or offline (its own status or its Last Will)."""

    node_id: str
    online: bool


@dataclass(slots=True, frozen=True)
class NodeHeartbeat:
    """A node is alive, with optional telemetry."""

    node_id: str
    battery: int | None = None
    rssi: int | None = None


@dataclass(slots=True, frozen=True)
class NodeEvent:
    """Something happened on a node, e.g. a button was pressed."""

    node_id: str
    source_id: str
    event: str
    data: dict[str, Any]


type InboundMessage = NodeAnnounced | FieldValues | NodeStatus | NodeHeartbeat | NodeEvent
