"""Config entry migrations: registry entries written by older versions of the integration."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .const import DOMAIN, LOGGER
from .models import EdgeIoTConfigEntry


@callback
def async_migrate_registry_ids(hass: HomeAssistant, entry: EdgeIoTConfigEntry) -> None:
    """1.1 → 1.2: node devices `gw-node` → `gw.node` (ids may contain `-`), event entities
    `gw.node.source.events` → `gw.node.events:source` and action buttons `gw.node.action.x`
    → `gw.node.action:x` (a field `events` or a source `action` collided with them)."""
    gateway_id = entry.unique_id
    if gateway_id is None:
        return
    devices = dr.async_get(hass)
    old_prefix = f"{gateway_id}-"
    for device in dr.async_entries_for_config_entry(devices, entry.entry_id):
        identifiers = {
            (domain, f"{gateway_id}.{value.removeprefix(old_prefix)}")
            if domain == DOMAIN and value.startswith(old_prefix)
            else (domain, value)
            for domain, value in device.identifiers
        }
        if identifiers != device.identifiers:
            devices.async_update_device(device.id, new_identifiers=identifiers)

    @callback
    def new_unique_id(entity: er.RegistryEntry) -> dict[str, Any] | None:
        parts = entity.unique_id.split(".")
        if len(parts) != 4 or parts[0] != gateway_id:
            return None
        _, node_id, first, second = parts
        if entity.domain == "event" and second == "events":
            return {"new_unique_id": f"{gateway_id}.{node_id}.events:{first}"}
        if entity.domain == "button" and first == "action":
            return {"new_unique_id": f"{gateway_id}.{node_id}.action:{second}"}
        return None

    entities = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(entities, entry.entry_id):
        if (changes := new_unique_id(entity)) is not None:
            entities.async_update_entity(entity.entity_id, **changes)
    LOGGER.debug("Migrated the registry entries of gateway %s to 1.2", gateway_id)
