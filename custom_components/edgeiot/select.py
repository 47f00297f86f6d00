"""Selects: writable enum fields."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .discovery import EntityInfo
from .entity import EdgeIoTFieldEntity, async_setup_platform
from .hub import EdgeIoTHub
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up EdgeIoT selects."""
    async_setup_platform(hass, entry, async_add_entities, Platform.SELECT, FieldSelect)


class FieldSelect(EdgeIoTFieldEntity, SelectEntity):
    """A writable enum field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        self._attr_options = list(self.field["options"])

    @property
    def current_option(self) -> str | None:
        return self.value

    async def async_select_option(self, option: str) -> None:
        await self.set_value(option)
