"""Which HA platform and entity each node field, action and telemetry value becomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from homeassistant.const import Platform

from .firmware import updatable


class Kind(StrEnum):
    """What an entity shows or does."""

    FIELD = "field"
    BATTERY = "battery"
    RSSI = "rssi"
    LAST_SEEN = "last_seen"
    ONLINE = "online"
    ACTION = "action"
    EVENTS = "events"
    FIRMWARE = "firmware"


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """One entity to create for a node."""

    platform: Platform
    kind: Kind
    node_id: str
    # Unique within the node, whatever the ids: "source.field", "events:source",
    # "action:reboot", "battery" ... (ids contain neither "." nor ":").
    key: str
    source_id: str | None = None
    field_id: str | None = None
    # What the entity is built from (names, unit, range ...); a change rebuilds the entity.
    definition: str = field(default="", compare=False)
    # False: created disabled because the entry reached HA's entity limit (limit.py).
    enabled: bool = field(default=True, compare=False)


# Diagnostic entities disabled by default (not counted against HA's entity limit).
DISABLED_BY_DEFAULT = frozenset({Kind.RSSI, Kind.LAST_SEEN})

# Telemetry entities stay when a (re)announce does not carry the value yet.
TELEMETRY_KEYS = frozenset({"battery", "rssi"})
LIVE_KEYS = frozenset({"value", "updated"})


def _definition(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def field_platform(spec: dict[str, Any]) -> Platform:
    """The platform a field maps to, by its type and writability."""
    writable = spec.get("writable", False)
    match spec["type"]:
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
        source_name = source.get("name")
        for spec in source["fields"]:
            definition = {k: v for k, v in spec.items() if k not in LIVE_KEYS}
            yield EntityInfo(
                field_platform(spec), Kind.FIELD, node_id, f"{source['id']}.{spec['id']}",
                source["id"], spec["id"], _definition(source_name, definition),
            )  # fmt: skip
        if source.get("events"):
            yield EntityInfo(
                Platform.EVENT, Kind.EVENTS, node_id, f"events:{source['id']}", source["id"],
                definition=_definition(source_name, source["events"]),
            )  # fmt: skip
    for action in node.get("actions", []):
        yield EntityInfo(Platform.BUTTON, Kind.ACTION, node_id, f"action:{action}", field_id=action)
    # Telemetry sensors appear once the node reports the value (mains nodes have no battery).
    if node.get("battery") is not None:
        yield EntityInfo(Platform.SENSOR, Kind.BATTERY, node_id, "battery")
    if node.get("rssi") is not None:
        yield EntityInfo(Platform.SENSOR, Kind.RSSI, node_id, "rssi")
    if updatable(node):
        yield EntityInfo(Platform.UPDATE, Kind.FIRMWARE, node_id, "firmware")
    yield EntityInfo(Platform.SENSOR, Kind.LAST_SEEN, node_id, "last_seen")
    yield EntityInfo(Platform.BINARY_SENSOR, Kind.ONLINE, node_id, "online")


PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TEXT,
    Platform.UPDATE,
]
