"""Shared by device actions and conditions: a node's fields and the value schema of one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import probatio as vol
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.helpers import config_validation as cv

CONF_SUBTYPE = "subtype"
CONF_VALUE = "value"


def node_fields(node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`source.field`, field) for each field of the node."""
    for source in node["sources"]:
        for spec in source["fields"]:
            yield f"{source['id']}.{spec['id']}", spec


def field_of(node: dict[str, Any], key: str) -> dict[str, Any]:
    """The node's field `source.field`, or InvalidDeviceAutomationConfig."""
    for field_key, spec in node_fields(node):
        if field_key == key:
            return spec
    raise InvalidDeviceAutomationConfig(f"node {node['id']} has no field {key}")


def value_schema(field: dict[str, Any]) -> Any:
    """The UI/config schema of a value of the field."""
    match field["type"]:
        case "bool":
            return cv.boolean
        case "int":
            return vol.Coerce(int)
        case "float":
            return vol.Coerce(float)
        case "enum":
            return vol.In(field["options"])
    return cv.string
