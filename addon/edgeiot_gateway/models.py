"""The resource model: gateway → node → source → field, with their wire (JSON) shapes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# `int` fields hold signed 64-bit integers (what InfluxDB and most consumers can store).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Longest `string` value, in characters.
STRING_MAX = 255  # what an HA state holds; bounds the state dump (see limits.py)

type Value = bool | int | float | str


class FieldType(StrEnum):
    """The value type of a field."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    ENUM = "enum"


class InvalidValueError(ValueError):
    """A value that does not fit its field's type, range or options."""


@dataclass(slots=True)
class Field:
    """One value of a source: its description and its last value with a timestamp."""

    id: str
    name: str
    type: FieldType
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: list[str] | None = None
    value: Value | None = None
    updated: float | None = None

    def coerce(self, raw: object) -> Value:
        """Return `raw` as this field's type, or raise InvalidValueError."""
        match self.type:
            case FieldType.BOOL:
                if isinstance(raw, bool):
                    return raw
            case FieldType.INT:
                if isinstance(raw, float) and raw.is_integer():
                    raw = int(raw)
                if isinstance(raw, int) and not isinstance(raw, bool):
                    if not INT_MIN <= raw <= INT_MAX:
                        raise InvalidValueError(f"{self.id}: outside the signed 64-bit range")
                    return self._in_range(raw)
            case FieldType.FLOAT:
                if isinstance(raw, int | float) and not isinstance(raw, bool):
                    try:
                        number = float(raw)
                    except OverflowError:  # an integer beyond float range, such as 10**400
                        number = math.inf
                    if not math.isfinite(number):
                        raise InvalidValueError(f"{self.id}: not a finite number")
                    return self._in_range(number)
            case FieldType.STRING:
                if isinstance(raw, str):
                    if len(raw) > STRING_MAX:
                        raise InvalidValueError(f"{self.id}: longer than {STRING_MAX} characters")
                    if not is_valid_text(raw):
                        raise InvalidValueError(f"{self.id}: not valid Unicode (lone surrogate)")
                    return raw
            case FieldType.ENUM:
                if isinstance(raw, str) and raw in (self.options or ()):
                    return raw
                raise InvalidValueError(f"{self.id}: {_shown(raw)} is not one of {self.options}")
        raise InvalidValueError(f"{self.id}: {_shown(raw)} is not a {self.type.value}")

    def _in_range[N: (int, float)](self, number: N) -> N:
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            raise InvalidValueError(f"{self.id}: {number} is outside [{self.min}, {self.max}]")
        return number

    def definition(self) -> dict[str, Any]:
        """The field's description without its value (as announced)."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type.value}
        for key in ("unit", "device_class", "state_class", "min", "max", "step", "options"):
            if (item := getattr(self, key)) is not None:
                data[key] = item
        data["writable"] = self.writable
        return data

    def as_dict(self) -> dict[str, Any]:
        """The field with its last value, as the API shows it."""
        return self.definition() | {"value": self.value, "updated": self.updated}


@dataclass(slots=True)
class Source:
    """A sensor or actor on a node, holding fields."""

    id: str
    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def definition(self) -> dict[str, Any]:
        """The source's description without values."""
        fields = [f.definition() for f in self.fields.values()]
        return {"id": self.id, "name": self.name, "fields": fields, "events": list(self.events)}

    def as_dict(self) -> dict[str, Any]:
        """The source with its fields' last values."""
        return self.definition() | {"fields": [f.as_dict() for f in self.fields.values()]}


@dataclass(slots=True)
class Node:
    """A device on a network, reached through a provider of the gateway."""

    id: str
    provider: str
    name: str
    kind: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    hardware: str | None = None
    ota: dict[str, Any] | None = None  # {"target", "formats"}: the node takes OTA updates
    actions: list[str] = field(default_factory=list)
    heartbeat_interval: float | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    name_by_user: str | None = None
    online: bool = False
    battery: int | None = None
    rssi: int | None = None
    last_seen: float | None = None

    @property
    def display_name(self) -> str:
        """The name the user gave, else the node's own."""
        return self.name_by_user or self.name

    def field(self, source_id: str, field_id: str) -> Field | None:
        """The field at source/field, if the node has it."""
        source = self.sources.get(source_id)
        return None if source is None else source.fields.get(field_id)

    def definition(self) -> dict[str, Any]:
        """What the node announced plus the user's name: the part kept in the store."""
        return {
            "id": self.id,
            "provider": self.provider,
            "name": self.name,
            "name_by_user": self.name_by_user,
            "kind": self.kind,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "firmware": self.firmware,
            "hardware": self.hardware,
            "ota": None if self.ota is None else {**self.ota, "formats": list(self.ota["formats"])},
            "actions": list(self.actions),
            "heartbeat_interval": self.heartbeat_interval,
            "sources": [s.definition() for s in self.sources.values()],
        }

    def as_dict(self) -> dict[str, Any]:
        """The node as the API shows it: definition, liveness and last values."""
        data = self.definition()
        data["sources"] = [s.as_dict() for s in self.sources.values()]
        data |= {
            "online": self.online,
            "battery": self.battery,
            "rssi": self.rssi,
            "last_seen": self.last_seen,
        }
        return data


def _shown(raw: object) -> str:
    """A value as error messages show it: at most 80 characters."""
    text = repr(raw) if not isinstance(raw, int) or abs(raw) < 10**60 else "a huge integer"
    return text if len(text) <= 80 else text[:77] + "..."


def is_valid_text(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8: no lone surrogates (from `\\ud800` escapes or
    from undecodable bytes, which the decoder maps to surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def field_from_dict(data: dict[str, Any]) -> Field:
    """Build a Field from its (validated) definition."""
    return Field(
        id=data["id"],
        name=data.get("name") or data["id"],
        type=FieldType(data["type"]),
        unit=data.get("unit"),
        device_class=data.get("device_class"),
        state_class=data.get("state_class"),
        writable=bool(data.get("writable", False)),
        min=data.get("min"),
        max=data.get("max"),
        step=data.get("step"),
        options=list(data["options"]) if data.get("options") is not None else None,
    )


def node_from_dict(data: dict[str, Any]) -> Node:
    """Build a Node from its (validated) definition."""
    sources = {
        s["id"]: Source(
            id=s["id"],
            name=s.get("name") or s["id"],
            fields={f["id"]: field_from_dict(f) for f in s.get("fields", [])},
            events=list(s.get("events", [])),
        )
        for s in data.get("sources", [])
    }
    return Node(
        id=data["id"],
        provider=data["provider"],
        name=data.get("name") or data["id"],
        name_by_user=data.get("name_by_user"),
        kind=data.get("kind"),
        manufacturer=data.get("manufacturer"),
        model=data.get("model"),
        firmware=data.get("firmware"),
        hardware=data.get("hardware"),
        ota=data.get("ota"),
        actions=list(data.get("actions", [])),
        heartbeat_interval=data.get("heartbeat_interval"),
        sources=sources,
    )
