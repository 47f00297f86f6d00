"""Validation schemas for node definitions, shared by providers, restore and the API."""

from __future__ import annotations

import math
from typing import Any

import voluptuous as vol

from .models import ID_PATTERN, INT_MAX, INT_MIN, FieldType

SCHEMA_VERSION = 1

Identifier = vol.All(str, vol.Match(ID_PATTERN))
NAME_MAX = 128
ShortText = vol.All(str, vol.Length(min=1, max=NAME_MAX))


def Number(value: Any) -> float | int:  # noqa: N802 (reads as a type in schemas)
    """A finite JSON number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise vol.Invalid("expected a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond float range, such as 10**400
        finite = False
    if not finite:
        raise vol.Invalid("expected a finite number")
    return value


def Integer(value: Any) -> int:  # noqa: N802
    """A JSON integer (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid("expected an integer")
    return value


def Version(value: Any) -> int:  # noqa: N802
    """The schema version: exactly the integer SCHEMA_VERSION."""
    if type(value) is not int or value != SCHEMA_VERSION:
        raise vol.Invalid(f"expected schema version {SCHEMA_VERSION}")
    return value


def _check_field(data: dict[str, Any]) -> dict[str, Any]:
    if data["type"] == FieldType.ENUM and not data.get("options"):
        raise vol.Invalid("an enum field needs options")
    low, high = data.get("min"), data.get("max")
    if low is not None and high is not None and low > high:
        raise vol.Invalid("min is above max")
    return data


FIELD_SCHEMA = vol.All(
    vol.Schema(
        {
            vol.Required("id"): Identifier,
            vol.Optional("name"): ShortText,
            vol.Required("type"): vol.In([t.value for t in FieldType]),
            vol.Optional("unit"): vol.Any(None, vol.All(str, vol.Length(max=16))),
            vol.Optional("device_class"): vol.Any(None, vol.All(str, vol.Length(max=32))),
            vol.Optional("state_class"): vol.Any(
                None, vol.In(["measurement", "total", "total_increasing"])
            ),
            vol.Optional("writable", default=False): bool,
            vol.Optional("min"): vol.Any(None, Number),
            vol.Optional("max"): vol.Any(None, Number),
            vol.Optional("step"): vol.Any(
                None, vol.All(Number, vol.Range(min=0, min_included=False))
            ),
            vol.Optional("options"): vol.Any(None, vol.All([ShortText], vol.Length(min=1, max=64))),
        }
    ),
    _check_field,
)


def _unique_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [item["id"] for item in items]
    if len(ids) != len(set(ids)):
        raise vol.Invalid("ids must be unique")
    return items


SOURCE_SCHEMA = vol.Schema(
    {
        vol.Required("id"): Identifier,
        vol.Optional("name"): ShortText,
        vol.Required("fields"): vol.All([FIELD_SCHEMA], vol.Length(max=256), _unique_ids),
        # Events the source can emit (e.g. pressed, held): offered as HA device triggers.
        vol.Optional("events", default=list): vol.All([Identifier], vol.Length(max=32)),
    }
)

# What a node that takes firmware over the air announces (docs/protocol.md 2.4).
OTA_TARGETS = ("esp32", "esp32s3", "esp32c3", "esp8266")
OTA_FORMATS = ("edgeiot-bundle", "esp-image")


def _distinct(items: list[str]) -> list[str]:
    if len(items) != len(set(items)):
        raise vol.Invalid("formats must be distinct")
    return items


OTA_SCHEMA = vol.Schema(
    {
        vol.Required("target"): vol.In(OTA_TARGETS),
        vol.Required("formats"): vol.All(
            [vol.In(OTA_FORMATS)], vol.Length(min=1, max=len(OTA_FORMATS)), _distinct
        ),
    }
)

# What a node announces about itself (the provider adds id and provider).
NODE_DEFINITION = {
    vol.Optional("name"): ShortText,
    vol.Optional("kind"): vol.Any(None, ShortText),
    vol.Optional("manufacturer"): vol.Any(None, ShortText),
    vol.Optional("model"): vol.Any(None, ShortText),
    vol.Optional("firmware"): vol.Any(None, ShortText),
    vol.Optional("hardware"): vol.Any(None, ShortText),
    vol.Optional("ota"): vol.Any(None, OTA_SCHEMA),
    vol.Optional("actions", default=list): vol.All([Identifier], vol.Length(max=32)),
    vol.Optional("heartbeat_interval"): vol.Any(None, vol.All(Number, vol.Range(min=1, max=86400))),
    vol.Required("sources"): vol.All([SOURCE_SCHEMA], vol.Length(max=64), _unique_ids),
}

# A node as kept in the store and in backups.
STORED_NODE_SCHEMA = vol.Schema(
    {
        **NODE_DEFINITION,
        vol.Required("id"): Identifier,
        vol.Required("provider"): Identifier,
        vol.Optional("name_by_user"): vol.Any(None, ShortText),
    }
)


def Scalar(value: Any) -> bool | int | float | str:  # noqa: N802
    """A field value as stored: boolean, string, finite float or integer within 64 bits."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int) and INT_MIN <= value <= INT_MAX:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise vol.Invalid("expected a boolean, a string, a finite number or a 64-bit integer")


BACKUP_VALUE_SCHEMA = vol.Schema(
    {
        vol.Required("node_id"): Identifier,
        vol.Required("source_id"): Identifier,
        vol.Required("field_id"): Identifier,
        vol.Required("value"): vol.Any(None, Scalar),
        vol.Required("updated"): vol.Any(None, Number),
    }
)


def _backup_schema(node: Any, value: Any) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required("format"): "edgeiot-backup",
            vol.Required("version"): 1,
            vol.Required("gateway_id"): Identifier,
            vol.Optional("created"): Number,
            vol.Required("nodes"): [node],
            vol.Optional("values", default=list): [value],
            vol.Optional("settings", default=dict): {str: vol.Any(None, Scalar)},
            # Checked by the automation package (its own messages name the definition).
            vol.Optional("automations", default=list): [dict],
            vol.Optional("firmware", default=list): [
                dict
            ],  # by reference; restore keeps the library
        }
    )


BACKUP_SCHEMA = _backup_schema(STORED_NODE_SCHEMA, BACKUP_VALUE_SCHEMA)
# The document's outline: restore checks its nodes and values one by one, pausing in between.
BACKUP_OUTLINE = _backup_schema(dict, dict)
