"""Actions: set a field, take a gateway backup; the automation and firmware actions."""

from __future__ import annotations

import probatio as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, ENTITY_MATCH_ALL
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import async_get_platforms
from homeassistant.helpers.service import entity_service_call
from homeassistant.helpers.target import TargetSelection, async_extract_referenced_entity_ids

from .automations import async_setup_automation_actions
from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_FIELD,
    ATTR_VALUE,
    DOMAIN,
    SERVICE_BACKUP,
    SERVICE_SET_FIELD,
)
from .entity import EdgeIoTFieldEntity
from .firmware_actions import async_setup_firmware_actions
from .helpers import check_value
from .models import EdgeIoTConfigEntry
from .partitions import is_partition

FIELD_ID = vol.Match(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$")
TARGET_KEYS = tuple(str(key) for key in cv.ENTITY_SERVICE_FIELDS)

# An entity service (entity, device, area, floor, label targets resolved by HA) that also takes
# `field: node.source.field` for automations that address a field directly.
SET_FIELD_SCHEMA = vol.All(
    vol.Schema(
        {
            **cv.ENTITY_SERVICE_FIELDS,
            vol.Remove("metadata"): dict,
            vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
            vol.Optional(ATTR_FIELD): FIELD_ID,
            vol.Required(ATTR_VALUE): vol.Any(bool, int, float, str),
        }
    ),
    cv.has_at_least_one_key(*TARGET_KEYS, ATTR_FIELD),
)
BACKUP_SCHEMA = vol.Schema({vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})


def entry_for(hass: HomeAssistant, entry_id: str | None) -> EdgeIoTConfigEntry:
    """The loaded entry `entry_id`, or the only one when it is None."""
    entries = [e for e in hass.config_entries.async_loaded_entries(DOMAIN) if not is_partition(e)]
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


def _field_entities(hass: HomeAssistant) -> dict[str, EdgeIoTFieldEntity]:
    """Every EdgeIoT field entity HA has, by entity id."""
    return {
        entity_id: entity
        for platform in async_get_platforms(hass, DOMAIN)
        for entity_id, entity in platform.entities.items()
        if isinstance(entity, EdgeIoTFieldEntity)
    }


async def _set_targets(hass: HomeAssistant, call: ServiceCall) -> None:
    """The entity-service half of set_field: HA resolves the targets (entities, devices, areas
    ...) among the writable field entities; a named entity that is not one is an error."""
    if call.data.get(ATTR_ENTITY_ID) == ENTITY_MATCH_ALL:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="target_all")
    if ATTR_FIELD in call.data or ATTR_CONFIG_ENTRY_ID in call.data:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="field_and_target")
    fields = _field_entities(hass)
    writable: dict[str, Entity] = {
        entity_id: entity for entity_id, entity in fields.items() if entity.field.get("writable")
    }
    selected = async_extract_referenced_entity_ids(hass, TargetSelection(call.data), True)
    for entity_id in sorted(selected.referenced - set(writable)):
        if entity_id in fields:
            check_value(fields[entity_id].field, call.data[ATTR_VALUE], fields[entity_id].key)
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_a_field_entity",
            translation_placeholders={"entity_id": entity_id},
        )
    await entity_service_call(hass, writable, "async_set_field", call)


async def _set_by_id(hass: HomeAssistant, call: ServiceCall) -> None:
    """The `field: node.source.field` half of set_field."""
    entry = entry_for(hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
    key = call.data[ATTR_FIELD]
    field = entry.runtime_data.fields.get(key)
    if field is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="field_not_found",
            translation_placeholders={"field": key},
        )
    node_id, source_id, field_id = key.split(".")
    await entry.runtime_data.async_set_field(
        node_id, source_id, field_id, check_value(field, call.data[ATTR_VALUE], key)
    )


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register EdgeIoT's actions."""

    async def set_field(call: ServiceCall) -> None:
        if any(key in call.data for key in TARGET_KEYS):
            await _set_targets(hass, call)
        else:
            await _set_by_id(hass, call)

    async def backup(call: ServiceCall) -> ServiceResponse:
        hub = entry_for(hass, call.data.get(ATTR_CONFIG_ENTRY_ID)).runtime_data
        result = await hub.async_command("backup")
        if not isinstance(result, dict) or not isinstance(result.get("backup"), dict):
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="invalid_response",
                translation_placeholders={"command": "backup"},
            )  # fmt: skip
        return {"backup": result["backup"]}

    hass.services.async_register(DOMAIN, SERVICE_SET_FIELD, set_field, schema=SET_FIELD_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_BACKUP,
        backup,
        schema=BACKUP_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_setup_automation_actions(hass)
    async_setup_firmware_actions(hass, entry_for)
