"""Which HA platform and entity each node field, action and telemetry value becomes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from homeassistant.const import Platform


class Kind(StrEnum):
    """What an entity shows or does."""

    FIELD = "field"
    BATTERY = "battery"
    RSSI = "rssi"
    LAST_SEEN = "last_seen"
    ACTION = "action"
    EVENTS = "events"


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """One entity to create for a node."""

    platform: Platform
    kind: Kind
    node_id: str
    key: str  # unique within the node: "source.field", "battery", "action.reboot" ...
    source_id: str | None = None
    field_id: str | None = None


def field_platform(field: dict[str, Any]) -> Platform:
    """The platform a field maps to, by its type and writability."""
    writable = field.get("writable", False)
    match field["type"]:
        case "bool":
            return Platform.SWITCH if writable else Platform.BINARY_SENSOR
        case "int" | "float":
            return Platform.NUMBER if writable else Platform.SENSOR
        case "enum":
            return Platform.SELECT if writable else Platform.SENSOR
        case _:
            return Platform.TEXT if writable else Platform.SENSOR


def entity_infos(node: dict[str, Any]) -> Iterator[EntityInfo]:
    """Every entity a node gets: its fields, its actions, events and telemetry."""
    node_id = node["id"]
    for source in node["sources"]:
        for field in source["fields"]:
            yield EntityInfo(
                field_platform(field), Kind.FIELD, node_id, f"{source['id']}.{field['id']}",
                source["id"], field["id"],
            )  # fmt: skip
        if source.get("events"):
            yield EntityInfo(
                Platform.EVENT, Kind.EVENTS, node_id, f"{source['id']}.events", source["id"]
            )
    for action in node.get("actions", []):
        yield EntityInfo(Platform.BUTTON, Kind.ACTION, node_id, f"action.{action}", field_id=action)
    # Telemetry sensors appear once the node reports the value (mains nodes have no battery).
    if node.get("battery") is not None:
        yield EntityInfo(Platform.SENSOR, Kind.BATTERY, node_id, "battery")
    if node.get("rssi") is not None:
        yield EntityInfo(Platform.SENSOR, Kind.RSSI, node_id, "rssi")
    yield EntityInfo(Platform.SENSOR, Kind.LAST_SEEN, node_id, "last_seen")


PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TEXT,
]
