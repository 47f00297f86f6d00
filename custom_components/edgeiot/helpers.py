"""Identifiers shared by devices, entities, actions and diagnostics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import probatio as vol
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN


def gateway_identifier(gateway_id: str) -> tuple[str, str]:
    """The device-registry identifier of a gateway."""
    return (DOMAIN, gateway_id)


def node_identifier(gateway_id: str, node_id: str) -> tuple[str, str]:
    """The device-registry identifier of a node: `.` cannot occur in ids, so it cannot collide."""
    return (DOMAIN, f"{gateway_id}.{node_id}")


def node_id_of(identifiers: Iterable[tuple[str, str]], gateway_id: str) -> str | None:
    """The node id behind a device's identifiers (None for the gateway or another device)."""
    prefix = f"{gateway_id}."
    for domain, identifier in identifiers:
        if domain == DOMAIN and identifier.startswith(prefix):
            return identifier[len(prefix) :]
    return None


def field_key(node_id: str, source_id: str, field_id: str) -> str:
    """A field's id within its gateway: `node.source.field` (the unique id adds the gateway)."""
    return f"{node_id}.{source_id}.{field_id}"


def field_entity_name(source: dict[str, Any], field: dict[str, Any]) -> str:
    """Source + field ("Vent open" from source "Vent" and field "Open"); the field's name
    alone when the source has no name of its own (the gateway then uses its id) or the field's
    name already starts with it ("Vent open" in source "Vent")."""
    field_name = str(field.get("name") or field["id"])
    source_name = str(source.get("name") or source["id"])
    if source_name == source["id"] or field_name.casefold().startswith(source_name.casefold()):
        return field_name
    first, _, rest = field_name.partition(" ")
    if first[:1].isupper() and first[1:].islower():  # "Open" → "open", "CO2" and "pH" stay
        field_name = first.lower() + (f" {rest}" if rest else "")
    return f"{source_name} {field_name}"


def check_value(field: dict[str, Any], value: Any, key: str) -> Any:
    """The value in a writable field's type, or a ServiceValidationError saying what is wrong.

    Strings are converted to the field's type first ("55" → 55, "on" → true), as HA's own
    actions do, so templates and UI text work; the gateway then checks the typed value again.
    """
    if not field.get("writable"):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="field_not_writable",
            translation_placeholders={"field": key},
        )
    kind = field["type"]
    try:
        match kind:
            case "bool":
                checked: Any = cv.boolean(value)
            case "int":
                checked = vol.Coerce(int)(value)
                if isinstance(value, float) and not value.is_integer():
                    raise vol.Invalid("not an integer")
            case "float":
                checked = vol.Coerce(float)(value)
            case "enum":
                checked = vol.In(field["options"])(str(value))
            case _:
                checked = str(value)
        if kind in ("int", "float"):
            checked = vol.Range(min=field.get("min"), max=field.get("max"))(checked)
    except vol.Invalid as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_value",
            translation_placeholders={"field": key, "value": str(value), "error": str(err)},
        ) from err
    return checked
