"""Switches: writable boolean fields, and the gateway's tasks and schedules (enabled)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import EdgeIoTFieldEntity, async_add_platform_entities
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


class FieldSwitch(EdgeIoTFieldEntity, SwitchEntity):
    """A writable boolean field; its state follows what the node reports back."""

    _attr_translation_key = "field"  # icons.json; the name stays the node's

    @property
    def is_on(self) -> bool | None:
        value = self.field_value
        return value if isinstance(value, bool) else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.async_send_value(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.async_send_value(False)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Writable boolean fields; in the main entry also the automations (automation_entities)."""
    hub = entry.runtime_data
    if entry is hub.entry:  # not in partition entries (partitions.py)
        entry.async_on_unload(
            hub.automations.async_add_platform(Platform.SWITCH, async_add_entities)
        )
    async_add_platform_entities(hass, entry, async_add_entities, Platform.SWITCH, FieldSwitch)
