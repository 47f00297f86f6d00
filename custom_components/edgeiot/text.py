"""Texts: writable string fields."""

from __future__ import annotations

from homeassistant.components.text import TextEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import EdgeIoTFieldEntity, async_setup_platform
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up EdgeIoT texts."""
    async_setup_platform(hass, entry, async_add_entities, Platform.TEXT, FieldText)


class FieldText(EdgeIoTFieldEntity, TextEntity):
    """A writable string field."""

    @property
    def native_value(self) -> str | None:
        return self.value

    async def async_set_value(self, value: str) -> None:
        await self.set_value(value)
