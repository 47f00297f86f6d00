"""Actions: set a field, take a gateway backup."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import entity_registry as er

from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_FIELD,
    ATTR_VALUE,
    DOMAIN,
    SERVICE_BACKUP,
    SERVICE_SET_FIELD,
)
from .models import EdgeIoTConfigEntry

FIELD_ID = vol.Match(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$")

# Targets are field entities or a `field` id, so this is not an entity-service schema.
SET_FIELD_SCHEMA = vol.All(
    vol.Schema(
        {
            vol.Optional(ATTR_ENTITY_ID): cv.comp_entity_ids,
            vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
            vol.Optional(ATTR_FIELD): FIELD_ID,
            vol.Required(ATTR_VALUE): vol.Any(bool, int, float, str),
        }
    ),
    cv.has_at_least_one_key(ATTR_ENTITY_ID, ATTR_FIELD),
)
BACKUP_SCHEMA = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string})


def _entry(hass: HomeAssistant, entry_id: str | None) -> EdgeIoTConfigEntry:
    entries = hass.config_entries.async_loaded_entries(DOMAIN)
    if entry_id is None and len(entries) == 1:
        return entries[0]
    entry = hass.config_entries.async_get_entry(entry_id) if entry_id else None
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": str(entry_id)},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry_id": entry.entry_id},
        )
    return entry


def _targets(hass: HomeAssistant, call: ServiceCall) -> list[tuple[EdgeIoTConfigEntry, str]]:
    """(entry, `node.source.field`) for every targeted entity and the `field` option."""
    targets: list[tuple[EdgeIoTConfigEntry, str]] = []
    registry = er.async_get(hass)
    for entity_id in call.data.get(ATTR_ENTITY_ID, []):
        entity = registry.async_get(entity_id)
        if entity is None or entity.platform != DOMAIN or entity.config_entry_id is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_a_field_entity",
                translation_placeholders={"entity_id": entity_id},
            )
        entry = _entry(hass, entity.config_entry_id)
        key = entity.unique_id.split(".", 1)[1]
        targets.append((entry, key))
    if field := call.data.get(ATTR_FIELD):
        targets.append((_entry(hass, call.data.get(ATTR_CONFIG_ENTRY_ID)), field))
    return targets


def _check_value(field: dict[str, Any], value: Any, key: str) -> Any:
    """The value in the field's type, or a ServiceValidationError saying what is wrong."""
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


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register EdgeIoT's actions."""

    async def set_field(call: ServiceCall) -> None:
        for entry, key in _targets(hass, call):
            hub = entry.runtime_data
            field = hub.fields.get(key)
            if field is None or not field.get("writable"):
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="field_not_writable" if field else "field_not_found",
                    translation_placeholders={"field": key},
                )
            value = _check_value(field, call.data[ATTR_VALUE], key)
            node_id, source_id, field_id = key.split(".")
            await hub.async_command(
                "set_field", node_id=node_id, source_id=source_id, field_id=field_id, value=value
            )

    async def backup(call: ServiceCall) -> ServiceResponse:
        hub = _entry(hass, call.data[ATTR_CONFIG_ENTRY_ID]).runtime_data
        result = await hub.async_command("backup")
        return {"backup": result["backup"]}

    hass.services.async_register(DOMAIN, SERVICE_SET_FIELD, set_field, schema=SET_FIELD_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_BACKUP,
        backup,
        schema=BACKUP_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
